import Foundation
import Testing
import Formats
@testable import NativeReader
import TestSupport

/// A raw disk file of `megabytes`, partitioned by sfdisk from `script`.
func partitionedDisk(_ directory: TestDirectory, _ name: String, megabytes: Int, sfdisk script: String) throws -> String {
    let path = directory.path(name)
    try runTool("truncate", ["-s", "\(megabytes)M", path])
    _ = try runProcess("/usr/sbin/sfdisk", ["-q", path], input: script)
    return path
}

/// The tree every ext test image is made from, with what each file must read as.
struct ExtTree {
    let directory: TestDirectory
    var root: String { directory.path("tree") }
    /// 300 KiB: past 12 direct blocks and into the double indirect ones at a 1 KiB block size.
    let big: [UInt8] = (0..<(300 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 10) }
    let longTarget = "usr/" + String(repeating: "long-directory-name/", count: 6) + "file"

    init() throws {
        directory = try TestDirectory()
        let fm = FileManager.default
        for sub in ["etc", "usr/bin", "many", "usr/" + String(repeating: "long-directory-name/", count: 6)] {
            try fm.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true)
        }
        try "guest-host\n".write(toFile: root + "/etc/hostname", atomically: false, encoding: .utf8)
        try Data(big).write(to: URL(fileURLWithPath: root + "/usr/bin/big"))
        try "deep\n".write(toFile: root + "/" + longTarget, atomically: false, encoding: .utf8)
        for index in 0..<300 { try "\(index)".write(toFile: root + "/many/file-\(index)", atomically: false, encoding: .utf8) }
        try fm.createSymbolicLink(atPath: root + "/bin", withDestinationPath: "usr/bin")
        try fm.createSymbolicLink(atPath: root + "/slow", withDestinationPath: longTarget)
        try fm.createSymbolicLink(atPath: root + "/loop-a", withDestinationPath: "loop-b")
        try fm.createSymbolicLink(atPath: root + "/loop-b", withDestinationPath: "/loop-a")
        try fm.createSymbolicLink(atPath: root + "/escape", withDestinationPath: "../../../../../etc/hostname")
        try fm.createSymbolicLink(atPath: root + "/etc/absolute", withDestinationPath: "/etc/hostname")
    }

    func image(_ name: String, mkfs: String, _ options: [String]) throws -> String {
        let path = directory.path(name)
        try runTool("truncate", ["-s", "32M", path])
        try runTool(mkfs, ["-q", "-F", "-L", "treelabel", "-d", root] + options + [path])
        return path
    }

    /// Reads everything back through the native reader and checks it against the tree.
    func check(_ path: String) throws {
        let filesystem = try Ext4Filesystem(device: ImageDevice(source: RawReader(path: path), name: "/dev/sda"))
        #expect(filesystem.label == "treelabel")
        let guest = GuestFS(root: filesystem)
        #expect(try guest.readFile("/etc/hostname") == Array("guest-host\n".utf8))
        #expect(try guest.readFile("/bin/big", limit: 1 << 20) == big)
        #expect(try guest.read("/usr/bin/big", count: 20) == Array(big.prefix(20)))
        #expect(try guest.readlink("/slow") == longTarget)
        #expect(try guest.readFile("/slow") == Array("deep\n".utf8))
        #expect(try guest.readlink("/bin") == "usr/bin")
        #expect(try guest.kind("/bin", followLast: false) == .symlink)
        #expect(try guest.kind("/bin") == .directory)
        #expect(try guest.kind("/nothing/here") == nil)
        #expect(try guest.kind("/etc/hostname/below") == nil)
        // Contained: ".." past the root stays at the root.
        #expect(try guest.readFile("/escape") == Array("guest-host\n".utf8))
        #expect(try guest.readFile("/etc/absolute") == Array("guest-host\n".utf8))
        let loop = #expect(throws: ReaderError.self) { try guest.readFile("/loop-a") }
        #expect(loop?.kind == .symlinkLoop)
        let tooLarge = #expect(throws: ReaderError.self) { try guest.readFile("/bin/big", limit: 1000) }
        #expect(tooLarge?.kind == .tooLarge)
        let names = try guest.listDirectory("/many")
        #expect(names.count == 300 && names.contains("file-299"))
        #expect(try guest.readFile("/many/file-123") == Array("123".utf8))
        #expect(try guest.listDirectory("/") .contains("etc"))
        #expect(try guest.stat("/etc/hostname").size == 11)
    }
}

