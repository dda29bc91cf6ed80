import Host
/// Red Hat's subscription-manager, run in the guest with the guest's own client: virt-customize's `--sm-register`,
/// `--sm-attach`, `--sm-remove` and `--sm-unregister`, with `--sm-credentials` giving the account `sm-register`
/// uses. A RHEL guest registered while it is prepared can install from Red Hat's repositories (`install`,
/// `update`); `sm-remove` and `sm-unregister` at the end leave no consumer identity in the image for every clone
/// to share.
///
/// Unlike virt-customize, the steps look at the guest's consumer certificate first, so that they are idempotent: a
/// registered guest is not registered again, an unregistered one is not unregistered (virt-customize fails on
/// both), and nothing reaches the network unless a step must talk to the subscription service. The password never
/// appears in a report, a log line or an error: the command is shown with `--password=<hidden>`.
public enum SubscriptionManager {
    /// Where RHEL, CentOS and their clones' subscription-manager package installs the client.
    static let clients = ["/usr/sbin/subscription-manager", "/usr/bin/subscription-manager"]
    /// The consumer certificate a registration writes and an unregistration removes: subscription-manager's own test
    /// of whether the system is registered.
    static let consumerCertificate = "/etc/pki/consumer/cert.pem"
    /// Why a dry run skips the steps: they change the subscription service's records (a consumer registered for a
    /// copy that is thrown away, or the real guest's consumer unregistered), not only the image.
    static let serverSide = "it changes the subscription service's records, which a dry run cannot undo"

    /// The guest's client, or an error saying the guest has none.
    static func client(in guest: GuestFilesystem, operation: String) throws -> String {
        for path in clients where try guest.isFile(path) { return path }
        throw GuestError(guest: guest.guestDescription, action: operation,
                         message: "the guest has no subscription-manager (neither \(clients.joined(separator: " nor ")))"
                            + ": it is Red Hat's subscription client, the subscription-manager package of RHEL and "
                            + "its clones",
                         hint: "install it first (--network --install subscription-manager), or leave the sm-* "
                            + "operations out for a guest that is not subscribed to Red Hat")
    }

    /// `text` as one shell word, quoted only when it has to be, so that the command reads as a user would type it.
    static func word(_ text: String) -> String {
        let plain = !text.isEmpty && text.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "@%+=:,./_-".unicodeScalars.contains($0)
        }
        return plain ? text : shellQuoted(text)
    }

    static func isRegistered(_ guest: GuestFilesystem) throws -> Bool {
        try guest.isFile(consumerCertificate)
    }

    /// Runs `arguments` with the guest's client, failing with its output when it exits non-zero. `shown` stands for
    /// the arguments in the result and in errors when they hold a secret.
    static func run(_ arguments: [String], shown: [String]? = nil, in guest: GuestFilesystem,
                    operation: String) throws -> GuestCommandResult {
        let commands = try guest.commands(for: operation)
        guard commands.network else {
            throw GuestError(guest: guest.guestDescription, action: operation,
                             message: "subscription-manager talks to the subscription service, and the appliance "
                                + "has no network (the default)",
                             hint: "give --network")
        }
        let command = (["subscription-manager"] + arguments).map(word).joined(separator: " ")
        let display = (["subscription-manager"] + (shown ?? arguments)).map(word).joined(separator: " ")
        let result = try commands.run(command, shownAs: display, operation: operation)
        return try guest.succeeded(result, operation: operation)
    }
}

