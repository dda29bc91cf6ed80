import Diagnostics
import Glibc

/// A failed system call on the host (a tree's files, an upload's source), before it becomes a `GuestError`.
package struct SystemCallError: DiagnosticError {
    package var code: Int32
    /// What is wrong in words better than strerror's, when there are (a FIFO given as a file: "it is a FIFO").
    private var problem: String?
    package var message: String { problem ?? String(cString: strerror(code)) }
    package var diagnostic: Diagnostic { Diagnostic(message) }

    package init(code: Int32, problem: String? = nil) {
        self.code = code
        self.problem = problem
    }

    package static func last() -> SystemCallError { SystemCallError(code: errno) }
}

/// Reading files of the host itself (an upload's source), as opposed to the guest's.
package enum HostFiles {
    /// A descriptor of the regular file at `path`, and its status, for reading. O_NONBLOCK: a FIFO (or a device)
    /// is refused at once, where a plain open would wait for a writer forever; the check is made on the descriptor
    /// the file is then read through, so a path swapped after it changes nothing. The caller closes it.
    package static func openRegular(_ path: String, followSymlinks: Bool = true) throws -> (fd: Int32, status: stat) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followSymlinks ? 0 : O_NOFOLLOW))
        guard fd >= 0 else {
            throw errno == ELOOP && !followSymlinks
                ? SystemCallError(code: ELOOP, problem: "it is a symbolic link, not a regular file") : SystemCallError.last()
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let error = SystemCallError.last()
            close(fd)
            throw error
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            let code = status.st_mode & S_IFMT == S_IFDIR ? EISDIR : EINVAL
            let kind = fileKind(status.st_mode) ?? "not a regular file"
            throw SystemCallError(code: code, problem: kind.hasPrefix("not ") ? "it is \(kind)" : "it is \(kind), not a regular file")
        }
        return (fd, status)
    }

    package static func read(_ path: String) throws -> (content: [UInt8], mode: UInt32) {
        let (fd, status) = try openRegular(path)
        defer { close(fd) }
        return (try readAll(fd), UInt32(status.st_mode & 0o7777))
    }

    /// The first line of a host file, without its newline (a password or a pool ID kept out of the process list);
    /// "" when the file is empty or starts with an empty line.
    package static func firstLine(_ path: String) throws -> String {
        let content = try read(path).content
        return String(decoding: content.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
    }

    /// Everything left to read from `fd`; EFBIG past `limit` bytes, so that a file growing while it is read (or
    /// one whose size was not checked) never takes all memory.
    package static func readAll(_ fd: Int32, limit: Int = .max) throws -> [UInt8] {
        var content: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemCallError.last()
            }
            if count == 0 { return content }
            guard content.count + count <= limit else { throw SystemCallError(code: EFBIG) }
            content.append(contentsOf: buffer[0..<count])
        }
    }

    /// `count` bytes from the host's /dev/urandom.
    package static func randomBytes(_ count: Int) throws -> [UInt8] {
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError.last() }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let read = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, count - filled) }
            if read < 0 {
                if errno == EINTR { continue }
                throw SystemCallError.last()
            }
            // /dev/urandom never ends; a read of nothing means it is not the kernel's device.
            guard read > 0 else { throw SystemCallError(code: EIO) }
            filled += read
        }
        return bytes
    }

    /// The names in a host directory, without "." and "..".
    package static func list(_ directory: String) throws -> [String] {
        guard let stream = opendir(directory) else { throw SystemCallError.last() }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Seconds since the epoch of the file's last change; 0 when it cannot be read.
    package static func modificationTime(_ path: String) -> Int {
        var status = stat()
        return stat(path, &status) == 0 ? status.st_mtim.tv_sec : 0
    }
}

/// One host file as `lstat` sees it: a symlink is itself, never what it leads to.
package struct HostEntry {
    package enum Kind: Sendable, Equatable { case regular, directory, symlink, other }
    package var kind: Kind
    package var mode: UInt32
    package var uid: Int
    package var gid: Int
}

extension HostFiles {
    /// The status of `path` itself (lstat).
    package static func entry(_ path: String) throws -> HostEntry {
        var status = stat()
        guard lstat(path, &status) == 0 else { throw SystemCallError.last() }
        let kind: HostEntry.Kind = switch status.st_mode & S_IFMT {
        case S_IFREG: .regular
        case S_IFDIR: .directory
        case S_IFLNK: .symlink
        default: .other
        }
        return HostEntry(kind: kind, mode: UInt32(status.st_mode & 0o7777), uid: Int(status.st_uid),
                         gid: Int(status.st_gid))
    }

    /// A regular file's content; refuses (ELOOP) a symlink swapped in for it.
    package static func readRegular(_ path: String) throws -> [UInt8] {
        let (fd, _) = try openRegular(path, followSymlinks: false)
        defer { close(fd) }
        return try readAll(fd)
    }

    /// What a host symlink holds.
    package static func readlink(_ path: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = Glibc.readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { throw SystemCallError.last() }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
