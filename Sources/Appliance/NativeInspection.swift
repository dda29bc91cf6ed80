import Formats
import NativeReader
import Operations

/// `QuickInspection` without the appliance: the same devices, superblocks, rules and conclusions, read from the
/// image file by `NativeReader` (partition tables, LVM2 linear and striped volumes, ext2/3/4, XFS, btrfs on one
/// device with its subvolumes, vfat). It answers in a fraction of a second for the guests whose filesystems it
/// reads, and returns nil (the appliance decides) wherever the quick inspection would, and also for anything the
/// reader does not read: a filesystem that must be examined and is none of those, a volume of a type it does not
/// map (thin, RAID, snapshots), a btrfs whose default subvolume is not its top level, a mountpoint the hardware
/// facts look through that it cannot read. The reader's "not handled" errors reach the caller, which falls back
/// to the appliance too.
public enum NativeInspection {
    /// The guest's facts and hardware, or nil when the appliance must inspect it. `path` is an image that passed
    /// the safety checks, opened as `format` with no backing file followed; `disk` is the name the appliance gives
    /// its drive (another than /dev/sda in a batch), which the facts' devices are named after.
    public static func inspect(image path: String, format: ImageFormat, disk name: String = "/dev/sda") throws
        -> (facts: GuestFacts, hardware: GuestHardware, layout: BlockLayout?, filesystemTypes: [String])? {
        guard let guest = try mount(image: path, format: format, disk: name) else { return nil }
        // An EFI system partition: nothing the hardware facts read lies below it; any other unreadable mountpoint
        // may hide what they read.
        guard guest.unreadable.keys.allSatisfy({ $0 == "/boot/efi" }) else { return nil }
        let tree = NativeTree(guest.tree)
        let hardware = try GuestHardware(facts: guest.facts, isDirectory: { try tree.kind($0) == .directory },
                                         isFile: { try tree.kind($0) == .regular })
        let types = Set([guest.root.type] + guest.mounts.values.map(\.type)).sorted()
        return (guest.facts, hardware, guest.layout, types)
    }

    /// The guest found in the image, its filesystems mounted as its fstab mounts them, or nil when the appliance
    /// must inspect it (as for `inspect`).
    public static func mount(image path: String, format: ImageFormat, disk name: String = "/dev/sda") throws -> NativeGuest? {
        let disk = ImageDevice(source: try openImage(path: path, format: format), name: name)
        var devices: [any BlockDevice] = []
        var partitions: [String] = []
        if let table = try PartitionTable.read(disk) {
            for partition in table.partitions {
                let device = try SliceDevice(disk, start: partition.start, length: partition.length,
                                             name: disk.name + String(partition.number))
                partitions.append(device.name)
                if !partition.isExtended { devices.append(device) }
            }
        } else {
            devices.append(disk)
        }
        var contents = try devices.map { ($0, try content(of: $0)) }
        var volumes: [String] = []
        let physical = contents.filter { $0.1 == .lvmPhysicalVolume }.map(\.0)
        let groups = physical.isEmpty ? [] : try VolumeGroup.scan(physical)
        if !groups.isEmpty {
            for group in groups {
                // A thin pool, a RAID or a snapshot anywhere in the group: libguestfs sees volumes this reader does
                // not map.
                guard group.logicalVolumes.allSatisfy({ $0.notHandled == nil }) else { return nil }
                for volume in group.logicalVolumes where volume.visible {
                    let device = try group.device(volume)
                    volumes.append(device.name)
                    contents.append((device, try content(of: device)))
                }
            }
        }
        var filesystems: [(device: any BlockDevice, type: String, uuid: String, label: String)] = []
        for (device, content) in contents {
            switch content {
            case .unsupported: return nil
            case .filesystem(let type, let uuid, let label): filesystems.append((device, type, uuid, label))
            case .swap, .lvmPhysicalVolume, .other: continue
            }
        }
        var readable: [String: any FilesystemReader] = [:]
        var subvolumes: [String] = []
        for filesystem in filesystems {
            let name = filesystem.device.name
            switch filesystem.type {
            case "ext": readable[name] = try Ext4Filesystem(device: filesystem.device)
            case "xfs": readable[name] = try XFSFilesystem(device: filesystem.device)
            case "vfat":
                // An EFI system partition the reader cannot read stays unread, as before it read any: nothing the
                // facts depend on lies below it.
                readable[name] = try? FATFilesystem(device: filesystem.device)
            case "btrfs":
                // libguestfs lists the device (its default subvolume) and every other subvolume by its path from the
                // top level. A default other than the top level makes libguestfs's paths depend on how btrfs-progs
                // prints them from there: not guessed.
                let volume = try BtrfsVolume(device: filesystem.device)
                guard try volume.defaultSubvolume() == 5 else { return nil }
                readable[name] = try BtrfsFilesystem(volume: volume, subvolume: 5)
                for subvolume in try volume.subvolumes() {
                    let mountable = BtrfsVolumeName.name(device: name, path: subvolume.path)
                    subvolumes.append(mountable)
                    readable[mountable] = try BtrfsFilesystem(volume: volume, subvolume: subvolume.id)
                }
            default: continue
            }
        }
        let known = QuickInspection.Devices(
            disks: [disk.name], partitions: partitions, volumes: volumes.sorted(), subvolumes: subvolumes,
            uuids: filesystems.map { ($0.uuid, $0.device.name) },
            labels: filesystems.filter { !$0.label.isEmpty }.map { ($0.label, $0.device.name) })

        // The verdict does not depend on the order, only on which filesystems a root's fstab rules out: the ones
        // this reader reads go first, so that an unreadable one is examined only if no root mounts it.
        let candidates = (filesystems.map(\.device.name) + subvolumes).sorted {
            (readable[$0] == nil ? 1 : 0, QuickInspection.rootLikelihood($0), $0)
                < (readable[$1] == nil ? 1 : 0, QuickInspection.rootLikelihood($1), $1)
        }
        let found = try QuickInspection.findRoot(among: candidates) { device in
            guard let filesystem = readable[device] else { return .unknown }
            return try QuickInspection.verdict(NativeTree(GuestFS(root: filesystem)), device: device, devices: known)
        }
        guard let facts = found else { return nil }

        let root = try filesystem(facts.mountpoints["/"], readable)
        let guest = GuestFS(root: root)
        var mounts: [String: any FilesystemReader] = [:]
        var unreadable: [String: String] = [:]
        for (mountpoint, device) in facts.mountpoints where mountpoint != "/" {
            guard let mounted = readable[device] else {
                unreadable[canonicalGuestPath(mountpoint)] = device
                continue
            }
            guest.mount(mounted, on: mountpoint)
            mounts[canonicalGuestPath(mountpoint)] = mounted
        }
        let swapAreas = contents.filter { $0.1 == .swap }.map(\.0.name)
        return NativeGuest(facts: facts, tree: guest, root: root, mounts: mounts, unreadable: unreadable,
                           layout: BlockLayout(swapAreas: swapAreas, groups: groups))
    }