/// The account `sm-register` registers with: virt-customize's `--sm-credentials USER:password:PASSWORD` or
/// `USER:file:FILENAME` (the first line of a host file, read when the command line is parsed). Its description
/// never shows the password.
public struct SubscriptionCredentials: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String

    public static let argument = OperationArgument.required(syntax: "USER:password:PASSWORD|USER:file:FILE",
                                                            example: "builder@example.com:file:/root/rhsm.password")

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }

    public var description: String { "\(user) (password hidden)" }

    /// Parses a selector. The user name ends at the first colon and the password may hold colons (virt-customize
    /// refuses those).
    public init(selector: String) throws {
        func invalid(_ problem: String) -> ArgumentError {
            ArgumentError(option: "--sm-credentials", problem: problem, argument: Self.argument)
        }
        let parts = selector.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, !parts[0].isEmpty else {
            throw invalid("expected USER:password:PASSWORD or USER:file:FILE")
        }
        user = parts[0]
        switch parts[1] {
        case "password":
            password = parts[2]
        case "file":
            do {
                password = try HostFiles.firstLine(parts[2])
            } catch {
                throw invalid("cannot read the password file \(parts[2]) on this host: \(error)")
            }
        default:
            throw invalid("unknown kind \"\(parts[1])\" after the user: use password or file")
        }
        guard !password.isEmpty else {
            throw invalid(parts[1] == "file" ? "the password file \(parts[2]) starts with an empty line"
                            : "the password is empty")
        }
    }
}

/// `sm-register`: registers the guest with the subscription service, as `subscription-manager register
/// --username=USER --password=PASSWORD` (virt-customize's `--sm-register`), with the account of `--sm-credentials`.
/// A guest that is registered already is left as it is. It needs `--network`.
public struct SMRegister: RegisteredOperation {
    public static let effectBeyondTheImage: String? = SubscriptionManager.serverSide
    public static let name = "sm-register"
    public static let sourceFile = #filePath
    public static let summary = "Register the guest with subscription-manager, with --sm-credentials (needs --network)"
    public static let argument = OperationArgument.none

    /// The account; the command line fills it in from `--sm-credentials`.
    public var credentials: SubscriptionCredentials?
    public var target: String { credentials?.user ?? "" }

    public init(credentials: SubscriptionCredentials? = nil) { self.credentials = credentials }

    public static func parse(_ argument: String?) throws -> SMRegister {
        try noArgument(argument)
        return SMRegister()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        _ = try SubscriptionManager.client(in: guest, operation: Self.name)
        if try SubscriptionManager.isRegistered(guest) {
            return .unchanged("registered already (\(SubscriptionManager.consumerCertificate) exists): "
                              + "--sm-unregister first to register anew")
        }
        guard let credentials else {
            throw GuestError(guest: guest.guestDescription, action: Self.name,
                             message: "no account to register with",
                             hint: "give --sm-credentials \(SubscriptionCredentials.argument.syntax)")
        }
        let result = try SubscriptionManager.run(
            ["register", "--username=\(credentials.user)", "--password=\(credentials.password)"],
            shown: ["register", "--username=\(credentials.user)", "--password=<hidden>"],
            in: guest, operation: Self.name)
        return .ran(result, "registered as \(credentials.user)")
    }
}

/// `sm-attach auto|pool:ID|file:FILE`: attaches subscriptions to the registered guest, as `subscription-manager
/// attach --auto` or `--pool=ID` (virt-customize's `--sm-attach`; `file:` reads the pool ID from the first line
/// of a host file). It needs `--network` and a registered guest.
public struct SMAttach: RegisteredOperation {
    public static let effectBeyondTheImage: String? = SubscriptionManager.serverSide
    public static let name = "sm-attach"
    public static let sourceFile = #filePath
    public static let summary = "Attach subscriptions to the registered guest: auto, or a pool (needs --network)"
    public static let argument = OperationArgument.required(syntax: "auto|pool:ID|file:FILE", example: "auto")

    public enum Pool: Sendable, Equatable {
        case auto
        case id(String)
    }

    public var pool: Pool
    public var target: String {
        switch pool {
        case .auto: "auto"
        case .id(let id): "pool:\(id)"
        }
    }

    public init(_ pool: Pool) { self.pool = pool }

