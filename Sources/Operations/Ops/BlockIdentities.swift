import Foundation

/// `fs-uuids`: virt-sysprep's fs-uuids, which gives every filesystem a new random UUID so that clones do not share
/// them, without what makes virt-sysprep keep it off by default (the guest no longer booting): every reference to an
/// old UUID is rewritten in the files the boot and the mounts read them from. Those are /etc/fstab, /etc/crypttab,
/// /etc/default/grub and /etc/kernel/cmdline; GRUB's grub.cfg, grubenv and load.cfg, on /boot and on the EFI system
/// partition; the Boot Loader Specification entries; and GRUB's EFI images, which carry the `search.fs_uuid` of the
/// filesystem holding GRUB in a configuration embedded uncompressed, so the same-length UUID is replaced in place.
///
/// Kept, and said so: a vfat filesystem's volume ID (the EFI system partition: libguestfs cannot set one); swap
/// areas, which are not mounted filesystems (an initramfs may find the resume device by its UUID, baked into a
/// binary this tool does not rebuild); LUKS headers' UUIDs, which crypttab and the initramfs find the encrypted
/// devices by; and, on a BIOS guest whose GRUB lives on LVM or RAID, that filesystem's UUID, which GRUB's core image
/// looks for in a compressed configuration written into the disk's boot track, out of reach offline. The new UUIDs
/// differ on every run, so the step is never idempotent: run it once per image.
public struct FilesystemUUIDs: RegisteredOperation {
    public static let name = "fs-uuids"
    public static let sourceFile = #filePath
    public static let summary = "Give every ext2/3/4, xfs and btrfs filesystem a new random UUID, rewriting fstab, crypttab, GRUB's configuration and EFI images and the BLS entries to match, so the guest still boots"
    public static let argument = OperationArgument.none
    public static let phase = OperationPhase.identities
    public static let sysprep = SysprepDefault.virtSysprepOnRequest(as: "fs-uuids")

    /// The filesystems whose UUID can be changed (libguestfs's set_uuid).
    static let changeable: Set<String> = ["ext2", "ext3", "ext4", "xfs", "btrfs"]

    public init() {}

    public var target: String { "" }

    public static func parse(_ argument: String?) throws -> FilesystemUUIDs {
        try noArgument(argument)
        return FilesystemUUIDs()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard let devices = guest.devices else {
            return .unchanged("a directory tree has no filesystems of its own")
        }
        var changes: [(filesystem: MountedFilesystem, uuid: String)] = []
        var kept: [String] = []
        let filesystems = try devices.mountedFilesystems()
        let coreImageHolder = try biosCoreImageFilesystem(in: guest, filesystems: filesystems)
        for filesystem in filesystems {
            let place = filesystem.mountpoints.joined(separator: ", ")
            if !Self.changeable.contains(filesystem.type) {
                kept.append("\(place) (\(filesystem.type): its volume ID cannot be set)")
            } else if let holder = coreImageHolder, filesystem.mountpoints.contains(holder),
                      !isPartition(filesystem.device) {
                kept.append("\(place) (GRUB's core image in the boot track finds it by UUID on \(filesystem.device))")
            } else if filesystem.uuid.isEmpty {
                kept.append("\(place) (it has no UUID)")
            } else {
                changes.append((filesystem, UUID().uuidString.lowercased()))
            }
        }
        let keptNote = kept.isEmpty ? "" : "; kept: " + kept.joined(separator: ", ")
        guard !changes.isEmpty else { return .unchanged("no filesystem UUID to change" + keptNote) }

        try devices.setFilesystemUUIDs(changes.map { ($0.filesystem.device, $0.uuid) })
        let rewritten = try rewriteReferences(
            in: guest, files: try Self.referenceFiles(in: guest),
            replacing: changes.flatMap { change in
                [(change.filesystem.uuid.lowercased(), change.uuid),
                 (change.filesystem.uuid.uppercased(), change.uuid.uppercased())]
            })
        let changed = changes.map {
            "\($0.filesystem.mountpoints.joined(separator: ", ")) (\($0.filesystem.device)) \($0.uuid)"
        }
        let references = rewritten.isEmpty ? "no file referred to them" : "references rewritten in "
            + rewritten.joined(separator: ", ")
        return .changed("new UUIDs for " + changed.joined(separator: ", ") + "; " + references + keptNote)
    }

    /// The files that refer to filesystems by UUID, where the boot and the mounts read them.
    static func referenceFiles(in guest: GuestFilesystem) throws -> [String] {
        let fixed = ["/etc/fstab", "/etc/crypttab", "/etc/default/grub", "/etc/kernel/cmdline",
                     "/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/boot/grub/grubenv", "/boot/grub2/grubenv"]
        let patterns = ["/boot/grub/*/load.cfg", "/boot/grub2/*/load.cfg", "/boot/grub/*-efi/core.efi",
                        "/boot/grub2/*-efi/core.efi",
                        "/boot/efi/EFI/*/grub.cfg", "/boot/efi/EFI/*/grubenv", "/boot/efi/EFI/*/*.[eE][fF][iI]",
                        "/boot/loader/entries/*.conf", "/boot/efi/loader/entries/*.conf"]
        return fixed + (try patterns.flatMap { try guest.glob($0) })
    }

