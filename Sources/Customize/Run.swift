import Diagnostics
import Dispatch
import Host
import Logging
import Operations

/// A stage of a run: what progress announces, what the timings are keyed by, and where a failure happened.
public enum Stage: String, Sendable, CaseIterable, Encodable {
    case check, prepare, open, inspect, apply, relabel, trim, identities, shutdown, rewrite, commit

    /// The stage a step of `phase` runs in (the labels phase's own steps, run by the run itself, are `relabel`).
    init(running phase: OperationPhase) {
        switch phase {
        case .files, .labels: self = .apply
        case .identities: self = .identities
        case .devices: self = .trim
        }
    }

    /// Whether progress announces the stage when it starts: the ones that begin a wait, not every step's.
    var isAnnounced: Bool {
        switch self {
        case .check, .prepare, .open, .inspect, .rewrite: true
        case .apply, .relabel, .trim, .identities, .shutdown, .commit: false
        }
    }
}

/// What a run works on: an image through the appliance (`ImageTarget`), a directory tree (`TreeTarget`). The run
/// calls `open`, then `inspect`, runs the steps on the filesystem it got (the one step loop, in `Run`), then
/// `finish`; `close` comes last whatever happened. A target times its own stages through `Run.during`.
///
/// Another way of reaching a guest (a read-only reader planning a dry run without the appliance, several images
/// sharing one launch) is another conformance: the requirement, the phases, the dry-run rules and the report stay
/// the run's.
protocol RunTarget: AnyObject {
    /// Whether steps of the block-device phases (identities, trimming) can run: an image's can, a tree's cannot.
    var hasBlockDevices: Bool { get }
    /// Whether the run labels what it touched from the guest's SELinux policy (the appliance runs the guest's
    /// `setfiles`); a tree runs no guest program.
    var relabels: Bool { get }
    /// check and prepare, where they come before the launch: refuses what cannot be worked on, makes room for the
    /// work, and may read the guest's facts natively (`guestBeforeOpening`).
    func prepare(in run: Run) throws
    /// What is known of the guest before it is opened (the native reader's facts), so that a profile made for
    /// another guest is refused before anything is launched; nil when nothing is.
    var guestBeforeOpening: GuestFacts? { get }
    /// check, prepare (unless done), open: refuses what cannot be worked on, makes room for the work, opens the guest.
    func open(in run: Run) throws
    /// The guest's filesystem, and its facts (nil when the guest was neither inspected nor described).
    func inspect(in run: Run) throws -> (filesystem: any GuestFilesystem, guest: GuestFacts?)
    /// After the steps: shut down, and for an image rewrite and commit the result.
    func finish(in run: Run) throws
    /// After a failure: whether what the user gave is as it was, and what the run changed in it (a tree is
    /// changed in place, step by step).
    func failureState(of run: Run, after error: any Error) -> (unchanged: Bool, changes: [String])
    /// Releases what `open` made (the appliance, an uncommitted transaction), after success or failure.
    func close()
    /// Runs one step through `body`; a target that cannot run some steps reports them instead.
    func step(_ operation: any GuestOperation, _ body: () throws -> StepReport) throws -> StepReport
}

extension RunTarget {
    func step(_ operation: any GuestOperation, _ body: () throws -> StepReport) throws -> StepReport { try body() }
    func prepare(in run: Run) throws {}
    var guestBeforeOpening: GuestFacts? { nil }
}

/// What a run applies: the steps for the guest it finds, and the profile's name and requirement when it is a
/// profile's.
struct Job {
    var profile: String?
    var requirement: GuestRequirement?
    /// A profile's steps fit the target: what it has no means for (block devices, on a tree) is left out. The
    /// operations a user names all run, and one the target cannot do fails saying so.
    var fitsTheTarget = false
    var steps: (GuestFacts) -> [any GuestOperation]
    /// The parameters the profiles it runs on a guest need and were not given (see `Profile.missingParameters`).
    var missingParameters: (GuestFacts) -> [(profile: String, parameter: ProfileParameter)] = { _ in [] }

    /// The operations a user named, run as given.
    init(_ steps: @escaping (GuestFacts) -> [any GuestOperation]) {
        self.steps = steps
    }

    /// A profile's steps for the guest, under its requirement, fitted to the target.
    init(_ profile: Profile) {
        self.profile = profile.name
        requirement = profile.requirement
        fitsTheTarget = true
        steps = { guest in profile.steps(for: guest).map(\.operation) }
        missingParameters = { guest in profile.missingParameters(for: guest) }
    }
}

/// One run of the pipeline on one target: its options, report, stage clock, progress and the name of what it works
/// on. `perform` is the run's one step loop, for every target.
final class Run {
    let options: RunOptions
    let logger: Logger
    /// The image or tree as the user named it: what messages and the report say.
    let name: String
    private let progress: @Sendable (RunProgress) -> Void
    var report: RunReport
    /// The stage running, or the last one that ran: where a failure happened.
    private(set) var stage: Stage?
    private var timings: [Stage: Double] = [:]
    /// A dry run's private directory (the appliance's overlay, a tree's copy), removed when the run ends.
    private var dryRunScratch: TemporaryDirectory?

