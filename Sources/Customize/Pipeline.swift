import Diagnostics
import Appliance
import DirectoryTree
import Foundation
import Formats
import Host
import Logging
import Operations

/// What a run is asked to do.
public struct RunOptions: Sendable {
    /// Where the result goes; nil = over the image itself (atomically, at the end).
    public var output: String?
    public var dryRun = false
    /// Run a profile on a guest that does not meet its requirement.
    public var force = false
    /// Overrides the profile's output: compression of a qcow2 result (nil: the profile's, or the input's own).
    public var compression: ClusterCompression?
    /// Glance's `disk_formats`: formats accepted as input; nil accepts every safe format.
    public var allowedFormats: Set<ImageFormat>?
    public var acceleration: Acceleration = .auto
    /// Unified diffs of changed text files in the step reports.
    public var diffs = false
    /// How long the appliance may take to come up; nil for the defaults and IMGCUSTOMIZE_LAUNCH_TIMEOUT.
    public var launchLimits: LaunchLimits?
    /// Stops the run from another thread (the CLI cancels it on SIGINT, SIGTERM and SIGHUP): the run fails with
    /// `RunCancelled` and the image stays as it was.
    public var cancellation: Cancellation?
    /// Whether the image may be a symlink (followed) or a block device; refused by default.
    public var access = FileAccess()
    /// Where the overlay (or a dry run's copy) goes: nil = beside the destination (TMPDIR for a dry run). The new
    /// image is always written beside the destination, so that it replaces it in one atomic rename.
    public var scratchDirectory: String?
    /// The keys of the guest's LUKS devices (never logged, never in the report).
    public var keys = LUKSKeys()
    /// Gives the appliance a user-mode network for guest commands (`install`, `update`); off by default.
    public var network = false
    /// The appliance's virtual CPUs and memory (MiB); nil for the defaults (see `ApplianceOptions`).
    public var virtualCPUs: Int?
    public var memoryMiB: Int?
    /// Runs the labels phase (SELinux labels for what the run touched, every file after guest commands); on by
    /// default, off with `--no-selinux-relabel`.
    public var selinuxRelabel = true
    /// How passwords set by the run are hashed.
    public var passwordCrypto = PasswordCrypto.sha512
    /// Disks attached to the appliance, read-only, for guest commands (virt-customize's `--attach`): a repository
    /// ISO, a disk of packages. They pass the same safety checks as the image; the run never writes them.
    public var attachments: [AttachedDisk] = []

    public init(output: String? = nil, dryRun: Bool = false, force: Bool = false, compression: ClusterCompression? = nil,
                allowedFormats: Set<ImageFormat>? = nil, acceleration: Acceleration = .auto, diffs: Bool = false,
                scratchDirectory: String? = nil) {
        self.output = output
        self.dryRun = dryRun
        self.force = force
        self.compression = compression
        self.allowedFormats = allowedFormats
        self.acceleration = acceleration
        self.diffs = diffs
        self.scratchDirectory = scratchDirectory
    }
}

/// A disk attached to the appliance for guest commands (virt-customize's `--attach FILE`, with `--attach-format`).
public struct AttachedDisk: Sendable, Equatable, Encodable {
    public var path: String
    /// The format to open it as (virt-customize's `--attach-format`); nil for the one detected. Only raw may be
    /// asked of a file detected as another format (its bytes, as they are); any other must be the one detected.
    public var format: ImageFormat?

    public init(path: String, format: ImageFormat? = nil) {
        self.path = path
        self.format = format
    }

