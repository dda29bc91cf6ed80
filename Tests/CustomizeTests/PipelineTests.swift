import Foundation
import Logging
import Testing
import TestSupport
@testable import Customize
import Operations
import Profiles
import Formats
import Synchronization
import Host

/// The pipeline on a directory tree, in-process: what `customize --tree` does, without a binary or an appliance.
@Suite struct TreePipelineTests {
    private func tree() throws -> TestDirectory {
        let directory = try TestDirectory("customize-tree")
        try FileManager.default.createDirectory(atPath: directory.path("etc/sysconfig"), withIntermediateDirectories: true)
        try "NETWORKING=yes\n".write(toFile: directory.path("etc/sysconfig/network"), atomically: true, encoding: .utf8)
        try "root:$6$x:19000:0:99999:7:::\n".write(toFile: directory.path("etc/shadow"), atomically: true, encoding: .utf8)
        return directory
    }

    @Test func appliesInOrderAndTheSecondRunChangesNothing() throws {
        let directory = try tree()
        let operations: [any GuestOperation] = [SetLine("/etc/sysconfig/network", key: "NOZEROCONF", value: "yes"),
                                                LockRoot()]
        let first = try Pipeline().customize(operations, onTree: directory.path)
        #expect(first.steps.map(\.operation) == ["set-line", "lock-root"])
        #expect(first.steps.allSatisfy { $0.changed == .yes })
        #expect(try String(contentsOfFile: directory.path("etc/sysconfig/network"), encoding: .utf8)
            == "NETWORKING=yes\nNOZEROCONF=yes\n")
        let second = try Pipeline().customize(operations, onTree: directory.path)
        #expect(second.steps.allSatisfy { $0.changed == .no })
        #expect(second.text(diffs: false).contains("0 of 2 steps changed the guest"))
    }

    /// A warning is a value the caller gets, in the step's report, the run's and the progress, not a log line.
    @Test func aMissingPackageIsAWarningInTheReport() throws {
        let directory = try tree()
        let events = Mutex<[String]>([])
        let report = try Pipeline().customize([CheckInstalled("cloud-init", paths: ["/usr/bin/cloud-init"])],
                                              onTree: directory.path) { event in
            if case .warning(let warning) = event { events.withLock { $0.append(warning) } }
        }
        let warning = try #require(report.steps.first?.warning)
        #expect(warning.hasPrefix("cloud-init is NOT installed (missing /usr/bin/cloud-init)"))
        #expect(report.warnings == ["\(directory.path): \(warning)"])
        #expect(events.withLock { $0 } == report.warnings)
        let json = try #require(JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        #expect(json["warnings"] as? [String] == report.warnings)

        try FileManager.default.createDirectory(atPath: directory.path("usr/bin"), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: directory.path("usr/bin/cloud-init"), contents: Data())
        let installed = try Pipeline().customize([CheckInstalled("cloud-init", paths: ["/usr/bin/cloud-init"])],
                                                 onTree: directory.path)
        #expect(installed.warnings.isEmpty && installed.steps.first?.warning == nil)
    }

    @Test func aDryRunShowsTheDiffAndLeavesTheTreeAsItWas() throws {
        let directory = try tree()
        var options = RunOptions()
        options.dryRun = true
        let report = try Pipeline(options: options).customize(
            [SetLine("/etc/sysconfig/network", key: "NOZEROCONF", value: "yes")], onTree: directory.path)
        #expect(report.dryRun && report.output == nil)
        #expect(report.steps.first?.changed == .yes)
        #expect(report.steps.first?.diffs?.first?.unified.contains("+NOZEROCONF=yes") == true)
        #expect(report.text(diffs: false).hasPrefix("[would change] set-line /etc/sysconfig/network"))
        #expect(try String(contentsOfFile: directory.path("etc/sysconfig/network"), encoding: .utf8) == "NETWORKING=yes\n")
    }

    /// A dry run does not try what reaches beyond the guest (the subscription service): the step says so and the
    /// run warns; the same step without a dry run does run (and, on a tree, cannot).
    @Test func aDryRunSkipsWhatReachesBeyondTheImage() throws {
        let directory = try tree()
        for (path, text) in ["usr/sbin/subscription-manager": "#!/usr/bin/python3\n",
                             "etc/pki/consumer/cert.pem": "-----BEGIN CERTIFICATE-----\n"] {
            try FileManager.default.createDirectory(atPath: directory.path((path as NSString).deletingLastPathComponent),
                                                    withIntermediateDirectories: true)
            try text.write(toFile: directory.path(path), atomically: true, encoding: .utf8)
        }
        var options = RunOptions()
        options.dryRun = true
        let report = try Pipeline(options: options).customize([LockRoot(), SMUnregister()], onTree: directory.path)
        #expect(report.steps.map(\.changed) == [.yes, .no])
        #expect(report.steps.last?.summary == "skipped in a dry run: it changes the subscription service's records, "
                + "which a dry run cannot undo")
        #expect(report.warnings.contains { $0.hasSuffix("sm-unregister skipped in a dry run: it changes the "
                                                       + "subscription service's records, which a dry run cannot undo") })
        #expect(throws: (any Error).self) { try Pipeline().customize([SMUnregister()], onTree: directory.path) }
    }

    /// A dry run says what it would do, in the conditional: it changed only a throwaway overlay.
    @Test func aDryRunSpeaksInTheConditional() {
        #expect(conditional("removed /root/.bash_history, removed /home/a/.bash_history and 2 more")
            == "would remove /root/.bash_history, would remove /home/a/.bash_history and 2 more")
        #expect(conditional("set NOZEROCONF=yes") == "would set NOZEROCONF=yes")
        #expect(conditional("nothing to remove") == "nothing to remove")
        var report = RunReport(profile: nil, image: "img", output: nil, dryRun: true, guest: nil,
                               steps: [StepReport(operation: "bash-history", target: "", changed: .yes,
                                                  summary: "removed /root/.bash_history")],
                               timings: [:], size: .init(before: 0, after: nil))
        #expect(report.text(diffs: false).hasPrefix("[would change] bash-history: would remove /root/.bash_history"))
        report.dryRun = false
        #expect(report.text(diffs: false).hasPrefix("[changed] bash-history: removed /root/.bash_history"))
    }

    /// A guest command's step says its change is unknown and shows its last lines; the summary counts it apart.
    @Test func aGuestCommandsStepShowsItsOutput() {
        let result = GuestCommandResult(command: "make install", exitStatus: 0, output: "building\ninstalled\n")
        let report = RunReport(profile: nil, image: "img", output: nil, dryRun: false, guest: nil,
                               steps: [StepReport(operation: "run-command", target: "make install", changed: .unknown,
                                                  summary: "exit status 0", command: result),
                                       StepReport(operation: "lock-root", target: "root", changed: .yes,
                                                  summary: "locked root's password")],
                               timings: [:], size: .init(before: 0, after: nil))
        let text = report.text(diffs: false)
        #expect(text.hasPrefix("[changed: unknown] run-command make install: exit status 0\n    | building\n"
                               + "    | installed\n[changed] lock-root root"))
        #expect(text.contains("1 of 2 steps changed the guest, 1 ran guest commands (what they changed is unknown)"))
    }

    /// A guest command fails a run on a tree, naming the operation: a tree has no guest programs to run.
    @Test func aGuestCommandOnATreeFailsTheRunNamingTheOperation() throws {
        let directory = try tree()
        let error = #expect(throws: RunFailure.self) {
            try Pipeline().customize([RunCommand("touch /x")], onTree: directory.path)
        }
        #expect(error?.diagnostic.message.contains("run-command: a directory tree cannot run the guest's programs") == true)
        #expect(error?.report.steps.isEmpty == true)
        #expect(!FileManager.default.fileExists(atPath: directory.path("x")))
    }

    @Test func aFailingStepIsNamedAsTheUserWroteIt() throws {
        let directory = try tree()
        let error = #expect(throws: RunFailure.self) {
            try Pipeline().customize([Delete("/etc/shadow"), LockRoot()], onTree: directory.path)
        }
        #expect((error?.error as? OperationFailure)?.operation == "lock-root")
        #expect(error?.report.steps.map(\.operation) == ["delete"])
    }

    /// A profile forced onto a tree's guest it is not made for warns as on an image: in the report, in the progress,
    /// in the same words; without --force both refuse it at the inspect stage.
    @Test func forceOnATreeWarnsAsOnAnImage() throws {
        let directory = try tree()
        let profile = Profile("rhel7-only", summary: "a test profile", requires: .distro("rhel", major: 7)) { _ in
            LockRoot()
        }
        let debian = GuestFacts(type: "linux", distro: "debian", majorVersion: 12, minorVersion: 1)
        let refused = #expect(throws: RunFailure.self) {
            try Pipeline().apply(profile, onTree: directory.path, guest: debian)
        }
        #expect(refused?.stage == .inspect && refused?.imageUnchanged == true && refused?.report.steps.isEmpty == true)
        #expect(refused?.diagnostic.message == "\(directory.path): profile rhel7-only needs a rhel 7 guest, found debian 12.1")
        #expect(try String(contentsOfFile: directory.path("etc/shadow"), encoding: .utf8) == "root:$6$x:19000:0:99999:7:::\n")

        var options = RunOptions()
        options.force = true
        let events = Mutex<[String]>([])
        let report = try Pipeline(options: options).apply(profile, onTree: directory.path, guest: debian) { event in
            if case .warning(let warning) = event { events.withLock { $0.append(warning) } }
        }
        let expected = "\(directory.path): profile rhel7-only needs a rhel 7 guest, found debian 12.1; going on because of --force"
        #expect(report.warnings == [expected])
        #expect(events.withLock { $0 } == [expected])
        #expect(report.steps.map(\.operation) == ["lock-root"] && report.steps.first?.changed == .yes)
        #expect(report.profile == "rhel7-only" && report.guest == debian)
    }

    /// Whether a failed tree run left the tree as it was is decided by what the run changed, not by its stage: a
    /// dry run's failure changed only a copy; a failure at the first step, before any change, changed nothing.
    @Test func aTreeIsUnchangedWhenNothingWasChanged() throws {
        let directory = try tree()
        var options = RunOptions()
        options.dryRun = true
        let dryRun = #expect(throws: RunFailure.self) {
            try Pipeline(options: options).customize([Touch("/etc/stamp"), Truncate("/etc/missing")], onTree: directory.path)
        }
        #expect(dryRun?.stage == .apply && dryRun?.imageUnchanged == true && dryRun?.treeChanges == [])
        #expect(dryRun?.report.steps.map(\.changed) == [.yes])
        #expect(!FileManager.default.fileExists(atPath: directory.path("etc/stamp")))

        let first = #expect(throws: RunFailure.self) {
            try Pipeline().customize([Truncate("/etc/missing"), Touch("/etc/stamp")], onTree: directory.path)
        }
        #expect(first?.stage == .apply && first?.imageUnchanged == true && first?.treeChanges == [])
        #expect(!FileManager.default.fileExists(atPath: directory.path("etc/stamp")))

        let refused = #expect(throws: RunFailure.self) {
            var options = RunOptions()
            options.attachments = [AttachedDisk(path: directory.path("etc/shadow"))]
            return try Pipeline(options: options).customize([Touch("/etc/stamp")], onTree: directory.path)
        }
        #expect(refused?.stage == .check && refused?.imageUnchanged == true)
    }

    /// The timings are keyed by the stages a tree run goes through.
    @Test func aTreeRunTimesItsStages() throws {
        let directory = try tree()
        let stages = Mutex<[Stage]>([])
        let report = try Pipeline().customize([LockRoot()], onTree: directory.path) { event in
            if case .stage(let stage) = event { stages.withLock { $0.append(stage) } }
        }
        #expect(Set(report.timings.keys) == Set([Stage.check, .open, .inspect, .apply].map(\.rawValue)))
        #expect(stages.withLock { $0 } == [.check, .open, .inspect])
        #expect(report.guest == nil)
    }

    @Test func aCancelledRunStopsBeforeItsFirstStep() throws {
        let directory = try tree()
        var options = RunOptions()
        let cancellation = Cancellation()
        cancellation.cancel(reason: "interrupted")
        options.cancellation = cancellation
        let error = #expect(throws: RunFailure.self) {
            try Pipeline(options: options).customize([LockRoot()], onTree: directory.path)
        }
        #expect(error?.error is RunCancelled)
        #expect(try String(contentsOfFile: directory.path("etc/shadow"), encoding: .utf8) == "root:$6$x:19000:0:99999:7:::\n")
    }
}

