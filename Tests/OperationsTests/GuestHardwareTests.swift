import Testing
@testable import Operations

/// The virtual hardware a guest needs or can use (Glance's hw_ properties), from its files.
@Suite struct GuestHardwareTests {
    @Test func hardwareFollowsFromTheGuestsFiles() throws {
        let tree = try TemporaryTree()
        let uefi = GuestFacts(type: "linux", distro: "debian", mountpoints: ["/": "/dev/sda2", "/boot/efi": "/dev/sda1"])
        try tree.file("/boot/efi/EFI/debian/grubx64.efi", "")
        #expect(try GuestHardware(reading: tree.guest, facts: uefi) == GuestHardware(uefiOnly: true))
        try tree.file("/usr/sbin/qemu-ga", "")
        #expect(try GuestHardware(reading: tree.guest, facts: uefi) == GuestHardware(uefiOnly: true, qemuGuestAgent: true))
        // BIOS GRUB too: a hybrid image, bootable either way.
        try tree.file("/boot/grub2/i386-pc/normal.mod", "")
        #expect(try GuestHardware(reading: tree.guest, facts: uefi).uefiOnly == false)
        let bios = GuestFacts(type: "linux", distro: "rhel", mountpoints: ["/": "/dev/sda1"])
        #expect(try GuestHardware(reading: tree.guest, facts: bios).uefiOnly == false)
    }
}