    /// Checks the file as an image is checked (no backing file, no external data file, no extent naming a host
    /// path) and gives the drive to attach, in the format it will be opened as.
    func checked(access: FileAccess, image: String) throws -> (drive: ApplianceDrive, reported: AttachedDisk) {
        let inspection: ImageInspection
        do {
            inspection = try ImageInspector.check(path: path, policy: SafetyPolicy(access: access)).inspection
        } catch {
            let inner = Diagnostic(of: error)
            throw CustomizeError(image: image, "the disk to attach, \(path), cannot be used: \(inner.message)",
                                 hint: inner.hint ?? "attach a raw disk, an ISO or a self-contained qcow2")
        }
        let detected = inspection.format
        let chosen = format ?? detected
        guard chosen == detected || chosen == .raw else {
            throw CustomizeError(image: image, "--attach-format \(chosen.rawValue) for \(path), which is a \(detected.rawValue) image",
                                 hint: detected == .raw ? "give --attach-format raw, or leave it out"
                                    : "give --attach-format \(detected.rawValue) (or raw, for its bytes as they are), or leave it out")
        }
        guard let driveFormat = ApplianceDrive.Format(rawValue: chosen.qemuFormat) else {
            throw CustomizeError(image: image, "the appliance does not open \(chosen.rawValue) disks: \(path)",
                                 hint: "convert it to raw or qcow2 first (imgcustomize convert)")
        }
        return (.attachment(path: inspection.resolvedPath, format: driveFormat), AttachedDisk(path: path, format: chosen))
    }
}

/// Progress of a run, as values: the CLI draws them, a library caller does what it likes.
public enum RunProgress: Sendable {
    case stage(String)
    case step(index: Int, count: Int, StepReport)
    case rewrite(done: Int64, total: Int64)
    /// What the user should know although the run goes on (also in `RunReport.warnings`), as it happens.
    case warning(String)
}

/// The pipeline every image-writing command goes through: check, open, inspect, apply, relabel, trim, rewrite,
/// commit. One appliance launch per run; the image itself is never written (see `Transaction`).
public struct Pipeline: Sendable {
    public var options: RunOptions
    public var logger: Logger

    public init(options: RunOptions = RunOptions(), logger: Logger = Logger(label: "imgcustomize")) {
        self.options = options
        self.logger = logger
    }

    /// Runs `profile` on `image`.
    @discardableResult
    public func apply(_ profile: Profile, to image: String,
                      progress: @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(image: image, profileName: profile.name, requirement: profile.requirement, output: profile.output,
                progress: progress) { guest in profile.steps(for: guest).map(\.operation) }
    }

    /// Runs `operations` in order on `image` (the `customize` command).
    @discardableResult
    public func customize(_ operations: [any GuestOperation], on image: String,
                          progress: @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(image: image, profileName: nil, requirement: nil, output: .sameFormat, progress: progress) { _ in operations }
    }

    /// Trims free space and rewrites (the `sparsify` command): apply only the devices phase (`trim-free-space`).
    @discardableResult
    public func sparsify(_ image: String, progress: @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(image: image, profileName: nil, requirement: nil, output: .compressedQCOW2, progress: progress) { _ in
            OperationRegistry.flags(in: .devices)
        }
    }

    private func run(image: String, profileName: String?, requirement: GuestRequirement?, output policy: OutputPolicy,
                     progress: @Sendable (RunProgress) -> Void,
                     operations: (GuestFacts) -> [any GuestOperation]) throws -> RunReport {
        var clock = StageClock()
        let destination = options.output ?? image
        var report = RunReport(profile: profileName, image: image, output: options.dryRun ? nil : destination,
                               dryRun: options.dryRun, guest: nil, steps: [], timings: [:],
                               size: .init(before: allocatedBytes(image), after: nil))
        var transaction: Transaction?
        do {
            try run(image: image, destination: destination, profileName: profileName, requirement: requirement,
                    output: policy, progress: progress, operations: operations, report: &report, clock: &clock,
                    transaction: &transaction)
        } catch {
            report.timings = clock.timings
            let replaced = transaction?.committed == true && destination == image
            // Cancelling kills the appliance, so the call that was waiting on it fails with its own error: the
            // cancellation is what happened.
            let cause = options.cancellation?.explain(error, image: image) ?? error
            throw RunFailure(cause, stage: clock.stage ?? "check", report: report, imageUnchanged: !replaced)
        }
        report.timings = clock.timings
        return report
    }

