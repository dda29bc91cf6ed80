import Diagnostics
import Appliance
import Foundation
import Formats
import Host
import Logging
import Operations
import Synchronization

/// What a run is asked to do.
public struct RunOptions: Sendable {
    /// Where the result goes; nil = over the image itself (atomically, at the end).
    public var output: String?
    public var dryRun = false
    /// A dry run goes through the appliance even where the native reader reads the image (`--dry-run --appliance`).
    public var dryRunInAppliance = false
    /// Run a profile on a guest that does not meet its requirement.
    public var force = false
    /// Overrides the profile's output: compression of a qcow2 result (nil: the profile's, or the input's own).
    public var compression: ClusterCompression?
    /// Glance's `disk_formats`: formats accepted as input; nil accepts every safe format.
    public var allowedFormats: Set<ImageFormat>?
    /// How the appliance is launched: acceleration, launch limits, LUKS keys, network, virtual CPUs, memory. The
    /// run gives it its own logger and cancellation, and names the image in its messages.
    public var appliance: ApplianceOptions
    /// Unified diffs of changed text files in the step reports.
    public var diffs = false
    /// Stops the run from another thread (the CLI cancels it on SIGINT, SIGTERM and SIGHUP): the run fails with
    /// `RunCancelled` and the image stays as it was. It stops the appliance too.
    public var cancellation: Cancellation?
    /// Whether the image may be a symlink (followed) or a block device; refused by default.
    public var access = FileAccess()
    /// Where the overlay (or a dry run's copy) goes: nil = beside the destination (TMPDIR for a dry run). The new
    /// image is always written beside the destination, so that it replaces it in one atomic rename.
    public var scratchDirectory: String?
    /// Runs the labels phase (SELinux labels for what the run touched, every file after guest commands); on by
    /// default, off with `--no-selinux-relabel`.
    public var selinuxRelabel = true
    /// How passwords set by the run are hashed.
    public var passwordCrypto = PasswordCrypto.sha512
    /// Disks attached to the appliance, read-only, for guest commands (virt-customize's `--attach`): a repository
    /// ISO, a disk of packages. They pass the same safety checks as the image; the run never writes them.
    public var attachments: [AttachedDisk] = []
    /// How many appliances a batch launches at once, each over its share of the images; nil for one per host core,
    /// as many as half the available memory holds (`BatchLaunches.count`).
    public var batchLaunches: Int?

    public init(output: String? = nil, dryRun: Bool = false, force: Bool = false, compression: ClusterCompression? = nil,
                allowedFormats: Set<ImageFormat>? = nil, appliance: ApplianceOptions = ApplianceOptions(),
                diffs: Bool = false, scratchDirectory: String? = nil) {
        self.output = output
        self.dryRun = dryRun
        self.force = force
        self.compression = compression
        self.allowedFormats = allowedFormats
        self.appliance = appliance
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
    case stage(Stage)
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
                      progress: @escaping @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(on: image, policy: profile.output, progress: progress, Job(profile))
    }

    /// Runs `operations` in order on `image` (the `customize` command).
    @discardableResult
    public func customize(_ operations: [any GuestOperation], on image: String,
                          progress: @escaping @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(on: image, policy: .sameFormat, progress: progress, Job { _ in operations })
    }

    /// Trims free space and rewrites (the `sparsify` command): apply only the devices phase (`trim-free-space`).
    @discardableResult
    public func sparsify(_ image: String, progress: @escaping @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(on: image, policy: .compressedQCOW2, progress: progress, Job { _ in OperationRegistry.flags(in: .devices) })
    }

    /// Runs `profile`'s steps for `guest` on a directory tree: the same steps, in the same order, as `apply` runs
    /// on an image of that guest, without the block devices a tree does not have (UUIDs, trimming). The profile's
    /// requirement is checked first, as `apply` checks it, `--force` included.
    @discardableResult
    public func apply(_ profile: Profile, onTree root: String, guest: GuestFacts,
                      progress: @escaping @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(onTree: root, guest: guest, progress: progress, Job(profile))
    }

    /// Runs `operations` on a directory tree (`customize --tree`): no appliance, and no path leaves the tree.
    /// A dry run works on a copy of the tree, so the tree itself stays as it was. `guest` is what the operations
    /// know of the guest (a tree is not inspected), and what the report says of it.
    @discardableResult
    public func customize(_ operations: [any GuestOperation], onTree root: String, guest: GuestFacts? = nil,
                          progress: @escaping @Sendable (RunProgress) -> Void = { _ in }) throws -> RunReport {
        try run(onTree: root, guest: guest, progress: progress, Job { _ in operations })
    }

