/// MBR and GPT partition tables of a raw disk (or a hybrid ISO), with the sanity checks of the reference
/// inspector: boot flags, a protective MBR alone in front of a GPT, and GPT headers and arrays that check out.
enum PartitionTableReader {
    static let maxEntryArray = 256 << 10

    /// The table, or nil when the first sector carries no partition table; and what is wrong with it.
    static func read(_ reader: HeaderReader) throws -> (PartitionTable?, [Violation]) {
        let head = reader.head
        guard head.matches([0x55, 0xAA], at: 510), !isFATBootSector(head), !KernelDetector.matches(reader) else {
            return (nil, [])
        }
        var violations: [Violation] = []
        var partitions: [PartitionTable.Partition] = []
        var protective = false
        for index in 0..<4 {
            let entry = 446 + index * 16
            let flag = try head.u8(entry)
            let type = try head.u8(entry + 4)
            if flag != 0 && flag != 0x80 {
                violations.append(.partitionTable(.mbrInvalid,
                    "MBR partition \(index + 1) has boot flag 0x\(String(flag, radix: 16)) (only 0x00 and 0x80 are valid)"))
            }
            guard type != 0 else { continue }
            if type == 0xEE {
                protective = true
                // A protective MBR covers the disk from LBA 1, whose CHS address is cylinder 0, head 0, sector 2.
                let chs = Array(try head.slice(entry + 1, 3))
                if chs != [0x00, 0x02, 0x00] {
                    violations.append(.partitionTable(.gptInvalid,
                        "the protective MBR entry \(index + 1) starts at CHS \(chs.map { String($0) }.joined(separator: "/")) (byte \(entry + 1)), not 0/2/0"))
                }
                let lba = try head.littleEndian(UInt32.self, at: entry + 8)
                if lba != 1 {
                    violations.append(.partitionTable(.gptInvalid,
                        "the protective MBR entry \(index + 1) starts at LBA \(lba) (byte \(entry + 8)), not 1"))
                }
            }
            let start = UInt64(try head.littleEndian(UInt32.self, at: entry + 8))
            let sectors = UInt64(try head.littleEndian(UInt32.self, at: entry + 12))
            partitions.append(.init(number: index + 1, start: start * 512, size: sectors * 512,
                                    type: "0x" + String(type, radix: 16), name: nil, bootable: flag == 0x80))
        }
        if partitions.isEmpty {
            // Nothing a partition table would describe: the 55 AA is a stray boot sector, or the first sector of
            // something else (a filesystem, another format) taken for an MBR. Either way the image is not what it
            // looks like, and oslo's inspector refuses it too.
            violations.append(Violation(.mbrInvalid,
                "the first sector ends in the MBR signature 55 AA (byte 510) but defines no partition",
                hint: "if it is a disk, partition it on a trusted host; if it is a whole-disk filesystem or another format, rebuild or convert the image from its source"))
        }
        guard protective else { return (PartitionTable(kind: .mbr, diskGUID: nil, partitions: partitions), violations) }
        if partitions.count > 1 {
            violations.append(.partitionTable(.gptInvalid,
                "the protective MBR holds \(partitions.count) partitions besides the 0xEE one (a hybrid MBR)"))
        }
        do {
            let table = try readGPT(reader)
            violations += table.1
            return (table.0, violations)
        } catch let error as FormatError {
            violations.append(.partitionTable(.gptInvalid, "invalid GPT: \(error)"))
            return (PartitionTable(kind: .gpt, diskGUID: nil, partitions: []), violations)
        }
    }

    /// A FAT boot sector also ends in 55 AA; its BIOS parameter block gives it away.
    static func isFATBootSector(_ head: ByteCursor) -> Bool {
        guard let bytesPerSector = try? head.littleEndian(UInt16.self, at: 11),
              let fats = try? head.u8(16), let media = try? head.u8(21) else { return false }
        return [512, 1024, 2048, 4096].contains(bytesPerSector) && (1...2).contains(fats) && (media == 0xF0 || media >= 0xF8)
    }

