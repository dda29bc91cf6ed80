/// The QCOW2 header and its extensions (QEMU's docs/interop/qcow2.rst), parsed and checked for sanity, never
/// trusted: every offset and size is bounded against the file size before anyone follows it.
public struct QCOW2Header: Sendable, Equatable {
    public static let magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]  // "QFI\xfb"

    public enum CompressionType: UInt8, Sendable, Codable { case deflate = 0, zstd = 1 }

    public struct IncompatibleFeatures: OptionSet, Sendable, Equatable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let dirty = Self(rawValue: 1 << 0)
        public static let corrupt = Self(rawValue: 1 << 1)
        public static let externalDataFile = Self(rawValue: 1 << 2)
        public static let compressionType = Self(rawValue: 1 << 3)
        public static let extendedL2 = Self(rawValue: 1 << 4)
        public static let known: Self = [.dirty, .corrupt, .externalDataFile, .compressionType, .extendedL2]
    }

    public var version: UInt32
    public var backingFileOffset: UInt64
    public var backingFileSize: UInt32
    public var clusterBits: UInt32
    public var virtualSize: UInt64
    public var cryptMethod: UInt32
    public var l1Size: UInt32
    public var l1TableOffset: UInt64
    public var refcountTableOffset: UInt64
    public var refcountTableClusters: UInt32
    public var snapshotCount: UInt32
    public var snapshotsOffset: UInt64
    public var incompatibleFeatures: IncompatibleFeatures
    public var compatibleFeatures: UInt64
    public var autoclearFeatures: UInt64
    public var refcountOrder: UInt32
    public var headerLength: UInt32
    public var compressionType: CompressionType

    // From the header extensions and cluster 0.
    public var backingFile: String?
    public var backingFormat: String?
    public var externalDataFile: String?
    public var hasBitmaps: Bool
    public var hasEncryptionHeader: Bool
    /// Names of feature bits from the feature name table, keyed by "incompatible:N", "compatible:N", "autoclear:N".
    public var featureNames: [String: String]
    /// False when `prefix` ended inside cluster 0 (and the file goes on) before the extension chain or the backing
    /// file name did: the fields above may be incomplete, so read all of cluster 0 and parse again.
    public var extensionsComplete: Bool

    public var clusterSize: Int { 1 << Int(clusterBits) }
    public var refcountBits: Int { 1 << Int(refcountOrder) }
    public var extendedL2: Bool { incompatibleFeatures.contains(.extendedL2) }
    /// L2 entries per table: a cluster of 8-byte entries, or 16-byte ones with extended L2.
    public var l2Entries: Int { clusterSize / (extendedL2 ? 16 : 8) }
    public var unknownIncompatibleFeatures: UInt64 {
        incompatibleFeatures.rawValue & ~IncompatibleFeatures.known.rawValue
    }

    /// Bytes of the file needed to parse the header and its extensions: cluster 0, capped at 2 MiB.
    public static let prefixLength = 2 << 20

    /// Parses the header from the first bytes of a file (up to `prefixLength`; less when the file is smaller).
    /// `fileSize` bounds every table offset. Throws a `FormatError` naming the field and offset for anything
    /// malformed.
    public init(prefix bytes: [UInt8], fileSize: Int64, file: String) throws(FormatError) {
        let c = ByteCursor(bytes, file: file)
        guard c.matches(Self.magic, at: 0) else { throw c.error(at: 0, "not a qcow2 image (no QFI\\xfb magic)") }
        version = try c.bigEndian(UInt32.self, at: 4)
        guard version == 2 || version == 3 else {
            throw c.error(at: 4, "qcow2 version \(version) is not supported (only 2 and 3 exist)")
        }
        backingFileOffset = try c.bigEndian(UInt64.self, at: 8)
        backingFileSize = try c.bigEndian(UInt32.self, at: 16)
        clusterBits = try c.bigEndian(UInt32.self, at: 20)
        guard (9...21).contains(clusterBits) else {
            throw c.error(at: 20, "cluster_bits \(clusterBits) is outside 9...21")
        }
        virtualSize = try c.bigEndian(UInt64.self, at: 24)
        guard virtualSize <= UInt64(1) << 56 else {
            throw c.error(at: 24, "virtual size \(virtualSize) is absurd (over 64 PiB)")
        }
        cryptMethod = try c.bigEndian(UInt32.self, at: 32)
        l1Size = try c.bigEndian(UInt32.self, at: 36)
        l1TableOffset = try c.bigEndian(UInt64.self, at: 40)
        refcountTableOffset = try c.bigEndian(UInt64.self, at: 48)
        refcountTableClusters = try c.bigEndian(UInt32.self, at: 56)
        snapshotCount = try c.bigEndian(UInt32.self, at: 60)
        snapshotsOffset = try c.bigEndian(UInt64.self, at: 64)

        if version == 3 {
            incompatibleFeatures = IncompatibleFeatures(rawValue: try c.bigEndian(UInt64.self, at: 72))
            compatibleFeatures = try c.bigEndian(UInt64.self, at: 80)
            autoclearFeatures = try c.bigEndian(UInt64.self, at: 88)
            refcountOrder = try c.bigEndian(UInt32.self, at: 96)
            headerLength = try c.bigEndian(UInt32.self, at: 100)
            guard headerLength >= 104, headerLength % 8 == 0 else {
                throw c.error(at: 100, "header_length \(headerLength) must be at least 104 and a multiple of 8")
            }
            guard refcountOrder <= 6 else { throw c.error(at: 96, "refcount_order \(refcountOrder) is over 6") }
            if headerLength >= 105 {
                let raw = try c.u8(104)
                guard let type = CompressionType(rawValue: raw) else {
                    throw c.error(at: 104, "unknown compression type \(raw)")
                }
                compressionType = type
            } else {
                compressionType = .deflate
            }
            guard (compressionType != .deflate) == incompatibleFeatures.contains(.compressionType) else {
                throw c.error(at: 72, "compression type bit and compression_type field disagree")
            }
        } else {
            incompatibleFeatures = []
            compatibleFeatures = 0
            autoclearFeatures = 0
            refcountOrder = 4
            headerLength = 72
            compressionType = .deflate
        }

        let clusterSize = UInt64(1) << UInt64(clusterBits)
        let limit = UInt64(max(fileSize, 0))
        func checkTable(_ name: String, _ offset: UInt64, bytes: UInt64, field: Int) throws(FormatError) {
            guard offset % clusterSize == 0 else { throw c.error(at: field, "\(name) offset \(offset) is not cluster aligned") }
            guard offset <= limit, bytes <= limit - offset else {
                throw c.error(at: field, "\(name) at \(offset) (\(bytes) bytes) lies beyond the end of the file (\(limit) bytes)")
            }
        }
        // qemu's own limit on the L1 table is 32 MiB of entries.
        guard l1Size <= 32 << 20 / 8 else { throw c.error(at: 36, "l1_size \(l1Size) is absurd") }
        let l2Entries = clusterSize / (incompatibleFeatures.contains(.extendedL2) ? 16 : 8)
        let needed = (virtualSize + clusterSize * l2Entries - 1) / (clusterSize * l2Entries)
        guard UInt64(l1Size) >= needed else {
            throw c.error(at: 36, "l1_size \(l1Size) cannot map the virtual size \(virtualSize) (needs \(needed))")
        }
        if l1Size > 0 { try checkTable("L1 table", l1TableOffset, bytes: UInt64(l1Size) * 8, field: 40) }
        guard refcountTableClusters <= 1 << 20 else {
            throw c.error(at: 56, "refcount_table_clusters \(refcountTableClusters) is absurd")
        }
        try checkTable("refcount table", refcountTableOffset, bytes: UInt64(refcountTableClusters) * clusterSize, field: 48)

        // Header extensions: type, length, data padded to 8, until type 0 or the end of cluster 0.
        var backingFormat: String?
        var externalDataFile: String?
        var featureNames: [String: String] = [:]
        var hasBitmaps = false
        var hasEncryptionHeader = false
        let extensionEnd = min(Int(clusterSize), c.count)
        // A prefix shorter than cluster 0 of a file that goes on: running out of it is not an error, only unfinished.
        let partial = c.count < Int(clusterSize) && Int64(c.count) < fileSize
        var complete = true
        var terminated = false
        var offset = Int(headerLength)
        while offset + 8 <= extensionEnd {
            let type = try c.bigEndian(UInt32.self, at: offset)
            let length = Int(try c.bigEndian(UInt32.self, at: offset + 4))
            if type == 0 {
                terminated = true
                break
            }
            let data = offset + 8
            guard length <= extensionEnd - data else {
                if partial {
                    complete = false
                    break
                }
                throw c.error(at: offset + 4, "header extension 0x\(String(type, radix: 16)) of \(length) bytes runs past cluster 0")
            }
            switch type {
            case 0xE279_2ACA: backingFormat = try c.string(data, length)
            case 0x4441_5441: externalDataFile = try c.string(data, length)
            case 0x2385_2875: hasBitmaps = true
            case 0x0537_BE77: hasEncryptionHeader = true
            case 0x6803_F857:
                var entry = data
                while entry + 48 <= data + length {
                    let kind = switch try c.u8(entry) {
                    case 0: "incompatible"
                    case 1: "compatible"
                    case 2: "autoclear"
                    default: "unknown"
                    }
                    featureNames["\(kind):\(try c.u8(entry + 1))"] = try c.string(entry + 2, 46)
                    entry += 48
                }
            default: break
            }
            offset = data + (length + 7) / 8 * 8
        }
        if partial && !terminated { complete = false }
        self.backingFormat = backingFormat
        self.externalDataFile = externalDataFile
        self.featureNames = featureNames
        self.hasBitmaps = hasBitmaps
        self.hasEncryptionHeader = hasEncryptionHeader

        if backingFileOffset != 0 {
            guard backingFileSize <= 1023 else {
                throw c.error(at: 16, "backing file name of \(backingFileSize) bytes is over qemu's 1023")
            }
            guard backingFileOffset < clusterSize, let start = Int(exactly: backingFileOffset) else {
                throw c.error(at: 8, "backing file name at \(backingFileOffset) lies outside cluster 0")
            }
            if partial && start + Int(backingFileSize) > c.count {
                complete = false
                backingFile = nil
            } else {
                backingFile = String(decoding: try c.slice(start, Int(backingFileSize)), as: UTF8.self)
            }
        } else {
            backingFile = nil
        }
        extensionsComplete = complete
    }
}
