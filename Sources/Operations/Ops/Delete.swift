/// `delete PATH`: every path the glob matches, removed with everything under it (rm -rf). A symlink is removed,
/// never followed.
public struct Delete: RegisteredOperation {
    public static let name = "delete"
    public static let sourceFile = #filePath
    public static let summary = "Delete files or directories (globs, recursive)"
    public static let argument = OperationArgument.required(syntax: "PATH", example: "/var/log/*.log")

    public let pattern: String
    public var target: String { pattern }

    public init(_ pattern: String) {
        self.pattern = pattern
    }

    public static func parse(_ argument: String?) throws -> Delete {
        Delete(try guestPath(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let matches = try guest.glob(pattern)
        guard !matches.isEmpty else { return .unchanged("nothing matches \(pattern)") }
        for path in matches { try guest.remove(path, recursive: true) }
        return .changed(matches.count == 1 ? "deleted \(matches[0])" : "deleted \(matches.count) paths")
    }
}

extension Delete: CommandLineRepresentable {
    public func commandLines() throws -> [String] { ["\(Self.name):\(pattern)"] }
}
