/// A btrfs subvolume as libguestfs names a mountable, `btrfsvol:DEVICE/PATH`: btrfsvol:/dev/sda2/root, and over
/// device-mapper btrfsvol:/dev/mapper/NAME/root or btrfsvol:/dev/VG/LV/root. The name does not say where DEVICE ends
/// and PATH begins: a device has two components (/dev/sda2, /dev/md127) or three (/dev/mapper/NAME, /dev/VG/LV), so
/// the splits are given shortest first and the caller asks the appliance which one holds the filesystem.
struct BtrfsVolumeName: Equatable {
    static let prefix = "btrfsvol:"

    /// The name's components after the prefix: ["dev", "sda2", "root"].
    private let components: [Substring]

    /// Nil for a mountable that is not a btrfs subvolume (a device).
    init?(_ mountable: String) {
        guard mountable.hasPrefix(Self.prefix) else { return nil }
        components = mountable.dropFirst(Self.prefix.count).split(separator: "/")
    }

    /// The name of subvolume `path` of the filesystem on `device`.
    static func name(device: String, path: some StringProtocol) -> String { "\(prefix)\(device)/\(path)" }

    /// The ways to read it as a device and a subvolume path, shortest device first; none when it names no device.
    var splits: [(device: String, path: String)] {
        [2, 3].filter { components.count > $0 && components.first == "dev" }.map { length in
            ("/" + components.prefix(length).joined(separator: "/"), components.dropFirst(length).joined(separator: "/"))
        }
    }

    /// The device as a partition, a disk or an md array would be named (/dev/sda2): its first two components.
    var plainDevice: String? { splits.first?.device }

    /// The subvolume's own name, its path's last component ("root").
    var lastComponent: Substring? { components.last }
}
