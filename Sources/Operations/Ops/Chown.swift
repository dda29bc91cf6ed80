/// `chown UID:GID:PATH`: numeric owner and group (names would need the guest's /etc/passwd, not the host's).
public struct Chown: RegisteredOperation {
    public static let name = "chown"
    public static let sourceFile = #filePath
    public static let summary = "Set a file's owner and group (numeric)"
    public static let argument = OperationArgument.required(syntax: "UID:GID:PATH", example: "1000:1000:/home/cloud-user/.bashrc")

    public let uid: Int
    public let gid: Int
    public let path: String
    public var target: String { path }

    public init(uid: Int, gid: Int, _ path: String) {
        self.uid = uid
        self.gid = gid
        self.path = path
    }

    public static func parse(_ argument: String?) throws -> Chown {
        let parts = try required(argument).split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let uid = Int(parts[0]), let gid = Int(parts[1]), uid >= 0, gid >= 0 else {
            throw invalid("\"\(argument ?? "")\" does not start with numeric UID:GID:")
        }
        try checkPath(String(parts[2]))
        return Chown(uid: uid, gid: gid, String(parts[2]))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard let status = try guest.stat(path) else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path, message: "no such file")
        }
        if status.uid == uid && status.gid == gid { return .unchanged("\(path) already owned by \(uid):\(gid)") }
        try guest.chown(path, uid: uid, gid: gid)
        return .changed("set owner \(uid):\(gid) on \(path)")
    }
}
