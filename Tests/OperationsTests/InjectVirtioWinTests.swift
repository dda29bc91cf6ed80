import Diagnostics
import Foundation
import Testing
@testable import Operations
import TestSupport

/// inject-virtio-win on a Windows 10 guest tree whose hives are real (WindowsRegistryTests.windowsTree), from a driver
/// tree in virtio-win's ISO layout made of small files, as a directory and as an ISO xorriso made; the hives read back
/// with hivexregedit.
@Suite struct InjectVirtioWinTests {
    static let win10 = GuestFacts(type: "windows", distro: "windows", majorVersion: 10, osinfo: "win10", arch: "x86_64",
                                  productName: "Windows 10 Pro",
                                  windows: WindowsFacts(productVariant: "Client", systemRoot: "/Windows"))

    static func virtioWin(_ releases: [String] = ["w10", "2k19"]) throws -> TestDirectory {
        try virtioWinTree(releases: releases)
    }

    static func runner(_ tree: TemporaryTree, recordDiffs: Bool = false) -> OperationRunner {
        OperationRunner(guest: tree.guest, context: OperationContext(guest: win10), recordDiffs: recordDiffs)
    }

    @Test func driversGoInAndTheStorageDriverBootsThroughTheDriverDatabase() throws {
        let tree = try WindowsRegistryTests.windowsTree()
        // Windows 8 and later bind boot devices in the DriverDatabase.
        _ = try Self.runner(tree).run(try RegistrySet.parse("HKLM\\SYSTEM\\DriverDatabase:x=sz:y"))
        let source = try Self.virtioWin()
        let runner = Self.runner(tree, recordDiffs: true)
        let first = try runner.run(InjectVirtioWin(source.path))
        #expect(first.changed == .yes, "\(first.summary)")
        #expect(first.summary.hasPrefix("viostor boots; balloon, netkvm, vioscsi, viostor for w10/amd64"), "\(first.summary)")
        let staged = try tree.guest.list("/Windows/Drivers/VirtIO").sorted()
        #expect(staged == ["balloon.cat", "balloon.inf", "balloon.sys", "netkvm.cat", "netkvm.inf", "netkvm.sys",
                           "vioscsi.cat", "vioscsi.inf", "vioscsi.sys", "viostor.cat", "viostor.inf", "viostor.sys"])
        #expect(tree.text("/Windows/Drivers/VirtIO/viostor.sys") == "viostor/w10/amd64/viostor.sys driver bytes\n")
        #expect(tree.text("/Windows/System32/drivers/viostor.sys") == "viostor/w10/amd64/viostor.sys driver bytes\n")
        let service = try WindowsRegistryTests.exported(tree, "SYSTEM", "ControlSet001\\Services\\viostor")
        #expect(service.contains("\"Start\"=dword:00000000") && service.contains("\"Group\"=str(1):\"SCSI miniport\""),
                "\(service)")
        let devices = try WindowsRegistryTests.exported(tree, "SYSTEM", "DriverDatabase\\DeviceIds\\PCI")
        #expect(devices.contains("[HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase\\DeviceIds\\PCI\\VEN_1AF4&DEV_1001&REV_00]"))
        #expect(devices.contains("[HKEY_LOCAL_MACHINE\\SYSTEM\\DriverDatabase\\DeviceIds\\PCI\\VEN_1AF4&DEV_1042&REV_01]"))
        let software = try WindowsRegistryTests.exported(tree, "SOFTWARE", "Microsoft\\Windows\\CurrentVersion")
        #expect(software.contains("\"DevicePath\"=str(2):\"%SystemRoot%\\inf;%SystemRoot%\\Drivers\\VirtIO\""), "\(software)")
        // The diffs: one per hive, as .reg text.
        let diffed = Set((first.diffs ?? []).map(\.path))
        #expect(diffed.isSuperset(of: ["/Windows/System32/config/SYSTEM", "/Windows/System32/config/SOFTWARE"]), "\(diffed)")
        // What Glance learns from it: a virtio disk and NIC.
        #expect(try GuestHardware(reading: tree.guest, facts: Self.win10) == GuestHardware())

        let second = try runner.run(InjectVirtioWin(source.path))
        #expect(second.changed == .no && second.diffs == [], "\(second.summary)")
    }

    @Test func fromAnISOOnAnOlderWindowsThroughTheCriticalDeviceDatabase() throws {
        let tree = try WindowsRegistryTests.windowsTree()
        let source = try Self.virtioWin()
        let iso = try TestDirectory("virtio-win-iso")
        try runTool("xorriso", ["-as", "mkisofs", "-quiet", "-J", "-R", "-V", "virtio-win", "-o", iso.path("virtio-win.iso"),
                                source.path])
        let step = try Self.runner(tree).run(InjectVirtioWin(iso.path("virtio-win.iso")))
        #expect(step.changed == .yes, "\(step.summary)")
        #expect(tree.text("/Windows/System32/drivers/viostor.sys") == "viostor/w10/amd64/viostor.sys driver bytes\n")
        let database = try WindowsRegistryTests.exported(tree, "SYSTEM", "ControlSet001\\Control\\CriticalDeviceDatabase")
        #expect(database.contains("PCI#VEN_1AF4&DEV_1001&REV_00]") && database.contains("\"Service\"=str(1):\"viostor\""),
                "\(database)")
    }

    @Test func noMatchingDriverAndNoWindowsAreRefused() throws {
        let tree = try WindowsRegistryTests.windowsTree()
        let source = try Self.virtioWin(["2k19"])
        let error = #expect(throws: OperationFailure.self) { try Self.runner(tree).run(InjectVirtioWin(source.path)) }
        #expect(error.map { Diagnostic(of: $0).message.contains("no driver for w10/amd64") } == true,
                "\(String(describing: error))")
        #expect(try !tree.guest.exists("/Windows/Drivers/VirtIO"))
        let linux = OperationRunner(guest: tree.guest, context: OperationContext(guest: GuestFacts(type: "linux")))
        #expect(throws: OperationFailure.self) { try linux.run(InjectVirtioWin(source.path)) }
        #expect(InjectVirtioWin.matches("drivers/by-os/amd64/2k19/viostor.sys", release: "2k19", architecture: "amd64"))
        #expect(!InjectVirtioWin.matches("viostor/2k19/amd64/viostor.pdb", release: "2k19", architecture: "amd64"))
        #expect(!InjectVirtioWin.matches("viostor/2k8r2/amd64/viostor.sys", release: "2k8", architecture: "amd64"))
    }
}
