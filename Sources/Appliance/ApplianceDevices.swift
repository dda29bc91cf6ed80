import Formats
import Foundation
import Operations
import Host

/// The block-device work of an appliance session, which is not filesystem work: discarding what the guest does not
/// use (free filesystem blocks, swap areas, free LVM extents) so that the rewrite skips it.
public final class ApplianceDevices: GuestDevices {
    let guestfs: Guestfs
    public let readonly: Bool
    /// What the session mounted where (mountpoint, device), parents first: how the filesystems are mounted again
    /// after an identity change unmounted them.
    let mountPlan: [(mountpoint: String, device: String)]
    /// The mountpoints `trimFreeSpace` trimmed: trimmed again before the session ends if they were mounted again
    /// after an identity change (whose steps rewrite the files naming the old UUIDs, freeing their old blocks).
    private var trimmedMountpoints: [String] = []
    private var writtenAfterTrim = false
    /// Whether an identity change left the volume groups inactive, to be activated before the deferred mount.
    private(set) var volumeGroupsInactive = false

    init(guestfs: Guestfs, readonly: Bool, mountPlan: [(mountpoint: String, device: String)]) {
        self.guestfs = guestfs
        self.readonly = readonly
        self.mountPlan = mountPlan
    }

    // MARK: Identities

    public func mountedFilesystems() throws -> [MountedFilesystem] {
        var found: [MountedFilesystem] = []
        for (mountpoint, mountable) in mountPlan {
            let device = filesystemDevice(of: mountable)
            if let index = found.firstIndex(where: { $0.device == device }) {
                found[index].mountpoints.append(mountpoint)
                continue
            }
            found.append(MountedFilesystem(device: device, type: guestfs.filesystemType(device) ?? "unknown",
                                           uuid: (try? guestfs.filesystemUUID(device)) ?? "",
                                           mountpoints: [mountpoint]))
        }
        return found
    }

    public func setFilesystemUUIDs(_ changes: [(device: String, uuid: String)]) throws {
        try withFilesystemsUnmounted(for: "fs-uuids", deactivatingVolumeGroups: false) {
            for (device, uuid) in changes {
                if guestfs.filesystemType(device)?.hasPrefix("ext") == true { try guestfs.checkExtFilesystem(device) }
                try guestfs.setUUID(device, uuid)
            }
        }
    }

    public func renewLVMUUIDs(readingNewUUIDs: Bool) throws -> [LVMIdentityChange] {
        // Each object with its UUID before the change: the native reader's, or asked of LVM.
        let oldVolumes: [(name: String, uuid: String)]
        let oldGroups: [(name: String, uuid: String)]
        if let known = guestfs.blockLayout {
            oldVolumes = known.physicalVolumes.map { ($0.device, $0.uuid) }
            oldGroups = known.groups.map { ($0.name, $0.uuid) }
        } else {
            oldVolumes = try guestfs.physicalVolumes().map { ($0, try guestfs.physicalVolumeUUID($0)) }
            oldGroups = oldVolumes.isEmpty ? [] : try guestfs.volumeGroupNames().map {
                ($0, try guestfs.volumeGroupUUID($0))
            }
        }
        guard !oldVolumes.isEmpty else { return [] }
        try withFilesystemsUnmounted(for: "lvm-uuids", deactivatingVolumeGroups: true) {
            try guestfs.renewLVMUUIDs()
        }
        let volumes = try oldVolumes.map { volume in
            LVMIdentityChange(kind: .physicalVolume, name: volume.name, oldUUID: volume.uuid,
                              newUUID: readingNewUUIDs ? try guestfs.physicalVolumeUUID(volume.name) : nil)
        }
        let groups = try oldGroups.map { group in
            LVMIdentityChange(kind: .volumeGroup, name: group.name, oldUUID: group.uuid,
                              newUUID: readingNewUUIDs ? try guestfs.volumeGroupUUID(group.name) : nil)
        }
        if readingNewUUIDs {
            guestfs.blockLayout?.renewed(volumes: volumes, groups: groups)
        } else {
            guestfs.blockLayout = nil
        }
        return volumes + groups
    }

