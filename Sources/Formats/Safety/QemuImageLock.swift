import CLinux
import Glibc

/// qemu's image locking, as `qemu-img` applies it when it opens an image to read it (block/file-posix.c,
/// `raw_apply_lock_bytes` and `raw_check_lock_bytes`). Every qemu holding an image takes OFD locks on single bytes
/// of the file: byte 100 + p for each permission p it uses, byte 200 + p for each permission it does not share
/// with others. Permissions, by bit: 0 consistent read, 1 write, 2 write unchanged, 3 resize.
///
/// A reader such as `qemu-img convert` uses consistent read and shares neither write nor resize (a format's
/// metadata must not move under it): it fails when another process writes or resizes the image ("Failed to get
/// shared "write" lock"), or forbids consistent reads of it; and while it reads, its own locks make a qemu that
/// tries to open the image for writing fail the same way. `-U` (force share) shares everything: only a holder
/// that forbids consistent reads stops it.
public enum QemuImageLock {
    static let permissionBase: Int64 = 100
    static let sharedBase: Int64 = 200

    enum Permission: Int64, CaseIterable {
        case consistentRead = 0, write, writeUnchanged, resize

        /// qemu's own names (`bdrv_perm_names`), as its messages print them.
        var name: String {
            switch self {
            case .consistentRead: "consistent read"
            case .write: "write"
            case .writeUnchanged: "write unchanged"
            case .resize: "resize"
            }
        }
    }

    /// What a reader does not share: writes and resizes, unless forced.
    static func unshared(forceShare: Bool) -> [Permission] { forceShare ? [] : [.write, .resize] }

    /// Takes the locks `qemu-img` takes to read the image open at `descriptor`, after checking that no other
    /// process holds one that excludes reading; they last as long as the open file description (every descriptor
    /// duplicated from it closed). Throws naming `path` and what to do when the image is in use.
    public static func lockForReading(descriptor: Int32, path: String, forceShare: Bool) throws {
        try check(descriptor: descriptor, path: path, forceShare: forceShare)
        var bytes = [permissionBase + Permission.consistentRead.rawValue]
        bytes += unshared(forceShare: forceShare).map { sharedBase + $0.rawValue }
        for byte in bytes where imgcustomize_ofd_lock(descriptor, Int16(F_RDLCK), byte) != 0 {
            // Filesystems without byte-range locks (some network ones): qemu's locking=auto goes on without them.
            if errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL { return }
            throw lockError(path, byte)
        }
        // Checked again with our locks held: a writer that came in between the first check and the locks is seen.
        try check(descriptor: descriptor, path: path, forceShare: forceShare)
    }

    /// Fails when another process holds the image in a way a reading `qemu-img` would refuse; takes no lock.
    public static func check(descriptor: Int32, path: String, forceShare: Bool) throws {
        // Someone forbids what we use: consistent reads.
        if try conflict(descriptor, sharedBase + Permission.consistentRead.rawValue, path) {
            throw inUse(path, "Failed to get \"consistent read\" lock", forceShare: forceShare)
        }
        // Someone uses what we do not share.
        for permission in unshared(forceShare: forceShare)
        where try conflict(descriptor, permissionBase + permission.rawValue, path) {
            throw inUse(path, "Failed to get shared \"\(permission.name)\" lock", forceShare: forceShare)
        }
    }

    private static func conflict(_ descriptor: Int32, _ byte: Int64, _ path: String) throws -> Bool {
        switch imgcustomize_ofd_conflict(descriptor, Int16(F_WRLCK), byte) {
        case 0: return false
        case 1: return true
        default:
            if errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL { return false }
            throw lockError(path, byte)
        }
    }

    private static func inUse(_ path: String, _ qemuMessage: String, forceShare: Bool) -> FormatError {
        let what = forceShare
            ? "another process forbids reading it (qemu's lock: \(qemuMessage))"
            : "another process (a running qemu?) has it open for writing (qemu's lock: \(qemuMessage))"
        let hint = forceShare
            ? "stop the process using the image, then run again"
            : "stop the virtual machine or the process using the image, then run again; --force-share (-U) reads it "
                + "anyway, as qemu-img -U does, and may copy a torn image"
        return FormatError(file: path, "\(what); \(hint)")
    }

    private static func lockError(_ path: String, _ byte: Int64) -> FormatError {
        FormatError.system(file: path, "taking qemu's image lock on byte \(byte)")
    }
}
