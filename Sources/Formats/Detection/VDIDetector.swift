/// VirtualBox VDI: a 64-byte text banner, then a little-endian header at 0x40.
enum VDIDetector: FormatDetector {
    static let format = ImageFormat.vdi
    static let signature: UInt32 = 0xBEDA_107F

    static func matches(_ reader: HeaderReader) -> Bool {
        (try? reader.head.littleEndian(UInt32.self, at: 0x40)) == signature
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let c = try reader.cursor(at: 0, count: 0x190, what: "vdi header")
        let version = try c.littleEndian(UInt32.self, at: 0x44)
        guard version >> 16 == 1 else {
            throw c.error(at: 0x44, "VDI version \(version >> 16).\(version & 0xFFFF) is not 1.x, the only one qemu reads")
        }
        let type = try c.littleEndian(UInt32.self, at: 0x4C)
        let typeName: String
        switch type {
        case 1: typeName = "dynamic"
        case 2: typeName = "static"
        default: throw c.error(at: 0x4C, "VDI image type \(type) (undo or differencing) is not one qemu reads")
        }
        let diskSize = try c.littleEndian(UInt64.self, at: 0x170)
        guard diskSize <= UInt64(1) << 56 else { throw c.error(at: 0x170, "disk size \(diskSize) is absurd") }
        let blockSize = try c.littleEndian(UInt32.self, at: 0x178)
        guard blockSize.nonzeroBitCount == 1, blockSize >= 512 else {
            throw c.error(at: 0x178, "block size \(blockSize) is not a power of two of at least 512")
        }
        let info = VDIInfo(imageType: typeName, version: "\(version >> 16).\(version & 0xFFFF)",
                           blockSize: blockSize, diskSize: diskSize)
        // qemu rounds a disk size that is not whole sectors up (VBoxManage convertfromraw writes such sizes).
        return Finding(format: .vdi, virtualSize: roundedToSector(diskSize), specific: .vdi(info))
    }
}
