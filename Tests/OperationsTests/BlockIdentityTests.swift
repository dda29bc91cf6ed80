import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree
import TestSupport

/// fs-uuids' rewriting of the files that name filesystems by UUID, on a tree; the UUID changes themselves need the
/// appliance (Tests/CLITests: BlockIdentityImageTests, and the boot tests boot the result).
@Suite struct BlockIdentityTests {
    static let root = "0a1b2c3d-1111-4222-8333-444455556666"
    static let boot = "9f8e7d6c-aaaa-4bbb-8ccc-ddddeeeeffff"

    @Test func everyReferenceIsRewrittenAndOtherTextIsNot() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/fstab", """
            UUID=\(Self.root) / ext4 errors=remount-ro 0 1
            /dev/disk/by-uuid/\(Self.boot) /boot ext4 defaults 0 2
            UUID=ABCD-1234 /boot/efi vfat defaults 0 0

            """)
        try tree.file("/boot/grub/grub.cfg", """
            search --no-floppy --fs-uuid --set=root \(Self.boot)
            linux /vmlinuz root=UUID=\(Self.root) ro quiet
            linux /vmlinuz root=UUID=\(Self.root.uppercased()) ro

            """)
        try tree.file("/boot/efi/EFI/debian/grub.cfg", "search.fs_uuid \(Self.root) root hd0,gpt2\n")
        try tree.file("/boot/loader/entries/linux.conf", "options root=UUID=\(Self.root)\n")
        try tree.file("/etc/motd", "UUID \(Self.root) is only mentioned here\n")
        let newRoot = "11111111-2222-4333-8444-555555555555"
        let newBoot = "66666666-7777-4888-8999-aaaaaaaaaaaa"
        let files = try FilesystemUUIDs.referenceFiles(in: tree.guest)
        #expect(!files.contains("/etc/motd"))
        let rewritten = try rewriteReferences(
            in: tree.guest, files: files,
            replacing: [(Self.root, newRoot), (Self.root.uppercased(), newRoot.uppercased()), (Self.boot, newBoot)])
        #expect(rewritten == ["/etc/fstab", "/boot/grub/grub.cfg", "/boot/efi/EFI/debian/grub.cfg",
                              "/boot/loader/entries/linux.conf"])
        #expect(tree.text("/etc/fstab") == """
            UUID=\(newRoot) / ext4 errors=remount-ro 0 1
            /dev/disk/by-uuid/\(newBoot) /boot ext4 defaults 0 2
            UUID=ABCD-1234 /boot/efi vfat defaults 0 0

            """)
        #expect(tree.text("/boot/grub/grub.cfg") == """
            search --no-floppy --fs-uuid --set=root \(newBoot)
            linux /vmlinuz root=UUID=\(newRoot) ro quiet
            linux /vmlinuz root=UUID=\(newRoot.uppercased()) ro

            """)
        #expect(tree.text("/boot/efi/EFI/debian/grub.cfg") == "search.fs_uuid \(newRoot) root hd0,gpt2\n")
        #expect(tree.text("/etc/motd") == "UUID \(Self.root) is only mentioned here\n")
    }

    /// An EFI image's embedded configuration: the same-length UUID replaced where it lies, every other byte kept.
    @Test func anEFIImageKeepsItsLengthAndEveryOtherByte() throws {
        let tree = try TemporaryTree()
        var image = [UInt8](repeating: 0x90, count: 4096)
        image[0] = 0x4d; image[1] = 0x5a  // "MZ"
        let config = Array("search.fs_uuid \(Self.root) root hd0,gpt2\nset prefix=($root)'/boot/grub'\n".utf8)
        image.replaceSubrange(1000..<(1000 + config.count), with: config)
        try FileManager.default.createDirectory(atPath: tree.path + "/boot/efi/EFI/BOOT", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: tree.path + "/boot/efi/EFI/BOOT/BOOTX64.EFI",
                                               contents: Data(image)))
        let newRoot = "11111111-2222-4333-8444-555555555555"
        let files = try FilesystemUUIDs.referenceFiles(in: tree.guest)
        #expect(try rewriteReferences(in: tree.guest, files: files, replacing: [(Self.root, newRoot)])
                == ["/boot/efi/EFI/BOOT/BOOTX64.EFI"])
        let after = try tree.guest.read("/boot/efi/EFI/BOOT/BOOTX64.EFI")
        var expected = image
        let newConfig = Array("search.fs_uuid \(newRoot) root hd0,gpt2\nset prefix=($root)'/boot/grub'\n".utf8)
        expected.replaceSubrange(1000..<(1000 + newConfig.count), with: newConfig)
        #expect(after == expected)
    }

    /// A tree has no block devices: both operations say so and change nothing.
    @Test func aTreeHasNoIdentitiesToRenew() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/fstab", "UUID=\(Self.root) / ext4 defaults 0 1\n")
        let runner = OperationRunner(guest: tree.guest, recordDiffs: true)
        let fs = try runner.run(FilesystemUUIDs())
        #expect(fs.changed == .no)
        #expect(fs.summary == "a directory tree has no filesystems of its own")
        #expect(try runner.run(LVMUUIDs()).changed == .no)
        #expect(tree.text("/etc/fstab") == "UUID=\(Self.root) / ext4 defaults 0 1\n")
    }
}
