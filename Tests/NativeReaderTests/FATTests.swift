import Foundation
import Testing
import Formats
@testable import NativeReader
import TestSupport

/// EFI system partitions made by mkfs.vfat and filled by mtools' mcopy: FAT12, FAT16 and FAT32, long and short
/// names, a directory over several clusters, a file over many; read through an ext4 root's /boot/efi as a guest's
/// fstab would mount it.
@Suite struct FATTests {
    static let grub = "search --no-floppy --fs-uuid --set=dev 6d0a5f3c\nset prefix=($dev)/grub2\nconfigfile $prefix/grub.cfg\n"

    @Test(arguments: [(12, 2), (16, 32), (32, 48)])
    func espThroughTheFstabMount(bits: Int, megabytes: Int) throws {
        let directory = try TestDirectory()
        let esp = directory.path("esp.img")
        try runTool("truncate", ["-s", "\(megabytes)M", esp])
        // One sector a cluster: the FAT32 image then has the 65525 clusters FAT32 needs.
        try runTool("mkfs.vfat", ["-F", "\(bits)", "-s", "1", "-n", "ESPLABEL", "-i", "1234ABCD", esp])
        let source = directory.path("EFI")
        try FileManager.default.createDirectory(atPath: source + "/fedora", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: source + "/BOOT", withIntermediateDirectories: true)
        try Self.grub.write(toFile: source + "/fedora/grub.cfg", atomically: false, encoding: .utf8)
        let loader = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 9) }
        try Data(loader).write(to: URL(fileURLWithPath: source + "/BOOT/BOOTX64.EFI"))
        try "long\n".write(toFile: source + "/A file with a rather long name.txt", atomically: false, encoding: .utf8)
        for index in 0..<100 {
            try "\(index)\n".write(toFile: source + "/fedora/entry-\(index).conf", atomically: false, encoding: .utf8)
        }
        try runTool("env", ["MTOOLS_SKIP_CHECK=1", "mcopy", "-s", "-i", esp, source, "::/"])

        let fat = try FATFilesystem(device: ImageDevice(source: RawReader(path: esp), name: "/dev/sda1"))
        #expect(fat.bits == bits)
        #expect(fat.label == "ESPLABEL")
        #expect(fat.uuid == "1234-ABCD")

        let tree = directory.path("root")
        try FileManager.default.createDirectory(atPath: tree + "/boot/efi", withIntermediateDirectories: true)
        let root = directory.path("root.img")
        try runTool("truncate", ["-s", "8M", root])
        try runTool("mkfs.ext4", ["-q", "-F", "-d", tree, root])
        let guest = GuestFS(root: try Ext4Filesystem(device: ImageDevice(source: RawReader(path: root), name: "/dev/sda2")))
        guest.mount(fat, on: "/boot/efi")
        #expect(try guest.listDirectory("/boot/efi/EFI") == ["A file with a rather long name.txt", "BOOT", "fedora"])
        #expect(try guest.readFile("/boot/efi/EFI/fedora/grub.cfg") == Array(Self.grub.utf8))
        // Linux's vfat looks names up without regard to case.
        #expect(try guest.readFile("/boot/efi/efi/FEDORA/GRUB.CFG") == Array(Self.grub.utf8))
        #expect(try guest.readFile("/boot/efi/EFI/BOOT/BOOTX64.EFI") == loader)
        #expect(try guest.read("/boot/efi/EFI/BOOT/BOOTX64.EFI", count: 10) == Array(loader.prefix(10)))
        #expect(try guest.readFile("/boot/efi/EFI/A file with a rather long name.txt") == Array("long\n".utf8))
        let names = try guest.listDirectory("/boot/efi/EFI/fedora")
        #expect(names.count == 101 && names.contains("entry-99.conf") && names.contains("grub.cfg"))
        #expect(try guest.readFile("/boot/efi/EFI/fedora/entry-42.conf") == Array("42\n".utf8))
        #expect(try guest.kind("/boot/efi/EFI/nothing") == nil)
        #expect(try guest.kind("/boot/efi/EFI/BOOT") == .directory)
        #expect(try guest.kind("/boot/efi/EFI/BOOT/../fedora/grub.cfg") == .regular)
    }

    /// A FAT whose chain loops back on itself is refused, not followed forever.
    @Test func aLoopingChainIsRefused() throws {
        let directory = try TestDirectory()
        let esp = directory.path("esp.img")
        try runTool("truncate", ["-s", "4M", esp])
        try runTool("mkfs.vfat", ["-F", "16", "-s", "1", esp])
        let data = (0..<5000).map { UInt8(truncatingIfNeeded: $0) }
        try Data(data).write(to: URL(fileURLWithPath: directory.path("FILE.BIN")))
        try runTool("env", ["MTOOLS_SKIP_CHECK=1", "mcopy", "-i", esp, directory.path("FILE.BIN"), "::/"])
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: esp)))
        let fat = try FATFilesystem(device: MemoryDevice(bytes))
        let guest = GuestFS(root: fat)
        #expect(try guest.readFile("/FILE.BIN") == data)
        // The file's first cluster, then its FAT16 entry made to point back at itself.
        let first = try #require(try fat.entries(of: fat.node(0)).first).node
        let cluster = Int(bytes[Int(first) + 26]) | Int(bytes[Int(first) + 27]) << 8
        let entry = Int(fat.fatOffset) + cluster * 2
        bytes[entry] = UInt8(cluster & 0xFF)
        bytes[entry + 1] = UInt8(cluster >> 8)
        let looping = GuestFS(root: try FATFilesystem(device: MemoryDevice(bytes)))
        let error = #expect(throws: ReaderError.self) { try looping.readFile("/FILE.BIN") }
        #expect(error?.kind == .malformed, "\(String(describing: error))")
    }
}
