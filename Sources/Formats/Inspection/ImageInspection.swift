/// What a header-only inspection found: the format, sizes, format-specific facts and the safety verdict.
/// Encodes with qemu-img info's JSON keys where they overlap ("format", "virtual-size", "actual-size",
/// "format-specific") plus "safety".
public struct ImageInspection: Sendable, Encodable {
    public var filename: String
    public var format: ImageFormat
    /// Size of the disk the guest sees, as `qemu-img info -f FORMAT` reports it; nil when the header is malformed.
    public var virtualSize: UInt64?
    /// Allocated bytes on the host (st_blocks * 512), like qemu-img's actual-size.
    public var actualSize: UInt64
    public var fileSize: UInt64
    public var formatSpecific: FormatSpecific?
    public var safety: SafetyReport
    /// Every detector that matched, in detection order ("gpt" and "mbr" name partition tables).
    public var formatsDetected: [String]
    /// Bytes read from the file to produce this inspection.
    public var bytesRead: Int
    /// Where `filename` leads when it is a symlink followed on purpose (`--follow-symlinks`): the path every later
    /// step opens, so that a link changed after the inspection is not followed again.
    public var linkTarget: String?

    /// The path to open after the inspection: the link's target when one was followed.
    public var resolvedPath: String { linkTarget ?? filename }

    private enum CodingKeys: String, CodingKey {
        case filename, format
        case virtualSize = "virtual-size"
        case actualSize = "actual-size"
        case fileSize = "file-size"
        case formatSpecific = "format-specific"
        case safety
        case formatsDetected = "formats-detected"
        case bytesRead = "bytes-read"
        case linkTarget = "link-target"
    }
}

/// Format-specific facts, encoded as qemu-img does: {"type": ..., "data": {...}}.
public enum FormatSpecific: Sendable, Encodable {
    case raw(RawInfo)
    case qcow2(QCOW2Info)
    case qed(QEDInfo)
    case vmdk(VMDKInfo)
    case vdi(VDIInfo)
    case vpc(VHDInfo)
    case vhdx(VHDXInfo)
    case iso(ISOInfo)
    case luks(LUKSInfo)
    case aki(KernelInfo)
    case ari(RamdiskInfo)
    /// A format qemu opens and imgcustomize only recognises, under qemu's name.
    case qemuOnly(ImageFormat, QemuOnlyInfo)

    private enum CodingKeys: String, CodingKey { case type, data }

    public func encode(to encoder: Encoder) throws {
        let (type, data): (String, any Encodable) = switch self {
        case .raw(let data): ("raw", data)
        case .qcow2(let data): ("qcow2", data)
        case .qed(let data): ("qed", data)
        case .vmdk(let data): ("vmdk", data)
        case .vdi(let data): ("vdi", data)
        case .vpc(let data): ("vpc", data)
        case .vhdx(let data): ("vhdx", data)
        case .iso(let data): ("iso", data)
        case .luks(let data): ("luks", data)
        case .aki(let data): ("aki", data)
        case .ari(let data): ("ari", data)
        case .qemuOnly(let format, let data): (format.rawValue, data)
        }
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        try container.encode(data, forKey: .data)
    }
}

public enum AmazonKind: String, Sendable, Codable {
    case aki, ari, ami
}

public struct RawInfo: Sendable, Encodable, Equatable {
    public var partitionTable: PartitionTable?
    /// "ami" when the raw file is a partitioned machine disk.
    public var amazonKind: AmazonKind?

    private enum CodingKeys: String, CodingKey {
        case partitionTable = "partition-table"
        case amazonKind = "amazon-kind"
    }
}

public struct PartitionTable: Sendable, Encodable, Equatable {
    public enum Kind: String, Sendable, Codable { case gpt, mbr }

    public struct Partition: Sendable, Encodable, Equatable {
        public var number: Int
        /// Byte offset of the first sector.
        public var start: UInt64
        public var size: UInt64
        /// MBR type byte as "0x83", or the GPT partition type GUID.
        public var type: String
        public var name: String?
        public var bootable: Bool?
    }

