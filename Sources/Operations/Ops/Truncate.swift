/// `truncate PATH`: the file emptied to zero bytes, keeping its inode, mode, owner and label.
public struct Truncate: RegisteredOperation {
    public static let name = "truncate"
    public static let sourceFile = #filePath
    public static let summary = "Empty a file to zero bytes"
    public static let argument = OperationArgument.required(syntax: "PATH", example: "/var/log/messages")

    public let path: String
    public var target: String { path }

    public init(_ path: String) {
        self.path = path
    }

    public static func parse(_ argument: String?) throws -> Truncate {
        Truncate(try guestPath(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard let status = try guest.stat(path), status.kind == .regular else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path,
                             message: "no such regular file")
        }
        if status.size == 0 { return .unchanged("\(path) already empty") }
        try guest.truncate(path, size: 0)
        return .changed("emptied \(path) (\(status.size) bytes)")
    }
}
