import Formats

/// One partition as Linux numbers it: MBR primaries 1-4 by slot, logical partitions from 5 in chain order; GPT
/// partitions by their slot in the entry array, from 1.
public struct Partition: Sendable, Equatable {
    public var number: Int
    /// Bytes from the start of the disk.
    public var start: UInt64
    public var length: UInt64
    /// "0x83" for MBR, the partition type GUID for GPT.
    public var type: String
    /// An MBR extended partition: a container of logical partitions, nothing to read itself.
    public var isExtended: Bool

    public init(number: Int, start: UInt64, length: UInt64, type: String, isExtended: Bool = false) {
        self.number = number
        self.start = start
        self.length = length
        self.type = type
        self.isExtended = isExtended
    }
}

/// An MBR (with its chain of extended boot records) or a GPT (behind its protective MBR), read from 512-byte
/// sectors, as Linux's partition code reads it. Every entry is checked to lie within the disk; the EBR chain and
/// the GPT entry array are bounded.
public struct PartitionTable: Sendable, Equatable {
    public enum Scheme: String, Sendable { case mbr, gpt }
    public var scheme: Scheme
    public var partitions: [Partition]

    static let sector: UInt64 = 512
    /// More logical partitions than Linux's own limit of a disk's minors is a loop or garbage.
    static let maximumLogical = 256
    static let maximumGPTEntries = 4096
    static let extendedTypes: Set<UInt8> = [0x05, 0x0F, 0x85]

    /// The table of `disk`, or nil when its first sector holds none (a filesystem on the whole disk).
    public static func read(_ disk: any BlockDevice) throws -> PartitionTable? {
        guard disk.size >= 2 * sector else { return nil }
        let mbr = try disk.read(at: 0, count: 512)
        guard mbr[510] == 0x55, mbr[511] == 0xAA else { return nil }
        // A FAT boot sector carries the same signature; its BPB is no partition table.
        let text = String(decoding: mbr[54..<59], as: UTF8.self) + String(decoding: mbr[82..<87], as: UTF8.self)
        if text.contains("FAT1") || text.contains("FAT32") { return nil }
        let entries = try primaryEntries(mbr, disk: disk)
        guard let entries else { return nil }
        if entries.contains(where: { $0.type == 0xEE }) {
            return PartitionTable(scheme: .gpt, partitions: try gptPartitions(disk, protective: entries))
        }
        var partitions: [Partition] = []
        for entry in entries where entry.type != 0 && entry.sectors > 0 {
            let site = Site(disk.name, "MBR entry \(entry.slot)", at: UInt64(446 + 16 * (entry.slot - 1)))
            let start = try site.multiply(UInt64(entry.first), sector)
            let length = try site.multiply(UInt64(entry.sectors), sector)
            guard start <= disk.size, length <= disk.size - start else {
                throw site.error("the partition (\(length) bytes at \(start)) runs past the end of the disk (\(disk.size) bytes)")
            }
            let extended = extendedTypes.contains(entry.type)
            partitions.append(Partition(number: entry.slot, start: start, length: length,
                                        type: "0x" + hex(entry.type), isExtended: extended))
            if extended {
                partitions += try logicalPartitions(disk, extendedStart: UInt64(entry.first),
                                                    extendedSectors: UInt64(entry.sectors),
                                                    firstNumber: 5 + partitions.filter { $0.number >= 5 }.count)
            }
        }
        return PartitionTable(scheme: .mbr, partitions: partitions)
    }

    struct Entry {
        var slot: Int
        var status: UInt8
        var type: UInt8
        var first: UInt32
        var sectors: UInt32
    }

    /// The four entries of a boot sector, or nil when their status bytes say it is not a partition table.
    static func primaryEntries(_ sector: [UInt8], disk: any BlockDevice) throws -> [Entry]? {
        let site = Site(disk.name, "MBR", at: 0)
        return try parsing(site) {
            let cursor = site.cursor(sector)
            var entries: [Entry] = []
            for slot in 1...4 {
                let base = 446 + 16 * (slot - 1)
                let entry = Entry(slot: slot, status: try cursor.u8(base), type: try cursor.u8(base + 4),
                                  first: try cursor.littleEndian(UInt32.self, at: base + 8),
                                  sectors: try cursor.littleEndian(UInt32.self, at: base + 12))
                guard entry.status == 0 || entry.status == 0x80 else { return nil }
                entries.append(entry)
            }
            return entries
        }
    }

