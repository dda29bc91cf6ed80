import Foundation
import Testing
import Formats
@testable import NativeReader
import TestSupport

/// A tree as mkfs.btrfs --rootdir copies it: inline and regular files, an empty one, a directory of 3000 names
/// (several leaves under an internal node), a short and a long symlink.
struct BtrfsTree {
    let directory: TestDirectory
    let big = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
    static let slowTarget = String(repeating: "long-", count: 140) + "target"

    init() throws {
        directory = try TestDirectory()
        let root = directory.path("tree")
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/many", withIntermediateDirectories: true)
        try "btrfs-host\n".write(toFile: root + "/etc/hostname", atomically: false, encoding: .utf8)
        try Data().write(to: URL(fileURLWithPath: root + "/empty"))
        try Data(big).write(to: URL(fileURLWithPath: root + "/big"))
        for index in 0..<3000 {
            try "\(index)\n".write(toFile: root + "/many/entry-with-a-longer-name-\(index)", atomically: false, encoding: .utf8)
        }
        try FileManager.default.createSymbolicLink(atPath: root + "/fast", withDestinationPath: "etc/hostname")
        try FileManager.default.createSymbolicLink(atPath: root + "/slow", withDestinationPath: Self.slowTarget)
    }

    func image(_ options: [String]) throws -> String {
        let path = directory.path("btrfs.img")
        try? FileManager.default.removeItem(atPath: path)
        try runTool("truncate", ["-s", "256M", path])
        try runTool("mkfs.btrfs", ["-q", "-L", "btrfslabel", "-U", "6d0a5f3c-2b1e-4c9d-8a7f-3e2d1c0b9a87",
                                   "--rootdir", directory.path("tree")] + options + [path])
        return path
    }
}

@Suite struct BtrfsTests {
    /// Metadata DUP (mkfs's default on one device) or SINGLE, 16 KiB nodes or 4 KiB ones (deeper trees).
    @Test(arguments: [[], ["-m", "single", "-d", "single"], ["--nodesize", "4096"]])
    func readsBackWhatMkfsWrote(options: [String]) throws {
        let tree = try BtrfsTree()
        let filesystem = try BtrfsFilesystem(device: ImageDevice(source: RawReader(path: try tree.image(options))))
        #expect(filesystem.label == "btrfslabel")
        #expect(filesystem.uuid == "6d0a5f3c-2b1e-4c9d-8a7f-3e2d1c0b9a87")
        #expect(filesystem.subvolume == 5)
        #expect(try filesystem.volume.subvolumes().isEmpty)
        let guest = GuestFS(root: filesystem)
        #expect(try guest.listDirectory("/") == ["big", "empty", "etc", "fast", "many", "slow"])
        #expect(try guest.readFile("/etc/hostname") == Array("btrfs-host\n".utf8))
        #expect(try guest.readFile("/empty") == [])
        #expect(try guest.readFile("/big", limit: 4 << 20) == tree.big)
        #expect(try guest.read("/big", count: 100) == Array(tree.big.prefix(100)))
        #expect(try guest.readlink("/fast") == "etc/hostname")
        #expect(try guest.readFile("/fast") == Array("btrfs-host\n".utf8))
        #expect(try guest.readlink("/slow") == BtrfsTree.slowTarget)
        let names = try guest.listDirectory("/many")
        #expect(names.count == 3000 && names.contains("entry-with-a-longer-name-2999"))
        #expect(try guest.readFile("/many/entry-with-a-longer-name-1234") == Array("1234\n".utf8))
        #expect(try guest.kind("/etc/nothing") == nil)
        #expect(try guest.stat("/etc").kind == .directory)
    }

    /// A superblock changed by one byte fails its checksum; another checksum type is "not handled".
    @Test func checksumsAreChecked() throws {
        let tree = try BtrfsTree()
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: try tree.image([]))))
        bytes[65536 + 0x12B] ^= 0x20  // the label's first letter
        let corrupt = #expect(throws: ReaderError.self) { try BtrfsVolume(device: MemoryDevice(bytes)) }
        #expect(corrupt?.kind == .malformed && corrupt?.message.contains("crc32c") == true, "\(String(describing: corrupt))")
        let xxhash = try ImageDevice(source: RawReader(path: try tree.image(["--csum", "xxhash"])))
        let other = #expect(throws: ReaderError.self) { try BtrfsVolume(device: xxhash) }
        #expect(other?.kind == .notHandled, "\(String(describing: other))")
    }

    /// A filesystem over two devices (RAID1 metadata), of which the image is one: "not handled", so that
    /// inspection falls back to the appliance.
    @Test func twoDevicesAreNotHandled() throws {
        let directory = try TestDirectory()
        let first = directory.path("first.img"), second = directory.path("second.img")
        try runTool("truncate", ["-s", "128M", first, second])
        try runTool("mkfs.btrfs", ["-q", "-m", "raid1", "-d", "single", first, second])
        let error = #expect(throws: ReaderError.self) {
            try BtrfsVolume(device: ImageDevice(source: RawReader(path: first)))
        }
        #expect(error?.kind == .notHandled && error?.message.contains("2 devices") == true, "\(String(describing: error))")
    }
}

