/// What the guest needs or offers of the virtual hardware, read from its files: what Glance's hw_* properties say.
public struct GuestHardware: Sendable, Equatable {
    /// The guest boots by UEFI only: it mounts an EFI system partition at /boot/efi and has no BIOS GRUB (whose
    /// modules live in /boot/grub*/i386-pc). A hybrid image, bootable either way, is not UEFI-only.
    public var uefiOnly: Bool
    /// The QEMU guest agent is installed (qemu-guest-agent's binary).
    public var qemuGuestAgent: Bool
    /// Glance's hw_disk_bus, where the guest cannot take Nova's default (virtio): a Windows guest without the virtio
    /// storage drivers boots from "sata" (Windows has AHCI in the box), one with only vioscsi from "scsi".
    public var diskBus: String?
    /// hw_scsi_model: "virtio-scsi" when the disk bus is scsi through vioscsi.
    public var scsiModel: String?
    /// hw_vif_model, where the guest cannot take virtio: "e1000" for a Windows guest without netkvm.
    public var vifModel: String?

    public static let agentPaths = ["/usr/bin/qemu-ga", "/usr/sbin/qemu-ga"]
    static let biosGrubModules = ["/boot/grub2/i386-pc", "/boot/grub/i386-pc"]

    public init(uefiOnly: Bool = false, qemuGuestAgent: Bool = false, diskBus: String? = nil, scsiModel: String? = nil,
                vifModel: String? = nil) {
        self.uefiOnly = uefiOnly
        self.qemuGuestAgent = qemuGuestAgent
        self.diskBus = diskBus
        self.scsiModel = scsiModel
        self.vifModel = vifModel
    }

    /// Reads `guest`, whose filesystems are mounted as `facts` says.
    public init(reading guest: GuestFilesystem, facts: GuestFacts) throws {
        if let windows = facts.windows {
            try self.init(windows: windows, reading: guest)
        } else {
            try self.init(facts: facts, isDirectory: guest.isDirectory, isFile: guest.isFile)
        }
    }

    /// A Windows guest: UEFI on a GPT disk; the virtio drivers it holds in %SYSTEMROOT%\System32\drivers (viostor,
    /// vioscsi, netkvm) decide the disk bus and network model Nova must give it; the guest agent is qemu-ga.exe
    /// under Program Files. NTFS names are matched ignoring case, as Windows does.
    init(windows: WindowsFacts, reading guest: GuestFilesystem) throws {
        let systemRoot = windows.systemRoot ?? "/Windows"
        // Installed drivers, and those staged where Plug and Play installs them at first boot (inject-virtio-win
        // puts them in Drivers\VirtIO and names that directory in DevicePath).
        let drivers = try Self.namesIgnoringCase(in: systemRoot + "/System32/drivers", guest)
            .union(try Self.namesIgnoringCase(in: systemRoot + "/Drivers/VirtIO", guest))
        let agent = try Self.namesIgnoringCase(in: "/Program Files/Qemu-ga", guest)
        let (disk, scsi): (String?, String?) = drivers.contains("viostor.sys") ? (nil, nil)
            : drivers.contains("vioscsi.sys") ? ("scsi", "virtio-scsi") : ("sata", nil)
        self.init(uefiOnly: windows.firmware == "uefi", qemuGuestAgent: agent.contains("qemu-ga.exe"),
                  diskBus: disk, scsiModel: scsi, vifModel: drivers.contains("netkvm.sys") ? nil : "e1000")
    }

    /// The lowercased names in the directory at `path`, each component of which is matched ignoring case; empty
    /// when it is not there.
    static func namesIgnoringCase(in path: String, _ guest: GuestFilesystem) throws -> Set<String> {
        var directory = "/"
        for component in path.split(separator: "/") {
            guard let match = try guest.list(directory).first(where: { $0.lowercased() == component.lowercased() }) else {
                return []
            }
            directory = (directory == "/" ? "" : directory) + "/" + match
            guard try guest.isDirectory(directory) else { return [] }
        }
        return Set(try guest.list(directory).map { $0.lowercased() })
    }

    /// Reads a guest through two questions, for a reader that is no `GuestFilesystem` (the native reader).
    public init(facts: GuestFacts, isDirectory: (String) throws -> Bool, isFile: (String) throws -> Bool) throws {
        let efi = facts.mountpoints["/boot/efi"] != nil
        uefiOnly = try efi && !Self.biosGrubModules.contains { try isDirectory($0) }
        qemuGuestAgent = try Self.agentPaths.contains { try isFile($0) }
    }
}