    private static func filesystem(_ device: String?, _ readable: [String: any FilesystemReader]) throws
        -> any FilesystemReader {
        guard let device, let filesystem = readable[device] else {
            throw ReaderError(.notHandled, device: device ?? "?", structure: "root filesystem", "is not readable")
        }
        return filesystem
    }

    /// What `device` holds, from its first 68 KiB, as the quick inspection decides it. A smaller device reads as
    /// zeros past its end, so that the superblock fields identify reads are always there.
    static func content(of device: any BlockDevice) throws -> QuickInspection.Content {
        let count = 65536 + 4096
        let bytes = try device.read(at: 0, count: Int(min(device.size, UInt64(count))))
        return QuickInspection.identify(bytes + [UInt8](repeating: 0, count: count - bytes.count))
    }
}

/// A guest read natively: its facts, and its filesystems as its fstab mounts them.
public struct NativeGuest {
    public var facts: GuestFacts
    /// The whole tree, through its mounts.
    public var tree: GuestFS
    public var root: any FilesystemReader
    /// Canonical mountpoint (not "/") to the filesystem mounted there.
    public var mounts: [String: any FilesystemReader]
    /// Canonical mountpoints of filesystems the reader does not read (an EFI system partition's vfat), to their
    /// devices.
    public var unreadable: [String: String]
    /// The swap areas and LVM identities of the image's block devices; nil where the reader cannot count them all.
    public var layout: BlockLayout? = nil
}

/// A natively read guest tree as inspection reads it.
struct NativeTree: InspectedTree {
    let guest: GuestFS

    init(_ guest: GuestFS) { self.guest = guest }

    static func kind(_ kind: NodeKind?) -> FileStatus.Kind? {
        switch kind {
        case nil: nil
        case .regular: .regular
        case .directory: .directory
        case .symlink: .symlink
        default: .other
        }
    }

    func kind(_ path: String) throws -> FileStatus.Kind? { Self.kind(try guest.kind(path)) }

    func linkKind(_ path: String) throws -> FileStatus.Kind? { Self.kind(try guest.kind(path, followLast: false)) }

    func readlink(_ path: String) throws -> String { try guest.readlink(path) }

    func bytes(_ path: String, count: Int) throws -> [UInt8] { try guest.read(path, count: count) }

    func text(_ path: String) throws -> String? {
        guard try kind(path) == .regular else { return nil }
        return String(validating: try guest.read(path, count: 1 << 20), as: UTF8.self)
    }
}
