enum QCOW2Detector: FormatDetector {
    static let format = ImageFormat.qcow2

    /// The magic with any version but 1, which is qcow (`QCOWDetector`); qemu takes versions 0 and 4+ for raw and
    /// qcow2 respectively, and both are refused as malformed here.
    static func matches(_ reader: HeaderReader) -> Bool {
        reader.head.matches(QCOW2Header.magic, at: 0) && !QCOWDetector.matches(reader)
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        // Header extensions may run on through cluster 0: parse the head already read, and only when the chain
        // goes past it read the rest of cluster 0 (2 MiB at most) and parse again.
        var header = try QCOW2Header(prefix: reader.head.bytes, fileSize: reader.size, file: reader.name)
        if !header.extensionsComplete {
            let cluster = min(Int64(header.clusterSize), reader.size)
            let cursor = try reader.cursor(at: 0, count: Int(cluster), what: "qcow2 cluster 0")
            header = try QCOW2Header(prefix: cursor.bytes, fileSize: reader.size, file: reader.name)
        }

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
