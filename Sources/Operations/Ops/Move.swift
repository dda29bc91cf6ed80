/// `move SRC:DEST` inside the guest (mv): into DEST when DEST is a directory. When SRC is gone and DEST is there,
/// the move has already happened.
public struct Move: RegisteredOperation {
    public static let name = "move"
    public static let sourceFile = #filePath
    public static let summary = "Move or rename a file or directory inside the guest"
    public static let argument = OperationArgument.required(syntax: "SRC:DEST", example: "/etc/yum.repos.d/local.repo:/root/local.repo")

    public let source: String
    public let destination: String
    public var target: String { destination }

    public init(_ source: String, to destination: String) {
        self.source = source
        self.destination = destination
    }

    public static func parse(_ argument: String?) throws -> Move {
        let (source, destination) = try pathAndRest(argument)
        try checkPath(destination)
        return Move(source, to: destination)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let landing = try landingPath(guest, source, destination)
        guard try guest.lstat(source) != nil else {
            if try guest.lstat(landing) != nil { return .unchanged("\(source) already moved to \(landing)") }
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: source, message: "no such file")
        }
        try guest.rename(source, to: landing)
        return .changed("moved \(source) to \(landing)")
    }
}
