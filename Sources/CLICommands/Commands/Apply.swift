import ArgumentParser
import Customize
import Formats
import Foundation
import Profiles

extension IMGCustomize {
    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a profile on an image, in one appliance launch: its steps, then what the profile says.",
            discussion: """
            What each profile does besides its steps:
            \(BuiltinProfiles.all.map { "  \($0.name): \($0.effects)" }.joined(separator: "\n"))

            The image is never modified in place: the work goes to an overlay, the result is written beside the \
            destination, fsynced and renamed over it. If the run fails or is killed, the image is as it was; if \
            another program changes the image meanwhile, nothing is committed. With --json a failed run still prints \
            one document: the error and what to do, the stage, the steps done and whether the image is unchanged.

            EXAMPLES:
              imgcustomize apply rhel7-cloud rhel7.qcow2
              imgcustomize apply rhel7-cloud rhel7.qcow2 --output rhel7-cloud.qcow2 --json
              imgcustomize apply rhel6-cloud rhel6.raw --output rhel6-cloud.qcow2 --compress zstd
              imgcustomize apply sysprep guest.qcow2 --dry-run
            """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var runOptions: RunArguments

        @Argument(help: "The profile to run (see `imgcustomize profiles`).")
        var profile: String

        @Argument(help: "The disk image (qcow2, raw, or another format the inspection accepts).")
        var image: String

        @Option(help: "Compression of a qcow2 result: zlib (deflate, what every qemu reads), zstd or none.")
        var compress: ClusterCompression?

        @Flag(help: "Run the profile even on a guest it is not made for.")
        var force = false

        func run() throws {
            guard let profile = BuiltinProfiles.named(profile) else {
                throw ValidationError("no profile named '\(profile)'; the profiles are: "
                                      + BuiltinProfiles.all.map(\.name).joined(separator: ", "))
            }
            var options = try runOptions.options()
            options.compression = compress
            options.force = force
            try execute(options: options, global: global, json: runOptions.json) { pipeline, progress in
                try pipeline.apply(profile, to: image, progress: progress)
            }
        }
    }
}
