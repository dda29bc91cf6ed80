// libFuzzer entry point over the native guest reader's parsers, built by scripts/fuzz inside the NativeReader
// module (so that internal parsers are reachable). The first input byte chooses the target:
//   0 partitions  PartitionTable.read: MBR, the EBR chain, GPT and its backup header;
//   1 ext         Ext4Filesystem, then a bounded walk through GuestFS: list, stat, read, readlink, resolve;
//   2 lvm         PhysicalVolumeLabel, the metadata area, VolumeGroup.scan, and reads of every volume;
//   3 lvm-text    LVMValue.parse and VolumeGroup over the rest of the input as metadata text;
//   4 xfs         XFSFilesystem, then the same bounded walk as ext;
//   5 btrfs       BtrfsVolume (superblock, chunks, root tree), its default subvolume and subvolume list, then the
//                 walk through the top level and each subvolume;
//   6 vfat        FATFilesystem, then the walk and a case-folded lookup.
// For 0-2 and 4-6 the rest is a sparse disk: a big-endian u16 size in MiB, then chunks of (u32 sector, u16 length, bytes),
// so that seeds carry a real filesystem's or volume group's metadata at its real offsets (Fuzz/make-reader-seeds).
// A trap anywhere is a crash; a hang is caught by libFuzzer's -timeout.

final class SparseDevice: BlockDevice {
    let name = "/dev/sda"
    let size: UInt64
    let chunks: [(start: UInt64, bytes: [UInt8])]

    init(_ input: ArraySlice<UInt8>) {
        var rest = input
        func take(_ count: Int) -> [UInt8]? {
            guard rest.count >= count else { return nil }
            defer { rest = rest.dropFirst(count) }
            return Array(rest.prefix(count))
        }
        let megabytes = take(2).map { UInt64($0[0]) << 8 | UInt64($0[1]) } ?? 1
        size = max(1, megabytes) << 20
        var chunks: [(start: UInt64, bytes: [UInt8])] = []
        while let header = take(6) {
            let sector = UInt64(header[0]) << 24 | UInt64(header[1]) << 16 | UInt64(header[2]) << 8 | UInt64(header[3])
            let length = Int(header[4]) << 8 | Int(header[5])
            guard let bytes = take(min(length, rest.count)) else { break }
            chunks.append((sector * 512, bytes))
        }
        self.chunks = chunks
    }

    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        var result = [UInt8](repeating: 0, count: count)
        let end = offset + UInt64(count)
        for chunk in chunks {
            let chunkEnd = chunk.start + UInt64(chunk.bytes.count)
            let from = max(offset, chunk.start), to = min(end, chunkEnd)
            guard from < to else { continue }
            result.replaceSubrange(Int(from - offset)..<Int(to - offset),
                                   with: chunk.bytes[Int(from - chunk.start)..<Int(to - chunk.start)])
        }
        return result
    }
}

/// Lists, stats, reads and follows everything reachable from "/" to a small depth and breadth.
func walk(_ guest: GuestFS, _ path: String, depth: Int) {
    guard depth < 4, let names = try? guest.listDirectory(path) else { return }
    for name in names.prefix(64) {
        let child = (path == "/" ? "" : path) + "/" + name
        _ = try? guest.lstat(child)
        _ = try? guest.readlink(child)
        _ = try? guest.read(child, count: 1 << 16)
        _ = try? guest.kind(child + "/../" + name + "/.")
        walk(guest, child, depth: depth + 1)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: count))
    guard let selector = input.first else { return 0 }
    switch selector % 7 {
    case 0:
        let disk = SparseDevice(input.dropFirst())
        if let table = try? PartitionTable.read(disk) {
            for partition in table.partitions {
                _ = try? SliceDevice(disk, start: partition.start, length: partition.length, name: "/dev/sda1")
            }
        }
    case 1:
        guard let filesystem = try? Ext4Filesystem(device: SparseDevice(input.dropFirst())) else { return 0 }
        let guest = GuestFS(root: filesystem)
        walk(guest, "/", depth: 0)
        for path in ["/etc/os-release", "/bin/bash", "/etc/fstab", "/../../etc/hostname"] {
            _ = try? guest.readFile(path, limit: 1 << 20)
        }
    case 2:
        let disk = SparseDevice(input.dropFirst())
        guard let groups = try? VolumeGroup.scan([disk]) else { return 0 }
        for group in groups {
            for volume in group.logicalVolumes {
                guard let device = try? group.device(volume) else { continue }
                _ = try? device.read(at: 0, count: Int(min(device.size, 4096)))
                if device.size > 4096 { _ = try? device.read(at: device.size - 4096, count: 4096) }
            }
        }
    case 4:
        guard let filesystem = try? XFSFilesystem(device: SparseDevice(input.dropFirst())) else { return 0 }
        let guest = GuestFS(root: filesystem)
        walk(guest, "/", depth: 0)
        _ = try? guest.readFile("/etc/hostname", limit: 1 << 20)
    case 5:
        guard let volume = try? BtrfsVolume(device: SparseDevice(input.dropFirst())) else { return 0 }
        _ = try? volume.defaultSubvolume()
        let subvolumes = (try? volume.subvolumes()) ?? []
        for id in [5] + subvolumes.prefix(8).map(\.id) {
            guard let filesystem = try? BtrfsFilesystem(volume: volume, subvolume: id) else { continue }
            walk(GuestFS(root: filesystem), "/", depth: 0)
        }
    case 6:
        guard let filesystem = try? FATFilesystem(device: SparseDevice(input.dropFirst())) else { return 0 }
        let guest = GuestFS(root: filesystem)
        walk(guest, "/", depth: 0)
        _ = try? guest.readFile("/efi/fedora/GRUB.CFG", limit: 1 << 20)
    default:
        let text = Array(input.dropFirst())
        _ = try? LVMValue.parse(text, site: Site("/dev/sda", "fuzz"))
        _ = try? VolumeGroup(metadata: text, site: Site("/dev/sda", "fuzz"), labels: [])
    }
    return 0
}
