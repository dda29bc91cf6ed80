import Foundation
import Formats
import Logging
import Operations

/// What a run is asked to do.
public struct RunOptions: Sendable {
    /// Where the result goes; nil = over the image itself (atomically, at the end).
    public var output: String?
    public var dryRun = false
    /// Run a profile on a guest that does not meet its requirement.
    public var force = false
    /// Overrides the profile's output: compression of a qcow2 result.
    public var compression: ClusterCompression?
    /// Glance's `disk_formats`: formats accepted as input; nil accepts every safe format.
    public var allowedFormats: Set<ImageFormat>?
    public var acceleration: Acceleration = .auto
    /// Unified diffs of changed text files in the step reports.
    public var diffs = false
    /// How long the appliance may take to come up; nil for the defaults and IMGCUSTOMIZE_LAUNCH_TIMEOUT.
    public var launchLimits: LaunchLimits?
    /// Stops the run from another thread (the CLI cancels it on SIGINT, SIGTERM and SIGHUP): the run throws
    /// `RunCancelled` and the image stays as it was.
    public var cancellation: Cancellation?
    /// Whether the image may be a symlink (followed) or a block device; refused by default.
    public var access = FileAccess()
    /// The keys of the guest's LUKS devices (never logged, never in the report).
    public var keys = LUKSKeys()

    public init(output: String? = nil, dryRun: Bool = false, force: Bool = false, compression: ClusterCompression? = nil,
                allowedFormats: Set<ImageFormat>? = nil, acceleration: Acceleration = .auto, diffs: Bool = false) {
        self.output = output
        self.dryRun = dryRun
        self.force = force
        self.compression = compression
        self.allowedFormats = allowedFormats
        self.acceleration = acceleration
        self.diffs = diffs
    }
}

/// Progress of a run, as values: the CLI draws them, a library caller does what it likes.
public enum RunProgress: Sendable {
    case stage(String)
    case step(index: Int, count: Int, StepReport)
    case rewrite(done: Int64, total: Int64)
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
    public func customize(_ operations: [any Operations.Operation], on image: String,
                          progress: @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(image: image, profileName: nil, requirement: nil, output: .sameFormat, progress: progress) { _ in operations }
    }

    /// Trims free space and rewrites (the `sparsify` command): apply with only `trim-free-space`.
    @discardableResult
    public func sparsify(_ image: String, progress: @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(image: image, profileName: nil, requirement: nil, output: .compressedQCOW2, progress: progress) { _ in
            [TrimFreeSpace()]
        }
    }

    private func run(image: String, profileName: String?, requirement: GuestRequirement?, output policy: OutputPolicy,
                     progress: @Sendable (RunProgress) -> Void,
                     operations: (GuestFacts) -> [any Operations.Operation]) throws -> RunReport {
        do {
            return try unguardedRun(image: image, profileName: profileName, requirement: requirement, output: policy,
                                    progress: progress, operations: operations)
        } catch let error where !(error is RunCancelled) {
            // Cancelling kills the appliance, so the call that was waiting on it fails with its own error: the
            // cancellation is what happened.
            if let reason = options.cancellation?.reason { throw RunCancelled(image: image, reason: reason) }
            throw error
        }
    }

