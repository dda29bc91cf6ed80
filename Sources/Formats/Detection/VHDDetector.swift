/// VHD (qemu's vpc driver). The 512-byte footer sits at the end of every VHD; dynamic and differencing disks copy
/// it to offset 0 as well. Sizes follow qemu's vpc_open so that they match `qemu-img info -f vpc`.
enum VHDDetector: FormatDetector {
    static let format = ImageFormat.vpc
    static let cookie = Array("conectix".utf8)
    /// qemu's VHD_MAX_GEOMETRY (65535 * 16 * 255) and VHD_MAX_SECTORS (2040 GiB).
    static let maxGeometrySectors: UInt64 = 65535 * 16 * 255
    static let maxSectors: UInt64 = 0xFF00_0000
    /// Creators that size the disk by current_size rather than by CHS geometry (qemu's table in vpc_open).
    static let sizeCreators: Set<[UInt8]> = [Array("win ".utf8), Array("qem2".utf8), Array("d2v ".utf8),
                                             Array("CTXS".utf8), Array("tap".utf8) + [0]]

    static func matches(_ reader: HeaderReader) -> Bool {
        reader.head.matches(cookie, at: 0) || reader.tail.matches(cookie, at: reader.tail.count - 512)
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        // As qemu does: a footer copy at offset 0 means a dynamic disk; otherwise only a fixed disk's footer at the end.
        let atStart = reader.head.matches(cookie, at: 0)
        let footer = try reader.cursor(at: atStart ? 0 : reader.size - 512, count: 512, what: "vhd footer")
        let type = try footer.bigEndian(UInt32.self, at: 60)
        if !atStart, type != 2 {
            throw footer.error(at: 60, "disk type \(type) in the end footer is not fixed (2), and there is no footer copy at offset 0")
        }
        var sum: UInt32 = 0
        for (index, byte) in footer.bytes.enumerated() where !(64..<68).contains(index) { sum &+= UInt32(byte) }
        let checksum = try footer.bigEndian(UInt32.self, at: 64)
        guard ~sum == checksum else {
            throw footer.error(at: 64, "footer checksum 0x\(String(checksum, radix: 16)) does not match its contents (0x\(String(~sum, radix: 16)))")
        }

        let creator = Array(try footer.slice(28, 4))
        let originalSize = try footer.bigEndian(UInt64.self, at: 40)
        let currentSize = try footer.bigEndian(UInt64.self, at: 48)
        let cylinders = try footer.bigEndian(UInt16.self, at: 56)
        let heads = try footer.u8(58)
        let sectorsPerTrack = try footer.u8(59)
        var sectors = UInt64(cylinders) * UInt64(heads) * UInt64(sectorsPerTrack)
        if sizeCreators.contains(creator) || sectors == maxGeometrySectors { sectors = currentSize / 512 }
        guard sectors <= maxSectors else { throw footer.error(at: 48, "disk of \(sectors) sectors is over VHD's 2040 GiB") }

        let typeName: String
        var violations: [Violation] = []
        var blockSize: UInt32?
        switch type {
        case 2: typeName = "fixed"
        case 3, 4:
            typeName = type == 3 ? "dynamic" : "differencing"
            let dataOffset = try footer.bigEndian(UInt64.self, at: 16)
            guard dataOffset <= UInt64(Int64.max) else { throw footer.error(at: 16, "data offset \(dataOffset) is absurd") }
            let dynamic = try reader.cursor(at: Int64(dataOffset), count: 1024, what: "vhd dynamic disk header")
            guard dynamic.matches(Array("cxsparse".utf8), at: 0) else {
                throw dynamic.error(at: 0, "no cxsparse dynamic disk header where the footer points")
            }
            let size = try dynamic.bigEndian(UInt32.self, at: 32)
            guard size.nonzeroBitCount == 1, size >= 512 else {
                throw dynamic.error(at: 32, "block size \(size) is not a power of two of at least 512")
            }
            let entries = try dynamic.bigEndian(UInt32.self, at: 28)
            guard UInt64(entries) * UInt64(size) >= sectors * 512 else {
                throw dynamic.error(at: 28, "block table of \(entries) entries cannot map \(sectors * 512) bytes")
            }
            blockSize = size
            if type == 4 {
                // The parent's name is UTF-16BE, at most 256 code units.
                let raw = try dynamic.slice(64, 512)
                var units: [UInt16] = []
                var index = raw.startIndex
                while index + 1 < raw.endIndex {
                    let unit = UInt16(raw[index]) << 8 | UInt16(raw[index + 1])
                    if unit == 0 { break }
                    units.append(unit)
                    index += 2
                }
                violations.append(.backingFile("vhd differencing disk", String(decoding: units, as: UTF16.self)))
            }
        default:
            throw footer.error(at: 60, "unknown disk type \(type)")
        }

        let version = try footer.bigEndian(UInt32.self, at: 32)
        let info = VHDInfo(diskType: typeName, creatorApplication: trimmedText(creator),
                           creatorVersion: "\(version >> 16).\(version & 0xFFFF)",
                           creatorHostOS: trimmedText(try footer.slice(36, 4)), originalSize: originalSize,
                           currentSize: currentSize, cylinders: cylinders, heads: heads,
                           sectorsPerTrack: sectorsPerTrack, blockSize: blockSize)
        return Finding(format: .vpc, virtualSize: sectors * 512, specific: .vpc(info), violations: violations)
    }
}
