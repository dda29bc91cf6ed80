import CCrypt
import Host

/// `password USER:SELECTOR` and `root-password SELECTOR`: sets the password field of USER's line in /etc/shadow
/// (Augeas Shadow lens), other fields and other users untouched.
public struct Password: RegisteredOperation {
    public static let name = "password"
    public static let sourceFile = #filePath
    public static let summary = "Set, lock or disable a user's password (locked, disabled, password:, file:, random)"
    public static let argument = OperationArgument.required(syntax: "USER:SELECTOR", example: "cloud-user:file:/root/cloud-user.password")

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
    public static func parse(_ argument: String?) throws -> Password {
        let argument = try required(argument)
        guard let colon = argument.firstIndex(of: ":"), colon != argument.startIndex else {
            throw invalid("no USER: in \"\(argument)\"")
        }
        return Password(user: String(argument[..<colon]),
                        selector: try selector(String(argument[argument.index(after: colon)...])))
    }

    /// Parses a selector: `locked`, `disabled`, `random`, `password:PLAIN`, `file:PATH` (first line of a host file).
    static func selector(_ text: String, invalid: (String) -> ArgumentError = invalid) throws -> Selector {
        switch text {
        case "locked": return .locked
        case "disabled": return .disabled
        case "random": return .random
        case _ where text.hasPrefix("password:"): return .plain(String(text.dropFirst("password:".count)))
        case _ where text.hasPrefix("file:"):
            let path = String(text.dropFirst("file:".count))
            let line: String
            do {
                line = try HostFiles.firstLine(path)
            } catch {
                throw invalid("cannot read the password file \(path) on this host: \(error)")
            }
            guard !line.isEmpty else { throw invalid("the password file \(path) starts with an empty line") }
            return .plain(line)
        default:
            throw invalid("unknown selector \"\(text)\": use locked, disabled, random, password:PLAIN or file:PATH")
        }
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        switch selector {
        case .locked:
            return try Shadow.lock(user, in: guest)
        case .disabled:
            return try setPassword(guest) { current in
                current == "*" ? (nil, .unchanged("\(user) already disabled"))
                    : ("*", .changed("disabled \(user)'s password"))
            }
        case .plain(let password):
            let method = try context.passwordCrypto.checked(for: context.guest, in: guest.guestDescription)
            return try setPassword(guest) { current in
                if current.hasPrefix(method.prefix), try PasswordHash.hash(password, setting: current) == current {
                    return (nil, .unchanged("\(user) already has this password (\(method.rawValue))"))
                }
                return (try PasswordHash.hash(password, setting: PasswordHash.randomSetting(method)),
                        .changed("set \(user)'s password (\(method.rawValue))"))
            }
        case .random:
            let method = try context.passwordCrypto.checked(for: context.guest, in: guest.guestDescription)
            let password = PasswordHash.randomPassword()
            return try setPassword(guest) { _ in
                (try PasswordHash.hash(password, setting: PasswordHash.randomSetting(method)),
                 .changed("set \(user)'s password (\(method.rawValue)) to random \(password)"))
            }
        }
    }

    /// Hands the user's current password field to `change`, and stores the new value it returns, if any.
    private func setPassword(_ guest: GuestFilesystem,
                             _ change: (String) throws -> (String?, OperationOutcome)) throws -> OperationOutcome {
        try guest.withAugeas(lens: "Shadow.lns", path: Shadow.path) { edit in
            guard try !edit.match("\(edit.root)/\(user)").isEmpty else {
                throw GuestError(guest: guest.guestDescription, action: "set the password of \(user) in",
                                 path: Shadow.path, message: "no such user",
                                 hint: "name a user the guest has (see its /etc/passwd)")
            }
            let field = "\(edit.root)/\(user)/password"
            let (value, outcome) = try change(try edit.get(field) ?? "")
            if let value { try edit.set(field, value) }
            return outcome
        }
    }
}