    static func readGPT(_ reader: HeaderReader) throws -> (PartitionTable, [Violation]) {
        let signature = Array("EFI PART".utf8)
        guard let sector = [512, 4096].first(where: { reader.head.matches(signature, at: $0) }) else {
            throw FormatError(file: reader.name, offset: 512, "protective MBR but no GPT header (EFI PART) at LBA 1")
        }
        let h = try reader.cursor(at: Int64(sector), count: sector, what: "GPT header")
        let headerSize = try h.littleEndian(UInt32.self, at: 12)
        guard headerSize >= 92, headerSize <= UInt32(sector) else {
            throw h.error(at: 12, "GPT header size \(headerSize) is outside 92...\(sector)")
        }
        var copy = Array(try h.slice(0, Int(headerSize)))
        copy.replaceSubrange(16..<20, with: [0, 0, 0, 0])
        let headerCRC = try h.littleEndian(UInt32.self, at: 16)
        guard CRC32.checksum(copy) == headerCRC else { throw h.error(at: 16, "GPT header CRC32 does not match") }
        guard try h.littleEndian(UInt64.self, at: 24) == 1 else { throw h.error(at: 24, "GPT header does not say it is at LBA 1") }
        let firstUsable = try h.littleEndian(UInt64.self, at: 40)
        let lastUsable = try h.littleEndian(UInt64.self, at: 48)
        guard firstUsable <= lastUsable else { throw h.error(at: 40, "first usable LBA \(firstUsable) is after the last \(lastUsable)") }
        let entriesLBA = try h.littleEndian(UInt64.self, at: 72)
        let count = try h.littleEndian(UInt32.self, at: 80)
        let entrySize = try h.littleEndian(UInt32.self, at: 84)
        guard entrySize >= 128, entrySize % 8 == 0, entrySize <= 4096 else {
            throw h.error(at: 84, "GPT entry size \(entrySize) is not a multiple of 8 in 128...4096")
        }
        let arrayBytes = UInt64(count) * UInt64(entrySize)
        guard arrayBytes <= UInt64(maxEntryArray) else {
            throw h.error(at: 80, "GPT entry array of \(count) x \(entrySize) bytes is over \(maxEntryArray) bytes")
        }
        guard entriesLBA >= 2, entriesLBA < firstUsable || firstUsable == 0 else {
            throw h.error(at: 72, "GPT entry array at LBA \(entriesLBA) overlaps the header or the usable area")
        }
        let arrayOffset = try product(entriesLBA, UInt64(sector), "entry array offset", in: reader.name, at: 72 + Int64(sector))
        guard arrayOffset <= UInt64(Int64.max) else { throw h.error(at: 72, "GPT entry array offset is absurd") }
        let array = try reader.cursor(at: Int64(arrayOffset), count: Int(arrayBytes), what: "GPT entry array")
        guard CRC32.checksum(array.bytes) == (try h.littleEndian(UInt32.self, at: 88)) else {
            throw h.error(at: 88, "GPT partition entry array CRC32 does not match")
        }

        var violations: [Violation] = []
        var partitions: [PartitionTable.Partition] = []
        let diskSectors = UInt64(max(reader.size, 0)) / UInt64(sector)
        for index in 0..<Int(count) {
            let entry = index * Int(entrySize)
            guard try array.slice(entry, 16).contains(where: { $0 != 0 }) else { continue }
            let first = try array.littleEndian(UInt64.self, at: entry + 32)
            let last = try array.littleEndian(UInt64.self, at: entry + 40)
            guard first <= last, first >= firstUsable, last <= lastUsable else {
                violations.append(.partitionTable(.gptInvalid,
                    "GPT partition \(index + 1) spans LBA \(first)...\(last), outside the usable \(firstUsable)...\(lastUsable)"))
                continue
            }
            if last >= diskSectors {
                violations.append(.partitionTable(.gptInvalid,
                    "GPT partition \(index + 1) ends at LBA \(last), beyond the end of the image (\(diskSectors) sectors)"))
                continue
            }
            let nameBytes = Array(try array.slice(entry + 56, 72))
            let units = stride(from: 0, to: 72, by: 2).map { UInt16(nameBytes[$0]) | UInt16(nameBytes[$0 + 1]) << 8 }
            let name = String(decoding: units.prefix { $0 != 0 }, as: UTF16.self)
            partitions.append(.init(number: index + 1, start: first * UInt64(sector),
                                    size: (last - first + 1) * UInt64(sector), type: try guidString(array, at: entry),
                                    name: name.isEmpty ? nil : name, bootable: nil))
        }
        let table = PartitionTable(kind: .gpt, diskGUID: try guidString(h, at: 56), partitions: partitions)
        return (table, violations)
    }
}
