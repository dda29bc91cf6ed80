import Formats

/// FAT12, FAT16 and FAT32 (an EFI system partition), read-only: the boot sector, the first FAT, cluster chains, the
/// fixed root directory of FAT12/16, short names (with the lowercase flags Windows NT and mtools set) and long
/// names. Names are looked up without regard to ASCII case, as Linux's vfat does. FAT has no inode numbers: a
/// file's node number is the byte offset of its directory entry on the device, the root's is 0.
public final class FATFilesystem: FilesystemReader {
    public let device: any BlockDevice
    public var type: String { "vfat" }
    public let uuid: String
    public let label: String
    public var rootNode: UInt64 { 0 }
    /// 12, 16 or 32.
    public let bits: Int

    let clusterSize: UInt64
    let clusterCount: UInt64
    let fatOffset: UInt64
    let fatBytes: Int
    let rootOffset: UInt64
    let rootBytes: UInt64
    let rootCluster: UInt64
    let dataOffset: UInt64
    private var fat: [UInt8]?

    /// Bounds: the FAT read into memory, entries of one directory, bytes of one directory.
    static let maximumFATBytes = 16 << 20
    static let maximumDirectoryEntries = 1 << 16
    static let maximumDirectorySize: UInt64 = 2 << 20

    public init(device: any BlockDevice) throws {
        self.device = device
        let site = Site(device.name, "FAT boot sector", at: 0)
        let bytes = try device.read(at: 0, count: 512)
        let c = site.cursor(bytes)
        let fields = try parsing(site) { () throws -> [UInt64] in
            guard c.matches([0x55, 0xAA], at: 510) else { throw site.error("has no boot signature 55 AA") }
            return [UInt64(try c.littleEndian(UInt16.self, at: 11)), UInt64(try c.u8(13)),
                    UInt64(try c.littleEndian(UInt16.self, at: 14)), UInt64(try c.u8(16)),
                    UInt64(try c.littleEndian(UInt16.self, at: 17)), UInt64(try c.littleEndian(UInt16.self, at: 19)),
                    UInt64(try c.littleEndian(UInt16.self, at: 22)), UInt64(try c.littleEndian(UInt32.self, at: 32)),
                    UInt64(try c.littleEndian(UInt32.self, at: 36)), UInt64(try c.littleEndian(UInt32.self, at: 44))]
        }
        let (sectorSize, perCluster, reserved, fats, rootEntries, total16, fat16, total32, fat32, rootCluster) =
            (fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6], fields[7], fields[8], fields[9])
        guard sectorSize >= 512, sectorSize <= 4096, sectorSize & (sectorSize - 1) == 0 else {
            throw site.error("sector size \(sectorSize) is not a power of two in 512-4096")
        }
        guard perCluster >= 1, perCluster <= 128, perCluster & (perCluster - 1) == 0 else {
            throw site.error("\(perCluster) sectors per cluster is not a power of two in 1-128")
        }
        guard reserved >= 1, fats >= 1 else { throw site.error("has \(reserved) reserved sectors and \(fats) FATs") }
        let fatSectors = fat16 != 0 ? fat16 : fat32
        let totalSectors = total16 != 0 ? total16 : total32
        let rootSectors = (rootEntries * 32 + sectorSize - 1) / sectorSize
        let metadataSectors = reserved + fats * fatSectors + rootSectors
        guard fatSectors > 0, metadataSectors < totalSectors else {
            throw site.error("\(totalSectors) sectors do not hold \(metadataSectors) of FATs and root directory")
        }
        guard totalSectors * sectorSize <= device.size else {
            throw site.error("\(totalSectors) sectors of \(sectorSize) bytes are more than the device's \(device.size) bytes")
        }
        clusterSize = perCluster * sectorSize
        clusterCount = (totalSectors - metadataSectors) / perCluster
        bits = clusterCount < 4085 ? 12 : clusterCount < 65525 ? 16 : 32
        guard (bits == 32) == (rootEntries == 0) else {
            throw site.error("\(clusterCount) clusters make FAT\(bits), which a root directory of \(rootEntries) entries contradicts")
        }
        guard fatSectors * sectorSize * 8 >= (clusterCount + 2) * UInt64(bits) else {
            throw site.error("a FAT of \(fatSectors) sectors does not map \(clusterCount) clusters")
        }
        let fatBytes = (clusterCount + 2) * UInt64(bits) / 8 + 1
        guard fatBytes <= UInt64(Self.maximumFATBytes) else {
            throw site.error(.limit, "a FAT of \(fatBytes) bytes is larger than the \(Self.maximumFATBytes) read")
        }
        self.fatBytes = Int(fatBytes)
        fatOffset = reserved * sectorSize
        rootOffset = (reserved + fats * fatSectors) * sectorSize
        rootBytes = rootSectors * sectorSize
        dataOffset = metadataSectors * sectorSize
        let labelAt = bits == 32 ? 71 : 43, serialAt = bits == 32 ? 67 : 39
        if bits == 32 {
            guard rootCluster >= 2, rootCluster < clusterCount + 2 else {
                throw site.error("root cluster \(rootCluster) is outside 2-\(clusterCount + 1)")
            }
        }
        self.rootCluster = rootCluster
        let serial = try parsing(site) { try c.littleEndian(UInt32.self, at: serialAt) }
        func hex(_ value: UInt32) -> String {
            let digits = String(value, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        }
        uuid = hex(serial >> 16) + "-" + hex(serial & 0xFFFF)
        let name = String(decoding: bytes[labelAt..<labelAt + 11], as: UTF8.self)
        let trimmed = String(name.reversed().drop { $0 == " " }.reversed())
        label = trimmed == "NO NAME" ? "" : trimmed
    }

