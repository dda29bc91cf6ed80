import ArgumentParser
import Operations

/// The image and the operations of the commands that take operations on the command line: `customize`, and `apply`
/// after its profile. Operations are options named after them (`--hostname NAME`, `--lock-root`), in command-line
/// order; the image is the one word that is not an option or an option's argument.
struct OperationArguments: ParsableArguments {
    @Option(name: .customLong("sm-credentials"), help: ArgumentHelp("""
        The account --sm-register registers the guest with, as virt-customize's: USER:password:PASSWORD, or \
        USER:file:FILE (the first line of a host file, which keeps the password out of the process list). The \
        password is never shown in reports, logs or errors.
        """, valueName: "selector"))
    var smCredentials: String?

    @Argument(parsing: .allUnrecognized, help: "IMAGE, then operations: --OPERATION [ARGUMENT]...")
    var arguments: [String] = []

    /// The image and the operations as they will run: every sm-register with the account of --sm-credentials.
    func planned() throws -> (image: String?, operations: [any GuestOperation]) {
        let (image, parsed) = try parse()
        do {
            return (image, try parsed.supplyingSubscriptionCredentials(
                try smCredentials.map { try SubscriptionCredentials(selector: $0) }))
        } catch let error as ArgumentError {
            throw ValidationError(error.description)
        }
    }

    /// The image and the operations, in command-line order: `--name ARG`, `--name=ARG`, or `--name` for those
    /// that take no argument.
    func parse() throws -> (image: String?, operations: [any GuestOperation]) {
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
