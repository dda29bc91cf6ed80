/// VHDX ([MS-VHDX]): the virtual disk size lives in the metadata region, found through the region table at 192 KiB.
enum VHDXDetector: FormatDetector {
    static let format = ImageFormat.vhdx
    static let magic = Array("vhdxfile".utf8)
    static let regionTableOffset: Int64 = 192 << 10
    static let metadataRegion = "8B7CA206-4790-4B9A-B8FE-575F050F886E"
    static let fileParameters = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B"
    static let virtualDiskSize = "2FA54224-CD1B-4876-B211-5DBED83BF4B8"
    static let logicalSectorSize = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F"
    static let parentLocator = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"

    static let headerOffsets: [Int64] = [64 << 10, 128 << 10]
    static let logEntrySize = 4096
    /// Log positions looked at for an entry: a 16 MiB log at most, 64 bytes a position.
    static let logPositionLimit = 4096

    static func matches(_ reader: HeaderReader) -> Bool { reader.head.matches(magic, at: 0) }

    /// The current header, as qemu chooses it: of the two 4 KiB headers with a "head" signature and a CRC-32C
    /// that checks out, the one with the larger sequence number.
    static func currentHeader(_ reader: HeaderReader) throws -> ByteCursor {
        var best: (sequence: UInt64, cursor: ByteCursor)?
        for offset in headerOffsets {
            let h = try reader.cursor(at: offset, count: 4096, what: "vhdx header")
            guard h.matches(Array("head".utf8), at: 0) else { continue }
            var copy = h.bytes
            copy.replaceSubrange(4..<8, with: [0, 0, 0, 0])
            guard CRC32.castagnoli(copy) == (try h.littleEndian(UInt32.self, at: 4)) else { continue }
            let sequence = try h.littleEndian(UInt64.self, at: 8)
            if best == nil || sequence > best!.sequence { best = (sequence, h) }
        }
        guard let best else {
            throw FormatError(file: reader.name, offset: headerOffsets[0],
                              "neither vhdx header (at 64 KiB and 128 KiB) has a valid signature and CRC-32C")
        }
        return best.cursor
    }

    /// Whether the log named by the current header holds an entry of that log: what qemu replays before it reads
    /// anything, and refuses to open read-only.
    static func logNeedsReplay(_ reader: HeaderReader, header h: ByteCursor) throws -> Bool {
        let guid = try h.slice(48, 16)
        guard guid.contains(where: { $0 != 0 }) else { return false }
        let length = try h.littleEndian(UInt32.self, at: 68)
        let offset = try h.littleEndian(UInt64.self, at: 72)
        guard length > 0, length % UInt32(1 << 20) == 0, offset % (1 << 20) == 0, offset <= UInt64(1) << 50 else {
            throw h.error(at: 68, "log of \(length) bytes at \(offset) is not 1 MiB aligned")
        }
        let positions = min(Int(length) / logEntrySize, logPositionLimit)
        for index in 0..<positions {
            let at = Int64(offset) + Int64(index * logEntrySize)
            let entry = try reader.cursor(at: at, count: 64, what: "vhdx log entry")
            if entry.matches(Array("loge".utf8), at: 0), try entry.slice(32, 16).elementsEqual(guid) { return true }
        }
        return false
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let regions = try reader.cursor(at: regionTableOffset, count: 16 + 32 * 2047, what: "vhdx region table")
        guard regions.matches(Array("regi".utf8), at: 0) else { throw regions.error(at: 0, "no region table signature") }
        let regionCount = try regions.littleEndian(UInt32.self, at: 8)
        guard regionCount <= 2047 else { throw regions.error(at: 8, "\(regionCount) regions is over 2047") }
        var metadataOffset: UInt64?
        var metadataLength: UInt32 = 0
        for index in 0..<Int(regionCount) {
            let entry = 16 + index * 32
            if try guidString(regions, at: entry) == metadataRegion {
                metadataOffset = try regions.littleEndian(UInt64.self, at: entry + 16)
                metadataLength = try regions.littleEndian(UInt32.self, at: entry + 24)
            }
        }
        // VHDX files end at 64 TiB of data plus metadata; anything further out is hostile.
        guard let metadataOffset, metadataOffset <= UInt64(1) << 50, metadataLength >= 64 << 10 else {
            throw regions.error(at: 16, "no metadata region of at least 64 KiB in the region table")
        }
        let table = try reader.cursor(at: Int64(metadataOffset), count: 64 << 10, what: "vhdx metadata table")
        guard table.matches(Array("metadata".utf8), at: 0) else { throw table.error(at: 0, "no metadata table signature") }
        let itemCount = try table.littleEndian(UInt16.self, at: 10)
        guard itemCount <= 2047 else { throw table.error(at: 10, "\(itemCount) metadata items is over 2047") }

        func item(_ guid: String, minimum: UInt32) throws -> ByteCursor? {
            for index in 0..<Int(itemCount) {
                let entry = 32 + index * 32
                guard try guidString(table, at: entry) == guid else { continue }
                let offset = try table.littleEndian(UInt32.self, at: entry + 16)
                let length = try table.littleEndian(UInt32.self, at: entry + 20)
                guard offset >= 64 << 10, length >= minimum, UInt64(offset) + UInt64(length) <= UInt64(metadataLength) else {
                    throw table.error(at: entry + 16, "metadata item \(guid) at \(offset) (\(length) bytes) lies outside the metadata region")
                }
                return try reader.cursor(at: Int64(metadataOffset) + Int64(offset), count: Int(minimum), what: "vhdx metadata item")
            }
            return nil
        }
        guard let sizeItem = try item(virtualDiskSize, minimum: 8) else {
            throw table.error(at: 10, "no virtual disk size metadata item")
        }
        let size = try sizeItem.littleEndian(UInt64.self, at: 0)
        guard size <= UInt64(64) << 40 else { throw sizeItem.error(at: 0, "virtual disk size \(size) is over VHDX's 64 TiB") }
        let parameters = try item(fileParameters, minimum: 8)
        let hasParentFlag = try parameters.map { try $0.littleEndian(UInt32.self, at: 4) & 2 != 0 } ?? false
        let locator = try item(parentLocator, minimum: 0)
        var violations: [Violation] = []
        if hasParentFlag || locator != nil { violations.append(.backingFile("vhdx differencing disk", nil)) }
        let header = try currentHeader(reader)
        if try logNeedsReplay(reader, header: header) {
            violations.append(Violation(.vhdxLog,
                "vhdx log (named by the header at byte \(header.base)) holds entries that were never written to the image; qemu refuses to open it read-only until the log is replayed",
                hint: "replay the log on a trusted host with a copy of the file: `qemu-img check -r all COPY.vhdx`, then inspect the copy"))
        }
        let info = VHDXInfo(blockSize: try parameters?.littleEndian(UInt32.self, at: 0),
                            logicalSectorSize: try item(logicalSectorSize, minimum: 4)?.littleEndian(UInt32.self, at: 0),
                            hasParent: hasParentFlag || locator != nil)
        return Finding(format: .vhdx, virtualSize: size, specific: .vhdx(info), violations: violations)
    }
}
