/// The image properties `openstack image create` wants that follow from the file itself (for a VMDK also the disk and
/// adapter types Nova's VMware driver reads); with `inspect --os`, the guest's inspection adds architecture,
/// os_distro, os_version, os_name, os_type and the hw_* properties that follow from the guest.
public struct GlanceProperties: Sendable, Encodable, Equatable {
    /// Glance's disk_format: qcow2, raw, vhd, vhdx, vmdk, vdi, iso, aki, ari, ami, ...
    public var diskFormat: String
    /// Glance's container_format: bare, or aki/ari/ami for the Amazon kinds.
    public var containerFormat: String
    /// Smallest disk in GB (GiB, as Nova counts flavors) that holds the virtual size, rounded up.
    public var minDisk: UInt64
    /// From the guest, when it was inspected: x86_64, i686, aarch64, ...
    public var architecture: String?
    /// os_distro as Glance's metadata catalog spells it: rhel, centos, ubuntu, ...
    public var osDistro: String?
    /// os_version: "7.9".
    public var osVersion: String?
    /// os_name: the libosinfo id ("rhel7.9") that lets Nova pick the guest's optimal virtual hardware.
    public var osName: String?
    /// os_type: linux or windows.
    public var osType: String?
    /// vmware_disktype, for a VMDK: streamOptimized, sparse (monolithicSparse) or preallocated (monolithicFlat).
    public var vmwareDiskType: String?
    /// vmware_adaptertype, for a VMDK, spelled as Nova's VMware driver compares it: lsiLogic, busLogic, ide,
    /// lsiLogicsas, paraVirtual.
    public var vmwareAdapterType: String?
    /// hw_firmware_type: "uefi" for a guest that boots by UEFI only; nil (BIOS, Nova's default) otherwise.
    public var hwFirmwareType: String?
    /// hw_qemu_guest_agent: "yes" when the guest has the QEMU guest agent, so that Nova gives it the channel.
    public var hwQemuGuestAgent: String?
    /// hw_disk_bus, where the guest cannot boot from Nova's default virtio disk (a Windows guest without viostor).
    public var hwDiskBus: String?
    /// hw_scsi_model: virtio-scsi for a guest whose disk bus is scsi.
    public var hwScsiModel: String?
    /// hw_vif_model, where the guest has no virtio network driver (a Windows guest without netkvm).
    public var hwVifModel: String?

    private enum CodingKeys: String, CodingKey {
        case diskFormat = "disk_format"
        case containerFormat = "container_format"
        case minDisk = "min_disk"
        case architecture
        case osDistro = "os_distro"
        case osVersion = "os_version"
        case osName = "os_name"
        case osType = "os_type"
        case vmwareDiskType = "vmware_disktype"
        case vmwareAdapterType = "vmware_adaptertype"
        case hwFirmwareType = "hw_firmware_type"
        case hwQemuGuestAgent = "hw_qemu_guest_agent"
        case hwDiskBus = "hw_disk_bus"
        case hwScsiModel = "hw_scsi_model"
        case hwVifModel = "hw_vif_model"
    }

    /// Every property as `openstack image create --property KEY=VALUE` takes it, in a stable order.
    public var properties: [(key: String, value: String)] {
        let all: [(String, String?)] = [
            ("disk_format", diskFormat), ("container_format", containerFormat), ("min_disk", String(minDisk)),
            ("architecture", architecture), ("os_distro", osDistro), ("os_version", osVersion),
            ("os_name", osName), ("os_type", osType), ("hw_firmware_type", hwFirmwareType),
            ("hw_qemu_guest_agent", hwQemuGuestAgent), ("hw_disk_bus", hwDiskBus), ("hw_scsi_model", hwScsiModel),
            ("hw_vif_model", hwVifModel),
            ("vmware_disktype", vmwareDiskType), ("vmware_adaptertype", vmwareAdapterType),
        ]
        return all.compactMap { key, value in value.map { (key, $0) } }
    }

    /// The arguments of `openstack image create` that carry these properties, one word each, ready to pass on
    /// without a shell: `--disk-format raw --container-format bare --min-disk 7 --property os_distro=rhel ...`.
    public var createArguments: [String] {
        var arguments = ["--disk-format", diskFormat, "--container-format", containerFormat, "--min-disk", String(minDisk)]
        for (key, value) in properties where !["disk_format", "container_format", "min_disk"].contains(key) {
            arguments += ["--property", "\(key)=\(value)"]
        }
        return arguments
    }

    /// Nova's spelling of a VMDK descriptor's ddb.adapterType; nil for one Nova has no name for (legacyESX).
    static func novaAdapterType(_ descriptor: String) -> String? {
        switch descriptor.lowercased() {
        case "lsilogic": "lsiLogic"
        case "buslogic": "busLogic"
        case "ide": "ide"
        case "lsisas1068": "lsiLogicsas"
        case "pvscsi": "paraVirtual"
        default: nil
        }
    }

    /// Nova's name for a VMDK createType; nil for the kinds imgcustomize refuses anyway (split, VMFS, ...).
    static func novaDiskType(_ createType: String) -> String? {
        switch createType {
        case "streamOptimized": "streamOptimized"
        case "monolithicSparse": "sparse"
        case "monolithicFlat": "preallocated"
        default: nil
        }
    }

    /// `amazon` publishes a partitioned raw disk as an AMI (disk and container format ami) instead of raw/bare.
    public init(_ inspection: ImageInspection, amazon: Bool = false) {
        switch inspection.format {
        case .aki, .ari, .ami:
            diskFormat = inspection.format.rawValue
            containerFormat = inspection.format.rawValue
        case .raw:
            if amazon, case .raw(let info)? = inspection.formatSpecific, info.amazonKind == .ami {
                diskFormat = "ami"
                containerFormat = "ami"
            } else {
                diskFormat = "raw"
                containerFormat = "bare"
            }
        case .vpc:
            diskFormat = "vhd"
            containerFormat = "bare"
        case .parallels:
            diskFormat = "ploop"
            containerFormat = "bare"
        default:
            diskFormat = inspection.format.rawValue
            containerFormat = "bare"
        }
        if case .vmdk(let info)? = inspection.formatSpecific {
            vmwareDiskType = info.createType.flatMap(Self.novaDiskType)
            vmwareAdapterType = info.adapterType.flatMap(Self.novaAdapterType)
        }
        let gib: UInt64 = 1 << 30
        let size = inspection.virtualSize ?? inspection.fileSize
        minDisk = size / gib + (size % gib == 0 ? 0 : 1)
    }
}
