/// ISO 9660 (a primary volume descriptor "CD001" at 32 KiB) and UDF (an "NSR02"/"NSR03" descriptor in the volume
/// recognition sequence that starts at the same place). qemu reads both as raw.
enum ISODetector: FormatDetector {
    static let format = ImageFormat.iso
    static let descriptorArea: Int64 = 32768
    static let cd001 = Array("CD001".utf8)
    static let udfMarks = [Array("NSR02".utf8), Array("NSR03".utf8)]

    static func matches(_ reader: HeaderReader) -> Bool { hasISO9660(reader.head) || hasUDF(reader.head) }

    static func hasISO9660(_ head: ByteCursor) -> Bool { head.matches(cd001, at: Int(descriptorArea) + 1) }

    /// The volume recognition sequence: 2048-byte descriptors from sector 16 until a blank one.
    static func hasUDF(_ head: ByteCursor) -> Bool {
        for sector in 16..<32 {
            let offset = sector * 2048 + 1
            if udfMarks.contains(where: { head.matches($0, at: offset) }) { return true }
            guard head.count >= offset + 5, head.bytes[offset..<offset + 5].contains(where: { $0 != 0 }) else { break }
        }
        return false
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let iso9660 = hasISO9660(reader.head)
        let udf = hasUDF(reader.head)
        var label: String?
        var volumeSize: UInt64?
        if iso9660 {
            let pvd = try reader.cursor(at: descriptorArea, count: 2048, what: "iso primary volume descriptor")
            guard try pvd.u8(0) == 1 else { throw pvd.error(at: 0, "first volume descriptor is not a primary one (type 1)") }
            label = trimmedText(try pvd.slice(40, 32))
            let blocks = try pvd.littleEndian(UInt32.self, at: 80)
            let blockSize = try pvd.littleEndian(UInt16.self, at: 128)
            volumeSize = UInt64(blocks) * UInt64(blockSize)
        }
        if udf, let udfLabel = try udfVolumeLabel(reader) { label = udfLabel }
        let (table, _) = try PartitionTableReader.read(reader)
        let info = ISOInfo(filesystem: iso9660 && udf ? "iso9660+udf" : (udf ? "udf" : "iso9660"),
                           volumeLabel: label.flatMap { $0.isEmpty ? nil : $0 }, volumeSize: volumeSize,
                           partitionTable: table)
        return Finding(format: .iso, virtualSize: roundedToSector(UInt64(max(reader.size, 0))), specific: .iso(info))
    }

    /// The logical volume identifier (what blkid calls the label), found through the anchor volume descriptor
    /// pointer at sector 256 and the main volume descriptor sequence. nil when the anchor is missing.
    static func udfVolumeLabel(_ reader: HeaderReader) throws -> String? {
        for blockSize in [2048, 512] {
            let anchorOffset = Int64(256 * blockSize)
            guard let anchor = try? reader.cursor(at: anchorOffset, count: 512, what: "udf anchor"),
                  try anchor.littleEndian(UInt16.self, at: 0) == 2, try anchor.littleEndian(UInt32.self, at: 12) == 256
            else { continue }
            let length = min(Int(try anchor.littleEndian(UInt32.self, at: 16)), 32 * blockSize)
            let location = Int64(try anchor.littleEndian(UInt32.self, at: 20)) * Int64(blockSize)
            let sequence = try reader.cursor(at: location, count: length, what: "udf volume descriptor sequence")
            var offset = 0
            while offset + blockSize <= sequence.count {
                switch try sequence.littleEndian(UInt16.self, at: offset) {
                case 6: return try dstring(sequence.slice(offset + 84, 128))
                case 8: return nil
                default: offset += blockSize
                }
            }
            return nil
        }
        return nil
    }

    /// An OSTA compressed-unicode dstring: a compression id (8 or 16), the characters, and the used length last.
    static func dstring(_ field: ArraySlice<UInt8>) -> String? {
        guard let length = field.last.map(Int.init), length > 1, length < field.count, let id = field.first else { return nil }
        let body = field[(field.startIndex + 1)..<(field.startIndex + length)]
        switch id {
        case 8: return String(decoding: body.map { UInt16($0) }, as: UTF16.self)
        case 16:
            let bytes = Array(body)
            let units = stride(from: 0, to: bytes.count - 1, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
            return String(decoding: units, as: UTF16.self)
        default: return nil
        }
    }
}
