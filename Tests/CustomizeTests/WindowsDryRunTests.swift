import Foundation
import Testing
import TestSupport
@testable import Customize
import Operations

/// A dry run of the registry operations shows each change as the key's .reg text and leaves the hive as it was: the
/// same run as a real one (the tree backend's dry run works on a copy), on a tree holding real hives made from the
/// Windows 10 fixture's .reg text (Fixtures/windows), as the image's are.
@Suite struct WindowsDryRunTests {
    @Test func aDryRunShowsTheRegistryDiffAndChangesNoHive() throws {
        let tree = try TestDirectory("windows-tree")
        let config = tree.path("Windows/System32/config")
        try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
        let sources = packageRoot.appendingPathComponent("Fixtures/windows").path
        _ = try runTool("python3", [sources + "/make-hive.py", config + "/SOFTWARE", "SOFTWARE"])
        _ = try runTool("hivexregedit", ["--merge", "--prefix", "HKEY_LOCAL_MACHINE\\SOFTWARE", config + "/SOFTWARE",
                                         sources + "/win10-software.reg"])
        let before = try Data(contentsOf: URL(fileURLWithPath: config + "/SOFTWARE"))
        let guest = GuestFacts(type: "windows", distro: "windows", majorVersion: 10,
                               windows: WindowsFacts(systemRoot: "/Windows"))

        let report = try Pipeline(options: RunOptions(dryRun: true, diffs: true)).customize(
            [try RegistrySet.parse("HKLM\\SOFTWARE\\Cloudbase Solutions\\Cloudbase-Init:Plugins=sz:a.b"),
             try RegistryDelete.parse("HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion:ProductName")],
            onTree: tree.path, guest: guest)
        #expect(report.steps.map(\.changed) == [.yes, .yes], "\(report.steps.map(\.summary))")
        let diffs = report.steps.flatMap { $0.diffs ?? [] }
        #expect(diffs.map(\.path) == ["/Windows/System32/config/SOFTWARE", "/Windows/System32/config/SOFTWARE"])
        #expect(diffs.first?.unified.contains("+\"Plugins\"=str(1):\"a.b\"") == true, "\(diffs.first?.unified ?? "")")
        #expect(diffs.last?.unified.contains("-\"ProductName\"=str(1):\"Windows 10 Pro\"") == true,
                "\(diffs.last?.unified ?? "")")
        #expect(try Data(contentsOf: URL(fileURLWithPath: config + "/SOFTWARE")) == before, "the dry run changed the hive")
    }
}