    private func run(image: String, destination: String, profileName: String?, requirement: GuestRequirement?,
                     output policy: OutputPolicy, progress: @Sendable (RunProgress) -> Void,
                     operations: (GuestFacts) -> [any GuestOperation], report: inout RunReport,
                     clock: inout StageClock, transaction: inout Transaction?) throws {
        let sizeBefore = report.size.before
        func checkCancelled() throws { try options.cancellation?.check(image: image) }

        // check: refuse unsafe images before any qemu process sees them, and remember which file was checked.
        progress(.stage("check"))
        let (checked, attached) = try clock.measure("check") {
            (try ImageInspector.check(path: image, policy: SafetyPolicy(allowedFormats: options.allowedFormats,
                                                                        access: options.access)),
             try options.attachments.map { try $0.checked(access: options.access, image: image) })
        }
        report.attached = attached.map(\.reported)
        let target = try outputTarget(image: image, format: checked.inspection.format, policy: policy)
        if !options.dryRun { try FileAccess.checkDestination(destination, image: image) }

        // prepare: lock, scratch beside the destination, free space for the overlay and the result. A dry run
        // writes nothing beside the image: its overlay lives in a private temporary directory, thrown away.
        progress(.stage("prepare"))
        let dryRunScratch = try clock.measure("prepare") { () throws -> TemporaryDirectory? in
            if options.dryRun { return try dryRunDirectory(for: image) }
            // The overlay holds only what the appliance writes: the edited files, the journal, and the blocks
            // trimming and relabelling touch. A tenth of the image plus 64 MiB covered every fixture with room
            // to spare; a run that needs more fails on a full disk with the image intact, as any write does.
            transaction = try Transaction(
                image: checked.identity, destination: destination, scratchParent: options.scratchDirectory,
                needs: .init(newImage: sizeBefore, overlay: sizeBefore / 10 + (64 << 20)), logger: logger)
            return nil
        }
        defer {
            transaction?.abandon()
            dryRunScratch?.remove()
        }
        let overlay = transaction?.overlay ?? dryRunScratch?.appending("overlay.qcow2") ?? ""

        // open: the appliance writes into an overlay over the image; the image itself is only read.
        try checkCancelled()
        progress(.stage("open"))
        let session = try clock.measure("open") { () throws -> ApplianceSession in
            try createOverlay(overlay, backing: checked.inspection.resolvedPath, format: checked.inspection.format)
            let drive = ApplianceDrive(path: overlay, format: .qcow2, discard: .enable, scratch: true)
            var applianceOptions = ApplianceOptions(
                acceleration: options.acceleration, logger: logger, guestName: image, limits: options.launchLimits,
                cancellation: options.cancellation, keys: options.keys)
            applianceOptions.network = options.network
            applianceOptions.virtualCPUs = options.virtualCPUs
            applianceOptions.memoryMiB = options.memoryMiB
            return try ApplianceSession(drives: [drive] + attached.map(\.drive), options: applianceOptions)
        }
        defer { try? session.close() }
        for warning in session.warnings { report.warn(warning, progress) }

        progress(.stage("inspect"))
        let filesystem = try clock.measure("inspect") { try session.mountOperatingSystem() }
        let guest = filesystem.facts
        report.guest = guest
        if let requirement, let mismatch = requirement.mismatch(guest) {
            if options.force {
                report.warn("\(image): profile \(profileName ?? "") \(mismatch); going on because of --force", progress)
            } else {
                throw CustomizeError(image: image, "profile \(profileName ?? "") \(mismatch)",
                                     hint: requirement.hint ?? "use a profile made for this guest, or --force to run it anyway")
            }
        }

        // apply, relabel, trim: in the one appliance.
        let context = OperationContext(guest: guest, logger: logger, passwordCrypto: options.passwordCrypto)
        let runner = OperationRunner(guest: filesystem, context: context, recordDiffs: options.diffs || options.dryRun)
        let steps = operations(guest).expandingCommandFiles
        // By phase wherever a profile puts them: files, labels, device identities, then free space, so that trimming
        // discards what the other steps and the relabelling free.
        let ordered = OperationPhase.allCases.flatMap { phase in steps.filter { $0.phase == phase } }
        var relabelled = false
        for (index, operation) in ordered.enumerated() {
            try checkCancelled()
            let blockDevices = operation.phase.needsBlockDevices
            if blockDevices, !relabelled {
                try relabel(runner, into: &report, image: image, clock: &clock, progress)
                relabelled = true
            }
            let step: StepReport
            if options.dryRun, blockDevices {
                step = StepReport(operation: operation.name, target: operation.target, changed: .no,
                                  summary: "skipped in a dry run")
            } else if options.dryRun, let reason = operation.effectBeyondTheImage {
                step = .skippedInDryRun(operation, reason)
            } else {
                let stage = operation.phase == .devices ? "trim" : operation.phase == .identities ? "identities" : "apply"
                step = try clock.measure(stage) { try runner.run(operation) }
            }
            report.steps.append(step)
            progress(.step(index: index, count: ordered.count, step))
            if let warning = step.warning { report.warn("\(image): \(warning)", progress) }
        }
        if !relabelled { try relabel(runner, into: &report, image: image, clock: &clock, progress) }
        try clock.measure("shutdown") { try session.close() }

        guard let transaction else { return }

        // rewrite: merge overlay and image into a new file, then commit it over the destination.
        try checkCancelled()
        progress(.stage("rewrite"))
        let newImage = transaction.scratchPath("new")
        do {
            try clock.measure("rewrite") {
                let source = try openImage(path: overlay, format: .qcow2, allowBacking: true)
                _ = try ImageWriter(target).write(source, to: newImage) { written in
                    try checkCancelled()
                    progress(.rewrite(done: Int64(written.bytesDone), total: Int64(written.bytesTotal)))
                }
            }
        } catch let error as FormatError {
            var failure = rewriteError(error, image: image, destination: destination, newImage: newImage,
                                       overlay: overlay, expected: sizeBefore)
            // Another program changing the image explains an error reading it, and is what to fix.
            if let change = transaction.imageChange() {
                failure.message += "; the image \(change.message)"
                failure.hint = change.hint
            }
            throw failure
        }
        try checkCancelled()
        try clock.measure("commit") { try transaction.commit(newImage) }
        report.size.after = allocatedBytes(destination)
    }