    public static func parse(_ argument: String?) throws -> SMAttach {
        let argument = try required(argument)
        if argument == "auto" { return SMAttach(.auto) }
        if argument.hasPrefix("pool:") {
            let id = String(argument.dropFirst("pool:".count))
            guard !id.isEmpty else { throw invalid("an empty pool ID") }
            return SMAttach(.id(id))
        }
        if argument.hasPrefix("file:") {
            let path = String(argument.dropFirst("file:".count))
            let id: String
            do {
                id = try HostFiles.firstLine(path).trimmed
            } catch {
                throw invalid("cannot read the pool file \(path) on this host: \(error)")
            }
            guard !id.isEmpty else { throw invalid("the pool file \(path) starts with an empty line") }
            return SMAttach(.id(id))
        }
        throw invalid("unknown selector \"\(argument)\"")
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        _ = try SubscriptionManager.client(in: guest, operation: Self.name)
        guard try SubscriptionManager.isRegistered(guest) else {
            throw GuestError(guest: guest.guestDescription, action: Self.name,
                             message: "the guest is not registered (\(SubscriptionManager.consumerCertificate) does "
                                + "not exist), so there is nothing to attach subscriptions to",
                             hint: "register it first: --sm-credentials USER:file:FILE --sm-register")
        }
        let arguments: [String]
        switch pool {
        case .auto: arguments = ["attach", "--auto"]
        case .id(let id): arguments = ["attach", "--pool=\(id)"]
        }
        let result = try SubscriptionManager.run(arguments, in: guest, operation: Self.name)
        return .ran(result, "attached \(target)")
    }
}

/// `sm-remove`: removes every subscription from the registered guest, as `subscription-manager remove --all`
/// (virt-customize's `--sm-remove`). A guest that is not registered has none, and is left as it is.
public struct SMRemove: RegisteredOperation {
    public static let effectBeyondTheImage: String? = SubscriptionManager.serverSide
    public static let name = "sm-remove"
    public static let sourceFile = #filePath
    public static let summary = "Remove every subscription from the guest with subscription-manager (needs --network)"
    public static let argument = OperationArgument.none

    public var target: String { "" }

    public init() {}

    public static func parse(_ argument: String?) throws -> SMRemove {
        try noArgument(argument)
        return SMRemove()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        _ = try SubscriptionManager.client(in: guest, operation: Self.name)
        guard try SubscriptionManager.isRegistered(guest) else {
            return .unchanged("not registered, so no subscription to remove")
        }
        let result = try SubscriptionManager.run(["remove", "--all"], in: guest, operation: Self.name)
        return .ran(result, "removed every subscription")
    }
}

/// `sm-unregister`: unregisters the guest, as `subscription-manager unregister` (virt-customize's
/// `--sm-unregister`), which also removes its consumer identity and entitlements. A guest that is not registered is
/// left as it is.
public struct SMUnregister: RegisteredOperation {
    public static let effectBeyondTheImage: String? = SubscriptionManager.serverSide
    public static let name = "sm-unregister"
    public static let sourceFile = #filePath
    public static let summary = "Unregister the guest with subscription-manager (needs --network)"
    public static let argument = OperationArgument.none

    public var target: String { "" }

    public init() {}

    public static func parse(_ argument: String?) throws -> SMUnregister {
        try noArgument(argument)
        return SMUnregister()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        _ = try SubscriptionManager.client(in: guest, operation: Self.name)
        guard try SubscriptionManager.isRegistered(guest) else {
            return .unchanged("not registered (\(SubscriptionManager.consumerCertificate) does not exist)")
        }
        let result = try SubscriptionManager.run(["unregister"], in: guest, operation: Self.name)
        return .ran(result, "unregistered")
    }
}

extension Sequence where Element == any GuestOperation {
    /// Every `sm-register` without an account given `credentials`, in command files too. With `required`, an error
    /// when one is left without, so that the command line refuses it before anything is launched.
    public func supplyingSubscriptionCredentials(_ credentials: SubscriptionCredentials?, required: Bool = true) throws
        -> [any GuestOperation] {
        try map { operation in
            if var register = operation as? SMRegister, register.credentials == nil {
                guard let credentials else {
                    guard required else { return register }
                    throw ArgumentError(option: "--sm-register",
                                        problem: "needs the account to register with: give --sm-credentials "
                                            + SubscriptionCredentials.argument.syntax,
                                        argument: .none)
                }
                register.credentials = credentials
                return register
            }
            if let file = operation as? CommandsFromFile {
                return CommandsFromFile(file: file.file,
                                        operations: try file.operations.supplyingSubscriptionCredentials(
                                            credentials, required: required))
            }
            return operation
        }
    }
}
