import Foundation
import Testing
@testable import Operations
@testable import Appliance
@testable import DirectoryTree
import TestSupport

/// The issue's `imgcustomize customize` example, parsed through the catalog as the CLI does, on a RHEL 7 guest:
/// the same files, operations and expected results for a tree and (in `ApplianceTests`) for an image.
enum CustomizeSequence {
    static let arguments: [(option: String, argument: String?)] = [
        ("set-line", "/etc/sysconfig/network:NOZEROCONF=yes"),
        ("append-grub-args", "console=tty0 console=ttyS0,115200n8"),
        ("lock-root", nil),
        ("disable-repos", nil),
        ("remove-machine-id", nil),
        ("edit-file", "/etc/ssh/sshd_config:s/^PermitRootLogin yes/PermitRootLogin no/"),
        ("yaml-list-add", "/etc/cloud/cloud.cfg:cloud_init_modules:resolv-conf"),
        ("write-lines", "/etc/sysconfig/network-scripts/ifcfg-eth0:TYPE=Ethernet\\nDEVICE=eth0\\nONBOOT=yes\\nBOOTPROTO=dhcp\\nNM_CONTROLLED=no"),
    ]

    /// Path, content before, content after, mode.
    static let files: [(path: String, before: String, after: String, mode: UInt32)] = [
        ("/etc/sysconfig/network", "NETWORKING=yes\n", "NETWORKING=yes\nNOZEROCONF=yes\n", 0o644),
        ("/etc/default/grub", "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"rhgb quiet\"\n",
         "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"rhgb quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"console=tty0 console=ttyS0,115200n8\"\n",
         0o644),
        ("/boot/grub2/grub.cfg", "menuentry 'RHEL' {\n\tlinux16 /vmlinuz root=/dev/vda1 ro\n}\n",
         "menuentry 'RHEL' {\n\tlinux16 /vmlinuz root=/dev/vda1 ro console=tty0 console=ttyS0,115200n8\n}\n", 0o600),
        ("/etc/shadow", "root:$6$s$h:19000:0:99999:7:::\n", "root:!$6$s$h:19000:0:99999:7:::\n", 0o000),
        ("/etc/yum.repos.d/redhat.repo", "[rhel-7-server-rpms]\nname=RHEL\n",
         "[rhel-7-server-rpms]\nname=RHEL\nenabled=0\n", 0o644),
        ("/etc/machine-id", "0123456789abcdef0123456789abcdef\n", "", 0o444),
        ("/etc/ssh/sshd_config", "PermitRootLogin yes\n", "PermitRootLogin no\n", 0o600),
        ("/etc/cloud/cloud.cfg", "cloud_init_modules:\n - bootcmd\n - ssh\n",
         "cloud_init_modules:\n - bootcmd\n - ssh\n - resolv-conf\n", 0o644),
        ("/etc/sysconfig/network-scripts/ifcfg-eth0", "DEVICE=eth0\nHWADDR=52:54:00:aa:bb:cc\n",
         "TYPE=Ethernet\nDEVICE=eth0\nONBOOT=yes\nBOOTPROTO=dhcp\nNM_CONTROLLED=no\n", 0o644),
    ]

    /// Writes the files, runs the operations twice, and checks what a user would: each file's text and mode, every
    /// step changed the first time and none the second, and the touched paths.
    static func run(on guest: GuestFilesystem, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for file in files {
            let directory = String(file.path[..<(file.path.lastIndex(of: "/") ?? file.path.endIndex)])
            try guest.mkdir(directory, mode: 0o755, parents: true)
            try guest.remove(file.path, recursive: false)
            try guest.write(file.path, Array(file.before.utf8), mode: file.mode)
        }
        let operations = try arguments.map { option, argument in
            try #require(OperationRegistry.named(option)).parse(argument)
        }
        let runner = OperationRunner(guest: guest, recordDiffs: true)
        let first = try operations.map { try runner.run($0) }
        #expect(first.allSatisfy { $0.changed == .yes }, "\(first.map(\.summary))", sourceLocation: sourceLocation)
        let second = try operations.map { try runner.run($0) }
        #expect(second.allSatisfy { $0.changed == .no && $0.diffs == [] }, "\(second.map(\.summary))",
                sourceLocation: sourceLocation)
        for file in files {
            #expect(try guest.readText(file.path) == file.after, "\(file.path)", sourceLocation: sourceLocation)
            #expect(try guest.stat(file.path)?.mode == file.mode, "\(file.path)", sourceLocation: sourceLocation)
        }
        #expect(runner.touchedPaths == files.map(\.path), sourceLocation: sourceLocation)
    }
}

@Suite struct CustomizeSequenceTests {
    @Test func onATree() throws {
        let tree = try TemporaryTree()
        try CustomizeSequence.run(on: tree.guest)
    }
}

extension ApplianceTestsOnFixtures {
    /// The same sequence through the appliance, on an overlay over the scratch RHEL 7 guest: one launch.
    @Suite struct CustomizeSequenceOnImageTests {
        @Test func onAnImage() throws {
            let directory = try TestDirectory()
            let base = try ScratchGuest.build(in: directory)
            let overlay = try makeOverlay(over: base, format: .raw, in: directory)
            let session = try ApplianceSession(
                drives: [ApplianceDrive(path: overlay, format: .qcow2, discard: .besteffort, scratch: true)],
                options: ApplianceOptions(logger: LogRecorder().logger()))
            defer { try? session.close() }
            try CustomizeSequence.run(on: try session.mountOperatingSystem())
        }
    }
}
