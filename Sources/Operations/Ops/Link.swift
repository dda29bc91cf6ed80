/// `link TARGET:LINK`: LINK is a symlink to TARGET (ln -sf): a file or another symlink at LINK is replaced; a
/// directory is refused.
public struct Link: RegisteredOperation {
    public static let name = "link"
    public static let summary = "Make LINK a symlink to TARGET"
    public static let argument = OperationArgument.required(syntax: "TARGET:LINK", example: "/usr/share/zoneinfo/UTC:/etc/localtime")

    public let linkTarget: String
    public let path: String
    public var target: String { path }

    public init(_ linkTarget: String, at path: String) {
        self.linkTarget = linkTarget
        self.path = path
    }

    public static func parse(_ argument: String?) throws -> Link {
        let argument = try required(argument)
        guard let colon = argument.lastIndex(of: ":") else { throw invalid("no ':' in \"\(argument)\"") }
        let target = String(argument[..<colon]), path = String(argument[argument.index(after: colon)...])
        guard !target.isEmpty else { throw invalid("no TARGET") }
        try checkPath(path)
        return Link(target, at: path)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        switch try guest.lstat(path)?.kind {
        case .symlink:
            if try guest.readlink(path) == linkTarget { return .unchanged("\(path) already links to \(linkTarget)") }
            try guest.remove(path, recursive: false)
        case .directory:
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path,
                             message: "a directory is in the way of the link", hint: "delete it first")
        case .regular, .other:
            try guest.remove(path, recursive: false)
        case nil:
            break
        }
        try guest.symlink(target: linkTarget, at: path)
        return .changed("linked \(path) to \(linkTarget)")
    }
}
