import Glibc
import Operations

/// Where a guest path ends up inside the tree: the directory that holds it (an open descriptor, valid only inside
/// the `TreeFilesystem.resolve` body) and the name in that directory. `name` is "." when the path is a directory
/// reached through `..` or the root itself.
struct TreeLocation {
    var directory: Int32
    var name: String
    /// The host path of the entry with every symlink already resolved, for the calls that only take a path
    /// (lgetxattr and friends).
    var hostPath: String
}

extension TreeFilesystem {
    /// Resolves `path` component by component, the way the guest's kernel would with the tree as its root: every
    /// directory is opened with O_NOFOLLOW relative to its parent, an absolute symlink target restarts at the tree's
    /// root, and `..` stops at the root. Nothing outside the tree can be reached, and a directory swapped for a
    /// symlink during the walk makes the walk fail instead of escaping.
    ///
    /// openat2(RESOLVE_IN_ROOT) would do the same in the kernel, but it is a raw syscall Swift cannot call without
    /// a variadic C shim, and seccomp filters in containers often refuse it; this walk needs only POSIX calls.
    ///
    /// With `followLast`, a final symlink is followed too (what stat, read and write want); without it the final
    /// component is returned as it is (lstat, unlink, readlink, rename). A missing final component is not an error
    /// here: the body decides (write creates it, stat reports nil).
    func resolve<T>(_ path: String, followLast: Bool, _ body: (TreeLocation) throws -> T) throws -> T {
        guard path.hasPrefix("/") else {
            throw GuestError(guest: guestDescription, action: "resolve", path: path,
                             message: "not an absolute guest path", hint: "guest paths start with /")
        }
        var opened: [(fd: Int32, name: String)] = []
        defer { for entry in opened { Glibc.close(entry.fd) } }
        var pending = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init).reversed()
            as [String]
        var followed = 0

        func location(_ name: String) -> TreeLocation {
            let directory = opened.last?.fd ?? rootFD
            let hostDirectory = ([root] + opened.map(\.name)).joined(separator: "/")
            return TreeLocation(directory: directory, name: name,
                                hostPath: name == "." ? hostDirectory : hostDirectory + "/" + name)
        }

        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." {
                if let top = opened.popLast() { Glibc.close(top.fd) }
                continue
            }
            let isLast = pending.isEmpty
            if isLast && !followLast { return try body(location(component)) }
            let directory = opened.last?.fd ?? rootFD
            var status = Glibc.stat()
            if fstatat(directory, component, &status, AT_SYMLINK_NOFOLLOW) != 0 {
                let error = SystemCallError.last()
                if error.code == ENOENT && isLast { return try body(location(component)) }
                throw error
            }
            switch status.st_mode & S_IFMT {
            case S_IFLNK:
                followed += 1
                guard followed <= guestSymlinkLimit else { throw SystemCallError(code: ELOOP) }
                let target = try readLink(directory, component)
                if target.hasPrefix("/") {
                    for entry in opened { Glibc.close(entry.fd) }
                    opened.removeAll()
                }
                pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
            case S_IFDIR:
                if isLast { return try body(location(component)) }
                let fd = openat(directory, component, __O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { throw SystemCallError.last() }
                opened.append((fd, component))
            default:
                if isLast { return try body(location(component)) }
                throw SystemCallError(code: ENOTDIR)
            }
        }
        return try body(location("."))
    }

    func readLink(_ directory: Int32, _ name: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlinkat(directory, name, &buffer, buffer.count - 1)
        guard count >= 0 else { throw SystemCallError.last() }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
