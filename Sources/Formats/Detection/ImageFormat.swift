/// Disk image formats, under qemu's names where qemu has one (`vpc` is VHD). iso, aki and ari are raw underneath:
/// qemu and libguestfs open them with `-f raw`, see `qemuFormat`.
public enum ImageFormat: String, Codable, Sendable, CaseIterable {
    case raw, qcow2, qed, vmdk, vdi, vpc, vhdx, iso, luks
    /// Amazon kernel image (a Linux bzImage), ramdisk (a cpio archive, maybe compressed), machine image (a raw disk).
    case aki, ari, ami
    /// Formats qemu opens by probing but imgcustomize does not read: detected so that they are never taken for
    /// raw, and refused with how to convert them. `qcow` is qcow version 1.
    case bochs, cloop, dmg, parallels, qcow

    /// Whether imgcustomize (or the appliance, through qemu) is meant to read this format; the others are only
    /// recognised, and refused.
    public var isRead: Bool {
        switch self {
        case .bochs, .cloop, .dmg, .parallels, .qcow: false
        default: true
        }
    }

    /// The name to pass as `-f` to qemu and as `format` to libguestfs.
    public var qemuFormat: String {
        switch self {
        case .iso, .aki, .ari, .ami: "raw"
        default: rawValue
        }
    }

    /// A format by the name users and Glance give it: qemu's names, plus "vhd" for vpc and "ploop" for parallels
    /// (both in Glance's default disk_formats).
    public init?(name: String) {
        let glanceNames: [String: ImageFormat] = ["vhd": .vpc, "ploop": .parallels]
        let lower = name.lowercased()
        guard let format = glanceNames[lower] ?? ImageFormat(rawValue: lower) else { return nil }
        self = format
    }
}