    /// Runs `body` with every guest filesystem unmounted (and the volume groups inactive, when asked). They are
    /// mounted again as the session did, whether or not `body` succeeded, before the next call that may need them
    /// (`Guestfs.deferredMount`): when nothing does, never.
    private func withFilesystemsUnmounted(for operation: String, deactivatingVolumeGroups: Bool,
                                          _ body: () throws -> Void) throws {
        guard !readonly else {
            throw GuestError(guest: guestfs.guest, action: operation, message: "the image is open read-only")
        }
        try guestfs.onDevicesOnly {
            try guestfs.unmountAll()
            var outcome: Result<Void, Error> = .success(())
            if deactivatingVolumeGroups {
                do {
                    try guestfs.activateVolumeGroups(false)
                    volumeGroupsInactive = true
                } catch let error as GuestError {
                    outcome = .failure(GuestError(
                        guest: guestfs.guest, action: operation,
                        message: "cannot deactivate the volume groups to change their UUIDs: \(error.message)",
                        hint: "a LUKS device or another mapping inside a logical volume holds its volume group open; "
                            + "leave \(operation) out for this guest (apply sysprep --operations defaults,-\(operation))"))
                }
            }
            if case .success = outcome { outcome = Result { try body() } }
            let guest = guestfs.guest
            guestfs.deferredMount = { [weak self] in
                // Never a silent no-op: a file call must not reach the appliance's own empty root.
                guard let self else {
                    throw GuestError(guest: guest, action: "mount the guest's filesystems again",
                                     message: "the session that unmounted them has ended")
                }
                try self.mountAgain()
            }
            try outcome.get()
        }
    }

    /// Mounts the guest's filesystems as the session did, its volume groups activated first if an identity change
    /// left them inactive.
    private func mountAgain() throws {
        if volumeGroupsInactive {
            try guestfs.activateVolumeGroups(true)
            volumeGroupsInactive = false
        }
        for (mountpoint, device) in mountPlan {
            try guestfs.mount(device, on: mountpoint, readonly: false)
        }
        if !trimmedMountpoints.isEmpty { writtenAfterTrim = true }
    }

    /// Trims again the filesystems trimmed before an identity change that were mounted again after it: the files its
    /// steps rewrote freed their old blocks. (The identities phase follows the trimming, and each of its steps writes
    /// only after its own device change, so after the mount that change deferred: what it wrote is caught here.)
    /// Called before the session unmounts them for good.
    func trimAgainWhatWasRewritten() throws {
        guard writtenAfterTrim else { return }
        for mountpoint in trimmedMountpoints { try guestfs.fstrim(mountpoint) }
        writtenAfterTrim = false
        guestfs.events.logger.debug("trimmed \(trimmedMountpoints.joined(separator: ", ")) again: files were rewritten there after an identity change")
    }

    /// The block device under a mountable: itself, or for a btrfs subvolume (btrfsvol:/dev/sda2/root) the device
    /// holding the filesystem.
    private func filesystemDevice(of mountable: String) -> String {
        guard let name = BtrfsVolumeName(mountable) else { return mountable }
        return name.splits.first { guestfs.filesystemType($0.device) == "btrfs" }?.device ?? mountable
    }

    /// Discards every mounted filesystem's unused blocks, every swap area (its header page put back byte for byte, so
    /// that fstab still finds it) and the free extents of every volume group. The drive must have been added with a
    /// discard mode for the space to be freed in the image file.
    public func trimFreeSpace() throws -> String? {
        guard !readonly else {
            throw GuestError(guest: guestfs.guest, action: "trim free space", message: "the image is open read-only")
        }
        var trimmed: [String] = []
        var untrimmed: [String] = []

        // The session's own mounts: what it mounted (and mounts again after an identity change) is what is mounted.
        for mountpoint in Set(mountPlan.map(\.mountpoint)).sorted() {
            do {
                try guestfs.fstrim(mountpoint)
                trimmed.append(mountpoint)
                if !trimmedMountpoints.contains(mountpoint) { trimmedMountpoints.append(mountpoint) }
            } catch let error as GuestError where error.message.contains("discard operation is not supported") {
                // A LUKS mapping passes discards on only when opened with --allow-discards, which libguestfs's
                // cryptsetup_open cannot ask for; and the free blocks of an encrypted filesystem are ciphertext in
                // the image, which no trim inside it would free.
                untrimmed.append(mountpoint)
            }
        }

        // The native reader's swap areas where it found them; each one's header is read again all the same.
        for device in try guestfs.blockLayout?.swapAreas ?? blockDevices() {
            guard let header = try swapHeader(of: device) else { continue }
            try clearSwap(device, header: header)
            trimmed.append("swap " + device.dropPrefix("/dev/"))
        }

        let groups = try guestfs.blockLayout.map { $0.groups.map { (name: $0.name, freeBytes: $0.freeBytes) } }
            ?? guestfs.volumeGroups()
        for group in groups {
            if group.freeBytes > 0 { try discardFreeExtents(of: group.name) }
            trimmed.append("\(formatBytes(group.freeBytes)) free in VG \(group.name)")
        }
        let skipped = untrimmed.isEmpty ? nil
            : "not trimmed: " + untrimmed.joined(separator: ", ") + " (the device takes no discards, as a LUKS mapping)"
        guard !trimmed.isEmpty else { return skipped }
        return "trimmed " + trimmed.joined(separator: ", ") + (skipped.map { "; " + $0 } ?? "")
    }

