import Foundation
import Testing
@testable import Operations
@testable import Appliance

/// The parts of the quick inspection that need no appliance: superblock recognition and fstab resolution. (The
/// fixture tests compare the whole inspection with libguestfs's on every fixture.)
@Suite struct QuickInspectionTests {
    static let uuidBytes: [UInt8] = [0x97, 0xf2, 0x77, 0x36, 0x4b, 0x7b, 0x48, 0x01,
                                     0x9a, 0x42, 0x0f, 0xde, 0x43, 0x5a, 0xf1, 0xe8]
    static let uuid = "97f27736-4b7b-4801-9a42-0fde435af1e8"

    static func device(_ edits: [(Int, [UInt8])]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 65536 + 4096)
        for (offset, content) in edits { bytes.replaceSubrange(offset..<offset + content.count, with: content) }
        return bytes
    }

    @Test func recognisesXFSAndExtWithTheirUUIDsAndLabels() {
        let xfs = Self.device([(0, Array("XFSB".utf8)), (32, Self.uuidBytes), (108, Array("boot".utf8))])
        #expect(QuickInspection.identify(xfs) == .filesystem(type: "xfs", uuid: Self.uuid, label: "boot"))
        let ext = Self.device([(1080, [0x53, 0xEF]), (1024 + 104, Self.uuidBytes), (1024 + 120, Array("root".utf8))])
        #expect(QuickInspection.identify(ext) == .filesystem(type: "ext", uuid: Self.uuid, label: "root"))
    }

    @Test func recognisesSwapPhysicalVolumesAndWhatLibguestfsMustHandle() {
        #expect(QuickInspection.identify(Self.device([(4086, Array("SWAPSPACE2".utf8))])) == .swap)
        #expect(QuickInspection.identify(Self.device([(512, Array("LABELONE".utf8)), (536, Array("LVM2 001".utf8))]))
                == .lvmPhysicalVolume)
        let twoDeviceBtrfs = Self.device([(65536 + 64, Array("_BHRfS_M".utf8)), (65536 + 136, [2])])
        #expect(QuickInspection.identify(twoDeviceBtrfs) == .unsupported("btrfs over 2 devices"))
        let luks: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE], raid: [UInt8] = [0xFC, 0x4E, 0x2B, 0xA9]
        #expect(QuickInspection.identify(Self.device([(0, luks)])) == .unsupported("LUKS"))
        #expect(QuickInspection.identify(Self.device([(4096, raid)])) == .unsupported("RAID member"))
        // An extended partition's boot record, and nothing at all.
        #expect(QuickInspection.identify(Self.device([(510, [0x55, 0xAA])])) == .other)
        #expect(QuickInspection.identify(Self.device([])) == .other)
    }

    @Test func recognisesABtrfsFilesystemOnOneDeviceWithItsUUIDAndLabel() {
        let btrfs = Self.device([(65536 + 64, Array("_BHRfS_M".utf8)), (65536 + 32, Self.uuidBytes),
                                 (65536 + 136, [1]), (65536 + 299, Array("fedora".utf8))])
        #expect(QuickInspection.identify(btrfs) == .filesystem(type: "btrfs", uuid: Self.uuid, label: "fedora"))
    }

    @Test func recognisesAnEFISystemPartitionBySerialAsFstabWritesIt() {
        let fat = Self.device([(82, Array("FAT32   ".utf8)), (67, [0x78, 0x56, 0x34, 0x12]),
                               (71, Array("NO NAME    ".utf8)), (510, [0x55, 0xAA])])
        #expect(QuickInspection.identify(fat) == .filesystem(type: "vfat", uuid: "1234-5678", label: ""))
    }

    static let devices = QuickInspection.Devices(
        disks: ["/dev/sda", "/dev/sdb"], partitions: ["/dev/sda1", "/dev/sda2", "/dev/sdb1"],
        volumes: ["/dev/rhel/root", "/dev/rhel/swap", "/dev/my-vg/lv-data"],
        uuids: [(uuid, "/dev/sda1"), ("1234-5678", "/dev/sdb1")], labels: [("data", "/dev/my-vg/lv-data")])

    @Test func fstabEntriesResolveAsLibguestfsResolvesThem() throws {
        let fstab = """
            # comment
            /dev/mapper/rhel-root   /                       xfs     defaults        0 0
            UUID=\(Self.uuid.uppercased()) /boot xfs defaults 0 0
            UUID=1234-5678          /boot/efi               vfat    umask=0077      0 2
            LABEL="data"            //srv//data/            ext4    defaults        0 2
            /dev/mapper/rhel-swap   swap                    swap    defaults        0 0
            /dev/xvdb1              /var                    ext4    defaults        0 0
            tmpfs                   /dev/shm                tmpfs   defaults        0 0
            proc                    /proc                   proc    defaults        0 0
            /dev/cdrom              /mnt/cdrom              iso9660 noauto          0 0
            """
        let mountpoints = try #require(QuickInspection.mountpoints(fstab: fstab, root: "/dev/rhel/root",
                                                                   devices: Self.devices))
        #expect(mountpoints == ["/": "/dev/rhel/root", "/boot": "/dev/sda1", "/boot/efi": "/dev/sdb1",
                                "/srv/data": "/dev/my-vg/lv-data", "/var": "/dev/sdb1"])
    }

    /// Fedora's layout: subvolumes root and home of one btrfs filesystem, by its UUID, the subvolume in the options.
    @Test func btrfsEntriesNameTheSubvolumeOfTheirSubvolOption() throws {
        let devices = QuickInspection.Devices(
            disks: ["/dev/sda"], partitions: ["/dev/sda1", "/dev/sda2"], volumes: [],
            subvolumes: ["btrfsvol:/dev/sda2/root", "btrfsvol:/dev/sda2/home"],
            uuids: [(Self.uuid, "/dev/sda2"), ("1234-5678", "/dev/sda1")], labels: [("fedora", "/dev/sda2")])
        let fstab = """
            UUID=\(Self.uuid) /                       btrfs   subvol=root,compress=zstd:1 0 0
            UUID=1234-5678 /boot                   ext4    defaults        1 2
            LABEL=fedora /home                   btrfs   compress=zstd:1,subvol=home,subvol=root 0 0
            /dev/sda2 /mnt/top                   btrfs   defaults 0 0
            """
        let mountpoints = try #require(QuickInspection.mountpoints(fstab: fstab, root: "btrfsvol:/dev/sda2/root",
                                                                   devices: devices))
        #expect(mountpoints == ["/": "btrfsvol:/dev/sda2/root", "/boot": "/dev/sda1",
                                "/home": "btrfsvol:/dev/sda2/home", "/mnt/top": "/dev/sda2"])
        // /dev/root is the root as it was found, a subvolume already.
        #expect(QuickInspection.mountpoints(fstab: "/dev/root / btrfs subvol=root 0 0", root: "btrfsvol:/dev/sda2/root",
                                            devices: devices) == ["/": "btrfsvol:/dev/sda2/root"])
        // A subvolume the filesystem does not have as named, or subvolid= alone: libguestfs decides.
        for options in ["subvol=/root", "subvol=var", "subvolid=256"] {
            #expect(QuickInspection.mountpoints(fstab: "/dev/sda2 / btrfs \(options) 0 0",
                                                root: "btrfsvol:/dev/sda2/root", devices: devices) == nil)
        }
    }

    /// One reading of libguestfs's subvolume names, for the inspection, the canonical names and trimming: the device
    /// is two components (a partition, an md array) or three (device-mapper), tried in that order.
    @Test func btrfsVolumeNamesSplitIntoDeviceAndPath() {
        let plain = BtrfsVolumeName("btrfsvol:/dev/sda2/root")
        #expect(plain?.splits.map { "\($0.device) \($0.path)" } == ["/dev/sda2 root"])
        #expect(plain?.plainDevice == "/dev/sda2" && plain?.lastComponent == "root")
        let mapped = BtrfsVolumeName("btrfsvol:/dev/mapper/luks-1234/home/user")
        #expect(mapped?.splits.map { "\($0.device) \($0.path)" }
            == ["/dev/mapper luks-1234/home/user", "/dev/mapper/luks-1234 home/user"])
        #expect(BtrfsVolumeName("/dev/sda2") == nil)
        #expect(BtrfsVolumeName("btrfsvol:/dev/sda2")?.splits.isEmpty == true)
        #expect(BtrfsVolumeName.name(device: "/dev/sda2", path: "root") == "btrfsvol:/dev/sda2/root")
        #expect(QuickInspection.rootLikelihood("btrfsvol:/dev/sda2/root") == 0)
        #expect(QuickInspection.rootLikelihood("btrfsvol:/dev/sda2/home") == 1)
    }

    @Test func devMapperNamesUndoubleTheirDashes() {
        #expect(QuickInspection.resolve("/dev/mapper/my--vg-lv--data", devices: Self.devices) == "/dev/my-vg/lv-data")
        #expect(QuickInspection.resolve("/dev/my-vg/lv-data", devices: Self.devices) == "/dev/my-vg/lv-data")
        #expect(QuickInspection.resolve("/dev/vda2", devices: Self.devices) == "/dev/sda2")
        #expect(QuickInspection.resolve("/dev/mapper/luks-1234", devices: Self.devices) == nil)
        #expect(QuickInspection.resolve("/dev/vdc1", devices: Self.devices) == nil)
    }

    /// Whatever libguestfs resolves differently (or by probing this inspection does not do) makes it step aside.
    @Test(arguments: [
        "PARTUUID=0a1b2c3d-01 / xfs defaults 0 0",
        "UUID=00000000-0000-0000-0000-000000000000 / xfs defaults 0 0",
        "/dev/sda1 / btrfs subvol=root 0 0",
        "/dev/disk/by-uuid/\(uuid) / xfs defaults 0 0",
        "/dev/my\\040vg/root / xfs defaults 0 0",
        "/dev/sda1 /",
    ])
    func entriesItCannotResolveLeaveTheAnswerToLibguestfs(line: String) {
        #expect(QuickInspection.mountpoints(fstab: line, root: "/dev/sda1", devices: Self.devices) == nil)
    }

    @Test func osReleaseValuesAreUnquoted() {
        let values = Dictionary(QuickInspection.keyValues("""
            NAME="Red Hat Enterprise Linux Server"
            VERSION_ID='7.9'
            PRETTY_NAME="Red Hat \\"Maipo\\" 7.9"
            # ID=fedora
            ID=rhel
            """), uniquingKeysWith: { _, last in last })
        #expect(values == ["NAME": "Red Hat Enterprise Linux Server", "VERSION_ID": "7.9",
                           "PRETTY_NAME": "Red Hat \"Maipo\" 7.9", "ID": "rhel"])
    }

    @Test func partitionsBelongToTheirDisk() {
        #expect(QuickInspection.partition("/dev/sda1", isOn: "/dev/sda"))
        #expect(QuickInspection.partition("/dev/nvme0n1p2", isOn: "/dev/nvme0n1"))
        #expect(!QuickInspection.partition("/dev/sdab1", isOn: "/dev/sda"))
        #expect(!QuickInspection.partition("/dev/sda", isOn: "/dev/sda"))
    }
}
