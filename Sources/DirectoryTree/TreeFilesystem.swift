import CLinux
import Glibc
import Operations
import Host

/// A guest filesystem that is a directory tree on the host: an unpacked image, a chroot, a test fixture.
///
/// Every guest path is resolved inside the tree (see `resolve`), so a guest's `/etc/passwd -> /etc/shadow` or
/// `../../../etc` symlinks lead to the tree's own files, never the host's. Every change is made through a
/// descriptor opened inside the tree, never through a path a racing process could swap for a symlink in between.
/// A regular file with other hard links may share its inode with a file outside the tree: no change is written
/// through it (see `changeInode`). Names are bytes (see `guestName(decoding:)`). Augeas edits run on host libaugeas,
/// which only ever sees the file's text (see `withAugeas`).
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
                             hint: "--tree takes an existing directory holding the guest's /")
        }
        rootFD = fd
        do {
            try Self.refuseHostRoot(fd, root)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    deinit {
        Glibc.close(rootFD)
    }

    /// Refuses a tree that is the host's own / (however it is named: "/", "/srv/..", a symlink to /, a bind
    /// mount): sysprep would remove the host's SSH keys, logs and machine-id.
    public static func refuseHostRoot(_ root: String) throws {
        let fd = open(root, __O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }  // opening it for the run says why it cannot
        defer { Glibc.close(fd) }
        try refuseHostRoot(fd, root)
    }

    private static func refuseHostRoot(_ fd: Int32, _ root: String) throws {
        var tree = Glibc.stat(), host = Glibc.stat()
        guard fstat(fd, &tree) == 0, fstatat(AT_FDCWD, "/", &host, 0) == 0 else { return }
        if tree.st_dev == host.st_dev && tree.st_ino == host.st_ino {
            throw GuestError(guest: root, action: "open tree",
                             message: "this is the host's own root directory, not a guest's tree",
                             hint: "--tree takes the directory of an unpacked guest or a chroot; to change the host, use its own tools")
        }
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

    /// With `loopsAsMissing`, a path that cannot be resolved for a symlink loop counts as not there, as it does for
    /// a shell's glob: one looping link in /home must not stop a clean-up of every other home.
    private func status(_ path: String, followLast: Bool, loopsAsMissing: Bool = false) throws -> FileStatus? {
        do {
            return try resolve(path, followLast: followLast) { location in
                var status = Glibc.stat()
                guard fstatat(location.directory, location.name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw SystemCallError.last()
                }
                return FileStatus(status)
            }
        } catch let error as SystemCallError
                    where error.code == ENOENT || error.code == ENOTDIR || (loopsAsMissing && error.code == ELOOP) {
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
                let fd = try openBeneath(location.directory, location.name, O_RDONLY | O_DIRECTORY)
                return try Self.entries(ofDirectory: fd).map { guestName(decoding: $0) }.sorted()
            }
        }
    }

    /// The names in the open directory `fd`, as bytes, without "." and ".."; takes ownership of `fd`.
    static func entries(ofDirectory fd: Int32) throws -> [[UInt8]] {
        guard let stream = fdopendir(fd) else {
            let error = SystemCallError.last()
            Glibc.close(fd)
            throw error
        }
        defer { closedir(stream) }
        var names: [[UInt8]] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if name != [46] && name != [46, 46] { names.append(name) }
        }
        return names
    }

    public func glob(_ pattern: String) throws -> [String] {
        try GuestGlob.expand(pattern, guest: guestDescription,
                             isDirectory: { try status($0, followLast: true, loopsAsMissing: true)?.kind == .directory },
                             exists: { try status($0, followLast: false, loopsAsMissing: true) != nil },
                             list: list)
    }

    public func readlink(_ path: String) throws -> String {
        try guarded("readlink", path) {
            try resolve(path, followLast: false) { guestName(decoding: try readLink($0.directory, $0.name)) }
        }
    }

    public func read(_ path: String) throws -> [UInt8] {
        try guarded("read", path) {
            try resolve(path, followLast: true) { location in
                let fd = try openBeneath(location.directory, location.name, O_RDONLY | O_NONBLOCK)
                defer { Glibc.close(fd) }
                let status = try Self.status(fd)
                guard status.st_mode & S_IFMT == S_IFREG else {
                    throw SystemCallError(code: status.st_mode & S_IFMT == S_IFDIR ? EISDIR : EINVAL)
                }
                guard Int64(status.st_size) <= guestReadLimit else { throw tooLarge(path, Int64(status.st_size)) }
                do {
                    return try HostFiles.readAll(fd, limit: Int(guestReadLimit))
                } catch let error as SystemCallError where error.code == EFBIG {
                    throw tooLarge(path, guestReadLimit + 1)  // it grew while being read
                }
            }
        }
    }

    private func tooLarge(_ path: String, _ size: Int64) -> GuestError {
        GuestError(guest: guestDescription, action: "read", path: path,
                   message: "file of \(formatBytes(size)), over the \(formatBytes(guestReadLimit)) imgcustomize reads whole",
                   hint: "no guest file edited in place is that large: check that this is the file you meant, or replace it with upload")
    }

    /// Writes a temporary file beside `path`, gives it the old file's owner, mode and extended attributes (the
    /// SELinux label among them), and renames it over `path`: a run killed halfway leaves either the old or the new
    /// /etc/shadow, never half of one, and a hard link to the old file (perhaps outside the tree) keeps the old
    /// content. A new file gets `mode` and the caller's owner (root, when run as root, as in a chroot).
    public func write(_ path: String, _ content: [UInt8], mode: UInt32) throws {
        try guarded("write", path) {
            try resolve(path, followLast: true) { location in
                guard !location.isDot else { throw SystemCallError(code: EISDIR) }
                var old: Int32?
                do {
                    old = try openBeneath(location.directory, location.name, __O_PATH)
                } catch let error as SystemCallError where error.code == ENOENT {}
                defer { if let old { Glibc.close(old) } }
                let oldStatus = try old.map(Self.status)
                if let oldStatus, oldStatus.st_mode & S_IFMT != S_IFREG {
                    throw SystemCallError(code: oldStatus.st_mode & S_IFMT == S_IFDIR ? EISDIR : EINVAL)
                }
                try replace(location) { fd in
                    try Self.writeAll(fd, content)
                    if let old, let oldStatus {
                        try Self.copyOwnership(oldStatus, from: old, to: fd)
                    } else {
                        guard fchmod(fd, mode_t(mode & 0o7777)) == 0 else { throw SystemCallError.last() }
                    }
                }
            }
        }
    }

    /// Fills a new file through `fill`, beside `location` under a short random name, and renames it over
    /// `location`; returns the new file, open for reading and writing (the caller closes it). The temporary name
    /// is never the old name plus a suffix: that would not fit NAME_MAX (255 bytes) beside a name of 231 or more.
    private func replace(_ location: TreeLocation, _ fill: (Int32) throws -> Void) throws {
        let fd = try replacement(location, fill)
        Glibc.close(fd)
    }

    private func replacement(_ location: TreeLocation, _ fill: (Int32) throws -> Void) throws -> Int32 {
        var temporary: [CChar] = []
        var fd: Int32 = -1
        for _ in 0..<100 where fd < 0 {
            temporary = cString(Array(".imgcustomize-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))".utf8))
            do {
                fd = try openBeneath(location.directory, temporary, O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
            } catch let error as SystemCallError where error.code == EEXIST {}
        }
        guard fd >= 0 else { throw SystemCallError(code: EEXIST) }
        do {
            try fill(fd)
            guard fsync(fd) == 0 else { throw SystemCallError.last() }
            guard renameat(location.directory, temporary, location.directory, location.name) == 0 else {
                throw SystemCallError.last()
            }
            return fd
        } catch {
            Glibc.close(fd)
            unlinkat(location.directory, temporary, 0)
            throw error
        }
    }

    /// Gives the new file `fd` the owner, mode, extended attributes and times of `old` (`source`, any descriptor
    /// of it). The owner goes first: chown clears the set-user-ID bit.
    private static func copyOwnership(_ old: Glibc.stat, from source: Int32, to fd: Int32) throws {
        guard fchown(fd, old.st_uid, old.st_gid) == 0, fchmod(fd, old.st_mode & 0o7777) == 0 else {
            throw SystemCallError.last()
        }
        try copyAttributes(from: source, to: fd)
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

    static func status(_ fd: Int32) throws -> Glibc.stat {
        var status = Glibc.stat()
        guard fstat(fd, &status) == 0 else { throw SystemCallError.last() }
        return status
    }

    /// The path through which a path-only call (chmod, the xattr calls) reaches exactly the inode `fd` holds:
    /// the kernel follows /proc's link to that inode, not to whatever name it had (glibc's fchmodat does the same).
    private static func procPath(_ fd: Int32) -> String { "/proc/self/fd/\(fd)" }

    private static func copyAttributes(from source: Int32, to fd: Int32) throws {
        let path = procPath(source)
        let size = listxattr(path, nil, 0)
        guard size > 0 else {
            if size < 0 && errno != ENOTSUP { throw SystemCallError.last() }
            return
        }
        var names = [CChar](repeating: 0, count: size)
        let listed = listxattr(path, &names, size)
        guard listed >= 0 else { throw SystemCallError.last() }
        for name in names[0..<listed].split(separator: 0) {
            let name = Array(name) + [0]
            guard let value = try attribute(path, name) else { continue }
            guard value.withUnsafeBytes({ fsetxattr(fd, name, $0.baseAddress, $0.count, 0) }) == 0 else {
                throw SystemCallError.last()
            }
        }
    }

    private static func attribute(_ path: String, _ name: [CChar]) throws -> [UInt8]? {
        while true {
            let size = CLinux.getxattr(path, name, nil, 0)
            if size < 0 {
                if errno == ENODATA || errno == ENOTSUP { return nil }
                throw SystemCallError.last()
            }
            var value = [UInt8](repeating: 0, count: size)
            let read = value.withUnsafeMutableBytes { CLinux.getxattr(path, name, $0.baseAddress, $0.count) }
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
            guard mkdirat(location.directory, location.name, 0o700) == 0 else { throw SystemCallError.last() }
            // The mode goes on the directory just made through a descriptor of it: set by name, it would follow
            // a symlink a racing process put there in between, and change a file outside the tree.
            let fd = try openBeneath(location.directory, location.name, O_RDONLY | O_DIRECTORY)
            defer { Glibc.close(fd) }
            guard fchmod(fd, mode_t(mode & 0o7777)) == 0 else { throw SystemCallError.last() }
        }
    }

    public func remove(_ path: String, recursive: Bool) throws {
        try guarded("remove", path) {
            try resolve(path, followLast: false) { location in
                guard !location.isDot else {
                    throw GuestError(guest: guestDescription, action: "remove", path: path,
                                     message: "refusing to remove the guest's root or a path ending in ..")
                }
                try Self.removeEntry(location.directory, location.name, recursive: recursive)
            }
        }
    }

    /// Never follows a symlink: a link to a host directory is unlinked, not descended into.
    private static func removeEntry(_ directory: Int32, _ name: [CChar], recursive: Bool) throws {
        var status = Glibc.stat()
        guard fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return }
            throw SystemCallError.last()
        }
        if status.st_mode & S_IFMT == S_IFDIR {
            guard recursive else { throw SystemCallError(code: EISDIR) }
            let fd = try openBeneath(directory, name, O_RDONLY | O_DIRECTORY)
            let child = dup(fd)
            guard child >= 0 else {
                Glibc.close(fd)
                throw SystemCallError.last()
            }
            defer { Glibc.close(child) }
            for entry in try entries(ofDirectory: fd) {
                try removeEntry(child, cString(entry), recursive: true)
            }
            guard unlinkat(directory, name, AT_REMOVEDIR) == 0 else { throw SystemCallError.last() }
        } else {
            guard unlinkat(directory, name, 0) == 0 else { throw SystemCallError.last() }
        }
    }

    /// Runs `change` on the inode `location` names, through a descriptor of it (O_PATH: any file type), never by
    /// a name a racing process could swap for a symlink in between.
    ///
    /// A regular file with other hard links is first replaced by a copy that has only this name (content, owner,
    /// mode, extended attributes and times), as an editor replaces a file it saves, and `change` goes to the copy:
    /// the other names may be outside the tree (a tree unpacked with hard links to the host's files, or a hostile
    /// guest's link), and a chmod, chown, label or time set on the shared inode would change them too. Refusing
    /// instead would stop a chmod of /usr/bin/gunzip, which shares its inode with gzip in many guests.
    private func changeInode(_ location: TreeLocation, _ change: (Int32, Glibc.stat) throws -> Void) throws {
        let fd = try openBeneath(location.directory, location.name, __O_PATH)
        defer { Glibc.close(fd) }
        let status = try Self.status(fd)
        guard status.st_mode & S_IFMT == S_IFREG && status.st_nlink > 1 else { return try change(fd, status) }
        let source = open(Self.procPath(fd), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard source >= 0 else { throw SystemCallError.last() }
        defer { Glibc.close(source) }
        let copy = try replacement(location) { copy in
            try Self.copyContent(from: source, to: copy, count: Int64(status.st_size))
            try Self.copyOwnership(status, from: source, to: copy)
            try Self.copyTimes(status, to: copy)
        }
        defer { Glibc.close(copy) }
        try change(copy, try Self.status(copy))
    }

    /// Copies the first `count` bytes of `source` into the empty file `fd`, data segment by data segment
    /// (SEEK_DATA), so that the holes of a sparse file stay holes: a 6 GiB sparse file costs nothing to copy.
    private static func copyContent(from source: Int32, to fd: Int32, count: Int64) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: Int64 = 0
        while offset < count {
            let data = lseek(source, off_t(offset), seekData)
            if data < 0 {
                if errno == ENXIO { break }  // only a hole is left
                // EINVAL: the filesystem cannot tell holes from data, so all of it is data.
                guard errno == EINVAL else { throw SystemCallError.last() }
            } else {
                offset = Int64(data)
            }
            guard offset < count else { break }
            let read = buffer.withUnsafeMutableBytes {
                pread(source, $0.baseAddress, Int(min(Int64($0.count), count - offset)), off_t(offset))
            }
            if read < 0 {
                if errno == EINTR { continue }
                throw SystemCallError.last()
            }
            if read == 0 { break }  // it shrank meanwhile: the copy is what there was
            guard lseek(fd, off_t(offset), SEEK_SET) >= 0 else { throw SystemCallError.last() }
            try writeAll(fd, Array(buffer[0..<read]))
            offset += Int64(read)
        }
        guard ftruncate(fd, off_t(count)) == 0 else { throw SystemCallError.last() }
    }

    private static func copyTimes(_ old: Glibc.stat, to fd: Int32) throws {
        let times = [old.st_atim, old.st_mtim]
        guard futimens(fd, times) == 0 else { throw SystemCallError.last() }
    }

    public func chmod(_ path: String, mode: UInt32) throws {
        try guarded("chmod", path) {
            try resolve(path, followLast: true) { location in
                try changeInode(location) { fd, status in
                    // Linux symlinks have no mode of their own; this one was swapped in after the walk.
                    guard status.st_mode & S_IFMT != S_IFLNK else { throw SystemCallError(code: ELOOP) }
                    guard Glibc.chmod(Self.procPath(fd), mode_t(mode & 0o7777)) == 0 else {
                        throw SystemCallError.last()
                    }
                }
            }
        }
    }

    public func chown(_ path: String, uid: Int, gid: Int) throws {
        try guarded("chown", path) {
            guard let owner = uid_t(exactly: uid), let group = gid_t(exactly: gid) else {
                throw SystemCallError(code: EINVAL)
            }
            try resolve(path, followLast: true) { location in
                try changeInode(location) { fd, _ in
                    guard fchownat(fd, "", owner, group, IMGCUSTOMIZE_AT_EMPTY_PATH) == 0 else {
                        throw SystemCallError.last()
                    }
                }
            }
        }
    }

    public func symlink(target: String, at path: String) throws {
        try guarded("symlink", path) {
            let target = guestPathBytes(target)
            guard !target.contains(0) else { throw SystemCallError(code: EINVAL) }
            try resolve(path, followLast: false) { location in
                guard symlinkat(cString(target), location.directory, location.name) == 0 else {
                    throw SystemCallError.last()
                }
            }
        }
    }

    /// A file with other hard links is replaced by a new file of `size` bytes (the start of the old content),
    /// keeping owner, mode and labels: truncating the shared inode would empty the other names too.
    public func truncate(_ path: String, size: Int64) throws {
        try guarded("truncate", path) {
            guard size >= 0 else { throw SystemCallError(code: EINVAL) }
            try resolve(path, followLast: true) { location in
                let fd = try openBeneath(location.directory, location.name, O_WRONLY | O_NONBLOCK)
                defer { Glibc.close(fd) }
                let status = try Self.status(fd)
                guard status.st_mode & S_IFMT == S_IFREG && status.st_nlink > 1 else {
                    guard ftruncate(fd, off_t(size)) == 0 else { throw SystemCallError.last() }
                    return
                }
                let source = open(Self.procPath(fd), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
                guard source >= 0 else { throw SystemCallError.last() }
                defer { Glibc.close(source) }
                try replace(location) { copy in
                    try Self.copyContent(from: source, to: copy, count: min(size, Int64(status.st_size)))
                    guard ftruncate(copy, off_t(size)) == 0 else { throw SystemCallError.last() }
                    try Self.copyOwnership(status, from: source, to: copy)
                }
            }
        }
    }

    /// A file with other hard links is refused: scrubbing overwrites the blocks themselves, which are the other
    /// names' content too, and those may be outside the tree. Breaking the link first would scrub nothing.
    public func scrub(_ path: String) throws {
        try guarded("scrub", path) {
            try resolve(path, followLast: false) { location in
                let fd = try openBeneath(location.directory, location.name, O_WRONLY | O_NONBLOCK)
                defer { Glibc.close(fd) }
                let status = try Self.status(fd)
                guard status.st_mode & S_IFMT == S_IFREG else { throw SystemCallError(code: EINVAL) }
                guard status.st_nlink <= 1 else {
                    throw GuestError(guest: guestDescription, action: "scrub", path: path,
                                     message: "the file has \(status.st_nlink) hard links: scrubbing it would overwrite the content of its other names, which may be outside the tree",
                                     hint: "delete it instead (which removes only this name), or remove its other links first")
                }
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
                do {
                    let fd = try openBeneath(location.directory, location.name, O_WRONLY | O_CREAT | O_EXCL,
                                             mode: 0o644)
                    Glibc.close(fd)
                    return
                } catch let error as SystemCallError where error.code == EEXIST {}
                try changeInode(location) { fd, _ in
                    guard utimensat(AT_FDCWD, Self.procPath(fd), nil, 0) == 0 else { throw SystemCallError.last() }
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
            try resolve(path, followLast: false) { location in
                let fd = try openBeneath(location.directory, location.name, __O_PATH)
                defer { Glibc.close(fd) }
                return try Self.attribute(Self.procPath(fd), cString(Array(name.utf8)))
            }
        }
    }

    public func setxattr(_ path: String, name: String, value: [UInt8]) throws {
        try guarded("setxattr \(name)", path) {
            try resolve(path, followLast: false) { location in
                try changeInode(location) { fd, _ in
                    guard value.withUnsafeBytes({
                        CLinux.setxattr(Self.procPath(fd), name, $0.baseAddress, $0.count, 0)
                    }) == 0 else { throw SystemCallError.last() }
                }
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

/// lseek's SEEK_DATA, which <unistd.h> declares only under _GNU_SOURCE.
private let seekData: Int32 = 3

/// `bytes` NUL-terminated, for a C call.
func cString(_ bytes: [UInt8]) -> [CChar] { bytes.map { CChar(bitPattern: $0) } + [0] }

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
