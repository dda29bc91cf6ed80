import ArgumentParser
import Customize
import Diagnostics
import Foundation
import Host
import Formats
import Operations
import Appliance
import Logging
import Synchronization

extension Acceleration: ExpressibleByArgument {}
extension PasswordCrypto: ExpressibleByArgument {}

/// Options of every command that runs the pipeline.
struct RunArguments: ParsableArguments {
    @Option(name: .shortAndLong, help: "Write the result here and leave the image untouched.", completion: .file())
    var output: String?

    @Option(help: ArgumentHelp("Write each result to DIR under its image's name; with it the command takes several images and works on them with one appliance launch per host core, or as many as --jobs says (an image that fails is left as it was, the others go on).", valueName: "DIR"), completion: .directory)
    var outputDir: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("With --output-dir: how many appliances work on the batch at once, each launched once over its share of the images (default: one per host core, as many as half the available memory holds; 1 for a single launch).", valueName: "N"))
    var jobs: Int?

    @Flag(name: [.customLong("dry-run"), .customLong("dryrun"), .customShort("n")],
          help: "Show the plan and the diffs; the image stays byte-identical.")
    var dryRun = false

    @Flag(name: .customLong("appliance"), help: "With --dry-run: run the steps in the appliance, on an overlay of the image, as a real run does (guest commands and SELinux labels included), instead of on the image read natively with no appliance (the default where the native reader reads the guest: ext2/3/4, XFS, LVM).")
    var dryRunInAppliance = false

    @Flag(help: "Print one JSON document on stdout (logs stay on stderr).")
    var json = false

    @Flag(help: "Show a unified diff of every changed text file.")
    var diff = false

    @OptionGroup var formats: FormatArguments

    @OptionGroup var appliance: ApplianceArguments

    @Flag(inversion: .prefixedNo, help: "Give the appliance a network (user-mode, through the host) for guest commands that download: install, update, sm-register. Off by default (--no-network): nothing reaches the network.")
    var network = false

    @Option(help: ArgumentHelp("How the passwords the run sets are hashed: md5, sha256, sha512 (the default, read by every RHEL 6+ and Debian guest) or yescrypt (Debian 11+, Ubuntu 22.04+, Fedora 35+, RHEL 9+).", valueName: "METHOD"))
    var passwordCrypto: PasswordCrypto = .sha512

    @Flag(name: .customLong("no-selinux-relabel"), help: "Leave SELinux labels as they are: no labels for the files the run wrote, no relabelling of every file after guest commands.")
    var noSELinuxRelabel = false

    @Option(help: ArgumentHelp("Put the overlay the appliance writes to (or a dry run's copy) in DIR, which may be another filesystem; the new image is still written beside the destination, so it replaces it atomically (or IMGCUSTOMIZE_SCRATCH).", valueName: "DIR"))
    var scratch: String?

    /// Everything a run is asked to do, in one place: these options, the command's own (`compression`, `force`,
    /// `attachments`), the global ones, and the CLI's cancellation (which `execute` arms).
    func options(global: GlobalOptions, compression: ClusterCompression? = nil, force: Bool = false,
                 attachments: [AttachedDisk] = []) throws -> RunOptions {
        let scratch = scratch ?? ProcessInfo.processInfo.environment["IMGCUSTOMIZE_SCRATCH"].flatMap { $0.isEmpty ? nil : $0 }
        var appliance = try appliance.options()
        appliance.network = network
        var options = RunOptions(output: output, dryRun: dryRun, force: force, compression: compression,
                                 allowedFormats: try formats.allowed(), appliance: appliance, diffs: diff,
                                 scratchDirectory: scratch)
        options.cancellation = Interruption.cancellation
        options.dryRunInAppliance = dryRunInAppliance
        options.access = global.access
        options.selinuxRelabel = !noSELinuxRelabel
        options.passwordCrypto = passwordCrypto
        options.attachments = attachments
        options.batchLaunches = jobs
        return options
    }
}