/// `root-password SELECTOR`: `password root:SELECTOR`.
public struct RootPassword: RegisteredOperation {
    public static let name = "root-password"
    public static let sourceFile = #filePath
    public static let summary = "Set, lock or disable root's password (locked, disabled, password:, file:, random)"
    public static let argument = OperationArgument.required(syntax: "SELECTOR", example: "password:correct-horse-battery")

    public var selector: Password.Selector
    public var target: String { "root" }

    public init(_ selector: Password.Selector) { self.selector = selector }

    public static func parse(_ argument: String?) throws -> RootPassword {
        RootPassword(try Password.selector(try required(argument), invalid: invalid))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        try Password(user: "root", selector: selector).apply(to: guest, context: context)
    }
}

/// How passwords are hashed (`--password-crypto`, as virt-customize's): SHA-512 by default, the scheme every RHEL 6+
/// and Debian guest accepts; yescrypt only for guests whose libcrypt (libxcrypt 4.3+) reads it.
public enum PasswordCrypto: String, Sendable, CaseIterable {
    case md5, sha256, sha512, yescrypt

    /// The crypt(3) prefix of its hashes.
    var prefix: String {
        switch self {
        case .md5: "$1$"
        case .sha256: "$5$"
        case .sha512: "$6$"
        case .yescrypt: "$y$"
        }
    }

    /// Itself, or an error when the guest's libcrypt cannot check it (yescrypt before Debian 11, Ubuntu 22.04,
    /// Fedora 35 and RHEL 9 and its rebuilds).
    func checked(for facts: GuestFacts, in description: String) throws -> PasswordCrypto {
        guard self == .yescrypt else { return self }
        let since: [String: Int] = ["debian": 11, "ubuntu": 22, "fedora": 35, "rhel": 9, "centos": 9, "rocky": 9,
                                    "almalinux": 9, "oraclelinux": 9]
        guard let distro = facts.distro, let first = since[distro], facts.majorVersion >= first else {
            throw GuestError(guest: description, action: "hash a password with yescrypt",
                             message: "the guest (\(facts.distro ?? "unknown") \(facts.majorVersion)) may not read "
                                + "yescrypt hashes: its libcrypt predates them",
                             hint: "use --password-crypto sha512, which every RHEL 6+ and Debian guest reads")
        }
        return self
    }
}

/// crypt(3) hashes through the host's libxcrypt.
enum PasswordHash {
    private static let passwordAlphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")

    /// A setting with a fresh random salt (from the kernel's random source) and libxcrypt's default cost.
    static func randomSetting(_ method: PasswordCrypto = .sha512) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        let made = buffer.withUnsafeMutableBufferPointer { pointer in
            crypt_gensalt_rn(method.prefix, 0, nil, 0, pointer.baseAddress, Int32(pointer.count))
        }
        guard made != nil else {
            throw GuestError(guest: "host", action: "make a \(method.rawValue) salt with crypt_gensalt(3)", path: nil,
                             message: "libcrypt does not support \(method.prefix) hashes",
                             hint: "use --password-crypto sha512")
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// 16 characters without look-alikes (l, 1, O, 0), as a user may have to type it.
    static func randomPassword() -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<16).map { _ in passwordAlphabet.randomElement(using: &generator) ?? "x" })
    }

    /// `crypt(3)` of `password` with `setting` (a prefix with its salt, or a whole hash, whose salt is reused).
    static func hash(_ password: String, setting: String) throws -> String {
        var data = crypt_data()
        let result = withUnsafeMutableBytes(of: &data) { buffer in
            crypt_rn(password, setting, buffer.baseAddress, Int32(buffer.count)).map { String(cString: $0) }
        }
        guard let result, !result.hasPrefix("*") else {
            throw GuestError(guest: "host", action: "hash a password with crypt(3)", path: nil,
                             message: "libcrypt refused the setting \(setting)",
                             hint: "use --password-crypto sha512")
        }
        return result
    }
}
