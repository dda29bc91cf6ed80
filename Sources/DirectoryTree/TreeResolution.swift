import CLinux
import Glibc
import Operations
import Synchronization
import Host

/// Where a guest path ends up inside the tree: the directory that holds it (an open descriptor, valid only inside
/// the `TreeFilesystem.resolve` body) and the name in that directory, as bytes (see `guestPathBytes`). `name` is
/// "." when the path is a directory reached through `..` or the root itself.
struct TreeLocation {
    var directory: Int32
    /// NUL-terminated, for the *at calls.
    var name: [CChar]

    var isDot: Bool { name == [46, 0] }
}

extension TreeFilesystem {
    /// Resolves `path` component by component, the way the guest's kernel would with the tree as its root: every
    /// directory is opened with O_NOFOLLOW relative to its parent, an absolute symlink target restarts at the tree's
    /// root, and `..` stops at the root. Nothing outside the tree can be reached, and a directory swapped for a
    /// symlink during the walk makes the walk fail instead of escaping.
    ///
    /// openat2(RESOLVE_IN_ROOT) would do the walk in the kernel, but seccomp filters in containers often refuse it,
    /// and the fallback would be this walk anyway; it is used for the last step instead (`openBeneath`).
    ///
    /// With `followLast`, a final symlink is followed too (what stat, read and write want); without it the final
    /// component is returned as it is (lstat, unlink, readlink, rename). A missing final component is not an error
    /// here: the body decides (write creates it, stat reports nil).
    func resolve<T>(_ path: String, followLast: Bool, _ body: (TreeLocation) throws -> T) throws -> T {
        guard path.hasPrefix("/") else {
            throw GuestError(guest: guestDescription, action: "resolve", path: path,
                             message: "not an absolute guest path", hint: "guest paths start with /")
        }
        let bytes = guestPathBytes(path)
        // A C path ends at its first NUL: "/etc/x\0/../shadow" would name another file than the one checked.
        guard !bytes.contains(0) else { throw SystemCallError(code: EINVAL) }
        var opened: [Int32] = []
        defer { for fd in opened { Glibc.close(fd) } }
        var pending = bytes.split(separator: UInt8(ascii: "/")).map(Array.init).reversed() as [[UInt8]]
        var followed = 0

        func location(_ name: [UInt8]) -> TreeLocation {
            TreeLocation(directory: opened.last ?? rootFD, name: name.map { CChar(bitPattern: $0) } + [0])
        }

        while let component = pending.popLast() {
            if component == [46] { continue }
            if component == [46, 46] {
                if let top = opened.popLast() { Glibc.close(top) }
                continue
            }
            let isLast = pending.isEmpty
            if isLast && !followLast { return try body(location(component)) }
            let directory = opened.last ?? rootFD
            let name = component.map { CChar(bitPattern: $0) } + [0]
            var status = Glibc.stat()
            if fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) != 0 {
                let error = SystemCallError.last()
                if error.code == ENOENT && isLast { return try body(location(component)) }
                throw error
            }
            switch status.st_mode & S_IFMT {
            case S_IFLNK:
                followed += 1
                guard followed <= guestSymlinkLimit else { throw SystemCallError(code: ELOOP) }
                let target = try readLink(directory, name)
                if target.first == UInt8(ascii: "/") {
                    for fd in opened { Glibc.close(fd) }
                    opened.removeAll()
                }
                pending.append(contentsOf: target.split(separator: UInt8(ascii: "/")).map(Array.init).reversed())
            case S_IFDIR:
                if isLast { return try body(location(component)) }
                let fd = try openBeneath(directory, name, __O_PATH | O_DIRECTORY)
                opened.append(fd)
            default:
                if isLast { return try body(location(component)) }
                throw SystemCallError(code: ENOTDIR)
            }
        }
        return try body(location([46]))
    }

    /// What the symlink `name` in `directory` holds, as bytes.
    func readLink(_ directory: Int32, _ name: [CChar]) throws -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlinkat(directory, name, &buffer, buffer.count - 1)
        guard count >= 0 else { throw SystemCallError.last() }
        return buffer[0..<count].map { UInt8(bitPattern: $0) }
    }
}

/// Set once openat2 turned out to be missing (ENOSYS: a kernel before 5.6) or filtered (EPERM from a seccomp
/// policy), so that every later open goes straight to openat.
private let openat2Unavailable = Atomic<Bool>(false)

/// Opens the single name `name` in `directory`, never following a symlink there (O_NOFOLLOW: a final symlink
/// fails with ELOOP, or is opened itself with O_PATH). openat2 with RESOLVE_BENEATH also refuses a name that would
/// leave `directory` in any way (`..`, a magic link of /proc); where the kernel lacks it, openat with O_NOFOLLOW
/// gives the same for the single components the resolver hands out. Every descriptor is close-on-exec.
func openBeneath(_ directory: Int32, _ name: [CChar], _ flags: Int32, mode: mode_t = 0) throws -> Int32 {
    let flags = flags | O_NOFOLLOW | O_CLOEXEC
    if !openat2Unavailable.load(ordering: .relaxed) {
        let fd = imgcustomize_openat2(directory, name, UInt64(UInt32(bitPattern: flags)), UInt64(mode),
                                      IMGCUSTOMIZE_RESOLVE_BENEATH | IMGCUSTOMIZE_RESOLVE_NO_SYMLINKS
                                          | IMGCUSTOMIZE_RESOLVE_NO_MAGICLINKS)
        if fd >= 0 { return fd }
        guard errno == ENOSYS || errno == EPERM else { throw SystemCallError.last() }
        if errno == ENOSYS { openat2Unavailable.store(true, ordering: .relaxed) }
    }
    let fd = openat(directory, name, flags, mode)
    guard fd >= 0 else { throw SystemCallError.last() }
    return fd
}
