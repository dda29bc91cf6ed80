import ArgumentParser
import Customize
import Diagnostics
import Formats
import Foundation
import Operations
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

            With --output-dir DIR, several images are prepared with one appliance launch per host core (--jobs N; \
            -j 1 for a single launch), each launch working on its share of the images in turn, each image written to \
            DIR under its own name with its own transaction: one that fails is left as it was and reported, the \
            others go on and are committed; the exit status is 1 if any failed, and --json prints one entry per image.

            Operations given after the profile (any of `imgcustomize operations`, as options named after them) run \
            after the profile's steps, in the same launch, under the heading "command line": what virt-sysprep's \
            customize operation does with `virt-sysprep --hostname ...`.

            EXAMPLES:
              imgcustomize apply rhel7-cloud rhel7.qcow2
              imgcustomize apply rhel7-cloud rhel7.qcow2 --output rhel7-cloud.qcow2 --json
              imgcustomize profiles show rhel9-cloud --as-file > web.profile   # then edit it
              imgcustomize apply ./web.profile rhel9.qcow2
              imgcustomize apply rhel6-cloud rhel6.raw --output rhel6-cloud.qcow2 --compress zstd
              imgcustomize apply sysprep guest.qcow2 --dry-run
              imgcustomize apply rhel7-cloud web1.qcow2 web2.qcow2 web3.qcow2 --output-dir out/
              imgcustomize apply sysprep guest.qcow2 --operations defaults,-ssh-userdir,user-account
              imgcustomize apply sysprep --tree /srv/chroot/rhel9 --enable logfiles,tmp-files --json
              imgcustomize apply sysprep guest.qcow2 --hostname web1.example.com --firstboot-command 'dnf -y update'
              imgcustomize apply windows-cloud win2k19.qcow2 --param virtio-win=virtio-win.iso \\
                  --param cloudbase-init=CloudbaseInitSetup_x64.msi
            """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var runOptions: RunArguments

        @Argument(help: "The profile to run: a built-in one (see `imgcustomize profiles`), or a profile file's path (virt-customize's command-file syntax with `#@ name:`, `summary:`, `requires:`, `output:` and `include:` headers; `imgcustomize profiles show NAME --as-file` prints one).", completion: .profiles)
        var profile: String

        @OptionGroup var operationArguments: OperationArguments

        @OptionGroup var target: TargetArguments

        @Option(help: ArgumentHelp("With the sysprep profile: the operations to run, as virt-sysprep's --operations: a comma list, left to right, of defaults, all, NAME to add and -NAME to remove (`imgcustomize operations --sysprep` lists them).", valueName: "list"))
        var operations: String?

        @Option(help: ArgumentHelp("With the sysprep profile: run exactly these operations (virt-sysprep's --enable).", valueName: "list"))
        var enable: String?

        @Option(help: "Compression of a qcow2 result: zlib (deflate, what every qemu reads), zstd or none.")
        var compress: ClusterCompression?

        @Option(name: .customLong("param"), help: ArgumentHelp("A value for one of the profile's parameters, e.g. --param virtio-win=/path/virtio-win.iso; repeat it for each (`imgcustomize profiles show NAME` lists a profile's parameters, required or with their defaults).", valueName: "NAME=VALUE"), completion: .profileParameters)
        var params: [String] = []

        @Flag(help: "Run the profile even on a guest it is not made for.")
        var force = false

        func run() throws {
            let (images, operations, attachments) = try operationArguments.planned()
            let profile = try chosenProfile().adding(operations.expandingCommandFiles, as: "command line")
            let options = try runOptions.options(global: global, compression: compress, force: force,
                                                 attachments: attachments)
            let calls = RunCalls(
                tree: { try $0.apply(profile, onTree: $1, guest: GuestFacts(), progress: $2) },
                image: { try $0.apply(profile, to: $1, progress: $2) },
                batch: { try $0.apply(profile, to: $1, outputDirectory: $2, progress: $3) })
            try execute(calls, target: target, images: images, attachmentsGiven: !attachments.isEmpty, options: options,
                        runOptions: runOptions, global: global)
        }

        /// The values --param gives, by name; a name given twice is refused.
        func parameterValues() throws -> [String: String] {
            var values: [String: String] = [:]
            for param in params {
                guard let equals = param.firstIndex(of: "="), equals != param.startIndex else {
                    throw ValidationError("--param \(param): write --param NAME=VALUE, e.g. --param virtio-win=/path/virtio-win.iso")
                }
                let name = String(param[..<equals])
                guard values.updateValue(String(param[param.index(after: equals)...]), forKey: name) == nil else {
                    throw ValidationError("--param \(name) is given twice; give each parameter once")
                }
            }
            return values
        }

        /// The profile named on the command line, its parameters bound to --param's values: one that lacks a
        /// required value is refused here, before anything is launched.
        func chosenProfile() throws -> Profile {
            let values = try parameterValues()
            return try unboundProfile(values).binding(values)
        }

        /// The profile named on the command line; for sysprep, with the operations --operations or --enable chose.
        func unboundProfile(_ values: [String: String]) throws -> Profile {
            guard let named = BuiltinProfiles.named(profile) else {
                // A profile file: a path (./web.profile), or a file of that name here.
                if profile.contains("/") || FileManager.default.fileExists(atPath: profile) {
                    guard operations == nil, enable == nil else {
                        throw ValidationError("--operations and --enable choose the operations of the sysprep profile, not of \(profile)")
                    }
                    do {
                        return try ProfileFile.read(profile, parameters: values, builtin: BuiltinProfiles.named)
                    } catch let error as CommandFileError {
                        // As a --commands-from-file the command line names: the command line cannot be used.
                        throw UsageError(error.diagnostic)
                    }
                }
                throw ValidationError("no profile named '\(profile)'; the profiles are: "
                                      + BuiltinProfiles.all.map(\.name).joined(separator: ", ")
                                      + ", or a profile file's path (./web.profile)")
            }
            guard operations != nil || enable != nil else { return named }
            guard named.name == BuiltinProfiles.sysprep.name else {
                throw ValidationError("--operations and --enable choose the operations of the sysprep profile, not of \(profile)")
            }
            guard operations == nil || enable == nil else {
                throw ValidationError("give either --operations or --enable, not both")
            }
            do {
                let selection = try operations.map { try SysprepSelection.operations($0) } ?? SysprepSelection.enable(enable ?? "")
                return BuiltinProfiles.sysprep(selecting: selection)
            } catch let error as SysprepSelectionError {
                throw ValidationError(error.description)
            }
        }
    }
}
