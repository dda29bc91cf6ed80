import Foundation
import Testing
import TestSupport
@testable import Customize
import Operations
import Profiles

/// What `--tree` refuses before it changes anything, and what a failed tree run says it changed.
@Suite struct TreeContainmentPipelineTests {
    /// The host's own / under any name. The operation deletes a name nothing has, so that a run that is not refused
    /// changes nothing on the host either (and the test fails on the missing refusal).
    @Test(arguments: ["/", "/tmp/..", "//", "/proc/self/root"])
    func theHostRootIsRefused(_ root: String) throws {
        let missing = "/imgcustomize-test-\(UUID().uuidString)"
        let failure = #expect(throws: RunFailure.self) {
            try Pipeline().customize([Delete(missing)], onTree: root)
        }
        #expect(failure?.diagnostic.message == "\(root): open tree: this is the host's own root directory, not a guest's tree")
        #expect(failure?.diagnostic.hint?.contains("--tree takes the directory of an unpacked guest") == true)
        #expect(failure?.imageUnchanged == true)
        #expect(failure?.report.steps.isEmpty == true)
    }

    @Test func aSymlinkToTheHostRootIsRefused() throws {
        let directory = try TestDirectory("customize-tree")
        let link = directory.path("slash")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/")
        let failure = #expect(throws: RunFailure.self) {
            try Pipeline().customize([Delete("/imgcustomize-test-\(UUID().uuidString)")], onTree: link)
        }
        #expect(failure?.diagnostic.message.hasSuffix("this is the host's own root directory, not a guest's tree") == true)
    }

    @Test func outputWithRootIsRefusedAndTheTreeUntouched() throws {
        let directory = try TestDirectory("customize-tree")
        let output = try TestDirectory("customize-output")
        var options = RunOptions()
        options.output = output.path("result.qcow2")
        let failure = #expect(throws: RunFailure.self) {
            try Pipeline(options: options).customize([Touch("/created")], onTree: directory.path)
        }
        #expect(failure?.diagnostic.message == "\(directory.path): --output does not apply to a directory tree, which is changed in place")
        #expect(failure?.diagnostic.hint?.contains("cp -a") == true)
        #expect(failure?.imageUnchanged == true)
        #expect(FileManager.default.fileExists(atPath: directory.path("created")) == false)
        #expect(FileManager.default.fileExists(atPath: output.path("result.qcow2")) == false)
    }

    /// A step that fails after others changed the tree says what they changed, and what it had changed itself.
    @Test func aFailedStepListsWhatTheRunHadChanged() throws {
        let directory = try TestDirectory("customize-tree")
        try FileManager.default.createDirectory(atPath: directory.path("etc"), withIntermediateDirectories: true)
        try "x\n".write(toFile: directory.path("etc/a"), atomically: true, encoding: .utf8)
        try "y\n".write(toFile: directory.path("etc/b"), atomically: true, encoding: .utf8)
        let operations: [any GuestOperation] = [Touch("/etc/stamp"), Delete("/nothing"),
                                                Truncate("/etc/a"), Truncate("/etc/missing")]
        let failure = #expect(throws: RunFailure.self) {
            try Pipeline().customize(operations, onTree: directory.path)
        }
        #expect(failure?.imageUnchanged == false)
        #expect(failure?.treeChanges == ["touch /etc/stamp", "truncate /etc/a"])
        #expect(failure?.diagnostic.message == "truncate /etc/missing failed: \(directory.path): truncate /etc/missing: no such regular file; already changed in the tree before the failure: touch /etc/stamp, truncate /etc/a")
        let encoded = try JSONEncoder().encode(#require(failure))
        let json = try #require(JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        #expect((json["error"] as? [String: Any])?["message"] as? String == failure?.diagnostic.message)
        #expect(json["image-unchanged"] as? Bool == false)
    }

    /// The failing step's own changes are listed too: tmp-files removed /tmp/a before /tmp/b, a directory it
    /// cannot enter, stopped it.
    @Test func theFailingStepsOwnChangesAreListed() throws {
        let directory = try TestDirectory("customize-tree")
        try FileManager.default.createDirectory(atPath: directory.path("tmp/b"), withIntermediateDirectories: true)
        try "x\n".write(toFile: directory.path("tmp/a"), atomically: true, encoding: .utf8)
        try "y\n".write(toFile: directory.path("tmp/b/c"), atomically: true, encoding: .utf8)
        // Immutable: not even root can remove what is in it (ext4, xfs, btrfs, and tmpfs since Linux 6.0).
        _ = try runTool("chattr", ["+i", directory.path("tmp/b")])
        defer { _ = try? runTool("chattr", ["-i", directory.path("tmp/b")]) }
        let failure = #expect(throws: RunFailure.self) {
            try Pipeline().customize([TmpFiles()], onTree: directory.path)
        }
        #expect(failure?.treeChanges == ["tmp-files: /tmp/a"])
        #expect(failure?.imageUnchanged == false)
        #expect(FileManager.default.fileExists(atPath: directory.path("tmp/a")) == false)
    }

    @Test func aFirstStepThatFailsLeavesTheTreeUnchangedAndSaysSo() throws {
        let directory = try TestDirectory("customize-tree")
        let failure = #expect(throws: RunFailure.self) {
            try Pipeline().customize([Truncate("/etc/missing")], onTree: directory.path)
        }
        #expect(failure?.imageUnchanged == true)
        #expect(failure?.treeChanges == [])
    }

    /// virt-sysprep's whole default list on a tree whose /home holds a symlink loop: every step runs.
    @Test func sysprepRunsPastASymlinkLoopInHome() throws {
        let directory = try TestDirectory("customize-tree")
        for (path, text) in [("home/alice/.bash_history", "ls\n"), ("etc/machine-id", "0123456789abcdef\n"),
                             ("var/log/messages", "boot\n")] {
            try FileManager.default.createDirectory(atPath: directory.path((path as NSString).deletingLastPathComponent),
                                                    withIntermediateDirectories: true)
            try text.write(toFile: directory.path(path), atomically: true, encoding: .utf8)
        }
        try FileManager.default.createSymbolicLink(atPath: directory.path("home/loop"), withDestinationPath: "loop")
        // Names that are not UTF-8: a directory in /tmp holding one more, and a log.
        try FileManager.default.createDirectory(atPath: directory.path("tmp"), withIntermediateDirectories: true)
        let tmp = Array(directory.path("tmp/").utf8)
        #expect(mkdir(cString(tmp + [0xFF]), 0o755) == 0)
        for file in [tmp + [0xFF, 0x2F, 0xE9], Array(directory.path("var/log/").utf8) + [0xE9] + Array(".log".utf8)] {
            let fd = creat(cString(file), 0o644)
            #expect(fd >= 0)
            close(fd)
        }
        let report = try Pipeline().apply(BuiltinProfiles.sysprep, onTree: directory.path, guest: GuestFacts())
        #expect(report.steps.count > 10)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("tmp")) == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("var/log")) == [])
        #expect(FileManager.default.fileExists(atPath: directory.path("home/alice/.bash_history")) == false)
        #expect(FileManager.default.fileExists(atPath: directory.path("var/log/messages")) == false)
        #expect(try String(contentsOfFile: directory.path("etc/machine-id"), encoding: .utf8) == "")
    }
}

private func cString(_ bytes: [UInt8]) -> [CChar] { bytes.map { CChar(bitPattern: $0) } + [0] }
