/// `chmod MODE:PATH`: permission bits, in octal.
public struct Chmod: RegisteredOperation {
    public static let name = "chmod"
    public static let sourceFile = #filePath
    public static let summary = "Set a file's permission bits (octal)"
    public static let argument = OperationArgument.required(syntax: "MODE:PATH", example: "0600:/etc/ssh/sshd_config")

    public let mode: UInt32
    public let path: String
    public var target: String { path }

    public init(_ mode: UInt32, _ path: String) {
        self.mode = mode
        self.path = path
    }

    public static func parse(_ argument: String?) throws -> Chmod {
        let argument = try required(argument)
        guard let colon = argument.firstIndex(of: ":") else { throw invalid("no ':' in \"\(argument)\"") }
        let text = argument[..<colon], path = String(argument[argument.index(after: colon)...])
        guard let mode = UInt32(text, radix: 8), mode <= 0o7777 else {
            throw invalid("\"\(text)\" is not an octal mode")
        }
        try checkPath(path)
        return Chmod(mode, path)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard let status = try guest.stat(path) else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path, message: "no such file")
        }
        let octal = String(mode, radix: 8)
        if status.mode == mode { return .unchanged("\(path) already has mode \(octal)") }
        try guest.chmod(path, mode: mode)
        return .changed("set mode \(octal) on \(path)")
    }
}
