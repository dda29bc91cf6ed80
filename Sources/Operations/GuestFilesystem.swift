import Diagnostics
/// What operations need of a guest's filesystem.
///
/// Two implementations stand behind it: `ApplianceFilesystem` (target Appliance: the filesystems of an image,
/// mounted inside the libguestfs appliance, never on the host) and `TreeFilesystem` (target DirectoryTree: a
/// directory tree on the host, for fast tests and chroots). Paths are always absolute guest paths ("/etc/shadow"); an implementation never lets one resolve
/// outside the guest.
public protocol GuestFilesystem: AnyObject {
    /// Names the guest in messages: the image path, or the tree's root directory.
    var guestDescription: String { get }

    /// Status of `path` itself (a symlink is not followed); nil when nothing is there.
    func lstat(_ path: String) throws -> FileStatus?
    /// Status of what `path` leads to, following symlinks inside the guest; nil when nothing is there.
    func stat(_ path: String) throws -> FileStatus?
    /// Names (not paths) of the entries of a directory, without "." and "..". A name that is not UTF-8 comes
    /// escaped (see `guestName(decoding:)`), so that the path made from it names the same entry.
    func list(_ directory: String) throws -> [String]
    /// Guest paths matching a shell glob (`*`, `?`, `[...]`), sorted; empty when nothing matches.
    func glob(_ pattern: String) throws -> [String]
    func readlink(_ path: String) throws -> String

    /// The whole content of a regular file; a file larger than `guestReadLimit` is refused with its size, since
    /// nothing an operation edits is that large and a 6 GiB /etc/machine-id must not exhaust memory.
    func read(_ path: String) throws -> [UInt8]
    /// Replaces the content of `path`, creating it with `mode` (and owner root) when it does not exist; an existing
    /// file keeps its mode, owner and SELinux label.
    func write(_ path: String, _ content: [UInt8], mode: UInt32) throws
    func mkdir(_ path: String, mode: UInt32, parents: Bool) throws
    /// Removes `path`; a directory only with `recursive`. Removing what is not there is not an error.
    func remove(_ path: String, recursive: Bool) throws
    func chmod(_ path: String, mode: UInt32) throws
    func chown(_ path: String, uid: Int, gid: Int) throws
    func symlink(target: String, at path: String) throws
    func truncate(_ path: String, size: Int64) throws
    /// Overwrites the regular file's content where it lies, then removes it (guestfs scrub-file), so that its old
    /// data is not left in the filesystem's free blocks. A directory tree refuses a file with other hard links,
    /// whose blocks are those names' content too.
    func scrub(_ path: String) throws
    /// Creates an empty file, or sets the times of an existing one to now.
    func touch(_ path: String) throws
    func rename(_ from: String, to: String) throws

    /// Parses `path` with the Augeas lens `lens` (e.g. "Shellvars.lns"), lets `body` edit the tree under
    /// `AugeasEdit.root`, and saves it back when anything changed. Returns what `body` returns.
    func withAugeas<T>(lens: String, path: String, _ body: (AugeasEdit) throws -> T) throws -> T

    /// An extended attribute of `path` itself (e.g. "security.selinux"); nil when it has none.
    func getxattr(_ path: String, name: String) throws -> [UInt8]?
    func setxattr(_ path: String, name: String, value: [UInt8]) throws

    /// The block devices under the filesystem, for work that is not filesystem work (trimming); nil for a tree,
    /// which has none.
    var devices: (any GuestDevices)? { get }

    /// The guest's own programs, run against these filesystems (`run-command`, `install`); nil for a tree, whose
    /// programs would run on the host.
    var commands: (any GuestCommands)? { get }
}

/// The block devices of a guest, where it has some (an image in the appliance).
public protocol GuestDevices: AnyObject {
    /// Discards the unused blocks of every mounted filesystem, unused swap and free LVM space, so that a rewrite
    /// skips them. Returns a one-line summary of what was trimmed, or nil when there was nothing to trim.
    func trimFreeSpace() throws -> String?

    /// The filesystems the guest mounts (as inspection mounted them from its fstab), one entry per device, in
    /// mountpoint order.
    func mountedFilesystems() throws -> [MountedFilesystem]
    /// Gives each device its new UUID (the filesystem's own, as blkid reports it). The guest's filesystems are
    /// unmounted for it, since no filesystem changes its UUID while mounted, and mounted again when next needed.
    func setFilesystemUUIDs(_ changes: [(device: String, uuid: String)]) throws
    /// New random UUIDs for every LVM physical volume and volume group, with the volume groups deactivated for it
    /// (the filesystems on them unmounted, and mounted again when next needed); empty when the guest has no LVM.
    /// Each change's new UUID is read back only when asked (a query per object).
    func renewLVMUUIDs(readingNewUUIDs: Bool) throws -> [LVMIdentityChange]
}

