/// LUKS (cryptsetup's on-disk format). qemu opens LUKS1 natively; LUKS2 is refused.
enum LUKSDetector: FormatDetector {
    static let format = ImageFormat.luks
    static let magic: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]  // "LUKS\xba\xbe"
    static let keySlotActive: UInt32 = 0x00AC_71F3

    static func matches(_ reader: HeaderReader) -> Bool { reader.head.matches(magic, at: 0) }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let c = try reader.cursor(at: 0, count: 8, what: "luks header")
        let version = try c.bigEndian(UInt16.self, at: 6)
        guard version == 1 else {
            let info = LUKSInfo(version: version)
            let violation = Violation(.luksVersion, "LUKS version \(version) is not supported (LUKS1 only)",
                                      hint: "convert it with `cryptsetup convert --type luks1` or decrypt it first")
            return Finding(format: .luks, virtualSize: nil, specific: .luks(info), violations: [violation])
        }
        let h = try reader.cursor(at: 0, count: 592, what: "luks1 header")
        let payloadSectors = try h.bigEndian(UInt32.self, at: 104)
        let payload = UInt64(payloadSectors) * 512
        let fileSize = UInt64(max(reader.size, 0))
        guard payload <= fileSize else {
            throw h.error(at: 104, "payload offset \(payload) lies beyond the end of the file (\(fileSize) bytes)")
        }
        var active = 0
        for slot in 0..<8 where try h.bigEndian(UInt32.self, at: 208 + slot * 48) == keySlotActive { active += 1 }
        let info = LUKSInfo(version: 1, cipherName: try h.string(8, 32), cipherMode: try h.string(40, 32),
                            hashSpec: try h.string(72, 32), payloadOffset: payload, uuid: try h.string(168, 40),
                            activeKeySlots: active)
        // qemu presents the payload: everything after the header and key material, in whole sectors.
        return Finding(format: .luks, virtualSize: roundedToSector(fileSize - payload), specific: .luks(info))
    }
}
