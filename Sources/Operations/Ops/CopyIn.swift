import Host
/// `copy-in LOCALPATH:REMOTEDIR` (virt-customize's --copy-in): a host file or directory tree copied into the
/// existing guest directory REMOTEDIR, LOCALPATH's last component created inside it (as `cp -a` does), keeping
/// modes, numeric owners and symlinks (copied as symlinks, never followed on the host). Only what differs is
/// written again.
public struct CopyIn: RegisteredOperation {
    public static let name = "copy-in"
    public static let sourceFile = #filePath
    public static let summary = "Copy a host file or directory tree into a guest directory"
    public static let argumentIsHostFile = true
    public static let argument = OperationArgument.required(syntax: "LOCALPATH:REMOTEDIR", example: "./skel:/etc")

    public let localPath: String
    public let remoteDirectory: String
    public var target: String { remoteDirectory }

    public init(_ localPath: String, into remoteDirectory: String) {
        self.localPath = localPath
        self.remoteDirectory = remoteDirectory
    }

    public static func parse(_ argument: String?) throws -> CopyIn {
        let (local, remote) = try hostAndGuestPath(argument)
        return CopyIn(local, into: remote)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        try checkDirectory(guest, remoteDirectory, action: Self.name)
        let trimmed = localPath.count > 1 && localPath.hasSuffix("/") ? String(localPath.dropLast()) : localPath
        let name = trimmed.split(separator: "/").last.map(String.init) ?? trimmed
        let destination = join(remoteDirectory, name)
        var copier = HostTreeCopier(guest: guest, action: Self.name)
        try copier.copy(trimmed, to: destination)
        return copier.outcome(done: "copied \(localPath) to \(destination)",
                              already: "\(destination) already a copy of \(localPath)")
    }
}

extension RegisteredOperation {
    /// Splits "HOSTPATH:GUESTPATH" at the last colon (a host path may hold colons, a guest directory rarely does).
    static func hostAndGuestPath(_ argument: String?) throws -> (host: String, guest: String) {
        let argument = try required(argument)
        guard let colon = argument.lastIndex(of: ":") else { throw invalid("no ':' in \"\(argument)\"") }
        let host = String(argument[..<colon]), guest = String(argument[argument.index(after: colon)...])
        guard !host.isEmpty else { throw invalid("no host path") }
        try checkPath(guest)
        return (host, guest)
    }
}

/// Refuses a REMOTEDIR that is missing or not a directory: copy-in and tar-in only ever fill an existing one.
func checkDirectory(_ guest: GuestFilesystem, _ path: String, action: String) throws {
    guard let status = try guest.stat(path) else {
        throw GuestError(guest: guest.guestDescription, action: action, path: path, message: "no such directory",
                         hint: "create it first (--mkdir \(path))")
    }
    guard status.kind == .directory else {
        throw GuestError(guest: guest.guestDescription, action: action, path: path, message: "not a directory",
                         hint: "name a directory of the guest to copy into")
    }
}

private func join(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// Copies host entries (lstat, readlink, O_NOFOLLOW: nothing on the host is followed) into the guest, counting
/// what it had to write.
struct HostTreeCopier {
    let guest: GuestFilesystem
    let action: String
    private(set) var files = 0, directories = 0, symlinks = 0, attributes = 0, entries = 0

    init(guest: GuestFilesystem, action: String) {
        self.guest = guest
        self.action = action
    }

    var written: Int { files + directories + symlinks + attributes }

    mutating func copy(_ source: String, to destination: String) throws {
        let entry = try host("read host file", source) { try HostFiles.entry(source) }
        let existing = try guest.lstat(destination)
        entries += 1
        switch entry.kind {
        case .regular:
            if existing?.kind == .directory { throw inTheWay(destination, "a directory is in the way of a file") }
            let content = try host("read host file", source) { try HostFiles.readRegular(source) }
            if try existing?.kind != .regular || !guest.holds(destination, exactly: content) {
                if existing != nil && existing?.kind != .regular { try guest.remove(destination, recursive: false) }
                try guest.write(destination, content, mode: entry.mode)
                files += 1
            }
        case .directory:
            if let existing, existing.kind != .directory {
                throw inTheWay(destination, "a non-directory is in the way of a directory")
            }
            if existing == nil {
                try guest.mkdir(destination, mode: entry.mode, parents: false)
                directories += 1
            }
            let names = try host("list host directory", source) { try HostFiles.list(source) }
            for name in names.sorted() { try copy(join(source, name), to: join(destination, name)) }
        case .symlink:
            if existing?.kind == .directory { throw inTheWay(destination, "a directory is in the way of a symlink") }
            let link = try host("read host symlink", source) { try HostFiles.readlink(source) }
            if try existing?.kind != .symlink || guest.readlink(destination) != link {
                if existing != nil { try guest.remove(destination, recursive: false) }
                try guest.symlink(target: link, at: destination)
                symlinks += 1
            }
            // Owners of symlinks are left alone: the guest filesystem's chown follows them.
            return
        case .other:
            throw GuestError(guest: guest.guestDescription, action: action, path: source,
                             message: "cannot copy a device, socket or FIFO from the host",
                             hint: "leave it out of what is copied in")
        }
        // chown before chmod: the kernel clears setuid and setgid bits on chown.
        let now = try guest.lstat(destination)
        let fresh = existing == nil || existing?.kind != FileStatus.Kind(entry.kind)
        if now?.uid != entry.uid || now?.gid != entry.gid {
            try guest.chown(destination, uid: entry.uid, gid: entry.gid)
            if !fresh { attributes += 1 }
        }
        if try guest.lstat(destination)?.mode != entry.mode {
            try guest.chmod(destination, mode: entry.mode)
            if !fresh { attributes += 1 }
        }
    }

    /// "copied ./skel to /etc/skel (2 files, 1 directory, 1 symlink written)" (`done`), or `already` when nothing
    /// had to be written.
    func outcome(done: String, already: String) -> OperationOutcome {
        if written == 0 { return .unchanged("\(already) (\(count(entries, "entry", "entries")))") }
        var counts = [count(files, "file", "files"), count(directories, "directory", "directories"),
                      count(symlinks, "symlink", "symlinks")].joined(separator: ", ") + " written"
        if attributes > 0 { counts += "; " + count(attributes, "mode or owner", "modes or owners") + " set" }
        return .changed("\(done) (\(counts))")
    }

    private func count(_ number: Int, _ one: String, _ many: String) -> String {
        "\(number) \(number == 1 ? one : many)"
    }

    private func inTheWay(_ path: String, _ message: String) -> GuestError {
        GuestError(guest: guest.guestDescription, action: action, path: path, message: message,
                   hint: "delete it first (--delete \(path)), or copy into another directory")
    }

    private func host<T>(_ what: String, _ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SystemCallError {
            throw GuestError(guest: guest.guestDescription, action: "\(action): \(what)", path: path,
                             message: error.message)
        }
    }
}

private extension FileStatus.Kind {
    init(_ host: HostEntry.Kind) {
        self = switch host {
        case .regular: .regular
        case .directory: .directory
        case .symlink: .symlink
        case .other: .other
        }
    }
}
