/// `touch PATH`: an empty file where there is none. An existing file is left alone, times included, so that a
/// second run changes nothing.
public struct Touch: RegisteredOperation {
    public static let name = "touch"
    public static let sourceFile = #filePath
    public static let summary = "Create an empty file if it does not exist"
    public static let argument = OperationArgument.required(syntax: "PATH", example: "/.autorelabel")

    public let path: String
    public var target: String { path }

    public init(_ path: String) {
        self.path = path
    }

    public static func parse(_ argument: String?) throws -> Touch {
        Touch(try guestPath(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        if try guest.exists(path) { return .unchanged("\(path) already exists") }
        try guest.touch(path)
        return .changed("created \(path)")
    }
}
