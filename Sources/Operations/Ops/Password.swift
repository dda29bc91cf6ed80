import CCrypt
import Foundation

/// `password USER:SELECTOR` and `root-password SELECTOR`: sets the password field of USER's line in /etc/shadow
/// (Augeas Shadow lens), other fields and other users untouched.
public struct Password: Operation {
    public static let name = "password"
    public static let summary = "Set, lock or disable a user's password (locked, disabled, password:, file:, random)"

    public enum Selector: Sendable, Equatable {
        /// Keeps the hash behind a "!" so that the password can be unlocked later.
        case locked
        /// "*": no password can ever match.
        case disabled
        case plain(String)
        /// A fresh random password, shown in the outcome's summary (the only place it is ever printed).
        case random
    }

    public var user: String
    public var selector: Selector

    public var target: String { user }

    public init(user: String, selector: Selector) {
        self.user = user
        self.selector = selector
    }

    /// Parses `USER:SELECTOR`.
    public init(argument: String) throws {
        guard let colon = argument.firstIndex(of: ":"), colon != argument.startIndex else {
            throw OperationArgumentError(operation: Self.name, argument: argument, message: "expected USER:SELECTOR")
        }
        let selector = try Self.selector(String(argument[argument.index(after: colon)...]), operation: Self.name)
        self.init(user: String(argument[..<colon]), selector: selector)
    }

    /// Parses a selector: `locked`, `disabled`, `random`, `password:PLAIN`, `file:PATH` (first line of a host file).
    public static func selector(_ text: String, operation: String = name) throws -> Selector {
        switch text {
        case "locked": return .locked
        case "disabled": return .disabled
        case "random": return .random
        case _ where text.hasPrefix("password:"): return .plain(String(text.dropFirst("password:".count)))
        case _ where text.hasPrefix("file:"):
            let path = String(text.dropFirst("file:".count))
            guard let data = FileManager.default.contents(atPath: path) else {
                throw OperationArgumentError(operation: operation, argument: text,
                                             message: "cannot read the password file \(path) on this host")
            }
            let line = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first
            guard let line, !line.isEmpty else {
                throw OperationArgumentError(operation: operation, argument: text,
                                             message: "the password file \(path) starts with an empty line")
            }
            return .plain(String(line))
        default:
            throw OperationArgumentError(operation: operation, argument: text,
                                         message: "unknown selector: use locked, disabled, random, password:PLAIN "
                                            + "or file:PATH")
        }
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        try guest.withAugeas(lens: "Shadow.lns", path: "/etc/shadow") { edit in
            let field = "\(edit.root)/\(user)/password"
            guard try !edit.match("\(edit.root)/\(user)").isEmpty else {
                throw GuestError(guest: guest.guestDescription, action: "set the password of \(user) in",
                                 path: "/etc/shadow", message: "no such user",
                                 hint: "name a user the guest has (see its /etc/passwd)")
            }
            let current = try edit.get(field) ?? ""
            switch selector {
            case .locked:
                if current.hasPrefix("!") { return .unchanged("\(user) already locked") }
                try edit.set(field, current.isEmpty || current == "*" ? "!!" : "!" + current)
                return .changed("locked \(user)")
            case .disabled:
                if current == "*" { return .unchanged("\(user) already disabled") }
                try edit.set(field, "*")
                return .changed("disabled \(user)'s password")
            case .plain(let password):
                if current.hasPrefix("$"), try SHA512Crypt.hash(password, setting: current) == current {
                    return .unchanged("\(user) already has this password")
                }
                try edit.set(field, try SHA512Crypt.hash(password, setting: SHA512Crypt.randomSetting()))
                return .changed("set \(user)'s password")
            case .random:
                let password = SHA512Crypt.randomPassword()
                try edit.set(field, try SHA512Crypt.hash(password, setting: SHA512Crypt.randomSetting()))
                return .changed("set \(user)'s password to random \(password)")
            }
        }
    }
}

/// `root-password SELECTOR`: `password root:SELECTOR`.
public struct RootPassword: Operation {
    public static let name = "root-password"
    public static let summary = "Set, lock or disable root's password (locked, disabled, password:, file:, random)"

    public var selector: Password.Selector
    public var target: String { "root" }

    public init(_ selector: Password.Selector) { self.selector = selector }

    public init(argument: String) throws { self.init(try Password.selector(argument, operation: Self.name)) }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        try Password(user: "root", selector: selector).apply(to: guest, context: context)
    }
}

/// SHA-512 crypt ("$6$") through the host's libcrypt, the scheme every RHEL 6+ and Debian guest accepts.
enum SHA512Crypt {
    private static let saltAlphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    private static let passwordAlphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")

    /// "$6$" and 16 random salt characters.
    static func randomSetting() -> String {
        var generator = SystemRandomNumberGenerator()
        return "$6$" + String((0..<16).map { _ in saltAlphabet.randomElement(using: &generator) ?? "." })
    }

    /// 16 characters without look-alikes (l, 1, O, 0), as a user may have to type it.
    static func randomPassword() -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<16).map { _ in passwordAlphabet.randomElement(using: &generator) ?? "x" })
    }

    /// `crypt(3)` of `password` with `setting` (a "$6$salt" prefix or a whole hash, whose salt is reused).
    static func hash(_ password: String, setting: String) throws -> String {
        var data = crypt_data()
        let result = withUnsafeMutableBytes(of: &data) { buffer in
            crypt_rn(password, setting, buffer.baseAddress, Int32(buffer.count)).map { String(cString: $0) }
        }
        guard let result, !result.hasPrefix("*") else {
            throw GuestError(guest: "host", action: "hash a password with crypt(3)", path: nil,
                             message: "libcrypt refused the setting \(setting)",
                             hint: "the host's libcrypt must support SHA-512 (\"$6$\")")
        }
        return result
    }
}
