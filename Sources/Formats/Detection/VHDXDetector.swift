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

    static func matches(_ reader: HeaderReader) -> Bool { reader.head.matches(magic, at: 0) }

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
        let info = VHDXInfo(blockSize: try parameters?.littleEndian(UInt32.self, at: 0),
                            logicalSectorSize: try item(logicalSectorSize, minimum: 4)?.littleEndian(UInt32.self, at: 0),
                            hasParent: hasParentFlag || locator != nil)
        return Finding(format: .vhdx, virtualSize: size, specific: .vhdx(info), violations: violations)
    }
}