/// What only the kernel writes: subvolumes (nested, and one made the default), zlib and zstd compressed extents
/// (regular and inline), a preallocated file and one with a hole, made in the appliance by guestfish, then read
/// natively.
@Suite(.serialized) struct BtrfsApplianceTests {
    @Test(.tags(.appliance)) func subvolumesCompressionHolesAndPreallocation() throws {
        let directory = try TestDirectory()
        let image = directory.path("btrfs.img")
        // Half compressible text, half noise: compressed extents of both kinds of block.
        var generator = SystemRandomNumberGenerator()
        let data = (0..<600_000).map { $0 % 8192 < 4096 ? UInt8(65 + $0 % 23) : UInt8.random(in: 0...255, using: &generator) }
        try Data(data).write(to: URL(fileURLWithPath: directory.path("data")))
        let text = String(repeating: "compressible inline text\n", count: 100)
        try text.write(toFile: directory.path("text"), atomically: false, encoding: .utf8)
        let settings = ProcessInfo.processInfo.environment["LIBGUESTFS_BACKEND_SETTINGS"] ?? "force_tcg"
        func upload(_ name: String, _ to: String) -> [String] { ["upload", directory.path(name), to, ":"] }
        try runTool("env", ["LIBGUESTFS_BACKEND_SETTINGS=\(settings)", "guestfish", "-N", "\(image)=disk:256M", "--",
                            "mkfs-btrfs", "/dev/sda", "label:subvols", ":", "mount", "/dev/sda", "/", ":",
                            "btrfs-subvolume-create", "/root", ":", "btrfs-subvolume-create", "/home", ":",
                            "btrfs-subvolume-create", "/root/nested", ":", "mkdir", "/home/user", ":",
                            "write", "/home/user/file", "home file\n", ":", "write", "/root/nested/file", "nested\n", ":",
                            "ln-s", "nested/file", "/root/link", ":",
                            // Mounting the device now mounts "root".
                            "btrfs-subvolume-set-default", "256", "/", ":", "umount", "/", ":",
                            "mount-options", "compress-force=zlib", "/dev/sda", "/", ":"]
                            + upload("data", "/zlib.bin") + upload("text", "/zlib.txt") + [
                            "umount", "/", ":", "mount-options", "compress-force=zstd", "/dev/sda", "/", ":"]
                            + upload("data", "/zstd.bin") + upload("text", "/zstd.txt") + [
                            "fallocate64", "/prealloc", "1048576", ":",
                            "write", "/sparse", "head\n", ":", "truncate-size", "/sparse", "4194304", ":",
                            "pwrite", "/sparse", "tail\n", "4194299", ":", "umount-all", ":", "sync"])
        let volume = try BtrfsVolume(device: ImageDevice(source: RawReader(path: image)))
        #expect(volume.label == "subvols")
        #expect(try volume.defaultSubvolume() == 256)
        #expect(try volume.subvolumes() == [.init(id: 256, path: "root"), .init(id: 257, path: "home"),
                                           .init(id: 258, path: "root/nested")])
        let top = GuestFS(root: try BtrfsFilesystem(volume: volume, subvolume: 5))
        #expect(try top.listDirectory("/") == ["home", "root"])
        #expect(try top.readFile("/home/user/file") == Array("home file\n".utf8))
        let root = GuestFS(root: try BtrfsFilesystem(volume: volume))
        // The kernel did compress them: (extent type, compression) of each file's extents, 1 zlib, 3 zstd.
        func extents(_ path: String) throws -> Set<[UInt8]> {
            let inode = try root.stat(path).number & (1 << 40 - 1)
            return Set(try volume.items(in: try volume.tree(256), tree: "subvolume 256",
                                        from: BtrfsKey(objectID: inode, type: BtrfsKey.extentData, offset: 0),
                                        to: BtrfsKey(objectID: inode, type: BtrfsKey.extentData, offset: .max))
                .map { [$0.data[20], $0.data[16]] })
        }
        #expect(try extents("/zlib.bin").contains([1, 1]) && extents("/zstd.bin").contains([1, 3]))
        #expect(try extents("/zlib.txt") == [[0, 1]] && extents("/zstd.txt") == [[0, 3]])
        #expect(try extents("/prealloc") == [[2, 0]])
        #expect(try root.readFile("/zlib.bin") == data)
        #expect(try root.readFile("/zstd.bin") == data)
        #expect(try root.readFile("/zlib.txt") == Array(text.utf8))
        #expect(try root.readFile("/zstd.txt") == Array(text.utf8))
        #expect(try root.readFile("/prealloc") == [UInt8](repeating: 0, count: 1048576))
        var sparse = [UInt8](repeating: 0, count: 4194304)
        sparse.replaceSubrange(0..<5, with: Array("head\n".utf8))
        sparse.replaceSubrange(4194299..<4194304, with: Array("tail\n".utf8))
        #expect(try root.readFile("/sparse", limit: 8 << 20) == sparse)
        #expect(try root.readFile("/nested/file") == Array("nested\n".utf8))
        #expect(try root.readFile("/link") == Array("nested\n".utf8))
        let home = GuestFS(root: try BtrfsFilesystem(volume: volume, subvolume: 257))
        #expect(try home.listDirectory("/user") == ["file"])
    }
}