/// Which input formats a command accepts: the `--formats` of every command that opens an image.
struct FormatArguments: ParsableArguments {
    @Option(help: "Accepted input formats, comma-separated (like Glance's disk_formats), e.g. raw,qcow2.")
    var formats: String?

    /// The accepted formats; nil when every safe format is.
    func allowed() throws -> Set<ImageFormat>? {
        guard let formats else { return nil }
        var allowed = Set<ImageFormat>()
        for name in formats.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let format = ImageFormat(name: name) else {
                let known = ImageFormat.allCases.map(\.rawValue).joined(separator: ", ")
                throw ValidationError("unknown format '\(name)' in --formats (known: \(known), vhd, ploop)")
            }
            allowed.insert(format)
        }
        return allowed
    }
}

/// How the appliance is launched: the options of every command that launches it.
struct ApplianceArguments: ParsableArguments {
    @Option(help: ArgumentHelp("""
        The appliance's acceleration: auto, kvm or tcg (or IMGCUSTOMIZE_ACCEL). auto tries KVM once and \
        remembers whether it works: a KVM that fails, or whose guest prints no kernel message within \
        \(Int(LaunchLimits().kvmKernelSeconds)) s or is not up within \(Int(LaunchLimits().kvmLaunchSeconds)) s \
        (it takes a few), is given up for software emulation (tcg).
        """, valueName: "mode"))
    var accel: Acceleration?

    @Option(help: ArgumentHelp("""
        Give up a launch that is not up after this many seconds (or IMGCUSTOMIZE_LAUNCH_TIMEOUT; default \
        \(Int(LaunchLimits.defaultLaunchSeconds))).
        """, valueName: "seconds"))
    var launchTimeout: Double?

    @Option(name: .customLong("key"), help: ArgumentHelp("""
        Open a LUKS device with this key, as virt-customize does: DEVICE:key:PASSPHRASE, or DEVICE:file:PATH \
        (the first line of a host file). DEVICE is the device inside the appliance (/dev/sda2) or the LUKS UUID. \
        Repeatable; every key for a device is tried.
        """, valueName: "selector"))
    var keys: [String] = []

    @Flag(help: "Read the key of each LUKS device no --key is for from stdin, one line each, in device order.")
    var keysFromStdin = false

    @Flag(help: "With --keys-from-stdin on a terminal: show the keys as they are typed.")
    var echoKeys = false

    @Option(help: ArgumentHelp("The appliance's virtual CPUs (default: 2 where the host has 2 cores or more); more can speed up guest commands such as install and update.", valueName: "N"))
    var smp: Int?

    @Option(help: ArgumentHelp("The appliance's memory in MiB (default: libguestfs's, 1280 here); more for guest commands that need it.", valueName: "MiB"))
    var memsize: Int?

    func validate() throws {
        if let smp, !(1...255).contains(smp) { throw ValidationError("--smp \(smp): give 1 to 255 virtual CPUs") }
        if let memsize, !(256...1_048_576).contains(memsize) {
            throw ValidationError("--memsize \(memsize): give 256 MiB or more (the appliance does not boot in less)")
        }
    }

    /// How to launch the appliance, as these options say; the caller adds its logger and cancellation.
    func options(logger: Logger = Logger(label: "imgcustomize.appliance"), cancellation: Cancellation? = nil) throws
        -> ApplianceOptions {
        var options = ApplianceOptions(acceleration: accel ?? .auto, logger: logger, limits: try limits(),
                                       cancellation: cancellation, keys: try luksKeys())
        options.virtualCPUs = smp
        options.memoryMiB = memsize
        return options
    }

    func luksKeys() throws -> LUKSKeys {
        let keys = try self.keys.map { selector in
            do {
                return try LUKSKeys.Key(selector: selector)
            } catch let error as LUKSKeyError {
                throw UsageError(error.diagnostic)
            }
        }
        var luksKeys = LUKSKeys(keys)
        if keysFromStdin {
            let echo = echoKeys
            luksKeys.prompt = { readKey(for: $0, echo: echo) }
        }
        return luksKeys
    }

