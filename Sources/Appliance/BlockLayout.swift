import NativeReader
import Operations

/// What the native reader found on an image's block devices before the launch, named as the appliance names them:
/// which devices hold a swap area, and the LVM physical volumes and volume groups with their UUIDs and free space.
/// Trimming and `lvm-uuids` take these from it instead of asking the appliance (a device listing, a header read per
/// device, `pvs`, `vgs` and a UUID query per object: about 2 s under software emulation for the rhel7 fixture).
///
/// It holds only while nothing but imgcustomize's own calls has touched the devices: `Guestfs` forgets it as soon
/// as a guest program or a shell runs in the appliance (they may run lvm or mkswap), and `lvm-uuids` puts its new
/// UUIDs in. A swap area is still read from the device before it is cleared, so a stale entry is skipped, never
/// cleared.
public struct BlockLayout: Sendable, Equatable {
    public struct Group: Sendable, Equatable {
        public var name: String
        /// As LVM prints it: "Zx0RQb-Ve9k-...".
        public var uuid: String
        /// What `vgs` reports as vg_free.
        public var freeBytes: UInt64
    }

    public struct PhysicalVolume: Sendable, Equatable {
        public var device: String
        public var uuid: String
    }

    /// Devices whose first page carries a swap signature, disks and partitions first, then logical volumes by path.
    public var swapAreas: [String]
    /// By name.
    public var groups: [Group]
    /// By device.
    public var physicalVolumes: [PhysicalVolume]

    public init(swapAreas: [String], groups: [Group], physicalVolumes: [PhysicalVolume]) {
        self.swapAreas = swapAreas
        self.groups = groups
        self.physicalVolumes = physicalVolumes
    }

    /// The layout of the swap areas among `swapAreas` (in the reader's device order) and of volume groups read from
    /// their metadata; nil when a group's free space cannot be counted (a volume type the reader does not map) or
    /// one of its physical volumes is missing.
    init?(swapAreas: [String], groups: [VolumeGroup]) {
        var found: [Group] = []
        var volumes: [PhysicalVolume] = []
        for group in groups {
            guard let free = group.freeExtents else { return nil }
            let (bytes, overflow) = free.multipliedReportingOverflow(by: group.extentSize)
            guard !overflow else { return nil }
            found.append(Group(name: group.name, uuid: group.id, freeBytes: bytes))
            for volume in group.physicalVolumes.values {
                guard let device = volume.device else { return nil }
                volumes.append(PhysicalVolume(device: device.name, uuid: volume.id))
            }
        }
        let isVolume = { (device: String) in groups.contains { group in
            group.logicalVolumes.contains { $0.path == device } } }
        self.init(swapAreas: swapAreas.filter { !isVolume($0) } + swapAreas.filter(isVolume).sorted(),
                  groups: found.sorted { $0.name < $1.name },
                  physicalVolumes: volumes.sorted { $0.device < $1.device })
    }

    /// The same layout after `lvm-uuids` gave these objects new UUIDs (read back).
    mutating func renewed(volumes: [LVMIdentityChange], groups renamed: [LVMIdentityChange]) {
        for change in volumes {
            for index in physicalVolumes.indices where physicalVolumes[index].device == change.name {
                physicalVolumes[index].uuid = change.newUUID ?? physicalVolumes[index].uuid
            }
        }
        for change in renamed {
            for index in groups.indices where groups[index].name == change.name {
                groups[index].uuid = change.newUUID ?? groups[index].uuid
            }
        }
    }
}