/// The profile DSL: groups, includes and conditions resolve against the inspected guest.
@Suite struct ProfileDSLTests {
    static let web = Profile("web", summary: "a test profile", requires: .distro("rhel", major: 7)) { guest in
        Group("network") {
            SetLine("/etc/sysconfig/network", key: "NOZEROCONF", value: "yes")
            if guest.minorVersion < 9 { Note("old minor release") }
        }
        for user in ["alice", "bob"] { LockPassword(user: user) }
        if guest.majorVersion >= 7 { AppendGrubArgs(["console=tty0"]) } else { Note("no grub2") }
        BuiltinProfiles.sysprep
    }

    @Test func stepsCarryTheirGroupsAndIncludes() {
        let steps = Self.web.steps(for: GuestFacts(type: "linux", distro: "rhel", majorVersion: 7, minorVersion: 4))
        #expect(steps.prefix(5).map(\.operation.name)
            == ["set-line", "note", "lock-password", "lock-password", "append-grub-args"])
        #expect(steps[0].path == ["web", "network"])
        #expect(steps[2].path == ["web"])
        #expect(steps.last?.path == ["web", "sysprep"])
        #expect(steps.map(\.operation.name).contains("bash-history"))
    }

    @Test func conditionsSeeTheGuest() {
        let newer = Self.web.steps(for: GuestFacts(type: "linux", distro: "rhel", majorVersion: 7, minorVersion: 9))
        #expect(!newer.prefix(3).map(\.operation.name).contains("note"))
        let older = Self.web.steps(for: GuestFacts(type: "linux", distro: "rhel", majorVersion: 6, minorVersion: 10))
        #expect(older.map(\.operation.target).contains("no grub2"))
    }

    @Test func requirementsNameWhatWasFound() {
        #expect(Self.web.requirement?.mismatch(GuestFacts(distro: "rhel", majorVersion: 7)) == nil)
        #expect(Self.web.requirement?.mismatch(GuestFacts(distro: "debian", majorVersion: 12, minorVersion: 1))
            == "needs a rhel 7 guest, found debian 12.1")
    }
}

