import ArgumentParser
import Customize
import Diagnostics
import Formats
import Operations

/// The images and the operations of the commands that take operations on the command line: `customize`, and `apply`
/// after its profile. Operations are options named after them (`--hostname NAME`, `--lock-root`), in command-line
/// order; the images are the words that are not an option or an option's argument.
struct OperationArguments: ParsableArguments {
    @Option(name: .customLong("sm-credentials"), help: ArgumentHelp("""
        The account --sm-register registers the guest with, as virt-customize's: USER:password:PASSWORD, or \
        USER:file:FILE (the first line of a host file, which keeps the password out of the process list). The \
        password is never shown in reports, logs or errors.
        """, valueName: "selector"))
    var smCredentials: String?

    @Argument(parsing: .allUnrecognized, help: """
        IMAGE (or several, with --output-dir), then operations: --OPERATION [ARGUMENT]...; and --attach FILE (repeatable): a disk or ISO attached \
        read-only for guest commands, which mount it by its label (mount LABEL=EXTRA /mnt); --attach-format FORMAT \
        before it opens it as FORMAT (raw, qcow2...; auto, the default, is the format detected).
        """, completion: .file())
    var arguments: [String] = []

    /// The images and the operations as they will run: every sm-register with the account of --sm-credentials.
    func planned() throws -> (images: [String], operations: [any GuestOperation], attachments: [AttachedDisk]) {
        let (images, parsed, attachments) = try parse()
        do {
            return (images, try parsed.supplyingSubscriptionCredentials(
                try smCredentials.map { try SubscriptionCredentials(selector: $0) }), attachments)
        } catch let error as ArgumentError {
            throw UsageError(error.diagnostic)
        }
    }

    /// The images (one, or several for a batch with --output-dir), the operations in command-line order
    /// (`--name ARG`, `--name=ARG`, or `--name` for those that take no argument), and the disks to attach:
    /// `--attach FILE`, each in the format of the `--attach-format` before it (virt-customize's rule: a format given
    /// after the last --attach is an error).
    func parse() throws -> (images: [String], operations: [any GuestOperation], attachments: [AttachedDisk]) {
        var images: [String] = []
        var operations: [any GuestOperation] = []
        var attachments: [AttachedDisk] = []
        /// The format for the next --attach: nil for the one detected ("auto").
        var attachFormat: ImageFormat?
        var attachFormatUsed = true
        var index = 0
        while index < arguments.count {
            let token = arguments[index]
            index += 1
            guard token.hasPrefix("--") else {
                images.append(token)
                continue
            }
            var name = String(token.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if name == "attach" || name == "attach-format" {
                if value == nil {
                    guard index < arguments.count, !arguments[index].hasPrefix("--") else {
                        throw ValidationError(name == "attach" ? "--attach needs a disk image or ISO: --attach FILE"
                                              : "--attach-format needs a format: raw, qcow2... or auto")
                    }
                    value = arguments[index]
                    index += 1
                }
                let argument = value ?? ""
                if name == "attach" {
                    attachments.append(AttachedDisk(path: argument, format: attachFormat))
                    attachFormatUsed = true
                } else if argument == "auto" {
                    attachFormat = nil
                    attachFormatUsed = false
                } else {
                    guard let format = ImageFormat(name: argument), format.isRead else {
                        throw ValidationError("--attach-format \(argument): not a format the appliance opens "
                                              + "(raw, qcow2, vmdk, vdi, vhdx, vpc, iso, or auto)")
                    }
                    attachFormat = format
                    attachFormatUsed = false
                }
                continue
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
            } catch let error as ArgumentError {
                // It names its option already.
                throw UsageError(error.diagnostic)
            } catch {
                var diagnostic = Diagnostic(of: error)
                diagnostic.message = "--\(name): \(diagnostic.message)"
                throw UsageError(diagnostic)
            }
        }
        guard attachFormatUsed else {
            throw ValidationError("--attach-format must come before the --attach it is for")
        }
        return (images, operations, attachments)
    }
}
