/// `link TARGET:LINK[:LINK...]`: each LINK is a symlink to TARGET (ln -sf), as virt-customize's --link: a file or
/// another symlink at LINK is replaced; a directory is refused.
public struct Link: RegisteredOperation {
    public static let name = "link"
    public static let sourceFile = #filePath
    public static let summary = "Make each LINK a symlink to TARGET"
    public static let argument = OperationArgument.required(syntax: "TARGET:LINK[:LINK...]", example: "/usr/share/zoneinfo/UTC:/etc/localtime")

    public let linkTarget: String
    public let paths: [String]
    public var target: String { paths.joined(separator: ", ") }

    public init(_ linkTarget: String, at paths: String...) {
        self.init(linkTarget, at: paths)
    }

    public init(_ linkTarget: String, at paths: [String]) {
        self.linkTarget = linkTarget
        self.paths = paths
    }

    /// TARGET is everything before the first ":/" that starts a link, so a relative TARGET may hold colons.
    public static func parse(_ argument: String?) throws -> Link {
        let argument = try required(argument)
        guard let first = argument.range(of: ":/") else {
            throw invalid("no ':' followed by an absolute LINK in \"\(argument)\"")
        }
        let target = String(argument[..<first.lowerBound])
        guard !target.isEmpty else { throw invalid("no TARGET") }
        let links = argument[argument.index(after: first.lowerBound)...].split(separator: ":", omittingEmptySubsequences: false)
            .map(String.init)
        for link in links { try checkPath(link) }
        return Link(target, at: links)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        var linked: [String] = []
        for path in paths where try link(path, guest) { linked.append(path) }
        if linked.isEmpty {
            return .unchanged("\(target) already link\(paths.count == 1 ? "s" : "") to \(linkTarget)")
        }
        return .changed("linked \(linked.joined(separator: ", ")) to \(linkTarget)")
    }

    /// Makes `path` a symlink to the target; false when it already was one.
    private func link(_ path: String, _ guest: GuestFilesystem) throws -> Bool {
        switch try guest.lstat(path)?.kind {
        case .symlink:
            if try guest.readlink(path) == linkTarget { return false }
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
        return true
    }
}