    /// What went wrong in the rewrite, for the user: the destination filling up, a write error, a read error.
    private func rewriteError(_ error: FormatError, image: String, destination: String, newImage: String,
                              overlay: String, expected: Int64) -> CustomizeError {
        let directory = (destination as NSString).deletingLastPathComponent.isEmpty
            ? "." : (destination as NSString).deletingLastPathComponent
        if error.file == newImage {
            if error.systemError == ENOSPC || error.systemError == EDQUOT {
                let written = formatBytes(error.offset ?? 0)
                let free = Transaction.freeBytes(directory).map { ", \(formatBytes($0)) is free now" } ?? ""
                return CustomizeError(image: image,
                    "ran out of space in \(directory) after writing \(written) of the new image "
                        + "(about \(formatBytes(expected)) was expected\(free)): \(error.message)",
                    hint: "free space in \(directory) (the new image may need as much as the image itself), or write "
                        + "elsewhere with --output; \(image) is unchanged and the partial new image was removed")
            }
            return CustomizeError(image: image, "cannot write the new image in \(directory): \(error)",
                                  hint: "check that filesystem (dmesg says more); \(image) is unchanged")
        }
        let what = error.file == overlay ? "the overlay \(overlay)" : error.file
        let at = error.offset.map { " at byte \($0)" } ?? ""
        return CustomizeError(image: image, "cannot read \(what)\(at) while rewriting the image: \(error.message)",
            hint: "the file or the disk under it gave a read error, or the file was cut short while the run read it; "
                + "check the disk (dmesg says more) or copy the image again from its source. imgcustomize wrote "
                + "nothing to \(image)")
    }

    /// The labels phase's own steps (SELinux labels from the guest's own policy) for what the run touched, or for
    /// every file after guest commands; nothing when nothing was touched or the user turned it off.
    private func relabel(_ runner: OperationRunner, into report: inout RunReport, image: String,
                         clock: inout StageClock, _ progress: (RunProgress) -> Void) throws {
        guard options.selinuxRelabel, !runner.touchedPaths.isEmpty || runner.ranGuestCommands else { return }
        for operation in OperationRegistry.flags(in: .labels) {
            let step = try clock.measure("relabel") { try runner.run(operation) }
            report.steps.append(step)
            if let warning = step.warning { report.warn("\(image): \(warning)", progress) }
        }
    }

