/// `lock-password USER` and `lock-root`: lock a user's password in /etc/shadow through the Augeas Shadow lens, as
/// `usermod -L` does: "!!" where there is no password, a "!" prefix otherwise. Other fields and users are untouched;
/// a password that already starts with "!" is already locked.
public struct LockPassword: RegisteredOperation {
    public static let name = "lock-password"
    public static let sourceFile = #filePath
    public static let summary = "Lock a user's password in /etc/shadow"
    public static let argument = OperationArgument.required(syntax: "USER", example: "cloud-user")

    public let user: String
    public var target: String { user }

    public init(user: String) {
        self.user = user
    }

    public static func parse(_ argument: String?) throws -> LockPassword {
        LockPassword(user: try required(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        try Shadow.lock(user, in: guest)
    }
}

public struct LockRoot: RegisteredOperation {
    public static let name = "lock-root"
    public static let sourceFile = #filePath
    public static let summary = "Lock root's password in /etc/shadow"
    public static let argument = OperationArgument.none

    public init() {}

    public var target: String { "root" }

    public static func parse(_ argument: String?) throws -> LockRoot {
        try noArgument(argument)
        return LockRoot()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        try Shadow.lock("root", in: guest)
    }
}

/// /etc/shadow edits shared by the password operations.
enum Shadow {
    static let path = "/etc/shadow"

    static func lock(_ user: String, in guest: GuestFilesystem) throws -> OperationOutcome {
        guard !user.isEmpty, !user.contains(where: { "/[]:'\" ".contains($0) }) else {
            throw GuestError(guest: guest.guestDescription, action: "lock password", path: path,
                             message: "\"\(user)\" is not a user name")
        }
        guard try guest.isFile(path) else {
            throw GuestError(guest: guest.guestDescription, action: "lock password", path: path,
                             message: "no /etc/shadow", hint: "is this a Linux guest with shadow passwords?")
        }
        return try guest.withAugeas(lens: "Shadow.lns", path: path) { edit in
            let entry = "\(edit.root)/\(user)"
            guard try !edit.match(entry).isEmpty else {
                throw GuestError(guest: guest.guestDescription, action: "lock password", path: path,
                                 message: "no user \(user) in /etc/shadow")
            }
            let password = try edit.get("\(entry)/password") ?? ""
            if password.hasPrefix("!") { return .unchanged("\(user)'s password already locked") }
            try edit.set("\(entry)/password", password.isEmpty ? "!!" : "!" + password)
            return .changed("locked \(user)'s password")
        }
    }
}
