import Diagnostics
import Foundation
import Operations

#if canImport(Glibc)
import Glibc
import Host
#endif

/// The filesystems of an image, mounted inside the libguestfs appliance. Paths resolve inside the guest by
/// construction: the appliance is a separate VM whose file calls run chrooted into the guest's root.
public final class ApplianceFilesystem: GuestFilesystem {
    let guestfs: Guestfs
    /// What inspection found when the session mounted this guest.
    public let facts: GuestFacts
    public let readonly: Bool
    /// Host Augeas, for edits of guest files (started on first use).
    var augeas: Augeas?
    /// The block-device work of the same session (trimming).
    public let blockDevices: ApplianceDevices
    /// The guest's programs, run in the same session.
    public let guestCommands: ApplianceCommands

    /// libguestfs messages are limited to 4 MiB; bigger contents travel as file transfers.
    static let largeContent = 2 << 20
    /// What one pread call asks for, well below that limit.
    static let readChunk = 1 << 20

    init(guestfs: Guestfs, facts: GuestFacts, readonly: Bool, network: Bool) {
        self.guestfs = guestfs
        self.facts = facts
        self.readonly = readonly
        self.blockDevices = ApplianceDevices(
            guestfs: guestfs, readonly: readonly,
            mountPlan: facts.mountOrder)
        self.guestCommands = ApplianceCommands(guestfs: guestfs, facts: facts, network: network)
    }

    public var devices: (any GuestDevices)? { blockDevices }
    public var commands: (any GuestCommands)? { guestCommands }

    public var guestDescription: String { guestfs.guest }

    /// Refuses what the appliance would misread: relative paths (relative to what?) and embedded NULs (a C string
    /// ends there, so another path would be used).
    func validate(_ path: String, _ action: String) throws {
        guard path.hasPrefix("/"), !path.utf8.contains(0) else {
            throw GuestError(guest: guestDescription, action: action, path: path.debugDescription,
                             message: "not an absolute guest path", hint: "guest paths start with / and contain no NUL")
        }
    }

    // MARK: Reading

    public func lstat(_ path: String) throws -> FileStatus? {
        try validate(path, "read the status of")
        return try guestfs.status(path, followingLinks: false)
    }

    public func stat(_ path: String) throws -> FileStatus? {
        try validate(path, "read the status of")
        return try guestfs.status(path, followingLinks: true)
    }

    /// The inode number, to tell whether a write replaced a file or rewrote it in place.
    func inode(_ path: String) throws -> Int64 {
        try validate(path, "read the inode of")
        return try guestfs.inode(path)
    }

    public func list(_ directory: String) throws -> [String] {
        try validate(directory, "list")
        return try guestfs.list(directory)
    }

    public func glob(_ pattern: String) throws -> [String] {
        try validate(pattern, "expand the glob")
        return try guestfs.glob(pattern).sorted()
    }

    public func readlink(_ path: String) throws -> String {
        try validate(path, "read the link")
        return try guestfs.readlink(path)
    }

    /// Reads in pread calls of up to 1 MiB, the content travelling in each reply: one call for most files.
    /// libguestfs's read_file goes through a file transfer instead, which under software emulation cost about
    /// 0.35 s a file, whatever its size.
    public func read(_ path: String) throws -> [UInt8] {
        try validate(path, "read")
        var content: [UInt8] = []
        while true {
            let chunk = try guestfs.pread(path, count: Self.readChunk, offset: Int64(content.count))
            content += chunk
            // The daemon makes one pread(2) per call: on a regular file, a short read is the end.
            if chunk.count < Self.readChunk { return content }
        }
    }

    /// Runs `body` with the path of a file in a private host temporary directory, removed afterwards.
    private func viaHostFile<T>(_ action: String, _ path: String, _ body: (String) throws -> T) throws -> T {
        do {
            return try TemporaryDirectory.with(prefix: "imgcustomize-transfer") { try body($0.appending("file")) }
        } catch let error as TemporaryDirectoryError {
            throw GuestError(guest: guestDescription, action: action, path: path, message: Diagnostic(of: error).message,
                             hint: "set TMPDIR to a writable directory")
        }
    }