    /// The guest path of the directory whose filesystem holds a BIOS GRUB's files ("/boot" or "/"), when the guest
    /// boots through GRUB's i386-pc core image; nil otherwise.
    private func biosCoreImageFilesystem(in guest: GuestFilesystem, filesystems: [MountedFilesystem]) throws -> String? {
        for grub in ["/boot/grub", "/boot/grub2"] where try guest.lstat(grub + "/i386-pc")?.kind == .directory {
            return filesystems.contains { $0.mountpoints.contains("/boot") } ? "/boot" : "/"
        }
        return nil
    }

    /// A partition of a whole disk (/dev/sda1, /dev/vdb2, /dev/nvme0n1p3), rather than a logical volume, a RAID
    /// array or a device-mapper device.
    private func isPartition(_ device: String) -> Bool {
        (device.hasPrefix("/dev/sd") || device.hasPrefix("/dev/vd") || device.hasPrefix("/dev/hd")
            || device.hasPrefix("/dev/xvd") || device.hasPrefix("/dev/nvme")) && device.last?.isNumber == true
    }
}

/// `lvm-uuids`: virt-sysprep's lvm-uuids (on by default there and in the `sysprep` profile): new random UUIDs for
/// every LVM physical volume and volume group, so that clones attached to one host do not clash. The guest finds its
/// volumes by name (root=/dev/mapper/..., rd.lvm.vg=), which do not change; /etc/lvm/devices/system.devices, which
/// names each PV by its UUID, is rewritten to match. LVM's metadata backups in /etc/lvm/backup and /etc/lvm/archive
/// keep the old UUIDs, as they do after any vgchange. A LUKS device inside a logical volume holds its volume group
/// active, and is refused with the reason. New UUIDs every run: the step is never idempotent.
public struct LVMUUIDs: RegisteredOperation {
    public static let name = "lvm-uuids"
    public static let sourceFile = #filePath
    public static let summary = "Give every LVM physical volume and volume group a new random UUID (names are kept; system.devices is rewritten to match)"
    public static let argument = OperationArgument.none
    public static let phase = OperationPhase.identities
    public static let sysprep = SysprepDefault.virtSysprep(as: "lvm-uuids")
    static let devicesFile = "/etc/lvm/devices/system.devices"

    public init() {}

    public var target: String { "" }

    public static func parse(_ argument: String?) throws -> LVMUUIDs {
        try noArgument(argument)
        return LVMUUIDs()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard let devices = guest.devices else {
            return .unchanged("a directory tree has no LVM volumes of its own")
        }
        // Asked before the change, which leaves the filesystems unmounted until a file is read again.
        let devicesFile = try guest.lstat(Self.devicesFile)?.kind == .regular ? [Self.devicesFile] : []
        // The new UUIDs are read back (a query per object) only for the file that names them.
        let changes = try devices.renewLVMUUIDs(readingNewUUIDs: !devicesFile.isEmpty)
        guard !changes.isEmpty else { return .unchanged("no LVM physical volume") }
        // system.devices writes a PV's UUID without its dashes (PVID=...).
        let pvids = changes.filter { $0.kind == .physicalVolume }.compactMap { change in
            change.newUUID.map { (change.oldUUID.replacingOccurrences(of: "-", with: ""),
                                  $0.replacingOccurrences(of: "-", with: "")) }
        }
        let rewritten = try rewriteReferences(in: guest, files: devicesFile, replacing: pvids)
        let named = changes.map { "\($0.kind.rawValue) \($0.name)" }
        return .changed("new UUIDs for " + named.joined(separator: ", ")
                        + (rewritten.isEmpty ? "" : "; PVIDs rewritten in " + rewritten.joined(separator: ", ")))
    }
}

/// Replaces every occurrence of each old string with its new one, byte for byte, in those of `files` that are
/// regular files holding one (a symlink is left to its target's own entry); returns the files it rewrote. Each
/// new string has its old one's length where the file is binary (an EFI image), so nothing moves.
func rewriteReferences(in guest: GuestFilesystem, files: [String],
                       replacing replacements: [(old: String, new: String)]) throws -> [String] {
    var rewritten: [String] = []
    for file in files where !rewritten.contains(file) {
        guard try guest.lstat(file)?.kind == .regular else { continue }
        let content = try guest.read(file)
        var updated = content
        for (old, new) in replacements where !old.isEmpty {
            updated = replacingAll(Array(old.utf8), with: Array(new.utf8), in: updated)
        }
        if updated != content {
            try guest.write(file, updated, mode: 0o644)
            rewritten.append(file)
        }
    }
    return rewritten
}

/// `bytes` with every non-overlapping occurrence of `old` replaced by `new`, left to right.
func replacingAll(_ old: [UInt8], with new: [UInt8], in bytes: [UInt8]) -> [UInt8] {
    guard !old.isEmpty, bytes.count >= old.count else { return bytes }
    var result: [UInt8] = []
    result.reserveCapacity(bytes.count)
    var index = 0
    let first = old[0]
    while index < bytes.count {
        if bytes[index] == first, index + old.count <= bytes.count, bytes[index..<(index + old.count)].elementsEqual(old) {
            result.append(contentsOf: new)
            index += old.count
        } else {
            result.append(bytes[index])
            index += 1
        }
    }
    return result
}
