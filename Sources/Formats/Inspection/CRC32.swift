/// CRC-32 in its two reflected forms: IEEE 802.3 (0xEDB88320), what GPT headers and partition arrays carry, and
/// Castagnoli (CRC-32C, 0x82F63B78), what VHDX headers and log entries carry.
enum CRC32 {
    private static func table(_ polynomial: UInt32) -> [UInt32] {
        (0..<256).map { index in
            var value = UInt32(index)
            for _ in 0..<8 { value = value & 1 == 1 ? polynomial ^ (value >> 1) : value >> 1 }
            return value
        }
    }

    private static let ieeeTable = table(0xEDB8_8320)
    private static let castagnoliTable = table(0x82F6_3B78)

    private static func run<C: Collection>(_ table: [UInt32], _ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 { run(ieeeTable, bytes) }

    static func castagnoli<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 { run(castagnoliTable, bytes) }
}
