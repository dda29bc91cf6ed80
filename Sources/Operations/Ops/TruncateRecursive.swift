/// `truncate-recursive PATH`: every regular file below the directory emptied to zero bytes, as virt-customize's
/// --truncate-recursive does: the files, their modes, owners and labels stay, so log directories keep what their
/// packages expect. Symlinks are not followed.
public struct TruncateRecursive: RegisteredOperation {
    public static let name = "truncate-recursive"
    public static let sourceFile = #filePath
    public static let summary = "Empty every file below a directory to zero bytes, keeping the files"
    public static let argument = OperationArgument.required(syntax: "PATH", example: "/var/log")

    public let path: String
    public var target: String { path }

    public init(_ path: String) {
        self.path = path
    }

    public static func parse(_ argument: String?) throws -> TruncateRecursive {
        TruncateRecursive(try guestPath(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard try guest.lstat(path)?.kind == .directory else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path,
                             message: "no such directory", hint: "use truncate for a single file")
        }
        var emptied: [String] = []
        try guest.walk(path) { file, status in
            guard status.kind == .regular, status.size > 0 else { return }
            try guest.truncate(file, size: 0)
            emptied.append(file)
        }
        if emptied.isEmpty { return .unchanged("every file below \(path) already empty") }
        return .changed("emptied " + shortList(emptied))
    }
}