/// The transaction, in-process: locks, scratch beside the destination, commit by rename, nothing left behind.
@Suite struct TransactionUnitTests {
    private let logger = Logger(label: "transaction-test")

    private func image(in directory: TestDirectory) throws -> String {
        let image = directory.path("disk.img")
        try "old".write(toFile: image, atomically: true, encoding: .utf8)
        return image
    }

    @Test func commitReplacesTheDestinationAndRemovesTheScratch() throws {
        let directory = try TestDirectory("customize-transaction")
        let image = try image(in: directory)
        let transaction = try Transaction(image: ImageIdentity(path: image), destination: image, needs: .init(newImage: 0, overlay: 0), logger: logger)
        #expect((transaction.scratch as NSString).deletingLastPathComponent == directory.path)
        let new = transaction.scratchPath("new")
        try "new".write(toFile: new, atomically: false, encoding: .utf8)
        try transaction.commit(new)
        #expect(try String(contentsOfFile: image, encoding: .utf8) == "new")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["disk.img"])
    }

    @Test func anAbandonedTransactionLeavesTheImageAsItWas() throws {
        let directory = try TestDirectory("customize-transaction")
        let image = try image(in: directory)
        let transaction = try Transaction(image: ImageIdentity(path: image), destination: image, needs: .init(newImage: 0, overlay: 0), logger: logger)
        try "half".write(toFile: transaction.scratchPath("new"), atomically: false, encoding: .utf8)
        transaction.abandon()
        #expect(try String(contentsOfFile: image, encoding: .utf8) == "old")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["disk.img"])
    }