    private func unguardedRun(image: String, profileName: String?, requirement: GuestRequirement?,
                              output policy: OutputPolicy, progress: @Sendable (RunProgress) -> Void,
                              operations: (GuestFacts) -> [any Operations.Operation]) throws -> RunReport {
        let cancellation = options.cancellation
        func checkCancelled() throws { try cancellation?.check(image: image) }
        var clock = StageClock()
        let sizeBefore = allocatedBytes(image)

        // check: refuse unsafe images before any qemu process sees them.
        progress(.stage("check"))
        let inspection = try clock.measure("check") {
            try ImageInspector.requireSafe(path: image, policy: SafetyPolicy(allowedFormats: options.allowedFormats,
                                                                             access: options.access))
        }
        let target = try outputTarget(image: image, format: inspection.format, policy: policy)
        let destination = options.output ?? image
        if !options.dryRun { try FileAccess.checkDestination(destination, image: image) }

        var report = RunReport(profile: profileName, image: image, output: options.dryRun ? nil : destination,
                               dryRun: options.dryRun, guest: nil, steps: [], timings: [:],
                               size: .init(before: sizeBefore, after: nil))

        // The transaction: lock, scratch beside the destination, free space for the overlay and the result. A dry
        // run writes nothing beside the image: its overlay lives in a temporary directory and is thrown away.
        let transaction = options.dryRun ? nil : try Transaction(
            image: image, destination: destination,
            neededBytes: Int64(Double(sizeBefore) * 1.1) + (64 << 20), logger: logger)
        defer { transaction?.abandon() }
        let dryRunScratch = options.dryRun ? try temporaryDirectory(for: image) : nil
        defer { if let dryRunScratch { try? FileManager.default.removeItem(atPath: dryRunScratch) } }
        let overlay = transaction?.scratchPath("overlay.qcow2") ?? (dryRunScratch ?? "") + "/overlay.qcow2"

        // open: the appliance writes into an overlay over the image; the image itself is only read.
        try checkCancelled()
        progress(.stage("open"))
        let session = try clock.measure("open") { () throws -> ApplianceSession in
            try createOverlay(overlay, backing: inspection.resolvedPath, format: inspection.format)
            let drive = ApplianceDrive(path: overlay, format: .qcow2, discard: .enable, scratch: true)
            return try ApplianceSession(drives: [drive], options: ApplianceOptions(
                acceleration: options.acceleration, logger: logger, guestName: image, limits: options.launchLimits,
                cancellation: cancellation, keys: options.keys))
        }
        defer { try? session.close() }

        progress(.stage("inspect"))
        let filesystem = try clock.measure("inspect") { try session.mountOperatingSystem() }
        let guest = filesystem.facts
        report.guest = guest
        if let requirement, let mismatch = requirement.mismatch(guest) {
            if options.force {
                logger.warning("\(image): profile \(profileName ?? "") \(mismatch); going on because of --force")
            } else {
                throw CustomizeError(image: image, "profile \(profileName ?? "") \(mismatch)",
                                     hint: "use a profile made for this guest, or --force to run it anyway")
            }
        }

        // apply, relabel, trim: in the one appliance.
        let context = OperationContext(guest: guest, logger: logger)
        let runner = OperationRunner(guest: filesystem, context: context, recordDiffs: options.diffs || options.dryRun)
        let steps = operations(guest)
        // Trimming comes last wherever a profile puts it: what the other steps and the relabelling free must be
        // discarded too.
        let ordered = steps.filter { !($0 is TrimFreeSpace) } + steps.filter { $0 is TrimFreeSpace }
        var relabelled = false
        for (index, operation) in ordered.enumerated() {
            try checkCancelled()
            let trim = operation is TrimFreeSpace
            if trim, !relabelled {
                report.steps += try relabel(runner, clock: &clock)
                relabelled = true
            }
            let step: StepReport
            if options.dryRun, trim {
                step = StepReport(operation: operation.name, target: operation.target, changed: false,
                                  summary: "skipped in a dry run")
            } else {
                step = try clock.measure(trim ? "trim" : "apply") { try runner.run(operation) }
            }
            report.steps.append(step)
            progress(.step(index: index, count: ordered.count, step))
        }
        if !relabelled { report.steps += try relabel(runner, clock: &clock) }
        try clock.measure("shutdown") { try session.close() }

        guard let transaction else {
            report.timings = clock.timings
            return report
        }

        // rewrite: merge overlay and image into a new file, then commit it over the destination.
        try checkCancelled()
        progress(.stage("rewrite"))
        let newImage = transaction.scratchPath("new")
        try clock.measure("rewrite") {
            let source = try openImage(path: overlay, format: .qcow2, allowBacking: true)
            _ = try ImageWriter(target).write(source, to: newImage) { written in
                try checkCancelled()
                progress(.rewrite(done: Int64(written.bytesDone), total: Int64(written.bytesTotal)))
            }
        }
        try checkCancelled()
        try clock.measure("commit") { try transaction.commit(newImage) }
        report.size.after = allocatedBytes(destination)
        report.timings = clock.timings
        return report
    }

    /// SELinux labels for what the run touched, from the guest's own policy; nothing when nothing was touched.
    private func relabel(_ runner: OperationRunner, clock: inout StageClock) throws -> [StepReport] {
        guard !runner.touchedPaths.isEmpty else { return [] }
        return [try clock.measure("relabel") { try runner.run(SELinuxRelabel()) }]
    }

    /// The format of the result, refusing to turn a raw image into qcow2 in place.
    private func outputTarget(image: String, format: ImageFormat, policy: OutputPolicy) throws -> WriteOptions {
        let compression = options.compression ?? (policy == .compressedQCOW2 ? .zlib : ClusterCompression.none)
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

/// A private directory for a dry run's overlay, in TMPDIR (never beside the image).
func temporaryDirectory(for image: String) throws -> String {
    var template = Array((NSTemporaryDirectory() + "imgcustomize-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else {
        throw CustomizeError(image: image, "cannot create a temporary directory: \(String(cString: strerror(errno)))",
                             hint: "set TMPDIR to a writable directory")
    }
    return String(cString: made)
}

/// Runs a host tool, failing with its stderr.
func runTool(_ tool: String, _ arguments: [String], image: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = FileHandle.nullDevice
    do { try process.run() } catch {
        throw CustomizeError(image: image, "cannot run \(tool): \(error.localizedDescription)",
                             hint: "run scripts/install-deps")
    }
    let message = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CustomizeError(image: image, "\(tool) \(arguments.joined(separator: " ")) failed: "
                             + String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

extension Pipeline {
    /// Runs `operations` on a directory tree (`customize --root`): no appliance, and no path leaves the tree.
    /// A dry run works on a copy of the tree, so the tree itself stays as it was.
    @discardableResult
    public func customize(_ operations: [any Operations.Operation], onTree root: String,
                          progress: @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        var clock = StageClock()
        var workRoot = root
        var copy: String?
        if options.dryRun {
            let scratch = NSTemporaryDirectory() + "imgcustomize-dry-run-\(getpid())"
            try runTool("cp", ["-a", "--reflink=auto", root, scratch], image: root)
            copy = scratch
            workRoot = scratch
        }
        defer { if let copy { try? FileManager.default.removeItem(atPath: copy) } }

        let tree = try TreeFilesystem(root: workRoot)
        let runner = OperationRunner(guest: tree, context: OperationContext(logger: logger),
                                     recordDiffs: options.diffs || options.dryRun)
        var report = RunReport(profile: nil, image: root, output: options.dryRun ? nil : root, dryRun: options.dryRun,
                               guest: nil, steps: [], timings: [:], size: .init(before: 0, after: nil))
        for (index, operation) in operations.enumerated() {
            try options.cancellation?.check(image: root)
            let step = try clock.measure("apply") { try runner.run(operation) }
            report.steps.append(step)
            progress(.step(index: index, count: operations.count, step))
        }
        report.timings = clock.timings
        return report
    }
}
