import CLinux
import Glibc
import Operations

/// A guest filesystem that is a directory tree on the host: an unpacked image, a chroot, a test fixture.
///
/// Every guest path is resolved inside the tree (see `resolve`), so a guest's `/etc/passwd -> /etc/shadow` or
/// `../../../etc` symlinks lead to the tree's own files, never the host's. Augeas edits run on host libaugeas, which
/// only ever sees the file's text (see `withAugeas`).
public final class TreeFilesystem: GuestFilesystem {
    /// The tree's directory on the host.
    public let root: String
    let rootFD: Int32
    private var augeasHandle: Augeas?

    public init(root: String) throws {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
        let fd = open(root, __O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw GuestError(guest: root, action: "open tree", message: SystemCallError.last().message,
                             hint: "--root takes an existing directory holding the guest's /")
        }
        rootFD = fd
    }

    deinit {
        Glibc.close(rootFD)
    }

    public var guestDescription: String { root }

    /// Runs `body`, turning a failed system call into a `GuestError` naming this tree, the action and the path.
    func guarded<T>(_ action: String, _ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SystemCallError {
            throw GuestError(guest: guestDescription, action: action, path: path, message: error.message)
        }
    }

    private func status(_ path: String, followLast: Bool) throws -> FileStatus? {
        do {
            return try resolve(path, followLast: followLast) { location in
                var status = Glibc.stat()
                guard fstatat(location.directory, location.name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw SystemCallError.last()
                }
                return FileStatus(status)
            }
        } catch let error as SystemCallError where error.code == ENOENT || error.code == ENOTDIR {
            return nil
        } catch let error as SystemCallError {
            throw GuestError(guest: guestDescription, action: "stat", path: path, message: error.message)
        }
    }

    public func lstat(_ path: String) throws -> FileStatus? { try status(path, followLast: false) }
    public func stat(_ path: String) throws -> FileStatus? { try status(path, followLast: true) }

