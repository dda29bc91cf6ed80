import Foundation
import Testing
import Formats
@testable import NativeReader
import TestSupport

extension Tag {
    /// Launches the libguestfs appliance (here: guestfish building an image).
    @Tag static var appliance: Self
}

/// The partitions of `disk` as devices named /dev/sdaN.
func partitionDevices(_ disk: any BlockDevice) throws -> [any BlockDevice] {
    let table = try #require(try PartitionTable.read(disk))
    return try table.partitions.filter { !$0.isExtended }.map {
        try SliceDevice(disk, start: $0.start, length: $0.length, name: "\(disk.name)\($0.number)")
    }
}

@Suite(.fixtures(guestFixtures)) struct LVMTests {
    /// The fixture's volume group: a linear root and swap, the root an ext4 whose release file reads back.
    @Test func rhel6LinearVolumes() throws {
        let disk = try ImageDevice(path: guestFixtures.path("rhel6.qcow2"))
        let groups = try VolumeGroup.scan(try partitionDevices(disk))
        let group = try #require(groups.first)
        #expect(groups.map(\.name) == ["VolGroup"])
        #expect(group.logicalVolumes.map(\.path).sorted() == ["/dev/VolGroup/lv_root", "/dev/VolGroup/lv_swap"])
        let root = try #require(group.logicalVolumes.first { $0.name == "lv_root" })
        let guest = GuestFS(root: try Ext4Filesystem(device: group.device(root)))
        #expect(String(decoding: try guest.readFile("/etc/redhat-release"), as: UTF8.self).contains("release 6.10 "))
    }

    /// The same metadata with its root made a thin volume: reported as not handled, never read.
    @Test func unsupportedSegmentsAreNotHandled() throws {
        let disk = try ImageDevice(path: guestFixtures.path("rhel6.qcow2"))
        let partitions = try partitionDevices(disk)
        let label = try #require(try partitions.compactMap { try PhysicalVolumeLabel.read($0) }.first)
        let text = String(decoding: try #require(label.metadata), as: UTF8.self)
        let thin = text.replacingOccurrences(of: "type = \"striped\"", with: "type = \"thin\"")
        let group = try VolumeGroup(metadata: Array(thin.utf8), site: Site("/dev/sda2", "LVM metadata"), labels: [label])
        let root = try #require(group.logicalVolumes.first { $0.name == "lv_root" })
        #expect(root.notHandled == "thin")
        // A thin volume's extents are its pool's: the group's free space is not counted.
        #expect(group.freeExtents == nil)
        let error = #expect(throws: ReaderError.self) { try group.device(root) }
        #expect(error?.kind == .notHandled)
        // Cut short anywhere, the text fails as malformed or parses; it never traps.
        for length in stride(from: 0, to: text.utf8.count, by: 97) {
            _ = try? VolumeGroup(metadata: Array(text.utf8.prefix(length)), site: Site("/dev/sda2", "LVM metadata"),
                                 labels: [label])
        }
    }

    /// A label whose PV UUID is not UTF-8 (found by the fuzzer: it trapped when grouped as characters).
    @Test func labelWithAUUIDThatIsNotText() throws {
        var disk = [UInt8](repeating: 0, count: 8192)
        disk.replaceSubrange(512..<520, with: Array("LABELONE".utf8))
        disk[520] = 1
        disk[532] = 32
        disk.replaceSubrange(536..<544, with: Array("LVM2 001".utf8))
        disk.replaceSubrange(544..<576, with: [UInt8](repeating: 0xE2, count: 31) + [0x41])
        let label = try #require(try PhysicalVolumeLabel.read(MemoryDevice(disk)))
        #expect(label.uuid.split(separator: "-").count == 7)
        #expect(label.metadata == nil)
    }

    /// A striped volume over two PVs (64 KiB stripes), a linear one and a snapshot of it, made by lvm2 itself in the
    /// appliance: the striped ext4 reads back, the snapshot's store is refused.
    @Test(.tags(.appliance)) func stripedVolumeAndSnapshot() throws {
        let directory = try TestDirectory()
        let image = directory.path("striped.img")
        let settings = ProcessInfo.processInfo.environment["LIBGUESTFS_BACKEND_SETTINGS"] ?? "force_tcg"
        try runTool("env", ["LIBGUESTFS_BACKEND_SETTINGS=\(settings)", "guestfish", "-N", "\(image)=disk:96M", "--",
                            "part-init", "/dev/sda", "mbr", ":", "part-add", "/dev/sda", "p", "2048", "98303", ":",
                            "part-add", "/dev/sda", "p", "98304", "-1", ":", "pvcreate", "/dev/sda1", ":",
                            "pvcreate", "/dev/sda2", ":", "vgcreate", "vgs", "/dev/sda1 /dev/sda2", ":",
                            "debug", "sh", "lvm lvcreate -y -i 2 -I 64k -L 40M -n stripe vgs && lvm lvcreate -y -L 8M -n linear vgs && lvm lvcreate -y -s -L 4M -n snap vgs/linear", ":",
                            "mkfs", "ext4", "/dev/vgs/stripe", ":", "mount", "/dev/vgs/stripe", "/", ":",
                            "write", "/hello", "striped hello\n", ":",
                            "fill-pattern", "abcdefghij", "1048576", "/pattern", ":", "umount-all", ":", "sync"])
        let disk = try ImageDevice(source: RawReader(path: image))
        let group = try #require(try VolumeGroup.scan(try partitionDevices(disk)).first)
        let visible = group.logicalVolumes.filter(\.visible)
        // lvm2 keeps the snapshot as a visible "snapshot0" of type snapshot over the hidden store "snap".
        #expect(visible.map(\.name).sorted() == ["linear", "snapshot0", "stripe"])
        let stripe = try #require(visible.first { $0.name == "stripe" })
        #expect(stripe.segments.first?.stripes.count == 2)
        #expect(stripe.segments.first?.stripeSize == 65536)
        let guest = GuestFS(root: try Ext4Filesystem(device: group.device(stripe)))
        #expect(try guest.readFile("/hello") == Array("striped hello\n".utf8))
        let pattern = Array(String(repeating: "abcdefghij", count: 104858).utf8.prefix(1048576))
        #expect(try guest.readFile("/pattern") == pattern)
        #expect(visible.first { $0.name == "snapshot0" }?.notHandled == "snapshot")
        #expect(group.logicalVolumes.first { $0.name == "snap" }?.notHandled == "a snapshot")
        #expect(try group.device(try #require(visible.first { $0.name == "linear" })).size == 8 << 20)
    }
}
