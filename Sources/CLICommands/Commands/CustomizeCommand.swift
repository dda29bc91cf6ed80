import ArgumentParser
import Customize
import Foundation
import Operations

extension IMGCustomize {
    struct CustomizeCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "customize",
            abstract: "Run operations on an image (or a directory tree), in command-line order, in one appliance launch.",
            discussion: """
            Operations are options named after them (`imgcustomize operations` lists them all). The image goes \
            through the same transaction as `apply`: it is never modified in place. Guest commands (run-command, \
            run, install, uninstall, update) run the guest's own programs inside the appliance; the appliance has \
            no network unless --network is given.

            EXAMPLES:
              imgcustomize customize rhel7.qcow2 \\
                --set-line /etc/sysconfig/network:NOZEROCONF=yes \\
                --append-grub-args "console=tty0 console=ttyS0,115200n8" \\
                --lock-root --disable-repos --remove-machine-id \\
                --edit-file '/etc/ssh/sshd_config:s/^PermitRootLogin yes/PermitRootLogin no/' \\
                --trim-free-space
              imgcustomize customize rhel7.qcow2 --hostname web1.example.com --dry-run
              imgcustomize customize debian12.qcow2 --install ./agent.deb --run-command 'systemctl enable agent'
              imgcustomize customize rhel9.qcow2 --network --install cloud-init --update
              imgcustomize customize rhel7.qcow2 --commands-from-file virt-customize.commands
              imgcustomize customize rhel9.qcow2 --network --sm-credentials me@example.com:file:rhsm.pw \\
                --sm-register --sm-attach auto --install cloud-init --sm-remove --sm-unregister
              imgcustomize customize --root /srv/chroot/rhel7 --disable-repos --json
            """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var runOptions: RunArguments

        @Option(name: .customLong("sm-credentials"), help: ArgumentHelp("""
            The account --sm-register registers the guest with, as virt-customize's: USER:password:PASSWORD, or \
            USER:file:FILE (the first line of a host file, which keeps the password out of the process list). The \
            password is never shown in reports, logs or errors.
            """, valueName: "selector"))
        var smCredentials: String?

        @Option(help: "Work on this directory tree instead of an image (no appliance; paths never leave the tree).")
        var root: String?

        @Argument(parsing: .allUnrecognized, help: "IMAGE, then operations: --OPERATION [ARGUMENT]...")
        var arguments: [String] = []

        func run() throws {
            let (image, operations) = try plannedOperations()
            guard !operations.isEmpty else {
                throw ValidationError("no operation given; `imgcustomize operations` lists them")
            }
            let options = try runOptions.options()
            if let root {
                guard image == nil else { throw ValidationError("give either IMAGE or --root DIR, not both") }
                try execute(options: options, global: global, json: runOptions.json) { pipeline, progress in
                    try pipeline.customize(operations, onTree: root, progress: progress)
                }
                return
            }
            guard let image else { throw ValidationError("missing IMAGE (or --root DIR)") }
            try execute(options: options, global: global, json: runOptions.json) { pipeline, progress in
                try pipeline.customize(operations, on: image, progress: progress)
            }
        }

        /// The image and the operations as they will run: every sm-register with the account of --sm-credentials.
        func plannedOperations() throws -> (String?, [any GuestOperation]) {
            let (image, parsed) = try parseOperations(arguments)
            do {
                return (image, try parsed.supplyingSubscriptionCredentials(
                    try smCredentials.map { try SubscriptionCredentials(selector: $0) }))
            } catch let error as ArgumentError {
                throw ValidationError(error.description)
            }
        }

        /// The image and the operations, in command-line order: `--name ARG`, `--name=ARG`, or `--name` for those
        /// that take no argument.
        func parseOperations(_ arguments: [String]) throws -> (String?, [any GuestOperation]) {
            var image: String?
            var operations: [any GuestOperation] = []
            var index = 0
            while index < arguments.count {
                let token = arguments[index]
                index += 1
                guard token.hasPrefix("--") else {
                    guard image == nil else { throw ValidationError("unexpected argument '\(token)'") }
                    image = token
                    continue
                }
                var name = String(token.dropFirst(2))
                var value: String?
                if let equals = name.firstIndex(of: "=") {
                    value = String(name[name.index(after: equals)...])
                    name = String(name[..<equals])
                }
                guard let descriptor = OperationRegistry.named(name) else {
                    throw ValidationError("unknown option or operation '--\(name)'; `imgcustomize operations` lists them")
                }
                // A required argument is the next token unless that is the next operation; an optional one is only
                // ever attached with "=", so the next token (the image, say) is never taken for it.
                if case .required = descriptor.argument, value == nil {
                    guard index < arguments.count, !arguments[index].hasPrefix("--") else {
                        throw ValidationError("--\(name) needs an argument: \(descriptor.argument.usage("--\(name)"))")
                    }
                    value = arguments[index]
                    index += 1
                }
                do {
                    operations.append(try descriptor.parse(value))
                } catch {
                    throw ValidationError("--\(name): \(error)")
                }
            }
            return (image, operations)
        }
    }
}
