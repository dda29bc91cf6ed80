/// QED (qemu's docs/interop/qed_spec.txt). Detected and introspected, then always refused: qemu deprecated it and
/// the reference inspector refuses it too.
enum QEDDetector: FormatDetector {
    static let format = ImageFormat.qed
    static let magic: [UInt8] = [0x51, 0x45, 0x44, 0x00]  // "QED\0"
    static let backingFileFeature: UInt64 = 1 << 0
    static let knownFeatures: UInt64 = 0b111  // backing file, need check, backing format no probe

    static func matches(_ reader: HeaderReader) -> Bool { reader.head.matches(magic, at: 0) }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let c = try reader.cursor(at: 0, count: 64, what: "qed header")
        let clusterSize = try c.littleEndian(UInt32.self, at: 4)
        guard clusterSize.nonzeroBitCount == 1, (4096...(64 << 20)).contains(clusterSize) else {
            throw c.error(at: 4, "cluster size \(clusterSize) is not a power of two in 4 KiB...64 MiB")
        }
        let tableSize = try c.littleEndian(UInt32.self, at: 8)
        guard (1...16).contains(tableSize) else { throw c.error(at: 8, "table size \(tableSize) is outside 1...16") }
        let features = try c.littleEndian(UInt64.self, at: 16)
        let imageSize = try c.littleEndian(UInt64.self, at: 48)
        guard imageSize <= UInt64(1) << 56 else { throw c.error(at: 48, "image size \(imageSize) is absurd") }

        var violations = [Violation(.qedUnsupported, "QED images are deprecated in qemu and not accepted",
                                    hint: "convert it with `qemu-img convert -f qed -O qcow2` on a trusted host")]
        var backingFile: String?
        if features & backingFileFeature != 0 {
            let offset = try c.littleEndian(UInt32.self, at: 56)
            let size = try c.littleEndian(UInt32.self, at: 60)
            guard size <= 1023 else { throw c.error(at: 60, "backing file name of \(size) bytes is over 1023") }
            let name = try reader.cursor(at: Int64(offset), count: Int(size), what: "qed backing file name")
            backingFile = String(decoding: name.bytes, as: UTF8.self)
            violations.append(.backingFile("qed", backingFile))
        }
        if features & ~knownFeatures != 0 {
            violations.append(.unknownIncompatible("qed", bits: features & ~knownFeatures))
        }
        let info = QEDInfo(clusterSize: clusterSize, tableSize: tableSize, features: features, backingFile: backingFile)
        return Finding(format: .qed, virtualSize: imageSize, specific: .qed(info), violations: violations)
    }
}
