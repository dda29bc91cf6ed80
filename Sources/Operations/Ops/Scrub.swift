/// `scrub FILE`: virt-customize's --scrub: the file's content overwritten where it lies, then the file removed
/// (guestfs scrub-file), so that what it held (a key, a password) is not left in the image's free blocks for a
/// later reader of the disk. A file already gone is nothing to do, so a second run changes nothing.
public struct Scrub: RegisteredOperation {
    public static let name = "scrub"
    public static let sourceFile = #filePath
    public static let summary = "Overwrite a file's content, then remove it"
    public static let argument = OperationArgument.required(syntax: "FILE", example: "/root/bootstrap.key")

    public let path: String
    public var target: String { path }

    public init(_ path: String) {
        self.path = path
    }

    public static func parse(_ argument: String?) throws -> Scrub {
        Scrub(try guestPath(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard let status = try guest.lstat(path) else { return .unchanged("\(path) is not there") }
        guard status.kind == .regular else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path,
                             message: "not a regular file", hint: "use delete for directories and symlinks")
        }
        try guest.scrub(path)
        return .changed("scrubbed and removed \(path) (\(status.size) bytes)")
    }
}
