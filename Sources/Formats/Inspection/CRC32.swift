/// CRC-32 in its two reflected forms: IEEE 802.3 (0xEDB88320), what GPT headers and partition arrays carry, and
/// Castagnoli (CRC-32C, 0x82F63B78), what VHDX headers and log entries carry.
public enum CRC32 {
    private static func table(_ polynomial: UInt32) -> [UInt32] {
        (0..<256).map { index in
            var value = UInt32(index)
            for _ in 0..<8 { value = value & 1 == 1 ? polynomial ^ (value >> 1) : value >> 1 }
            return value
        }
    }

    private static let ieeeTable = table(0xEDB8_8320)
    private static let castagnoliTable = table(0x82F6_3B78)

    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        finish(update(start, bytes))
    }

    static func castagnoli<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        finish(update(start, bytes, table: castagnoliTable))
    }

    /// A checksum over several pieces: `finish(update(update(start, a), b))`.
    static let start: UInt32 = 0xFFFF_FFFF

    static func update<C: Collection>(_ crc: UInt32, _ bytes: C, table: [UInt32] = ieeeTable) -> UInt32
        where C.Element == UInt8 {
        var crc = crc
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc
    }

    static func finish(_ crc: UInt32) -> UInt32 { crc ^ 0xFFFF_FFFF }
}