    public func getxattr(_ path: String, name: String) throws -> [UInt8]? {
        try validate(path, "read the extended attribute \(name) of")
        return try guestfs.extendedAttribute(path, name: name)
    }

    // MARK: Writing

    public func write(_ path: String, _ content: [UInt8], mode: UInt32) throws {
        try validate(path, "write")
        let existed = try lstat(path) != nil
        if content.count > Self.largeContent {
            try viaHostFile("write", path) { hostFile in
                do {
                    try Data(content).write(to: URL(fileURLWithPath: hostFile))
                } catch {
                    throw GuestError(guest: guestDescription, action: "write", path: path,
                                     message: "cannot stage the content in \(hostFile): \(error)")
                }
                // Like guestfs_write, upload opens with O_TRUNC: an existing file keeps its inode, hence its mode,
                // owner and SELinux label.
                try guestfs.upload(hostFile, to: path)
            }
        } else {
            try guestfs.write(path, content)
        }
        if !existed {
            try chmod(path, mode: mode)
            try chown(path, uid: 0, gid: 0)
        }
    }

    public func mkdir(_ path: String, mode: UInt32, parents: Bool) throws {
        try validate(path, "create the directory")
        if parents {
            if try isDirectory(path) { return }
            try guestfs.mkdirWithParents(path)
        } else {
            try guestfs.mkdir(path, mode: mode)
        }
        // Both calls are subject to the appliance's umask.
        try chmod(path, mode: mode)
    }

    public func remove(_ path: String, recursive: Bool) throws {
        try validate(path, "remove")
        guard let status = try lstat(path) else { return }
        if status.kind == .directory {
            guard recursive else {
                throw GuestError(guest: guestDescription, action: "remove", path: path, message: "is a directory",
                                 hint: "remove it recursively")
            }
            try guestfs.removeRecursively(path)
        } else {
            try guestfs.remove(path)
        }
    }

    public func chmod(_ path: String, mode: UInt32) throws {
        try validate(path, "change the mode of")
        try guestfs.chmod(path, mode: mode)
    }

    public func chown(_ path: String, uid: Int, gid: Int) throws {
        try validate(path, "change the owner of")
        guard let owner = Int32(exactly: uid), let group = Int32(exactly: gid) else {
            throw GuestError(guest: guestDescription, action: "change the owner of", path: path,
                             message: "uid \(uid) or gid \(gid) is out of range")
        }
        // lchown: a symlink's own owner changes, never what it points to; for anything else it is chown.
        try guestfs.lchown(path, uid: owner, gid: group)
    }

    public func symlink(target: String, at path: String) throws {
        try validate(path, "create the symlink")
        guard !target.utf8.contains(0) else {
            throw GuestError(guest: guestDescription, action: "create the symlink", path: path,
                             message: "the target contains a NUL byte")
        }
        try guestfs.symlink(target: target, at: path)
    }

    public func truncate(_ path: String, size: Int64) throws {
        try validate(path, "truncate")
        try guestfs.truncate(path, size: size)
    }

    public func scrub(_ path: String) throws {
        try validate(path, "scrub")
        try guestfs.scrubFile(path)
    }

    public func touch(_ path: String) throws {
        try validate(path, "touch")
        try guestfs.touch(path)
    }

    public func rename(_ from: String, to: String) throws {
        try validate(from, "rename")
        try validate(to, "rename")
        try guestfs.rename(from, to: to)
    }

    public func setxattr(_ path: String, name: String, value: [UInt8]) throws {
        try validate(path, "set the extended attribute \(name) of")
        try guestfs.setExtendedAttribute(path, name: name, value: value)
    }
}

extension GuestFacts {
    /// The guest's mountpoints (mountpoint, device), parents before children (/ before /boot): the order to mount
    /// them in.
    var mountOrder: [(mountpoint: String, device: String)] {
        mountpoints.sorted { ($0.key.count, $0.key) < ($1.key.count, $1.key) }.map { ($0.key, $0.value) }
    }
}