    /// Follows the EBR chain inside the extended partition: each EBR's first entry is a logical partition relative
    /// to that EBR, its second the next EBR relative to the extended partition's start.
    static func logicalPartitions(_ disk: any BlockDevice, extendedStart: UInt64, extendedSectors: UInt64,
                                  firstNumber: Int) throws -> [Partition] {
        var result: [Partition] = []
        var visited: Set<UInt64> = []
        var current = extendedStart
        let extendedEnd = extendedStart + extendedSectors
        while true {
            let site = Site(disk.name, "EBR", at: current &* sector)
            guard visited.insert(current).inserted else { throw site.error("the EBR chain loops back to sector \(current)") }
            guard result.count < maximumLogical else {
                throw site.error(.limit, "more than \(maximumLogical) logical partitions")
            }
            guard current < extendedEnd else { throw site.error("the EBR lies outside the extended partition") }
            let offset = try site.multiply(current, sector)
            let ebr = try disk.read(at: offset, count: 512)
            guard ebr[510] == 0x55, ebr[511] == 0xAA else { throw site.error("has no 55AA signature") }
            guard let entries = try primaryEntries(ebr, disk: disk) else { throw site.error("has invalid status bytes") }
            let logical = entries[0], next = entries[1]
            if logical.type != 0, logical.sectors > 0 {
                let first = try site.add(current, UInt64(logical.first))
                let last = try site.add(first, UInt64(logical.sectors))
                guard last <= extendedEnd else {
                    throw site.error("the logical partition (sectors \(first)-\(last)) runs past the extended partition")
                }
                result.append(Partition(number: firstNumber + result.count, start: first * sector,
                                        length: UInt64(logical.sectors) * sector, type: "0x" + hex(logical.type)))
            }
            guard extendedTypes.contains(next.type), next.first > 0 else { break }
            current = try site.add(extendedStart, UInt64(next.first))
        }
        return result
    }

    /// The GPT of `disk`: the primary header at LBA 1, or, when it fails its checks, the backup at the last LBA.
    static func gptPartitions(_ disk: any BlockDevice, protective: [Entry]) throws -> [Partition] {
        guard protective.contains(where: { $0.type == 0xEE && $0.first == 1 }) else {
            throw ReaderError(.malformed, device: disk.name, structure: "protective MBR", offset: 446,
                              "its 0xEE entry does not start at LBA 1")
        }
        let lastLBA = disk.size / sector - 1
        do {
            return try gptPartitions(disk, headerLBA: 1, lastLBA: lastLBA)
        } catch let primary as ReaderError where primary.kind == .malformed {
            do { return try gptPartitions(disk, headerLBA: lastLBA, lastLBA: lastLBA) } catch { throw primary }
        }
    }

    static func gptPartitions(_ disk: any BlockDevice, headerLBA: UInt64, lastLBA: UInt64) throws -> [Partition] {
        let site = Site(disk.name, "GPT header", at: headerLBA * sector)
        let bytes = try disk.read(at: headerLBA * sector, count: 512)
        return try parsing(site) {
            let cursor = site.cursor(bytes)
            guard cursor.matches(Array("EFI PART".utf8), at: 0) else { throw site.error("has no EFI PART signature") }
            let headerSize = Int(try cursor.littleEndian(UInt32.self, at: 12))
            guard (92...512).contains(headerSize) else { throw site.error("header size \(headerSize) is not 92-512") }
            let stored = try cursor.littleEndian(UInt32.self, at: 16)
            var copy = Array(bytes[0..<headerSize])
            copy.replaceSubrange(16..<20, with: [0, 0, 0, 0])
            guard CRC32.checksum(copy) == stored else { throw site.error("header CRC32 does not match") }
            guard try cursor.littleEndian(UInt64.self, at: 24) == headerLBA else {
                throw site.error("names another LBA as its own")
            }
            let firstUsable = try cursor.littleEndian(UInt64.self, at: 40)
            let lastUsable = try cursor.littleEndian(UInt64.self, at: 48)
            let entriesLBA = try cursor.littleEndian(UInt64.self, at: 72)
            let entryCount = try site.count(UInt64(try cursor.littleEndian(UInt32.self, at: 80)),
                                            limit: maximumGPTEntries, what: "partition entry count")
            let entrySize = Int(try cursor.littleEndian(UInt32.self, at: 84))
            guard entrySize >= 128, entrySize <= 4096, entrySize % 8 == 0 else {
                throw site.error("partition entry size \(entrySize) is not a multiple of 8 in 128-4096")
            }
            guard firstUsable <= lastUsable, lastUsable <= lastLBA else {
                throw site.error("usable LBAs \(firstUsable)-\(lastUsable) do not fit the disk (last LBA \(lastLBA))")
            }
            let arrayOffset = try site.multiply(entriesLBA, sector)
            let array = try disk.read(at: arrayOffset, count: entryCount * entrySize)
            guard CRC32.checksum(array) == (try cursor.littleEndian(UInt32.self, at: 88)) else {
                throw site.error("partition entry array CRC32 does not match")
            }
            var partitions: [Partition] = []
            for index in 0..<entryCount {
                let entrySite = Site(disk.name, "GPT entry \(index + 1)", at: arrayOffset + UInt64(index * entrySize))
                let entry = ByteCursor(array, file: "\(disk.name): GPT entries", base: Int64(arrayOffset))
                let base = index * entrySize
                let type = try entry.slice(base, 16)
                guard type.contains(where: { $0 != 0 }) else { continue }
                let first = try entry.littleEndian(UInt64.self, at: base + 32)
                let last = try entry.littleEndian(UInt64.self, at: base + 40)
                guard first <= last, first >= firstUsable, last <= lastUsable else {
                    throw entrySite.error("LBAs \(first)-\(last) lie outside the usable \(firstUsable)-\(lastUsable)")
                }
                partitions.append(Partition(number: index + 1, start: first * sector,
                                            length: (last - first + 1) * sector, type: guidText(type)))
            }
            return partitions
        }
    }

    /// A GPT GUID: its first three fields are little-endian.
    static func guidText(_ bytes: ArraySlice<UInt8>) -> String {
        let b = Array(bytes)
        return uuidText([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]] + b[8..<16])
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }
}