    /// Dry runs of `profiles` on `image`, one after another on one opening of it: one appliance launch for them
    /// all (`inAppliance`), or none, natively (where the reader declines, `NativeDryRunDeclined`, no fallback).
    /// Each run sees what the ones before it changed, as if they ran in that order. What the tests compare the two
    /// dry runs with, step by step.
    /// `disk` names the image's disk in the native reports, as the appliance would (see `applianceDryRuns`).
    package func dryRuns(of profiles: [Profile], on image: String, inAppliance: Bool,
                         disk: String = "/dev/sda") throws -> [RunReport] {
        var options = options
        options.dryRun = true
        let target = OpenedOnce(inAppliance ? ImageTarget(image: image, destination: image, policy: .sameFormat)
                                            : NativeDryRunTarget(image: image, policy: .sameFormat, disk: disk))
        defer { target.end() }
        return try profiles.map { profile in
            try Run(image, options: options, logger: logger, output: nil, sizeBefore: allocatedBytes(image),
                    progress: { _ in }).perform(Job(profile), on: target)
        }
    }

    /// The appliance's side of `dryRuns(of:on:inAppliance:)` for several images in one launch, as a batch shares
    /// one: each image's profiles run one after another on one opening of its drive. The reports name each image's
    /// devices as that launch does (the second image's disk is /dev/sdb: `ApplianceDrive.deviceName(index:)`).
    package func applianceDryRuns(_ images: [(image: String, profiles: [Profile])]) throws -> [[RunReport]] {
        var options = options
        options.dryRun = true
        let shared = SharedAppliance()
        // The runs that prepared the images hold their overlays' directories until the end.
        var preparations: [Run] = []
        var targets: [ImageTarget] = []
        for (index, (image, _)) in images.enumerated() {
            let run = Run(image, options: options, logger: logger, output: nil, sizeBefore: allocatedBytes(image),
                          progress: { _ in })
            let target = ImageTarget(image: image, destination: image, policy: .sameFormat, shared: shared)
            try target.prepare(in: run, drive: index)
            preparations.append(run)
            targets.append(target)
        }
        guard let first = targets.first, let firstRun = preparations.first else { return [] }
        shared.launch(drives: targets.compactMap { $0.prepared?.drive }, options: first.applianceOptions(of: firstRun))
        defer { _ = shared.close() }
        return try zip(images, targets).map { entry, target in
            let opened = OpenedOnce(target)
            defer { opened.end() }
            return try entry.profiles.map { profile in
                try Run(entry.image, options: options, logger: logger, output: nil,
                        sizeBefore: allocatedBytes(entry.image), progress: { _ in }).perform(Job(profile), on: opened)
            }
        }
    }

    private func run(on image: String, policy: OutputPolicy, progress: @escaping @Sendable (RunProgress) -> Void,
                     _ job: Job) throws -> RunReport {
        let destination = options.output ?? image
        if NativeDryRunTarget.applies(to: options) {
            // Progress waits for the end: a dry run the reader declines halfway starts again in the appliance, and
            // the user sees that one's steps alone.
            let events = Mutex<[RunProgress]>([])
            let run = Run(image, options: options, logger: logger, output: destination,
                          sizeBefore: allocatedBytes(image), progress: { event in events.withLock { $0.append(event) } })
            do {
                let report = try run.perform(job, on: NativeDryRunTarget(image: image, policy: policy))
                logger.debug("\(image): the dry run read the image natively, with no appliance")
                for event in events.withLock({ $0 }) { progress(event) }
                return report
            } catch let failure as RunFailure {
                guard let declined = failure.error as? NativeDryRunDeclined
                        ?? (failure.error as? OperationFailure)?.underlying as? NativeDryRunDeclined else {
                    for event in events.withLock({ $0 }) { progress(event) }
                    throw failure
                }
                logger.info("\(image): \(declined.reason): the dry run goes through the appliance")
            }
        }
        let run = Run(image, options: options, logger: logger, output: destination,
                      sizeBefore: allocatedBytes(image), progress: progress)
        return try run.perform(job, on: ImageTarget(image: image, destination: destination, policy: policy))
    }

    private func run(onTree root: String, guest: GuestFacts?, progress: @escaping @Sendable (RunProgress) -> Void,
                     _ job: Job) throws -> RunReport {
        let run = Run(root, options: options, logger: logger, output: root, sizeBefore: 0, progress: progress)
        return try run.perform(job, on: TreeTarget(root: root, guest: guest))
    }
}

/// A qcow2 overlay over the image (by its absolute path, in its detected format): what the appliance writes to.
func createOverlay(_ overlay: String, backing: String, format: ImageFormat) throws {
    let absolute = backing.hasPrefix("/") ? backing : FileManager.default.currentDirectoryPath + "/" + backing
    try runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-F", format.qemuFormat, "-b", absolute, overlay],
                image: backing)
}

/// Runs a host tool, failing with its stderr.
func runTool(_ tool: String, _ arguments: [String], image: String, cancellation: Cancellation? = nil) throws {
    let command = HostCommand(tool, arguments, output: .discard, cancellation: cancellation)
    let result: CommandResult
    do { result = try command.run() } catch {
        throw CustomizeError(image: image, Diagnostic(of: error).message, hint: "run scripts/install-deps")
    }
    guard result.succeeded else { throw CustomizeError(image: image, "\(command.commandLine) \(result.explanation)") }
}
