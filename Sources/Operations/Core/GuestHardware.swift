/// What the guest needs or offers of the virtual hardware, read from its files: what Glance's hw_* properties say.
public struct GuestHardware: Sendable, Equatable {
    /// The guest boots by UEFI only: it mounts an EFI system partition at /boot/efi and has no BIOS GRUB (whose
    /// modules live in /boot/grub*/i386-pc). A hybrid image, bootable either way, is not UEFI-only.
    public var uefiOnly: Bool
    /// The QEMU guest agent is installed (qemu-guest-agent's binary).
    public var qemuGuestAgent: Bool

    public static let agentPaths = ["/usr/bin/qemu-ga", "/usr/sbin/qemu-ga"]
    static let biosGrubModules = ["/boot/grub2/i386-pc", "/boot/grub/i386-pc"]

    public init(uefiOnly: Bool = false, qemuGuestAgent: Bool = false) {
        self.uefiOnly = uefiOnly
        self.qemuGuestAgent = qemuGuestAgent
    }

    /// Reads `guest`, whose filesystems are mounted as `facts` says.
    public init(reading guest: GuestFilesystem, facts: GuestFacts) throws {
        try self.init(facts: facts, isDirectory: guest.isDirectory, isFile: guest.isFile)
    }

    /// Reads a guest through two questions, for a reader that is no `GuestFilesystem` (the native reader).
    public init(facts: GuestFacts, isDirectory: (String) throws -> Bool, isFile: (String) throws -> Bool) throws {
        let efi = facts.mountpoints["/boot/efi"] != nil
        uefiOnly = try efi && !Self.biosGrubModules.contains { try isDirectory($0) }
        qemuGuestAgent = try Self.agentPaths.contains { try isFile($0) }
    }
}
