/// CRC-32C (Castagnoli), the checksum btrfs puts on its superblock and tree nodes and the hash of its directory
/// item keys.
enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { index -> UInt32 in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1 }
        return value
    }

    /// The register after `bytes`, from `crc`, with no inversion either side: Linux's crc32c(), which btrfs's name
    /// hash calls with the seed ~1.
    static func update<C: Collection>(_ crc: UInt32, _ bytes: C) -> UInt32 where C.Element == UInt8 {
        table.withUnsafeBufferPointer { table in
            var crc = crc
            let run: ((UnsafeBufferPointer<UInt8>) -> Void) = { buffer in
                for byte in buffer { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
            }
            if bytes.withContiguousStorageIfAvailable(run) == nil {
                for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
            }
            return crc
        }
    }

    /// The standard checksum: the register starts at all ones and is inverted at the end.
    static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 { ~update(~0, bytes) }
}