/// A filesystem the guest mounts, and what identifies it.
public struct MountedFilesystem: Sendable, Equatable {
    /// The block device (for a btrfs subvolume, the device holding the filesystem).
    public var device: String
    /// blkid's name for it: "ext4", "xfs", "btrfs", "vfat".
    public var type: String
    public var uuid: String
    /// Where the guest mounts it: several places for a btrfs filesystem's subvolumes.
    public var mountpoints: [String]

    public init(device: String, type: String, uuid: String, mountpoints: [String]) {
        self.device = device
        self.type = type
        self.uuid = uuid
        self.mountpoints = mountpoints
    }
}

/// One LVM object that got a new UUID.
public struct LVMIdentityChange: Sendable, Equatable {
    public enum Kind: String, Sendable { case physicalVolume = "PV", volumeGroup = "VG" }
    public var kind: Kind
    /// The PV's device or the VG's name.
    public var name: String
    /// As LVM prints them: "Zx0RQb-Ve9k-...".
    public var oldUUID: String
    /// nil when it was not read back.
    public var newUUID: String?

    public init(kind: Kind, name: String, oldUUID: String, newUUID: String?) {
        self.kind = kind
        self.name = name
        self.oldUUID = oldUUID
        self.newUUID = newUUID
    }
}

/// The Augeas tree of one file, as `GuestFilesystem.withAugeas` hands it out. Paths are Augeas path expressions;
/// `root` is the node of the file itself (e.g. "/files/etc/shadow").
public protocol AugeasEdit {
    var root: String { get }
    func get(_ path: String) throws -> String?
    func set(_ path: String, _ value: String?) throws
    func match(_ path: String) throws -> [String]
    /// Inserts a sibling node `label` before (or after) the single node `path` matches.
    func insert(_ path: String, label: String, before: Bool) throws
    /// Removes every node `path` matches, with their children; returns how many.
    @discardableResult func remove(_ path: String) throws -> Int
    /// The node's label (its last path component, without position).
    func label(_ path: String) throws -> String?
}

/// The largest file `GuestFilesystem.read` returns whole (256 MiB): far above any configuration file, far below
/// what would exhaust a host's memory. Operations that only need a file's size or first bytes ask `stat`.
public let guestReadLimit: Int64 = 256 << 20

/// The most symlinks one lookup of a guest path follows, as the kernel's own limit (MAXSYMLINKS).
package let guestSymlinkLimit = 40

public struct FileStatus: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case regular, directory, symlink, other }
    public var kind: Kind
    public var mode: UInt32  // permission bits only (0o7777)
    public var uid: Int
    public var gid: Int
    public var size: Int64

    public init(kind: Kind, mode: UInt32, uid: Int, gid: Int, size: Int64) {
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
    }
}

/// A failure inside a guest filesystem: what was being done, to which path, in which guest, and the underlying
/// library's own message.
public struct GuestError: DiagnosticError, Sendable {
    public var guest: String
    public var action: String
    public var path: String?
    public var message: String
    public var hint: String?

    public init(guest: String, action: String, path: String? = nil, message: String, hint: String? = nil) {
        self.guest = guest
        self.action = action
        self.path = path
        self.message = message
        self.hint = hint
    }

    public var diagnostic: Diagnostic { Diagnostic(summary, hint: hint, image: guest, path: path) }

    /// What failed, without the hint.
    public var summary: String {
        "\(guest): \(action)\(path.map { " \($0)" } ?? ""): \(message)"
    }
}

extension GuestFilesystem {
    public var devices: (any GuestDevices)? { nil }
    public var commands: (any GuestCommands)? { nil }

    public func exists(_ path: String) throws -> Bool { try lstat(path) != nil }
    public func isFile(_ path: String) throws -> Bool { try stat(path)?.kind == .regular }
    public func isDirectory(_ path: String) throws -> Bool { try stat(path)?.kind == .directory }

    /// Whether `path` is a regular file (symlinks followed) holding exactly `content`. The size decides first, so
    /// a file of any size, over `guestReadLimit` too, is never read whole to learn that it differs.
    public func holds(_ path: String, exactly content: [UInt8]) throws -> Bool {
        guard let status = try stat(path), status.kind == .regular, status.size == Int64(content.count) else {
            return false
        }
        return try content.isEmpty || read(path) == content
    }

    public func readText(_ path: String) throws -> String {
        String(decoding: try read(path), as: UTF8.self)
    }

    public func writeText(_ path: String, _ text: String, mode: UInt32 = 0o644) throws {
        try write(path, Array(text.utf8), mode: mode)
    }
}