    init(_ name: String, options: RunOptions, logger: Logger, output: String?, sizeBefore: Int64,
         progress: @escaping @Sendable (RunProgress) -> Void) {
        self.name = name
        self.options = options
        self.logger = logger
        self.progress = progress
        report = RunReport(profile: nil, image: name, output: options.dryRun ? nil : output, dryRun: options.dryRun,
                           guest: nil, steps: [], timings: [:], size: .init(before: sizeBefore, after: nil))
    }

    /// Runs `body` as (part of) `stage`, adding its wall-clock time to the stage's; announces the stage when it
    /// starts.
    func during<T>(_ stage: Stage, _ body: () throws -> T) rethrows -> T {
        if stage != self.stage, stage.isAnnounced { progress(.stage(stage)) }
        self.stage = stage
        let start = DispatchTime.now().uptimeNanoseconds
        defer { timings[stage, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        return try body()
    }

    /// Records a warning and hands it to the caller's progress as it happens.
    func warn(_ warning: String) {
        report.warn(warning, progress)
    }

    func checkCancelled() throws {
        try options.cancellation?.check(image: name)
    }

    /// Reports the rewrite's progress; `@Sendable`, for a rewrite on another thread (a batch's).
    var rewriteProgress: @Sendable (_ done: Int64, _ total: Int64) -> Void {
        { [progress] done, total in progress(.rewrite(done: done, total: total)) }
    }

    /// Adds `seconds` spent elsewhere (a batch's rewrite on its own thread) to `stage`, now the run's stage.
    func record(_ stage: Stage, seconds: Double) {
        self.stage = stage
        timings[stage, default: 0] += seconds
    }

    /// The report with the timings so far: what a batch image's run ends with once its rewrite is committed.
    func finishedReport() -> RunReport {
        report.timings = reportedTimings
        return report
    }

    /// A private directory for a dry run's work, in the scratch directory or TMPDIR (never beside what the user
    /// gave), removed when the run ends; `what` says what it holds, for the error.
    func dryRunDirectory(prefix: String, for what: String) throws -> TemporaryDirectory {
        let parent = options.scratchDirectory ?? TemporaryDirectory.defaultParent
        TemporaryDirectory.removeStale(in: parent, prefix: prefix, logger: logger)
        do {
            let directory = try TemporaryDirectory(in: parent, prefix: prefix)
            dryRunScratch = directory
            return directory
        } catch {
            throw CustomizeError(image: name, "cannot make a place for the dry run's \(what): \(Diagnostic(of: error).message)",
                                 hint: "set TMPDIR, or --scratch, to a writable directory")
        }
    }

    /// Runs `job` on `target`: open, inspect, the requirement, the steps by phase, the labels, then finish.
    func perform(_ job: Job, on target: any RunTarget) throws -> RunReport {
        report.profile = job.profile
        do {
            try steps(of: job, on: target)
        } catch {
            throw failure(error, on: target)
        }
        target.close()
        dryRunScratch?.remove()
        report.timings = reportedTimings
        return report
    }

    /// The run's failure for `error` (the stage, the steps so far, whether the image is as it was), once `target`
    /// has released what it held: how `perform` fails, and how a batch fails an image before its turn.
    func failure(_ error: any Error, on target: any RunTarget, profile: String? = nil) -> RunFailure {
        if let profile { report.profile = profile }
        target.close()
        dryRunScratch?.remove()
        report.timings = reportedTimings
        // Cancelling kills the appliance, so the call that was waiting on it fails with its own error: the
        // cancellation is what happened.
        let cause = options.cancellation?.explain(error, image: name) ?? error
        let state = options.dryRun ? (unchanged: true, changes: []) : target.failureState(of: self, after: error)
        var failure = RunFailure(cause, stage: stage ?? .check, report: report, imageUnchanged: state.unchanged)
        failure.treeChanges = state.changes
        return failure
    }

    /// Refuses a profile whose requirement `guest` does not meet (unless forced: then `warning` says so once), or
    /// whose profile chosen for the guest (cloud's windows-cloud) needs parameters not given: nothing is changed.
    private func check(_ job: Job, fits guest: GuestFacts, warning: Bool) throws {
        if let requirement = job.requirement, let mismatch = requirement.mismatch(guest) {
            let profile = job.profile ?? ""
            guard options.force else {
                throw CustomizeError(image: name, "profile \(profile) \(mismatch)",
                                     hint: requirement.hint ?? "use a profile made for this guest, or --force to run it anyway")
            }
            if warning { warn("\(name): profile \(profile) \(mismatch); going on because of --force") }
        }
        let missing = job.missingParameters(guest)
        if let chosen = missing.first?.profile {
            let parameters = missing.filter { $0.profile == chosen }.map(\.parameter)
            throw CustomizeError(image: name, "profile \(job.profile ?? chosen) runs \(chosen) on this guest, which "
                                    + "needs " + Profile.naming(parameters),
                                 hint: "give " + parameters.map { "--param \($0.usage)" }.joined(separator: " ")
                                    + " (`imgcustomize profiles show \(chosen)` lists its parameters)")
        }
    }

    private var reportedTimings: [String: Double] {
        Dictionary(uniqueKeysWithValues: timings.map { ($0.key.rawValue, $0.value) })
    }

    private func steps(of job: Job, on target: any RunTarget) throws {
        try target.prepare(in: self)
        // What the native reader found is enough to refuse a profile made for another guest: no launch for that.
        if let known = target.guestBeforeOpening {
            try during(.inspect) { try check(job, fits: known, warning: false) }
        }
        try target.open(in: self)
        let (filesystem, known) = try during(.inspect) { () throws -> (any GuestFilesystem, GuestFacts?) in
            let inspected = try target.inspect(in: self)
            report.guest = inspected.guest
            try check(job, fits: inspected.guest ?? GuestFacts(), warning: true)
            return inspected
        }
        let guest = known ?? GuestFacts()
        let context = OperationContext(guest: guest, logger: logger, passwordCrypto: options.passwordCrypto,
                                       cancellation: options.cancellation)
        let runner = OperationRunner(guest: filesystem, context: context, recordDiffs: options.diffs || options.dryRun)
        let steps = job.steps(guest).expandingCommandFiles.filter { operation in
            !job.fitsTheTarget || target.hasBlockDevices || !operation.phase.needsBlockDevices
        }
        // By phase wherever a profile or the command line puts them: files, labels, free space (trimming discards
        // what the steps and the relabelling freed), then device identities (see `OperationPhase`).
        let ordered = OperationPhase.allCases.flatMap { phase in steps.filter { $0.phase == phase } }
        var relabelled = !target.relabels
        for (index, operation) in ordered.enumerated() {
            try checkCancelled()
            let blockDevices = operation.phase.needsBlockDevices
            if blockDevices, !relabelled {
                try relabel(runner, on: target)
                relabelled = true
            }
            let step: StepReport
            if options.dryRun, blockDevices, target.hasBlockDevices {
                step = StepReport(operation: operation.name, target: operation.target, changed: .no,
                                  summary: "skipped in a dry run")
            } else if options.dryRun, let reason = operation.effectBeyondTheImage {
                step = .skippedInDryRun(operation, reason)
            } else {
                step = try during(Stage(running: operation.phase)) {
                    try target.step(operation) { try runner.run(operation) }
                }
            }
            report.steps.append(step)
            progress(.step(index: index, count: ordered.count, step))
            if let warning = step.warning { warn("\(name): \(warning)") }
        }
        if !relabelled { try relabel(runner, on: target) }
        try target.finish(in: self)
    }

    /// The labels phase's own steps (SELinux labels from the guest's own policy) for what the run touched, or for
    /// every file after guest commands; nothing when nothing was touched or the user turned it off.
    private func relabel(_ runner: OperationRunner, on target: any RunTarget) throws {
        guard options.selinuxRelabel, !runner.touchedPaths.isEmpty || runner.ranGuestCommands else { return }
        for operation in OperationRegistry.flags(in: .labels) {
            let step = try during(.relabel) { try target.step(operation) { try runner.run(operation) } }
            report.steps.append(step)
            if let warning = step.warning { warn("\(name): \(warning)") }
        }
    }
}

/// A target opened and inspected by the first run that uses it and kept open for the next ones (several dry runs in
/// one appliance launch), until `end`.
final class OpenedOnce: RunTarget {
    private let inner: any RunTarget
    private var opened: (filesystem: any GuestFilesystem, guest: GuestFacts?)?

    init(_ inner: any RunTarget) { self.inner = inner }

    var hasBlockDevices: Bool { inner.hasBlockDevices }
    var relabels: Bool { inner.relabels }

    func open(in run: Run) throws {
        guard opened == nil else { return }
        try inner.open(in: run)
        opened = try inner.inspect(in: run)
    }

    func inspect(in run: Run) throws -> (filesystem: any GuestFilesystem, guest: GuestFacts?) {
        guard let opened else { throw CustomizeError(image: run.name, "the image is not open") }
        return opened
    }

    func finish(in run: Run) throws {}

    func failureState(of run: Run, after error: any Error) -> (unchanged: Bool, changes: [String]) {
        inner.failureState(of: run, after: error)
    }

    func close() {}

    func step(_ operation: any GuestOperation, _ body: () throws -> StepReport) throws -> StepReport {
        try inner.step(operation, body)
    }

    /// Closes the target (shuts the appliance down).
    func end() { inner.close() }
}
