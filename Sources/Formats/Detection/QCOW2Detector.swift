enum QCOW2Detector: FormatDetector {
    static let format = ImageFormat.qcow2

    static func matches(_ reader: HeaderReader) -> Bool { reader.head.matches(QCOW2Header.magic, at: 0) }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        // Header extensions may fill cluster 0, so read all of it (64 KiB by default, 2 MiB at most).
        let clusterBits = (try? reader.head.bigEndian(UInt32.self, at: 20)) ?? 16
        let clusterSize = Int64(1) << Int64(min(max(clusterBits, 9), 21))
        let prefix = min(clusterSize, reader.size)
        let cursor = try reader.cursor(at: 0, count: Int(prefix), what: "qcow2 cluster 0")
        let header = try QCOW2Header(prefix: cursor.bytes, fileSize: reader.size, file: reader.name)

        var violations: [Violation] = []
        if let backing = header.backingFile {
            violations.append(.backingFile("qcow2", backing))
        }
        if header.incompatibleFeatures.contains(.externalDataFile) || header.externalDataFile != nil {
            violations.append(.dataFile(header.externalDataFile))
        }
        if header.unknownIncompatibleFeatures != 0 {
            violations.append(.unknownIncompatible("qcow2", bits: header.unknownIncompatibleFeatures))
        }

        var names: [String] = []
        for (kind, bits) in [("incompatible", header.incompatibleFeatures.rawValue),
                             ("compatible", header.compatibleFeatures),
                             ("autoclear", header.autoclearFeatures)] {
            for bit in 0..<64 where bits & (UInt64(1) << UInt64(bit)) != 0 {
                names.append(header.featureNames["\(kind):\(bit)"] ?? "\(kind) bit \(bit)")
            }
        }
        let info = QCOW2Info(
            version: header.version,
            compat: header.version == 2 ? "0.10" : "1.1",
            clusterSize: header.clusterSize,
            compressionType: header.compressionType == .zstd ? "zstd" : "zlib",
            backingFile: header.backingFile,
            backingFormat: header.backingFormat,
            dataFile: header.externalDataFile,
            encrypted: header.cryptMethod != 0,
            incompatibleFeatures: header.incompatibleFeatures.rawValue,
            compatibleFeatures: header.compatibleFeatures,
            autoclearFeatures: header.autoclearFeatures,
            featureNames: names,
            lazyRefcounts: header.compatibleFeatures & 1 != 0,
            dirty: header.incompatibleFeatures.contains(.dirty),
            corrupt: header.incompatibleFeatures.contains(.corrupt),
            extendedL2: header.extendedL2,
            refcountBits: header.refcountBits,
            snapshots: header.snapshotCount)
        return Finding(format: .qcow2, virtualSize: header.virtualSize, specific: .qcow2(info), violations: violations)
    }
}
