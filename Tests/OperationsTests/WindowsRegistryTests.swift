import Diagnostics
import Foundation
import Testing
@testable import Operations
import TestSupport

/// registry-set and registry-delete on a Windows guest tree whose hives are real hives (Fixtures/windows: an empty
/// hive filled by hivexregedit from the Windows 10 fixture's .reg text), read back with hivexregedit.
@Suite struct WindowsRegistryTests {
    static let windows = GuestFacts(type: "windows", distro: "windows", majorVersion: 10,
                                    windows: WindowsFacts(systemRoot: "/Windows"))

    /// A tree holding the Windows 10 fixture's SOFTWARE and SYSTEM hives under /Windows/System32/config.
    static func windowsTree() throws -> TemporaryTree {
        let tree = try TemporaryTree()
        let sources = packageRoot.appendingPathComponent("Fixtures/windows").path
        try FileManager.default.createDirectory(atPath: tree.path + "/Windows/System32/config", withIntermediateDirectories: true)
        for hive in ["SOFTWARE", "SYSTEM"] {
            let path = tree.path + "/Windows/System32/config/" + hive
            try runTool("python3", [sources + "/make-hive.py", path, hive])
            try runTool("hivexregedit", ["--merge", "--prefix", "HKEY_LOCAL_MACHINE\\" + hive, path,
                                         sources + "/win10-\(hive.lowercased()).reg"])
        }
        return tree
    }

    /// The key's values as hivexregedit prints them with strings shown as text.
    static func exported(_ tree: TemporaryTree, _ hive: String, _ key: String) throws -> String {
        try runTool("hivexregedit", ["--export", "--unsafe-printable-strings", "--prefix", "HKEY_LOCAL_MACHINE\\" + hive,
                                     tree.path + "/Windows/System32/config/" + hive, key])
    }

    @Test func setCreatesTheKeyOnceAndDiffsAsRegText() throws {
        let tree = try Self.windowsTree()
        let runner = OperationRunner(guest: tree.guest, context: OperationContext(guest: Self.windows), recordDiffs: true)
        let set = try RegistrySet.parse("HKLM\\SOFTWARE\\Cloudbase Solutions\\Cloudbase-Init:Plugins=multi_sz:a.b;c.d")
        let first = try runner.run(set)
        #expect(first.changed == .yes, "\(first.summary)")
        let diff = try #require(first.diffs?.first)
        #expect(diff.path == "/Windows/System32/config/SOFTWARE")
        #expect(diff.unified.contains("+[HKEY_LOCAL_MACHINE\\SOFTWARE\\Cloudbase Solutions\\Cloudbase-Init]"), "\(diff.unified)")
        #expect(first.diffs?.count == 1, "the hive's bytes are not diffed beside its .reg text")
        let second = try runner.run(set)
        #expect(second.changed == .no && second.diffs == [], "\(second.summary)")
        let text = try Self.exported(tree, "SOFTWARE", "Cloudbase Solutions\\Cloudbase-Init")
        #expect(text.contains("\"Plugins\"=hex(7):61,00,2e,00,62,00,00,00,63,00,2e,00,64,00,00,00,00,00"), "\(text)")

        // Every kind of data, and the values the fixture had left alone.
        for argument in ["dword:0x2a", "qword:5", "sz:C:\\Program Files", "expand_sz:%SystemRoot%\\x", "binary:01,ff"] {
            let step = try runner.run(try RegistrySet.parse("HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion:T=" + argument))
            #expect(step.changed == .yes, "\(argument): \(step.summary)")
        }
        let current = try Self.exported(tree, "SOFTWARE", "Microsoft\\Windows NT\\CurrentVersion")
        #expect(current.contains("\"T\"=hex(3):01,ff") && current.contains("\"ProductName\"=str(1):\"Windows 10 Pro\""), "\(current)")
    }

    @Test func currentControlSetIsTheOneSelectNames() throws {
        let tree = try Self.windowsTree()
        let runner = OperationRunner(guest: tree.guest, context: OperationContext(guest: Self.windows))
        let step = try runner.run(try RegistrySet.parse(
            "HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters:Hostname=sz:RENAMED"))
        #expect(step.changed == .yes)
        let text = try Self.exported(tree, "SYSTEM", "ControlSet001\\Services\\Tcpip\\Parameters")
        #expect(text.contains("\"Hostname\"=str(1):\"RENAMED\""), "\(text)")
    }

    @Test func deleteRemovesAValueOrAKeyAndNothingTwice() throws {
        let tree = try Self.windowsTree()
        func applyTwice(_ operation: RegistryDelete) throws {
            let runner = OperationRunner(guest: tree.guest, context: OperationContext(guest: Self.windows), recordDiffs: true)
            #expect(try runner.run(operation).changed == .yes)
            let second = try runner.run(operation)
            #expect(second.changed == .no && second.diffs == [], "\(second.summary)")
        }
        try applyTwice(try RegistryDelete.parse("HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion:ReleaseId"))
        let current = try Self.exported(tree, "SOFTWARE", "Microsoft\\Windows NT\\CurrentVersion")
        #expect(!current.contains("ReleaseId") && current.contains("ProductName"), "\(current)")
        // A value of a key that is not there: no change, and no key made.
        let runner = OperationRunner(guest: tree.guest, context: OperationContext(guest: Self.windows))
        #expect(try runner.run(try RegistryDelete.parse("HKLM\\SOFTWARE\\Nope:X")).changed == .no)
        #expect(throws: (any Error).self) { try Self.exported(tree, "SOFTWARE", "Nope") }
        try applyTwice(try RegistryDelete.parse("HKLM\\SOFTWARE\\Microsoft\\Windows"))
        #expect(throws: (any Error).self) { try Self.exported(tree, "SOFTWARE", "Microsoft\\Windows") }
    }

    @Test func badArgumentsAndGuestsAreRefused() throws {
        for bad in ["HKCU\\Software:X=sz:a", "HKLM\\SOFTWARE\\K", "HKLM\\SOFTWARE\\K:X=dword:0x100000000",
                    "HKLM\\SOFTWARE\\K:X=binary:0g", "HKLM\\SOFTWARE\\K:=sz:a", "HKLM\\NOPE\\K:X=sz:a"] {
            #expect(throws: ArgumentError.self, "\(bad)") { try RegistrySet.parse(bad) }
        }
        #expect(throws: ArgumentError.self) { try RegistryDelete.parse("HKLM\\SOFTWARE") }
        // A Linux guest has no registry: the error says so.
        let tree = try TemporaryTree()
        let linux = OperationContext(guest: GuestFacts(type: "linux", distro: "rhel"))
        let error = #expect(throws: OperationFailure.self) {
            try OperationRunner(guest: tree.guest, context: linux).run(try RegistrySet.parse("HKLM\\SOFTWARE\\K:X=sz:a"))
        }
        #expect(error.map { Diagnostic(of: $0).message.contains("not Windows") } == true)
    }
}
