import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct CatalogTests {
    @Test func namesAreUniqueKebabCaseAndDocumented() {
        let names = OperationRegistry.all.map(\.name)
        #expect(Set(names).count == names.count)
        for descriptor in OperationRegistry.all {
            #expect(descriptor.name.allSatisfy { $0.isLowercase || $0 == "-" }, "\(descriptor.name)")
            #expect(!descriptor.summary.isEmpty)
            #expect(descriptor.argument.syntax.isEmpty == descriptor.argument.example.isEmpty)
        }
        #expect(names.starts(with: ["edit-file", "set-line", "append-grub-args", "lock-root"]))
    }

    /// Every example in `imgcustomize operations` must parse, so the help never shows a command that fails. (From
    /// hostname on, the examples name host files parsing reads: keys, passwords, a command file.)
    @Test(arguments: OperationRegistry.all.prefix { $0.name != "hostname" }.map(\.name))
    func examplesParse(name: String) throws {
        let descriptor = try #require(OperationRegistry.named(name))
        let operation = try descriptor.parse(descriptor.isFlag ? nil : descriptor.argument.example)
        #expect(operation.name == name)
    }

    /// Every type conforming to the operation protocol in Sources/Operations is in the registry (and so has its
    /// option), except `Note`, which only profiles use: it carries prose, not something to do.
    @Test func everyOperationTypeIsRegistered() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/Operations")
        let conformance = try Regex(#"(?m)^(?:public )?(?:struct|final class|enum) (\w+)\s*:[^{]*\b(?:GuestOperation|RegisteredOperation|CleanupOperation)\b"#)
        var declared: [String] = []
        let files = FileManager.default.enumerator(atPath: sources.path)?.compactMap { $0 as? String } ?? []
        for file in files where file.hasSuffix(".swift") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            declared += text.matches(of: conformance).compactMap { $0.output[1].substring.map(String.init) }
        }
        #expect(declared.count > 60, "the scan found \(declared.count) operation types")
        let registered = Set(OperationRegistry.all.map(\.typeName))
        for name in declared where name != "Note" {
            #expect(registered.contains(name), "\(name) conforms to the operation protocol but is not registered")
        }
        #expect(OperationRegistry.named("check-installed") != nil)
    }

    /// `operations --where NAME` prints `sourceFile`: for every operation, a file of the package that declares
    /// that name, so that the answer is one step to the definition.
    @Test func everyOperationNamesTheFileThatDefinesIt() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        for descriptor in OperationRegistry.all {
            #expect(descriptor.sourceFile.hasPrefix("Sources/Operations/"), "\(descriptor.name): \(descriptor.sourceFile)")
            let text = try String(contentsOf: root.appendingPathComponent(descriptor.sourceFile), encoding: .utf8)
            #expect(text.contains("static let name = \"\(descriptor.name)\""), "\(descriptor.name): \(descriptor.sourceFile)")
        }
        #expect(OperationRegistry.named("bash-history")?.sourceFile == "Sources/Operations/Ops/SysprepOperations.swift")
        #expect(OperationRegistry.named("lock-root")?.sourceFile == "Sources/Operations/Ops/LockPassword.swift")
    }

    @Test func phasesOrderFilesLabelsDevicesIdentities() {
        #expect(OperationRegistry.named("selinux-relabel")?.phase == .labels)
        #expect(OperationRegistry.named("trim-free-space")?.phase == .devices)
        #expect(OperationRegistry.all.filter { $0.phase == .identities }.map(\.name) == ["fs-uuids", "lvm-uuids"])
        #expect(OperationRegistry.all.filter { $0.phase != .files }.map(\.name)
                == ["trim-free-space", "fs-uuids", "lvm-uuids", "selinux-relabel"])
        // What `sparsify` runs: trimming only, never a new identity.
        #expect(OperationRegistry.flags(in: .devices).map(\.name) == ["trim-free-space"])
        #expect(OperationPhase.allCases.filter(\.needsBlockDevices) == [.devices, .identities])
        #expect(OperationPhase.allCases == [.files, .labels, .devices, .identities])
    }

    @Test func optionalArgumentsAreTyped() {
        #expect(OperationRegistry.named("disable-repos")?.argument == .optional(syntax: "GLOB", example: "rhel-*"))
        #expect(OperationRegistry.all.filter { if case .optional = $0.argument { true } else { false } }.map(\.name)
            == ["disable-repos", "remove-machine-id", "user-account"])
        #expect(OperationArgument.optional(syntax: "GLOB", example: "rhel-*").usage("--disable-repos")
            == "--disable-repos[=GLOB]")
    }

    @Test func flagsRefuseArgumentsAndOptionsRequireThem() {
        let lockRoot = #expect(throws: ArgumentError.self) { try OperationRegistry.named("lock-root")?.parse("yes") }
        #expect(lockRoot?.description == "--lock-root: takes no argument, got \"yes\"")
        let write = #expect(throws: ArgumentError.self) { try OperationRegistry.named("write")?.parse(nil) }
        #expect(write?.diagnostic.message == "--write: an argument is required")
        #expect(write?.diagnostic.hint == "expected --write PATH:CONTENT (e.g. --write '/etc/motd:Welcome')")
    }
}

