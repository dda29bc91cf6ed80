/// `mkdir PATH`: the directory and its missing parents (mode 0755).
public struct MakeDirectory: RegisteredOperation {
    public static let name = "mkdir"
    public static let sourceFile = #filePath
    public static let summary = "Create a directory and its parents"
    public static let argument = OperationArgument.required(syntax: "PATH", example: "/etc/cloud/cloud.cfg.d")

    public let path: String
    public var target: String { path }

    public init(_ path: String) {
        self.path = path
    }

    public static func parse(_ argument: String?) throws -> MakeDirectory {
        MakeDirectory(try guestPath(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        if try guest.isDirectory(path) { return .unchanged("\(path) already exists") }
        try guest.mkdir(path, mode: 0o755, parents: true)
        return .changed("created \(path)")
    }
}

extension MakeDirectory: CommandLineRepresentable {
    public func commandLines() throws -> [String] { ["\(Self.name):\(path)"] }
}