    // MARK: Clusters

    /// The FAT entry of `cluster`.
    func next(_ cluster: UInt64) throws -> UInt64 {
        let table = try fat ?? device.read(at: fatOffset, count: fatBytes)
        fat = table
        let site = Site(device.name, "FAT entry \(cluster)", at: fatOffset)
        return try parsing(site) {
            let c = site.cursor(table)
            switch bits {
            case 12:
                let pair = UInt64(try c.littleEndian(UInt16.self, at: Int(cluster + cluster / 2)))
                return cluster & 1 == 0 ? pair & 0xFFF : pair >> 4
            case 16: return UInt64(try c.littleEndian(UInt16.self, at: Int(cluster * 2)))
            default: return UInt64(try c.littleEndian(UInt32.self, at: Int(cluster * 4))) & 0x0FFF_FFFF
            }
        }
    }

    /// The clusters of the chain from `first`, at most `limit` of them (enough for a file's size).
    func chain(from first: UInt64, limit: UInt64, _ structure: String) throws -> [UInt64] {
        var result: [UInt64] = []
        var seen = Set<UInt64>()
        var cluster = first
        let end: UInt64 = bits == 12 ? 0xFF8 : bits == 16 ? 0xFFF8 : 0x0FFF_FFF8
        while UInt64(result.count) < limit, cluster < end {
            guard cluster >= 2, cluster < clusterCount + 2 else {
                throw ReaderError(.malformed, device: device.name, structure: structure,
                                  "names cluster \(cluster), outside 2-\(clusterCount + 1)")
            }
            guard seen.insert(cluster).inserted else {
                throw ReaderError(.malformed, device: device.name, structure: structure,
                                  "its cluster chain comes back to cluster \(cluster) (a loop)")
            }
            result.append(cluster)
            cluster = try next(cluster)
        }
        return result
    }

    func clusterOffset(_ cluster: UInt64) -> UInt64 { dataOffset + (cluster - 2) * clusterSize }

    // MARK: Entries

    struct Entry {
        var name: [UInt8]
        var attributes: UInt8
        var cluster: UInt64
        var size: UInt64
        var modified: Int64
        var position: UInt64
    }