@Suite struct RunnerTests {
    @Test func reportsEncodeAsTheCLIPrintsThem() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let plain = StepReport(operation: "lock-root", target: "root", changed: .yes, summary: "locked root's password")
        #expect(String(decoding: try encoder.encode(plain), as: UTF8.self)
            == #"{"changed":true,"operation":"lock-root","summary":"locked root's password","target":"root"}"#)
        var withDiff = plain
        withDiff.diffs = [FileDiff(path: "/etc/shadow", unified: "binary file changed\n")]
        #expect(String(decoding: try encoder.encode(withDiff), as: UTF8.self)
            == #"{"changed":true,"diff":[{"path":"\/etc\/shadow","unified":"binary file changed\n"}],"operation":"lock-root","summary":"locked root's password","target":"root"}"#)
        #expect(try JSONDecoder().decode(StepReport.self, from: try encoder.encode(withDiff)) == withDiff)
    }

    @Test func touchedPathsAccumulateAcrossStepsAndReachTheContext() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/shadow", "root:x:1:0:99999:7:::\n")
        try tree.file("/etc/machine-id", "abc\n")
        let runner = OperationRunner(guest: tree.guest)
        let lock = try runner.run(LockRoot())
        #expect(lock.diffs == nil)
        _ = try runner.run(RemoveMachineID())
        _ = try runner.run(LockRoot())
        _ = try runner.run(MakeDirectory("/root/.ssh"))
        #expect(runner.touchedPaths == ["/etc/shadow", "/etc/machine-id", "/root/.ssh"])
    }

    @Test func failuresNameTheOperation() throws {
        let tree = try TemporaryTree()
        let error = #expect(throws: OperationFailure.self) { try OperationRunner(guest: tree.guest).run(LockRoot()) }
        #expect(error?.description == "lock-root root failed: \(tree.path): lock password /etc/shadow: no /etc/shadow\n  hint: is this a Linux guest with shadow passwords?")
    }

    @Test func changesThroughASymlinkAreRecordedOnTheFile() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/selinux/config", "SELINUX=enforcing\n")
        try tree.symlink("/etc/sysconfig/selinux", to: "../selinux/config")
        let runner = OperationRunner(guest: tree.guest, recordDiffs: true)
        let report = try runner.run(SetLine("/etc/sysconfig/selinux", key: "SELINUX", value: "permissive"))
        #expect(report.diffs?.map(\.path) == ["/etc/selinux/config"])
        #expect(runner.touchedPaths == ["/etc/selinux/config"])
        #expect(tree.text("/etc/selinux/config") == "SELINUX=permissive\n")
        #expect(try tree.guest.readlink("/etc/sysconfig/selinux") == "../selinux/config")
    }

    @Test func largeFilesAreReportedBySize() throws {
        let tree = try TemporaryTree()
        let size = Int(RecordingFilesystem.contentLimit) + 1
        try tree.guest.write("/big", [UInt8](repeating: 1, count: size), mode: 0o644)
        let runner = OperationRunner(guest: tree.guest, recordDiffs: true)
        let report = try runner.run(WriteFile("/big", content: [UInt8](repeating: 2, count: size)))
        #expect(report.diffs == [FileDiff(path: "/big", unified: "file of \(size) bytes -> file of \(size) bytes (too large to diff)\n")])
        #expect(runner.touchedPaths == ["/big"])
    }

    @Test func modeAndOwnerChangesAppearInTheDiff() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/ssh/sshd_config", "x\n", mode: 0o644)
        let report = try OperationRunner(guest: tree.guest, recordDiffs: true).run(Chmod(0o600, "/etc/ssh/sshd_config"))
        #expect(report.diffs == [FileDiff(path: "/etc/ssh/sshd_config", unified: "mode 0644 -> 0600\n")])
    }
}
