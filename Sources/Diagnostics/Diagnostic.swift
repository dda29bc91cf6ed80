/// What a user reads about a failure: what failed (naming the image or tree, and the path, in its own words), and
/// what to do next, kept apart so that the text and the JSON say the same once each.
public struct Diagnostic: Sendable, Equatable, Encodable {
    /// What failed, without the hint.
    public var message: String
    /// What to do about it; nil when there is nothing better to say than the message.
    public var hint: String?
    /// The image or directory tree the failure is about, when there is one.
    public var image: String?
    /// The file the failure is about (a host file, a guest path, the destination), when there is one.
    public var path: String?

    public init(_ message: String, hint: String? = nil, image: String? = nil, path: String? = nil) {
        self.message = message
        self.hint = hint.flatMap { $0.isEmpty ? nil : $0 }
        self.image = image
        self.path = path
    }

    /// The diagnostic of any error: its own when it has one, else its description as the message.
    public init(of error: any Error) {
        self = (error as? any DiagnosticError)?.diagnostic ?? Diagnostic(String(describing: error))
    }

    /// The message, then the hint on a line of its own: how an error reads in a log line or inside another.
    public var description: String {
        hint.map { "\(message)\n  hint: \($0)" } ?? message
    }

    /// How the command line prints it on stderr: `PROGRAM: error: MESSAGE`, then `  hint: HINT` when there is one.
    public func text(program: String) -> String {
        "\(program): error: \(description)"
    }

    enum CodingKeys: String, CodingKey { case message, hint, image, path }

    /// Every key, null when absent, so that a reader finds the same four keys in every failure.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(message, forKey: .message)
        try container.encode(hint, forKey: .hint)
        try container.encode(image, forKey: .image)
        try container.encode(path, forKey: .path)
    }
}

/// An error a user can see. Its description is its diagnostic's, so every error reads the same in a log line, on
/// stderr and (through `diagnostic`) in JSON.
public protocol DiagnosticError: Error, CustomStringConvertible {
    var diagnostic: Diagnostic { get }
}

extension DiagnosticError {
    public var description: String { diagnostic.description }
}

/// A failure on this host that concerns no guest: a setting (an environment variable, an option's value), a host
/// file or program the run needs.
public struct HostError: DiagnosticError, Sendable {
    public var diagnostic: Diagnostic

    public init(_ message: String, hint: String? = nil, image: String? = nil, path: String? = nil) {
        diagnostic = Diagnostic(message, hint: hint, image: image, path: path)
    }
}

/// A command line that cannot be used (exit status 64, as ArgumentParser's own usage errors), for a problem found
/// after parsing that has a hint of its own.
public struct UsageError: DiagnosticError, Sendable {
    public var diagnostic: Diagnostic

    public init(_ message: String, hint: String? = nil) {
        diagnostic = Diagnostic(message, hint: hint)
    }

    public init(_ diagnostic: Diagnostic) {
        self.diagnostic = diagnostic
    }
}