    func limits() throws -> LaunchLimits {
        do {
            return try LaunchLimits.resolve(launchSeconds: launchTimeout)
        } catch let error as HostError {
            throw UsageError(error.diagnostic)
        }
    }
}

/// One line of stdin, for `--keys-from-stdin`: on a terminal after a prompt on stderr, not echoed unless `echo`
/// (`--echo-keys`).
private func readKey(for device: String, echo: Bool) -> String? {
    guard isatty(STDIN_FILENO) == 1 else { return readLine(strippingNewline: true) }
    FileHandle.standardError.write(Data("Enter key or passphrase (\"\(device)\"): ".utf8))
    var saved = termios()
    let echoOff = !echo && tcgetattr(STDIN_FILENO, &saved) == 0
    if echoOff {
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
    }
    defer {
        if echoOff {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }
    return readLine(strippingNewline: true)
}

/// The images a command works on: one (to --output, DIR/NAME with --output-dir, or over itself), or a batch.
enum ImageSelection {
    case one(String, output: String?)
    case batch([String], directory: String)
}

extension RunArguments {
    /// The images given, as one image or a batch: several images need --output-dir, which --output excludes.
    func selection(_ images: [String]) throws -> ImageSelection {
        guard let first = images.first else { throw ValidationError("missing IMAGE (or --tree DIR)") }
        if output != nil, outputDir != nil { throw ValidationError("give either --output or --output-dir, not both") }
        if let jobs {
            guard jobs >= 1 else { throw ValidationError("--jobs \(jobs): give 1 or more appliances") }
            guard outputDir != nil else {
                throw ValidationError("--jobs is for several images with --output-dir: one image takes one appliance")
            }
        }
        guard let outputDir else {
            guard images.count == 1 else {
                throw ValidationError("several images need --output-dir DIR (each result goes there under its image's name)")
            }
            return .one(first, output: output)
        }
        let destinations = try batchDestinations(images, in: outputDir)
        return images.count == 1 ? .one(first, output: destinations.first) : .batch(images, directory: outputDir)
    }
}

/// Runs the pipeline with the CLI's logging and progress, then prints the report: JSON alone on stdout with
/// --json, a line per step otherwise. A run that fails throws its `RunFailure`, which `IMGCustomize.main` prints
/// (with --json as the document: the error, the stage, the steps done, whether the image is unchanged).
func execute(options: RunOptions, global: GlobalOptions, json: Bool,
             _ body: (Pipeline, @escaping @Sendable (RunProgress) -> Void) throws -> RunReport) throws {
    let logger = global.makeLogger()
    _ = Interruption.install()
    let pipeline = Pipeline(options: options, logger: logger)
    let bar = ProgressBar("rewriting", enabled: !global.quiet)
    let report = try body(pipeline) { event in show(event, logger: logger, bar: bar) }
    if json {
        Output.document(report.json())
    } else {
        print(report.text(diffs: options.diffs || options.dryRun))
    }
}

/// A run's progress as the CLI shows it: a log line per stage and step, the rewrite's bar; `image` names the image
/// in a batch.
private func show(_ event: RunProgress, image: String? = nil, logger: Logger, bar: ProgressBar) {
    let prefix = image.map { "\($0): " } ?? ""
    switch event {
    case .stage(let stage): logger.info("\(prefix)\(stage.rawValue)")
    case .step(let index, let count, let step):
        let target = step.target.isEmpty ? "" : " \(step.target)"
        logger.info("\(prefix)[\(index + 1)/\(count)] \(step.operation)\(target): \(step.summary)")
    case .rewrite(let done, let total): bar.update(done: done, total: total)
    case .warning(let warning): logger.warning("\(warning)")
    }
}

/// Runs a batch with the CLI's logging and progress, then prints its report: with --json one document whose
/// `images` hold each image's report or failure, otherwise each image's report or error in turn. Fails (exit status
/// 1) when any image failed, after the others were committed.
/// What a run works on, each with the pipeline call that does it: `apply` and `customize` differ only in these.
struct RunCalls {
    var tree: (Pipeline, String, @escaping @Sendable (RunProgress) -> Void) throws -> RunReport
    var image: (Pipeline, String, @escaping @Sendable (RunProgress) -> Void) throws -> RunReport
    var batch: (Pipeline, [String], String, @escaping @Sendable (String, RunProgress) -> Void) throws -> BatchReport
}

/// Runs on the target the command line names: a directory tree (--tree), one image, or several with --output-dir
/// (a launch per core or per --jobs); prints the report as `execute` and `executeBatch` do.
func execute(_ calls: RunCalls, target: TargetArguments, images: [String], attachmentsGiven: Bool,
             options: RunOptions, runOptions: RunArguments, global: GlobalOptions) throws {
    var options = options
    switch try target.target(image: images.first, warn: { global.makeLogger().warning("\($0)") }) {
    case .tree(let tree):
        guard !attachmentsGiven else { throw ValidationError("--attach needs an image: no guest command runs on a directory tree") }
        guard runOptions.outputDir == nil else { throw ValidationError("--output-dir is for images, not --tree DIR") }
        try execute(options: options, global: global, json: runOptions.json) { try calls.tree($0, tree, $1) }
    case .image(_, let root):
        options.appliance.root = root
        switch try runOptions.selection(images) {
        case .one(let image, let output):
            options.output = output
            try execute(options: options, global: global, json: runOptions.json) { try calls.image($0, image, $1) }
        case .batch(let images, let directory):
            // A device names a root of one image; the drives after the first have other names.
            guard root == .all || root == .single || root == .first else {
                throw ValidationError("--root DEVICE chooses a root of one image: leave it out, or give all, single or first, in a batch")
            }
            try executeBatch(options: options, global: global, json: runOptions.json) {
                try calls.batch($0, images, directory, $1)
            }
        }
    }
}

func executeBatch(options: RunOptions, global: GlobalOptions, json: Bool,
                  _ body: (Pipeline, @escaping @Sendable (String, RunProgress) -> Void) throws -> BatchReport) throws {
    let logger = global.makeLogger()
    _ = Interruption.install()
    let pipeline = Pipeline(options: options, logger: logger)
    // A bar for each image: the rewrites of images from different launches run at once.
    let bars = Mutex<[String: ProgressBar]>([:])
    let report = try body(pipeline) { image, event in
        let bar = bars.withLock { bars in
            if let bar = bars[image] { return bar }
            let bar = ProgressBar("rewriting \(image)", enabled: !global.quiet)
            bars[image] = bar
            return bar
        }
        show(event, image: image, logger: logger, bar: bar)
    }
    if json {
        Output.document(report.json())
    } else {
        var sections: [String] = []
        for result in report.results {
            switch result {
            case .success(let run):
                sections.append("\(run.image) -> \(run.output ?? run.image):\n" + run.text(diffs: options.diffs || options.dryRun))
            case .failure(let failure):
                let unchanged = failure.imageUnchanged ? "; it is unchanged" : ""
                sections.append("\(failure.report.image): failed at \(failure.stage.rawValue)\(unchanged)")
            }
        }
        print(sections.joined(separator: "\n\n"))
    }
    for failure in report.failures {
        FileHandle.standardError.write(Data((failure.diagnostic.text(program: "imgcustomize") + "\n").utf8))
    }
    for warning in report.warnings { logger.warning("\(warning)") }
    if let cancelled = report.failures.first(where: { $0.error is RunCancelled }) { throw cancelled }
    if !report.failures.isEmpty {
        let done = report.results.count - report.failures.count
        FileHandle.standardError.write(Data("imgcustomize: \(report.failures.count) of \(report.results.count) images failed; \(done) done\n".utf8))
        throw ExitCode.failure
    }
}
