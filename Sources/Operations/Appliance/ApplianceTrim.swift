import CGuestFS
import Foundation

extension ApplianceFilesystem {
    /// Discards every mounted filesystem's unused blocks, every swap area (recreated with its label and UUID, so
    /// that fstab still finds it) and the free extents of every volume group. The drive must have been added with a
    /// discard mode for the space to be freed in the image file.
    public func trimFreeSpace() throws -> String? {
        guard !readonly else {
            throw GuestError(guest: guestDescription, action: "trim free space", message: "the image is open read-only")
        }
        var trimmed: [String] = []

        let mounted = Guestfs.pairs(try guestfs.strings("list the mounted filesystems") { guestfs_mountpoints($0) })
        for (device, mountpoint) in mounted.sorted(by: { $0.1 < $1.1 }) {
            try guestfs.run("trim the free space of", mountpoint) { guestfs_fstrim_argv($0, mountpoint, nil) }
            let type = try guestfs.string("read the filesystem type of", device) { guestfs_vfs_type($0, device) }
            trimmed.append("\(mountpoint) (\(type))")
        }

        let filesystems = Guestfs.pairs(try guestfs.strings("list the filesystems") { guestfs_list_filesystems($0) })
        for (device, type) in filesystems where type == "swap" {
            try clearSwap(device)
            trimmed.append("swap " + device.dropPrefix("/dev/"))
        }

        let groups = try guestfs.call("list the volume groups") { guestfs_vgs_full($0) }
        defer { guestfs_free_lvm_vg_list(groups) }
        for index in 0..<Int(groups.pointee.len) {
            let group = groups.pointee.val[index]
            let name = String(cString: group.vg_name)
            if group.vg_free > 0 { try discardFreeExtents(of: name) }
            trimmed.append("\(formatBytes(group.vg_free)) free in VG \(name)")
        }
        return trimmed.isEmpty ? nil : "trimmed " + trimmed.joined(separator: ", ")
    }

    /// A swap area holds nothing worth keeping offline; only its header's label and UUID matter, to the guest's
    /// fstab and its initramfs (resume=UUID=...).
    private func clearSwap(_ device: String) throws {
        let (label, uuid) = try swapIdentity(of: device)
        try discard(device)
        var optargs = guestfs_mkswap_opts_argv()
        try label.withCString { labelPointer in
            try uuid.withCString { uuidPointer in
                if !label.isEmpty {
                    optargs.bitmask |= imgc_mkswap_label
                    optargs.label = labelPointer
                }
                if !uuid.isEmpty {
                    optargs.bitmask |= imgc_mkswap_uuid
                    optargs.uuid = uuidPointer
                }
                try guestfs.run("recreate the swap area (label \"\(label)\", UUID \(uuid)) on", device) {
                    guestfs_mkswap_opts_argv($0, device, &optargs)
                }
            }
        }
    }

    /// What the guest finds its swap area by.
    func swapIdentity(of device: String) throws -> (label: String, uuid: String) {
        (try guestfs.string("read the swap label of", device) { guestfs_vfs_label($0, device) },
         try guestfs.string("read the swap UUID of", device) { guestfs_vfs_uuid($0, device) })
    }

    /// Free extents are not a block device of their own: borrow them as a temporary volume, discard it, drop it.
    private func discardFreeExtents(of group: String) throws {
        let volume = "imgcustomize-trim"
        let device = "/dev/\(group)/\(volume)"
        try guestfs.run("claim the free space of the volume group as", device) {
            guestfs_lvcreate_free($0, volume, group, 100)
        }
        let discarded = Result { try discard(device) }
        try guestfs.run("remove the temporary volume", device) { guestfs_lvremove($0, device) }
        try discarded.get()
    }

    /// Discards a block device; where discarding is not supported, zeroes it so that the rewrite still skips it.
    private func discard(_ device: String) throws {
        switch guestfs.perform("discard", device, { guestfs_blkdiscard($0, device) == -1 ? nil : 0 }) {
        case .success:
            return
        case .failure(let failure):
            guestfs.events.logger.debug("cannot discard \(device) (\(failure.error.message)); writing zeroes")
            try guestfs.run("zero", device) { guestfs_zero_device($0, device) }
        }
    }
}

private extension String {
    func dropPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }
}