    /// The format of the result, refusing to turn a raw image into qcow2 in place. A qcow2 image kept in its format
    /// keeps its compression: compressed clusters in the input make a result compressed the same way (virt-customize,
    /// editing in place, leaves an image about its size; a rewrite that dropped the compression tripled one).
    private func outputTarget(image: String, format: ImageFormat, policy: OutputPolicy) throws -> WriteOptions {
        var kept = ClusterCompression.none
        if policy == .sameFormat, format == .qcow2, options.compression == nil,
           let reader = try openImage(path: image, format: .qcow2, allowBacking: false) as? QCOW2Reader {
            kept = try reader.compressedClusters() ?? .none
        }
        let compression = options.compression ?? (policy == .compressedQCOW2 ? .zlib : kept)
        if format != .qcow2, policy == .sameFormat || options.compression == ClusterCompression.none {
            return WriteOptions(format: .raw, compression: .none)
        }
        if format != .qcow2, options.output == nil {
            throw CustomizeError(image: image, "is \(format.rawValue); this run writes qcow2, and a \(format.rawValue) image is never turned into qcow2 in place",
                                 hint: "give --output PATH.qcow2, or --compress none to keep it \(format.rawValue)")
        }
        return WriteOptions(format: .qcow2, compression: compression)
    }

    private func createOverlay(_ overlay: String, backing: String, format: ImageFormat) throws {
        let absolute = backing.hasPrefix("/") ? backing : FileManager.default.currentDirectoryPath + "/" + backing
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-F", format.qemuFormat, "-b", absolute, overlay],
                    image: backing)
    }
}

extension Pipeline {
    /// A private directory for a dry run's overlay, in the scratch directory or TMPDIR (never beside the image).
    func dryRunDirectory(for image: String) throws -> TemporaryDirectory {
        let parent = options.scratchDirectory ?? TemporaryDirectory.defaultParent
        TemporaryDirectory.removeStale(in: parent, prefix: Transaction.overlayPrefix, logger: logger)
        do {
            return try TemporaryDirectory(in: parent, prefix: Transaction.overlayPrefix)
        } catch {
            throw CustomizeError(image: image, "cannot make a place for the dry run's overlay: \(Diagnostic(of: error).message)",
                                 hint: "set TMPDIR, or --scratch, to a writable directory")
        }
    }
}

/// Runs a host tool, failing with its stderr.
func runTool(_ tool: String, _ arguments: [String], image: String) throws {
    let command = HostCommand(tool, arguments, output: .discard)
    let result: CommandResult
    do { result = try command.run() } catch {
        throw CustomizeError(image: image, Diagnostic(of: error).message, hint: "run scripts/install-deps")
    }
    guard result.succeeded else { throw CustomizeError(image: image, "\(command.commandLine) \(result.explanation)") }
}

extension Pipeline {
    /// Runs `profile`'s file and label steps for `guest` on a directory tree: the same steps, in the same order, as
    /// `apply` runs on an image of that guest, without the block devices a tree does not have (UUIDs, trimming). The
    /// profile's requirement is checked first, as `apply` checks it, `--force` included.
    @discardableResult
    public func apply(_ profile: Profile, onTree root: String, guest: GuestFacts,
                      progress: @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        if let mismatch = profile.requirement?.mismatch(guest), !options.force {
            throw RunFailure(CustomizeError(image: root, "profile \(profile.name) \(mismatch)",
                                            hint: profile.requirement?.hint
                                                ?? "use a profile made for this guest, or --force to run it anyway"),
                             stage: "inspect", report: RunReport(profile: profile.name, image: root, output: nil,
                                                                 dryRun: options.dryRun, guest: guest, steps: [],
                                                                 timings: [:], size: .init(before: 0, after: nil)),
                             imageUnchanged: true)
        }
        let operations = profile.steps(for: guest).map(\.operation)
        let ordered = OperationPhase.allCases.filter { !$0.needsBlockDevices }
            .flatMap { phase in operations.filter { $0.phase == phase } }
        var report = try customize(ordered, onTree: root, guest: guest, progress: progress)
        report.profile = profile.name
        report.guest = guest
        return report
    }