@Suite(.fixtures(guestFixtures)) struct NativeReaderTests {
    @Test func ext4WithMetadataChecksumsAnd64Bit() throws {
        let tree = try ExtTree()
        let path = try tree.image("ext4.img", mkfs: "mkfs.ext4", ["-O", "64bit,metadata_csum"])
        try tree.check(path)
    }

    @Test func ext4WithInlineData() throws {
        let tree = try ExtTree()
        try tree.check(try tree.image("inline.img", mkfs: "mkfs.ext4", ["-O", "inline_data,^has_journal", "-I", "256"]))
    }

    @Test func ext2BlockMapsAt1KiBBlocks() throws {
        let tree = try ExtTree()
        try tree.check(try tree.image("ext2.img", mkfs: "mkfs.ext2", ["-b", "1024"]))
        try tree.check(try tree.image("ext3.img", mkfs: "mkfs.ext3", ["-b", "4096"]))
    }

    @Test func mbrWithAnExtendedChain() throws {
        let directory = try TestDirectory()
        let path = try partitionedDisk(directory, "mbr.img", megabytes: 64, sfdisk: """
            label: dos
            start=2048, size=16384, type=83, bootable
            start=18432, size=40960, type=5
            start=20480, size=8192, type=83
            start=30720, size=8192, type=8e
            start=59392, size=4096, type=82
            """)
        let table = try #require(try PartitionTable.read(ImageDevice(source: RawReader(path: path))))
        #expect(table.scheme == .mbr)
        #expect(table.partitions.map(\.number) == [1, 2, 5, 6, 3])
        #expect(table.partitions.map { $0.start / 512 } == [2048, 18432, 20480, 30720, 59392])
        #expect(table.partitions.map { $0.length / 512 } == [16384, 40960, 8192, 8192, 4096])
        #expect(table.partitions.map(\.type) == ["0x83", "0x05", "0x83", "0x8e", "0x82"])
        #expect(table.partitions.map(\.isExtended) == [false, true, false, false, false])
    }

    @Test func gptAndItsBackupHeader() throws {
        let directory = try TestDirectory()
        let path = try partitionedDisk(directory, "gpt.img", megabytes: 64, sfdisk: """
            label: gpt
            start=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
            start=8192, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
            """)
        let read = { try #require(try PartitionTable.read(ImageDevice(source: RawReader(path: path)))) }
        let table = try read()
        #expect(table.scheme == .gpt)
        #expect(table.partitions.map(\.number) == [1, 2])
        #expect(table.partitions.map { $0.start / 512 } == [2048, 8192])
        #expect(table.partitions.map(\.type) == ["c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
                                                 "0fc63daf-8483-4772-8e79-3d69d8477de4"])
        // A damaged primary header: the backup at the last LBA answers the same.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seek(toOffset: 512 + 40)
        handle.write(Data([0xFF]))
        try handle.close()
        #expect(try read() == table)
    }

    /// A Linux guest of the fixtures: MBR, ext4 on /dev/sda1, read through the qcow2 reader.
    @Test func ubuntuFixtureThroughQCOW2() throws {
        let disk = try ImageDevice(path: guestFixtures.path("ubuntu2404.qcow2"))
        let table = try #require(try PartitionTable.read(disk))
        let first = try #require(table.partitions.first)
        let filesystem = try Ext4Filesystem(device: SliceDevice(disk, start: first.start, length: first.length,
                                                                name: "/dev/sda1"))
        let guest = GuestFS(root: filesystem)
        let release = String(decoding: try guest.readFile("/etc/os-release"), as: UTF8.self)
        #expect(release.contains("VERSION_ID=\"24.04\""))
        #expect(try guest.read("/bin/bash", count: 4) == [0x7F, 0x45, 0x4C, 0x46])
        #expect(try guest.listDirectory("/etc").contains("fstab"))
    }
}
