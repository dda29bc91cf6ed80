import Formats

/// How the guest is booted: SeaBIOS from the MBR, or OVMF from an EFI system partition.
public enum Firmware: String, Sendable, Codable, CaseIterable {
    case bios, uefi

    /// The EFI system partition's type GUID (C12A7328-F81F-11D2-BA4B-00A0C93EC93B) as GPT stores it: the first
    /// three fields little-endian.
    static let espType: [UInt8] = [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11,
                                   0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]

    /// UEFI when the guest disk has a GPT with an EFI system partition, or an MBR partition of type 0xEF; BIOS
    /// otherwise (an MBR, or a GPT with only a BIOS boot partition).
    public static func detect(_ disk: any ImageSource) throws -> Firmware {
        let sector = 512
        guard disk.virtualSize >= UInt64(sector * 2) else { return .bios }
        let mbr = try read(disk, at: 0, count: sector)
        guard mbr.matches([0x55, 0xAA], at: 510) else { return .bios }
        let types = try (0..<4).map { try mbr.u8(446 + $0 * 16 + 4) }
        if types.contains(0xEF) { return .uefi }
        guard types.contains(0xEE) else { return .bios }

        let header = try read(disk, at: UInt64(sector), count: sector)
        guard header.matches(Array("EFI PART".utf8), at: 0) else { return .bios }
        let entriesLBA = try header.littleEndian(UInt64.self, at: 72)
        let count = Int(min(try header.littleEndian(UInt32.self, at: 80), 1024))
        let size = Int(try header.littleEndian(UInt32.self, at: 84))
        guard size >= 128, size <= 4096, count > 0, entriesLBA < disk.virtualSize / UInt64(sector) else { return .bios }
        let start = entriesLBA * UInt64(sector)
        guard start + UInt64(count * size) <= disk.virtualSize else { return .bios }
        let entries = try read(disk, at: start, count: count * size)
        for index in 0..<count where entries.matches(espType, at: index * size) {
            return .uefi
        }
        return .bios
    }

    private static func read(_ disk: any ImageSource, at offset: UInt64, count: Int) throws -> ByteCursor {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try disk.read(at: offset, into: $0) }
        return ByteCursor(bytes, file: disk.path, base: Int64(offset))
    }
}