    /// Runs `operations` on a directory tree (`customize --root`): no appliance, and no path leaves the tree.
    /// A dry run works on a copy of the tree, so the tree itself stays as it was. `guest` is what the operations
    /// know of the guest (a tree is not inspected).
    @discardableResult
    public func customize(_ operations: [any GuestOperation], onTree root: String, guest: GuestFacts = GuestFacts(),
                          progress: @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        var clock = StageClock()
        var report = RunReport(profile: nil, image: root, output: options.dryRun ? nil : root, dryRun: options.dryRun,
                               guest: nil, steps: [], timings: [:], size: .init(before: 0, after: nil))
        var copy: TemporaryDirectory?
        defer { copy?.remove() }
        do {
            guard options.attachments.isEmpty else {
                throw CustomizeError(image: root, "disks are attached for guest commands, which a directory tree does not run",
                                     hint: "leave --attach out, or run on an image")
            }
            // A tree is changed in place: a result "written elsewhere" would silently be the tree itself.
            guard options.output == nil else {
                throw CustomizeError(image: root, "--output does not apply to a directory tree, which is changed in place",
                                     hint: "leave --output out, or copy the tree (cp -a) and run on the copy; --dry-run shows the changes without making them")
            }
            try TreeFilesystem.refuseHostRoot(root)
            var workRoot = root
            if options.dryRun {
                let scratch = try clock.measure("prepare") { () throws -> TemporaryDirectory in
                    let parent = options.scratchDirectory ?? TemporaryDirectory.defaultParent
                    TemporaryDirectory.removeStale(in: parent, prefix: "imgcustomize-dry-run", logger: logger)
                    do {
                        return try TemporaryDirectory(in: parent, prefix: "imgcustomize-dry-run")
                    } catch {
                        throw CustomizeError(image: root, "cannot make a place for the dry run's copy: \(Diagnostic(of: error).message)",
                                             hint: "set TMPDIR, or --scratch, to a writable directory")
                    }
                }
                copy = scratch
                workRoot = scratch.appending("tree")
                try clock.measure("prepare") {
                    try runTool("cp", ["-a", "--reflink=auto", "--", root, workRoot], image: root)
                }
            }

            let tree = try clock.measure("open") { try TreeFilesystem(root: workRoot) }
            let context = OperationContext(guest: guest, logger: logger, passwordCrypto: options.passwordCrypto)
            let runner = OperationRunner(guest: tree, context: context, recordDiffs: options.diffs || options.dryRun)
            let operations = operations.expandingCommandFiles
            for (index, operation) in operations.enumerated() {
                try options.cancellation?.check(image: root)
                let step = options.dryRun && operation.effectBeyondTheImage != nil
                    ? .skippedInDryRun(operation, operation.effectBeyondTheImage ?? "")
                    : try clock.measure("apply") { try runner.run(operation) }
                report.steps.append(step)
                progress(.step(index: index, count: operations.count, step))
                if let warning = step.warning { report.warn("\(root): \(warning)", progress) }
            }
        } catch {
            report.timings = clock.timings
            // A tree is changed in place, step by step: a dry run, a failure before the first step, or one before
            // any step changed anything leaves it as it was.
            let untouched = options.dryRun || clock.stage != "apply"
            var failure = RunFailure(error, stage: clock.stage ?? "prepare", report: report, imageUnchanged: untouched)
            if !untouched {
                // Every change goes through the runner's recording filesystem: when it saw none, the tree is as the
                // run found it; otherwise the message lists what was changed.
                failure.treeChanges = report.steps.filter { $0.changed != .no }.map { step in
                    step.target.isEmpty ? step.operation : "\(step.operation) \(step.target)"
                } + ((error as? OperationFailure).map { failed in failed.changedPaths.map { "\(failed.operation): \($0)" } } ?? [])
                failure.imageUnchanged = failure.treeChanges.isEmpty
            }
            throw failure
        }
        report.timings = clock.timings
        return report
    }
}