    public var kind: Kind
    public var diskGUID: String?
    public var partitions: [Partition]

    private enum CodingKeys: String, CodingKey {
        case kind, partitions
        case diskGUID = "disk-guid"
    }
}

public struct QCOW2Info: Sendable, Encodable, Equatable {
    public var version: UInt32
    /// qemu-img's name for the version: "0.10" (v2) or "1.1" (v3).
    public var compat: String
    public var clusterSize: Int
    /// "zlib" or "zstd", as qemu-img names them.
    public var compressionType: String
    public var backingFile: String?
    public var backingFormat: String?
    public var dataFile: String?
    public var encrypted: Bool
    public var incompatibleFeatures: UInt64
    public var compatibleFeatures: UInt64
    public var autoclearFeatures: UInt64
    /// Names from the image's feature name table for the bits that are set.
    public var featureNames: [String]
    public var lazyRefcounts: Bool
    public var dirty: Bool
    public var corrupt: Bool
    public var extendedL2: Bool
    public var refcountBits: Int
    public var snapshots: UInt32

    private enum CodingKeys: String, CodingKey {
        case version, compat, encrypted, dirty, corrupt, snapshots
        case clusterSize = "cluster-size"
        case compressionType = "compression-type"
        case backingFile = "backing-filename"
        case backingFormat = "backing-filename-format"
        case dataFile = "data-file"
        case incompatibleFeatures = "incompatible-features"
        case compatibleFeatures = "compatible-features"
        case autoclearFeatures = "autoclear-features"
        case featureNames = "feature-names"
        case lazyRefcounts = "lazy-refcounts"
        case extendedL2 = "extended-l2"
        case refcountBits = "refcount-bits"
    }
}

public struct QEDInfo: Sendable, Encodable, Equatable {
    public var clusterSize: UInt32
    public var tableSize: UInt32
    public var features: UInt64
    public var backingFile: String?

    private enum CodingKeys: String, CodingKey {
        case features
        case clusterSize = "cluster-size"
        case tableSize = "table-size"
        case backingFile = "backing-filename"
    }
}

public struct VMDKInfo: Sendable, Encodable, Equatable {
    public struct Extent: Sendable, Encodable, Equatable {
        /// RW, RDONLY or NOACCESS.
        public var access: String
        public var sectors: UInt64
        /// SPARSE, FLAT, ZERO, VMFS, ...
        public var type: String
        public var filename: String?
        public var offset: UInt64?
    }

    public struct Geometry: Sendable, Encodable, Equatable {
        public var cylinders: UInt64
        public var heads: UInt64
        public var sectors: UInt64
    }

    /// "sparse" for a KDMV file with an embedded descriptor, "descriptor" for a text descriptor file.
    public var container: String
    public var createType: String?
    public var adapterType: String?
    public var geometry: Geometry?
    public var virtualHWVersion: String?
    public var cid: String?
    public var parentCID: String?
    public var extents: [Extent]
    /// Sparse header version, grain size in bytes, and whether grains are deflate-compressed.
    public var version: UInt32?
    public var grainSize: UInt64?
    public var compressed: Bool?

    private enum CodingKeys: String, CodingKey {
        case container, geometry, cid, extents, version, compressed
        case createType = "create-type"
        case adapterType = "adapter-type"
        case virtualHWVersion = "virtual-hw-version"
        case parentCID = "parent-cid"
        case grainSize = "grain-size"
    }
}

public struct VDIInfo: Sendable, Encodable, Equatable {
    /// "dynamic" or "static" (qemu's names; VirtualBox says normal and fixed).
    public var imageType: String
    public var version: String
    public var blockSize: UInt32
    public var diskSize: UInt64

    private enum CodingKeys: String, CodingKey {
        case version
        case imageType = "image-type"
        case blockSize = "block-size"
        case diskSize = "disk-size"
    }
}

