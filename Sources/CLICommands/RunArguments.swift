import ArgumentParser
import Customize
import Foundation
import Formats
import Operations
import Appliance

extension Acceleration: ExpressibleByArgument {}

/// Options of every command that runs the pipeline.
struct RunArguments: ParsableArguments {
    @Option(name: .shortAndLong, help: "Write the result here and leave the image untouched.")
    var output: String?

    @Flag(help: "Show the plan and the diffs; the image stays byte-identical.")
    var dryRun = false

    @Flag(help: "Print one JSON document on stdout (logs stay on stderr).")
    var json = false

    @Flag(help: "Show a unified diff of every changed text file.")
    var diff = false

    @OptionGroup var formats: FormatArguments

    @OptionGroup var appliance: ApplianceArguments

    func options() throws -> RunOptions {
        var options = RunOptions(output: output, dryRun: dryRun, allowedFormats: try formats.allowed(),
                                 acceleration: appliance.accel ?? .auto, diffs: diff)
        options.launchLimits = try appliance.limits()
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
                throw ValidationError("unknown format '\(name)' in --formats (known: \(known), vhd)")
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

    func limits() throws -> LaunchLimits {
        do {
            return try LaunchLimits.resolve(launchSeconds: launchTimeout)
        } catch let error as GuestError {
            throw ValidationError("\(error.message): \(error.hint ?? "")")
        }
    }
}

/// Runs the pipeline with the CLI's logging and progress, then prints the report: JSON alone on stdout with
/// --json, a line per step otherwise.
func execute(options: RunOptions, global: GlobalOptions, json: Bool,
             _ body: (Pipeline, @escaping @Sendable (RunProgress) -> Void) throws -> RunReport) throws {
    let logger = global.makeLogger()
    var options = options
    options.cancellation = Interruption.install()
    options.access = global.access
    let pipeline = Pipeline(options: options, logger: logger)
    let bar = ProgressBar("rewriting", enabled: !global.quiet)
    let report = try body(pipeline) { event in
        switch event {
        case .stage(let stage): logger.info("\(stage)")
        case .step(let index, let count, let step):
            let target = step.target.isEmpty ? "" : " \(step.target)"
            logger.info("[\(index + 1)/\(count)] \(step.operation)\(target): \(step.summary)")
        case .rewrite(let done, let total): bar.update(done: done, total: total)
        }
    }
    if json {
        print(report.json())
    } else {
        print(report.text(diffs: options.diffs || options.dryRun))
    }
}