    /// The raw bytes of a directory: the fixed root region of FAT12/16, or its cluster chain.
    private func directoryBytes(_ number: UInt64, cluster: UInt64) throws -> (bytes: [UInt8], offsets: [UInt64]) {
        if number == 0, bits != 32 {
            return (try device.read(at: rootOffset, count: Int(rootBytes)), [rootOffset])
        }
        let start = number == 0 ? rootCluster : cluster
        guard start != 0 else { return ([], []) }
        let clusters = try chain(from: start, limit: Self.maximumDirectorySize / clusterSize + 1, "directory at \(number)")
        guard UInt64(clusters.count) * clusterSize <= Self.maximumDirectorySize else {
            throw ReaderError(.limit, device: device.name, structure: "directory at \(number)",
                              "is larger than \(Self.maximumDirectorySize) bytes")
        }
        var bytes: [UInt8] = []
        for cluster in clusters { bytes += try device.read(at: clusterOffset(cluster), count: Int(clusterSize)) }
        return (bytes, clusters.map(clusterOffset))
    }

    private func parseEntries(_ number: UInt64, cluster: UInt64) throws -> [Entry] {
        let (bytes, offsets) = try directoryBytes(number, cluster: cluster)
        let perRegion = number == 0 && bits != 32 ? bytes.count : Int(clusterSize)
        var result: [Entry] = []
        var long: [UInt16] = []
        var longChecksum: UInt8?
        var index = 0
        while index + 32 <= bytes.count {
            defer { index += 32 }
            let entry = bytes[index..<index + 32]
            let first = entry[entry.startIndex]
            if first == 0 { break }
            if first == 0xE5 { long = []; continue }
            let attributes = entry[entry.startIndex + 11]
            if attributes & 0x3F == 0x0F {
                let order = first & 0x1F
                if first & 0x40 != 0 { long = [] }
                guard order >= 1 else { long = []; continue }
                var part: [UInt16] = []
                for at in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30] {
                    part.append(UInt16(entry[entry.startIndex + at]) | UInt16(entry[entry.startIndex + at + 1]) << 8)
                }
                long = part + long
                longChecksum = entry[entry.startIndex + 13]
                continue
            }
            defer { long = [] }
            if attributes & 0x08 != 0 { continue }  // the volume label
            var short = Array(entry.prefix(11))
            if short[0] == 0x05 { short[0] = 0xE5 }
            let checksum = short.reduce(UInt8(0)) { (($0 & 1) << 7 | $0 >> 1) &+ $1 }
            var name: [UInt8]
            if !long.isEmpty, longChecksum == checksum {
                let units = long.prefix { $0 != 0 && $0 != 0xFFFF }
                name = Array(String(decoding: units, as: UTF16.self).utf8)
            } else {
                let flags = entry[entry.startIndex + 12]
                func part(_ bytes: ArraySlice<UInt8>, lower: Bool) -> [UInt8] {
                    let trimmed = bytes.reversed().drop { $0 == 0x20 }.reversed()
                    return trimmed.map { lower && $0 >= 0x41 && $0 <= 0x5A ? $0 + 32 : $0 }
                }
                name = part(short[0..<8], lower: flags & 0x08 != 0)
                let extensionPart = part(short[8..<11], lower: flags & 0x10 != 0)
                if !extensionPart.isEmpty { name += [0x2E] + extensionPart }
            }
            if name == [0x2E] || name == [0x2E, 0x2E] || name.isEmpty { continue }
            guard result.count < Self.maximumDirectoryEntries else {
                throw ReaderError(.limit, device: device.name, structure: "directory at \(number)",
                                  "more than \(Self.maximumDirectoryEntries) entries")
            }
            let c = ByteCursor(Array(entry), file: device.name)
            let (high, low, size, time, date) = try parsing(Site(device.name, "directory at \(number)")) {
                (UInt64(try c.littleEndian(UInt16.self, at: 20)), UInt64(try c.littleEndian(UInt16.self, at: 26)),
                 UInt64(try c.littleEndian(UInt32.self, at: 28)), try c.littleEndian(UInt16.self, at: 22),
                 try c.littleEndian(UInt16.self, at: 24))
            }
            let position = offsets[index / perRegion] + UInt64(index % perRegion)
            result.append(Entry(name: name, attributes: attributes, cluster: bits == 32 ? high << 16 | low : low,
                                size: size, modified: Self.unixTime(date: date, time: time), position: position))
        }
        return result
    }

    /// A FAT local date and time as seconds since 1970 (taken as UTC: FAT keeps no zone).
    static func unixTime(date: UInt16, time: UInt16) -> Int64 {
        let year = Int64(date >> 9) + 1980, month = Int64(max(1, min(12, (date >> 5) & 0xF))), day = Int64(max(1, date & 0x1F))
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = y / 400, yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let days = era * 146097 + (yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear) - 719468
        return days * 86400 + Int64(time >> 11) * 3600 + Int64((time >> 5) & 0x3F) * 60 + Int64(time & 0x1F) * 2
    }

    private func entry(at position: UInt64) throws -> Entry {
        let bytes = try device.read(at: position, count: 32)
        let site = Site(device.name, "directory entry", at: position)
        let c = site.cursor(bytes)
        return try parsing(site) {
            let high = UInt64(try c.littleEndian(UInt16.self, at: 20)), low = UInt64(try c.littleEndian(UInt16.self, at: 26))
            return Entry(name: [], attributes: try c.u8(11), cluster: bits == 32 ? high << 16 | low : low,
                         size: UInt64(try c.littleEndian(UInt32.self, at: 28)),
                         modified: Self.unixTime(date: try c.littleEndian(UInt16.self, at: 24),
                                                 time: try c.littleEndian(UInt16.self, at: 22)), position: position)
        }
    }

    public func node(_ number: UInt64) throws -> Node {
        guard number != 0 else {
            return Node(number: 0, kind: .directory, mode: 0o040755, uid: 0, gid: 0, size: 0, links: 2, modified: 0)
        }
        let entry = try entry(at: number)
        let directory = entry.attributes & 0x10 != 0
        return Node(number: number, kind: directory ? .directory : .regular, mode: directory ? 0o040755 : 0o100644,
                    uid: 0, gid: 0, size: directory ? 0 : entry.size, links: 1, modified: entry.modified)
    }

    private func cluster(of directory: Node) throws -> UInt64 {
        guard directory.kind == .directory else {
            throw ReaderError(.notDirectory, device: device.name, structure: "entry at \(directory.number)", "is not a directory")
        }
        return directory.number == 0 ? 0 : try entry(at: directory.number).cluster
    }

    public func entries(of directory: Node) throws -> [DirectoryEntry] {
        try parseEntries(directory.number, cluster: try cluster(of: directory)).map {
            DirectoryEntry(name: $0.name, node: $0.position)
        }
    }

    public func lookup(_ name: [UInt8], in directory: Node) throws -> UInt64? {
        func folded(_ bytes: [UInt8]) -> [UInt8] { bytes.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 32 : $0 } }
        let wanted = folded(name)
        return try parseEntries(directory.number, cluster: try cluster(of: directory))
            .first { folded($0.name) == wanted }?.position
    }

    public func readlink(_ node: Node) throws -> [UInt8] {
        throw ReaderError(.notSymlink, device: device.name, structure: "entry at \(node.number)", "is not a symlink")
    }

    public func read(_ node: Node, offset: UInt64, count: Int) throws -> [UInt8] {
        guard node.kind == .regular else {
            throw ReaderError(.isDirectory, device: device.name, structure: "entry at \(node.number)", "is not a file")
        }
        guard offset < node.size, count > 0 else { return [] }
        let wanted = min(UInt64(min(count, maximumDeviceRead)), node.size - offset)
        let first = try entry(at: node.number).cluster
        let needed = (offset + wanted + clusterSize - 1) / clusterSize
        let clusters = try chain(from: first, limit: needed, "file at \(node.number)")
        guard UInt64(clusters.count) == needed else {
            throw ReaderError(.malformed, device: device.name, structure: "file at \(node.number)",
                              "its chain of \(clusters.count) clusters is short of its \(node.size) bytes")
        }
        var result: [UInt8] = []
        result.reserveCapacity(Int(wanted))
        var position = offset
        while position < offset + wanted {
            let index = Int(position / clusterSize), within = position % clusterSize
            let length = min(clusterSize - within, offset + wanted - position)
            result += try device.read(at: clusterOffset(clusters[index]) + within, count: Int(length))
            position += length
        }
        return result
    }
}
