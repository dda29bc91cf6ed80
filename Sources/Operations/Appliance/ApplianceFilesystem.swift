import CGuestFS
import Foundation

#if canImport(Glibc)
import Glibc
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

    /// libguestfs messages are limited to 4 MiB; bigger contents travel as file transfers.
    static let largeContent = 2 << 20
    /// What one pread call asks for, well below that limit.
    static let readChunk = 1 << 20

    init(guestfs: Guestfs, facts: GuestFacts, readonly: Bool) {
        self.guestfs = guestfs
        self.facts = facts
        self.readonly = readonly
    }

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
        let raw = try guestfs.call("read the inode of", path) { guestfs_lstatns($0, path) }
        defer { guestfs_free_statns(raw) }
        return raw.pointee.st_ino
    }

    public func list(_ directory: String) throws -> [String] {
        try validate(directory, "list")
        return try guestfs.strings("list", directory) { guestfs_ls($0, directory) }
    }

    public func glob(_ pattern: String) throws -> [String] {
        try validate(pattern, "expand the glob")
        var optargs = guestfs_glob_expand_opts_argv()
        optargs.bitmask = imgc_glob_expand_directoryslash
        optargs.directoryslash = 0
        return try guestfs.strings("expand the glob", pattern) {
            guestfs_glob_expand_opts_argv($0, pattern, &optargs)
        }.sorted()
    }

    public func readlink(_ path: String) throws -> String {
        try validate(path, "read the link")
        return try guestfs.string("read the link", path) { guestfs_readlink($0, path) }
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
        let directory: TemporaryDirectory
        do {
            directory = try TemporaryDirectory(prefix: "imgcustomize-transfer")
        } catch {
            throw GuestError(guest: guestDescription, action: action, path: path, message: "\(error)",
                             hint: "set TMPDIR to a writable directory")
        }
        defer { directory.remove() }
        return try body(directory.appending("file"))
    }

    public func getxattr(_ path: String, name: String) throws -> [UInt8]? {
        try validate(path, "read the extended attribute \(name) of")
        return try guestfs.callUnlessAbsent("read the extended attribute \(name) of", path,
                                            absentWhen: [ENODATA, EOPNOTSUPP]) { handle -> [UInt8]? in
            var size = 0
            let value = guestfs_lgetxattr(handle, path, name, &size)
            return Guestfs.takeBytes(value, count: size)
        }
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
                try guestfs.run("upload", path) { guestfs_upload($0, hostFile, path) }
            }
        } else {
            try content.withUnsafeBufferPointer { bytes in
                try bytes.withMemoryRebound(to: CChar.self) { chars in
                    // An empty array has no storage; libguestfs still wants a pointer.
                    let empty: CChar = 0
                    try withUnsafePointer(to: empty) { fallback in
                        try guestfs.run("write", path) {
                            guestfs_write($0, path, chars.baseAddress ?? fallback, chars.count)
                        }
                    }
                }
            }
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
            try guestfs.run("create the directory (with parents)", path) { guestfs_mkdir_p($0, path) }
        } else {
            try guestfs.run("create the directory", path) { guestfs_mkdir_mode($0, path, Int32(mode & 0o7777)) }
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
            try guestfs.run("remove recursively", path) { guestfs_rm_rf($0, path) }
        } else {
            try guestfs.run("remove", path) { guestfs_rm_f($0, path) }
        }
    }

    public func chmod(_ path: String, mode: UInt32) throws {
        try validate(path, "change the mode of")
        try guestfs.run("change the mode (\(String(mode, radix: 8))) of", path) {
            guestfs_chmod($0, Int32(mode & 0o7777), path)
        }
    }

    public func chown(_ path: String, uid: Int, gid: Int) throws {
        try validate(path, "change the owner of")
        guard let owner = Int32(exactly: uid), let group = Int32(exactly: gid) else {
            throw GuestError(guest: guestDescription, action: "change the owner of", path: path,
                             message: "uid \(uid) or gid \(gid) is out of range")
        }
        // lchown: a symlink's own owner changes, never what it points to; for anything else it is chown.
        try guestfs.run("change the owner (\(uid):\(gid)) of", path) { guestfs_lchown($0, owner, group, path) }
    }

    public func symlink(target: String, at path: String) throws {
        try validate(path, "create the symlink")
        guard !target.utf8.contains(0) else {
            throw GuestError(guest: guestDescription, action: "create the symlink", path: path,
                             message: "the target contains a NUL byte")
        }
        try guestfs.run("create the symlink (to \(target))", path) { guestfs_ln_s($0, target, path) }
    }

    public func truncate(_ path: String, size: Int64) throws {
        try validate(path, "truncate")
        try guestfs.run("truncate (to \(size) bytes)", path) { guestfs_truncate_size($0, path, size) }
    }

    public func touch(_ path: String) throws {
        try validate(path, "touch")
        try guestfs.run("touch", path) { guestfs_touch($0, path) }
    }

    public func rename(_ from: String, to: String) throws {
        try validate(from, "rename")
        try validate(to, "rename")
        try guestfs.run("rename (to \(to))", from) { guestfs_rename($0, from, to) }
    }

    public func setxattr(_ path: String, name: String, value: [UInt8]) throws {
        try validate(path, "set the extended attribute \(name) of")
        guard let length = Int32(exactly: value.count) else {
            throw GuestError(guest: guestDescription, action: "set the extended attribute \(name) of", path: path,
                             message: "a value of \(value.count) bytes is too large")
        }
        try value.withUnsafeBufferPointer { bytes in
            try bytes.withMemoryRebound(to: CChar.self) { chars in
                let empty: CChar = 0
                try withUnsafePointer(to: empty) { fallback in
                    try guestfs.run("set the extended attribute \(name) of", path) {
                        guestfs_lsetxattr($0, name, chars.baseAddress ?? fallback, length, path)
                    }
                }
            }
        }
    }
}
