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

/// A Windows guest's virtual hardware: UEFI from its disk's partition table (in its facts), the virtio drivers in
/// System32\drivers (matched ignoring case, as NTFS names are) deciding the disk bus and network model.
@Suite struct WindowsGuestHardwareTests {
    @Test func driversDecideTheBusAndTheNetworkModel() throws {
        let tree = try TemporaryTree()
        let facts = GuestFacts(type: "windows", distro: "windows", mountpoints: ["/": "/dev/sda2"],
                               windows: WindowsFacts(systemRoot: "/Windows", firmware: "bios"))
        try tree.file("/Windows/System32/drivers/disk.sys", "")
        // No virtio driver: a SATA disk and an e1000 NIC, which Windows drives in the box.
        #expect(try GuestHardware(reading: tree.guest, facts: facts)
                == GuestHardware(diskBus: "sata", vifModel: "e1000"))
        try tree.file("/Windows/System32/drivers/VIOSCSI.SYS", "")
        #expect(try GuestHardware(reading: tree.guest, facts: facts)
                == GuestHardware(diskBus: "scsi", scsiModel: "virtio-scsi", vifModel: "e1000"))
        try tree.file("/Windows/System32/drivers/viostor.sys", "")
        try tree.file("/Windows/System32/drivers/netkvm.sys", "")
        try tree.file("/program files/qemu-ga/qemu-ga.exe", "")
        var uefi = facts
        uefi.windows?.firmware = "uefi"
        #expect(try GuestHardware(reading: tree.guest, facts: uefi) == GuestHardware(uefiOnly: true, qemuGuestAgent: true))
    }

    @Test func aMissingSystemRootMeansNoDrivers() throws {
        let tree = try TemporaryTree()
        let facts = GuestFacts(type: "windows", windows: WindowsFacts(systemRoot: "/WINNT"))
        #expect(try GuestHardware(reading: tree.guest, facts: facts) == GuestHardware(diskBus: "sata", vifModel: "e1000"))
    }
}