    /// Every block device that could hold a swap area: whole disks, partitions, logical volumes, RAID arrays.
    /// (libguestfs's list_filesystems would say which are swap, but it runs parted and blkid on each device: about
    /// 9 s under software emulation, against a few milliseconds to read each header.)
    private func blockDevices() throws -> [String] {
        try guestfs.disks() + guestfs.partitions() + guestfs.raidArrays() + guestfs.logicalVolumes()
    }

    /// The swap header of `device`, if it holds a swap area.
    func swapHeader(of device: String) throws -> SwapHeader? {
        SwapHeader(try guestfs.preadDevice(device, count: SwapHeader.largestPage))
    }

    /// A swap area holds nothing worth keeping offline, but its header matters: the guest's fstab and initramfs
    /// (resume=UUID=...) find it by UUID or label. So: discard the whole device and put the header page back as
    /// it was, byte for byte.
    private func clearSwap(_ device: String, header: SwapHeader) throws {
        try discard(device)
        var written = 0
        while written < header.page.count {
            let count = try guestfs.pwriteDevice(device, Array(header.page[written...]), offset: Int64(written),
                                                 action: "restore the swap header (UUID \(header.uuid)) of")
            guard count > 0 else {
                throw GuestError(guest: guestfs.guest, action: "restore the swap header of", path: device,
                                 message: "the device accepted no more bytes at offset \(written)")
            }
            written += count
        }
    }

    /// Free extents are not a block device of their own: borrow them as a temporary volume, discard it, drop it.
    private func discardFreeExtents(of group: String) throws {
        let volume = "imgcustomize-trim"
        let device = "/dev/\(group)/\(volume)"
        try guestfs.createVolumeOverFreeSpace(volume, group: group)
        let discarded = Result { try discard(device) }
        try guestfs.removeVolume(device)
        try discarded.get()
    }

    /// Discards a block device; where discarding is not supported, zeroes it so that the rewrite still skips it.
    private func discard(_ device: String) throws {
        do {
            try guestfs.discard(device)
        } catch let error as GuestError {
            guestfs.events.logger.debug("cannot discard \(device) (\(error.message)); writing zeroes")
            try guestfs.zero(device)
        }
    }
}

/// A Linux swap area's first page: "SWAPSPACE2" in its last 10 bytes, the UUID at byte 1036 and the label at 1052
/// (`union swap_header` in the kernel's include/linux/swap.h). The page size is the guest's: 4 KiB on x86, up to
/// 64 KiB elsewhere. A hibernation image (an "S1SUSPEND" signature) is not a swap area to trim: the guest resumes
/// from it.
struct SwapHeader: Equatable {
    static let largestPage = 65536
    static let signature = Array("SWAPSPACE2".utf8)
    /// The whole first page, put back after the discard.
    let page: [UInt8]
    let uuid: String
    let label: String

    init?(_ start: [UInt8]) {
        let cursor = ByteCursor(start, file: "swap area")
        guard let size = [4096, 8192, 16384, 65536].first(where: { size in
            start.count >= size && cursor.matches(Self.signature, at: size - Self.signature.count)
        }), let uuid = try? cursor.slice(1036, 16), let label = try? cursor.string(1052, 16) else { return nil }
        page = Array(start[0..<size])
        self.uuid = uuidString(uuid)
        self.label = label
    }
}

/// 16 bytes as blkid prints a UUID: "97f27736-4b7b-4801-9a42-fde435af1e81".
func uuidString(_ bytes: ArraySlice<UInt8>) -> String {
    var text = ""
    for (index, byte) in bytes.enumerated() {
        if [4, 6, 8, 10].contains(index) { text.append("-") }
        text += String(format: "%02x", byte)
    }
    return text
}

private extension String {
    func dropPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }
}