    @Test func aSecondRunOnTheSameImageIsRefused() throws {
        let directory = try TestDirectory("customize-transaction")
        let image = try image(in: directory)
        let first = try Transaction(image: ImageIdentity(path: image), destination: image, needs: .init(newImage: 0, overlay: 0), logger: logger)
        defer { first.abandon() }
        let error = #expect(throws: CustomizeError.self) {
            try Transaction(image: ImageIdentity(path: image), destination: image, needs: .init(newImage: 0, overlay: 0), logger: logger)
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("another imgcustomize run is working on this image"))
    }

    /// Runs that write elsewhere read one image together; a run changing it in place excludes them, and they it.
    @Test func runsWritingElsewhereShareTheImageAndAnInPlaceRunExcludesThem() throws {
        let directory = try TestDirectory("customize-transaction")
        let image = try image(in: directory)
        let needs = Transaction.SpaceNeeds(newImage: 0, overlay: 0)
        do {
            // The locks go with the transactions, at the end of this block.
            let reader = try Transaction(image: ImageIdentity(path: image), destination: directory.path("a.img"), needs: needs, logger: logger)
            let second = try Transaction(image: ImageIdentity(path: image), destination: directory.path("b.img"), needs: needs, logger: logger)
            let inPlace = #expect(throws: CustomizeError.self) {
                try Transaction(image: ImageIdentity(path: image), destination: image, needs: needs, logger: logger)
            }
            #expect("\(inPlace.map { "\($0)" } ?? "")".contains("another imgcustomize run is working on this image"))
            withExtendedLifetime((reader, second)) { reader.abandon(); second.abandon() }
        }

        let writer = try Transaction(image: ImageIdentity(path: image), destination: image, needs: needs, logger: logger)
        defer { writer.abandon() }
        let blocked = #expect(throws: CustomizeError.self) {
            try Transaction(image: ImageIdentity(path: image), destination: directory.path("c.img"), needs: needs, logger: logger)
        }
        #expect("\(blocked.map { "\($0)" } ?? "")".contains("another imgcustomize run is changing this image in place"))
    }

    @Test func tooLittleFreeSpaceIsRefusedBeforeAnythingIsWritten() throws {
        let directory = try TestDirectory("customize-transaction")
        let image = try image(in: directory)
        let error = #expect(throws: CustomizeError.self) {
            try Transaction(image: ImageIdentity(path: image), destination: image, needs: .init(newImage: Int64.max / 4, overlay: 0), logger: logger)
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("free in \(directory.path)"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["disk.img"])
    }
}