    public func list(_ directory: String) throws -> [String] {
        try guarded("list", directory) {
            try resolve(directory, followLast: true) { location in
                let fd = openat(location.directory, location.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { throw SystemCallError.last() }
                return try Self.entries(ofDirectory: fd)
            }
        }
    }

    /// Names in the open directory `fd`, sorted; takes ownership of `fd`.
    static func entries(ofDirectory fd: Int32) throws -> [String] {
        guard let stream = fdopendir(fd) else {
            let error = SystemCallError.last()
            Glibc.close(fd)
            throw error
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func glob(_ pattern: String) throws -> [String] {
        guard pattern.hasPrefix("/") else {
            throw GuestError(guest: guestDescription, action: "glob", path: pattern,
                             message: "not an absolute guest path", hint: "guest paths start with /")
        }
        var matches = ["/"]
        for component in pattern.split(separator: "/").map(String.init) {
            var next: [String] = []
            for base in matches {
                let prefix = base == "/" ? "/" : base + "/"
                if component.contains(where: { "*?[".contains($0) }) {
                    guard try isDirectory(base) else { continue }
                    for name in try list(base) where fnmatch(component, name, FNM_PERIOD) == 0 {
                        next.append(prefix + name)
                    }
                } else if try lstat(prefix + component) != nil {
                    next.append(prefix + component)
                }
            }
            matches = next
        }
        return matches.sorted()
    }

    public func readlink(_ path: String) throws -> String {
        try guarded("readlink", path) {
            try resolve(path, followLast: false) { try readLink($0.directory, $0.name) }
        }
    }

    public func read(_ path: String) throws -> [UInt8] {
        try guarded("read", path) {
            try resolve(path, followLast: true) { location in
                let fd = openat(location.directory, location.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                guard fd >= 0 else { throw SystemCallError.last() }
                defer { Glibc.close(fd) }
                var status = Glibc.stat()
                guard fstat(fd, &status) == 0 else { throw SystemCallError.last() }
                guard status.st_mode & S_IFMT == S_IFREG else {
                    throw SystemCallError(code: status.st_mode & S_IFMT == S_IFDIR ? EISDIR : EINVAL)
                }
                return try HostFiles.readAll(fd)
            }
        }
    }

    /// Writes a temporary file beside `path`, gives it the old file's owner, mode and extended attributes (the
    /// SELinux label among them), and renames it over `path`: a run killed halfway leaves either the old or the new
    /// /etc/shadow, never half of one. The cost is that a hard link to the old file keeps the old content; guest
    /// configuration files are not hard-linked in practice. A new file gets `mode` and the caller's owner (root,
    /// when run as root, as in a chroot).
    public func write(_ path: String, _ content: [UInt8], mode: UInt32) throws {
        try guarded("write", path) {
            try resolve(path, followLast: true) { location in
                var old = Glibc.stat()
                let exists = fstatat(location.directory, location.name, &old, AT_SYMLINK_NOFOLLOW) == 0
                if !exists && errno != ENOENT { throw SystemCallError.last() }
                if exists && old.st_mode & S_IFMT != S_IFREG {
                    throw SystemCallError(code: old.st_mode & S_IFMT == S_IFDIR ? EISDIR : EINVAL)
                }
                let temporary = ".\(location.name).imgcustomize-\(UInt32.random(in: 0...UInt32.max))"
                let fd = openat(location.directory, temporary,
                                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw SystemCallError.last() }
                var renamed = false
                defer {
                    Glibc.close(fd)
                    if !renamed { unlinkat(location.directory, temporary, 0) }
                }
                try Self.writeAll(fd, content)
                if exists {
                    guard fchown(fd, old.st_uid, old.st_gid) == 0,
                          fchmod(fd, old.st_mode & 0o7777) == 0 else { throw SystemCallError.last() }
                    try Self.copyAttributes(from: location.hostPath, to: fd)
                } else {
                    guard fchmod(fd, mode_t(mode & 0o7777)) == 0 else { throw SystemCallError.last() }
                }
                guard fsync(fd) == 0 else { throw SystemCallError.last() }
                guard renameat(location.directory, temporary, location.directory, location.name) == 0 else {
                    throw SystemCallError.last()
                }
                renamed = true
            }
        }
    }

    static func writeAll(_ fd: Int32, _ content: [UInt8]) throws {
        var offset = 0
        while offset < content.count {
            let count = content.withUnsafeBytes { bytes in
                Glibc.write(fd, UnsafeRawBufferPointer(rebasing: bytes[offset...]).baseAddress, bytes.count - offset)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemCallError.last()
            }
            offset += count
        }
    }

    private static func copyAttributes(from hostPath: String, to fd: Int32) throws {
        let size = llistxattr(hostPath, nil, 0)
        guard size > 0 else {
            if size < 0 && errno != ENOTSUP { throw SystemCallError.last() }
            return
        }
        var names = [CChar](repeating: 0, count: size)
        let listed = llistxattr(hostPath, &names, size)
        guard listed >= 0 else { throw SystemCallError.last() }
        for name in names[0..<listed].split(separator: 0) {
            let name = String(decoding: name.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let value = try attribute(hostPath, name) else { continue }
            guard value.withUnsafeBytes({ fsetxattr(fd, name, $0.baseAddress, $0.count, 0) }) == 0 else {
                throw SystemCallError.last()
            }
        }
    }

    private static func attribute(_ hostPath: String, _ name: String) throws -> [UInt8]? {
        while true {
            let size = lgetxattr(hostPath, name, nil, 0)
            if size < 0 {
                if errno == ENODATA || errno == ENOTSUP { return nil }
                throw SystemCallError.last()
            }
            var value = [UInt8](repeating: 0, count: size)
            let read = value.withUnsafeMutableBytes { lgetxattr(hostPath, name, $0.baseAddress, $0.count) }
            if read < 0 {
                if errno == ERANGE { continue }  // it grew between the two calls
                throw SystemCallError.last()
            }
            return Array(value[0..<read])
        }
    }

    public func mkdir(_ path: String, mode: UInt32, parents: Bool) throws {
        guard parents else {
            return try guarded("mkdir", path) { try makeDirectory(path, mode: mode) }
        }
        let components = path.split(separator: "/").map(String.init)
        for count in 1...max(components.count, 1) where !components.isEmpty {
            let prefix = "/" + components[0..<count].joined(separator: "/")
            switch try stat(prefix)?.kind {
            case .directory: continue
            case nil: try guarded("mkdir", prefix) { try makeDirectory(prefix, mode: mode) }
            default:
                throw GuestError(guest: guestDescription, action: "mkdir", path: path,
                                 message: "\(prefix) exists and is not a directory")
            }
        }
    }

    private func makeDirectory(_ path: String, mode: UInt32) throws {
        try resolve(path, followLast: false) { location in
            guard mkdirat(location.directory, location.name, 0o700) == 0,
                  fchmodat(location.directory, location.name, mode_t(mode & 0o7777), 0) == 0 else {
                throw SystemCallError.last()
            }
        }
    }

    public func remove(_ path: String, recursive: Bool) throws {
        try guarded("remove", path) {
            try resolve(path, followLast: false) { location in
                guard location.name != "." else {
                    throw GuestError(guest: guestDescription, action: "remove", path: path,
                                     message: "refusing to remove the guest's root or a path ending in ..")
                }
                try Self.removeEntry(location.directory, location.name, recursive: recursive)
            }
        }
    }

    /// Never follows a symlink: a link to a host directory is unlinked, not descended into.
    private static func removeEntry(_ directory: Int32, _ name: String, recursive: Bool) throws {
        var status = Glibc.stat()
        guard fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return }
            throw SystemCallError.last()
        }
        if status.st_mode & S_IFMT == S_IFDIR {
            guard recursive else { throw SystemCallError(code: EISDIR) }
            let fd = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw SystemCallError.last() }
            let child = dup(fd)
            guard child >= 0 else {
                Glibc.close(fd)
                throw SystemCallError.last()
            }
            defer { Glibc.close(child) }
            for entry in try entries(ofDirectory: fd) {
                try removeEntry(child, entry, recursive: true)
            }
            guard unlinkat(directory, name, AT_REMOVEDIR) == 0 else { throw SystemCallError.last() }
        } else {
            guard unlinkat(directory, name, 0) == 0 else { throw SystemCallError.last() }
        }
    }

    public func chmod(_ path: String, mode: UInt32) throws {
        try guarded("chmod", path) {
            try resolve(path, followLast: true) { location in
                // AT_SYMLINK_NOFOLLOW: glibc goes through an O_PATH descriptor, so a symlink swapped in after the
                // walk is refused instead of followed.
                guard fchmodat(location.directory, location.name, mode_t(mode & 0o7777), AT_SYMLINK_NOFOLLOW) == 0
                else { throw SystemCallError.last() }
            }
        }
    }

    public func chown(_ path: String, uid: Int, gid: Int) throws {
        try guarded("chown", path) {
            guard let owner = uid_t(exactly: uid), let group = gid_t(exactly: gid) else {
                throw SystemCallError(code: EINVAL)
            }
            try resolve(path, followLast: true) { location in
                guard fchownat(location.directory, location.name, owner, group, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw SystemCallError.last()
                }
            }
        }
    }

    public func symlink(target: String, at path: String) throws {
        try guarded("symlink", path) {
            try resolve(path, followLast: false) { location in
                guard symlinkat(target, location.directory, location.name) == 0 else { throw SystemCallError.last() }
            }
        }
    }

    public func truncate(_ path: String, size: Int64) throws {
        try guarded("truncate", path) {
            try resolve(path, followLast: true) { location in
                let fd = openat(location.directory, location.name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                guard fd >= 0 else { throw SystemCallError.last() }
                defer { Glibc.close(fd) }
                guard ftruncate(fd, off_t(size)) == 0 else { throw SystemCallError.last() }
            }
        }
    }

    public func scrub(_ path: String) throws {
        try guarded("scrub", path) {
            try resolve(path, followLast: false) { location in
                let fd = openat(location.directory, location.name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                guard fd >= 0 else { throw SystemCallError.last() }
                defer { Glibc.close(fd) }
                var status = Glibc.stat()
                guard fstat(fd, &status) == 0 else { throw SystemCallError.last() }
                guard status.st_mode & S_IFMT == S_IFREG else { throw SystemCallError(code: EINVAL) }
                // In place, not through write's temporary file: the old blocks themselves must be overwritten.
                let zeros = [UInt8](repeating: 0, count: 1 << 16)
                var left = Int(status.st_size)
                while left > 0 {
                    let chunk = Array(zeros.prefix(left))
                    try Self.writeAll(fd, chunk)
                    left -= chunk.count
                }
                guard fsync(fd) == 0, unlinkat(location.directory, location.name, 0) == 0 else {
                    throw SystemCallError.last()
                }
            }
        }
    }

    public func touch(_ path: String) throws {
        try guarded("touch", path) {
            try resolve(path, followLast: true) { location in
                let fd = openat(location.directory, location.name,
                                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
                if fd >= 0 {
                    Glibc.close(fd)
                    return
                }
                guard errno == EEXIST,
                      utimensat(location.directory, location.name, nil, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw SystemCallError.last()
                }
            }
        }
    }

    public func rename(_ from: String, to: String) throws {
        try guarded("rename", from) {
            try resolve(from, followLast: false) { source in
                try resolve(to, followLast: false) { destination in
                    guard renameat(source.directory, source.name, destination.directory, destination.name) == 0
                    else { throw SystemCallError.last() }
                }
            }
        }
    }

    public func getxattr(_ path: String, name: String) throws -> [UInt8]? {
        try guarded("getxattr \(name)", path) {
            try resolve(path, followLast: false) { try Self.attribute($0.hostPath, name) }
        }
    }

    public func setxattr(_ path: String, name: String, value: [UInt8]) throws {
        try guarded("setxattr \(name)", path) {
            try resolve(path, followLast: false) { location in
                guard value.withUnsafeBytes({ lsetxattr(location.hostPath, name, $0.baseAddress, $0.count, 0) }) == 0
                else { throw SystemCallError.last() }
            }
        }
    }

    /// One Augeas handle for the tree's lifetime: compiling a lens takes longer than the edit itself.
    func augeas() throws -> Augeas {
        if let augeasHandle { return augeasHandle }
        let handle = try Augeas()
        augeasHandle = handle
        return handle
    }
}

extension FileStatus {
    init(_ status: stat) {
        let kind: Kind = switch status.st_mode & S_IFMT {
        case S_IFREG: .regular
        case S_IFDIR: .directory
        case S_IFLNK: .symlink
        default: .other
        }
        self.init(kind: kind, mode: UInt32(status.st_mode & 0o7777), uid: Int(status.st_uid),
                  gid: Int(status.st_gid), size: Int64(status.st_size))
    }
}