public struct VHDInfo: Sendable, Encodable, Equatable {
    /// "fixed", "dynamic" or "differencing".
    public var diskType: String
    public var creatorApplication: String
    public var creatorVersion: String
    public var creatorHostOS: String
    public var originalSize: UInt64
    public var currentSize: UInt64
    public var cylinders: UInt16
    public var heads: UInt8
    public var sectorsPerTrack: UInt8
    public var blockSize: UInt32?

    private enum CodingKeys: String, CodingKey {
        case cylinders, heads
        case diskType = "disk-type"
        case creatorApplication = "creator-application"
        case creatorVersion = "creator-version"
        case creatorHostOS = "creator-host-os"
        case originalSize = "original-size"
        case currentSize = "current-size"
        case sectorsPerTrack = "sectors-per-track"
        case blockSize = "block-size"
    }
}

public struct VHDXInfo: Sendable, Encodable, Equatable {
    public var blockSize: UInt32?
    public var logicalSectorSize: UInt32?
    public var hasParent: Bool

    private enum CodingKeys: String, CodingKey {
        case blockSize = "block-size"
        case logicalSectorSize = "logical-sector-size"
        case hasParent = "has-parent"
    }
}

public struct ISOInfo: Sendable, Encodable, Equatable {
    /// "iso9660", "udf" or "iso9660+udf".
    public var filesystem: String
    public var volumeLabel: String?
    /// Volume space size times logical block size from the primary volume descriptor.
    public var volumeSize: UInt64?
    public var partitionTable: PartitionTable?

    private enum CodingKeys: String, CodingKey {
        case filesystem
        case volumeLabel = "volume-label"
        case volumeSize = "volume-size"
        case partitionTable = "partition-table"
    }
}

public struct LUKSInfo: Sendable, Encodable, Equatable {
    public var version: UInt16
    public var cipherName: String?
    public var cipherMode: String?
    public var hashSpec: String?
    public var payloadOffset: UInt64?
    public var uuid: String?
    public var activeKeySlots: Int?

    private enum CodingKeys: String, CodingKey {
        case version, uuid
        case cipherName = "cipher-name"
        case cipherMode = "cipher-mode"
        case hashSpec = "hash-spec"
        case payloadOffset = "payload-offset"
        case activeKeySlots = "active-key-slots"
    }
}

public struct KernelInfo: Sendable, Encodable, Equatable {
    public var amazonKind: AmazonKind
    /// x86 boot protocol version, "2.15".
    public var bootProtocol: String
    public var kernelVersion: String?

    private enum CodingKeys: String, CodingKey {
        case amazonKind = "amazon-kind"
        case bootProtocol = "boot-protocol"
        case kernelVersion = "kernel-version"
    }
}

public struct RamdiskInfo: Sendable, Encodable, Equatable {
    public var amazonKind: AmazonKind
    /// "gzip", "xz", "zstd", "lz4", "bzip2", "lzma" or "none" (a plain newc cpio).
    public var compression: String

    private enum CodingKeys: String, CodingKey {
        case compression
        case amazonKind = "amazon-kind"
    }
}

/// What the header of a format imgcustomize does not read says, as far as it matters before converting it.
public struct QemuOnlyInfo: Sendable, Encodable, Equatable {
    /// The header's version (bochs "1" or "2", qcow "1", parallels "2", dmg's koly version).
    public var version: String?
    /// Block or cluster size in bytes, where the header gives one.
    public var blockSize: UInt64?
    public var backingFile: String?
    public var encrypted: Bool?

    public init(version: String? = nil, blockSize: UInt64? = nil, backingFile: String? = nil, encrypted: Bool? = nil) {
        self.version = version
        self.blockSize = blockSize
        self.backingFile = backingFile
        self.encrypted = encrypted
    }

    private enum CodingKeys: String, CodingKey {
        case version, encrypted
        case blockSize = "block-size"
        case backingFile = "backing-filename"
    }
}
