
/// Reads a VMDK hosted sparse extent, the single-file VMDKs (monolithicSparse and streamOptimized, the only ones
/// the safety checks accept): a grain directory of grain tables of grain offsets, grains stored as they are or,
/// in streamOptimized, zlib-compressed behind a grain marker. A streamOptimized file's grain directory is named by
/// its footer. Every offset taken from the file is checked before it is followed.
public final class VMDKReader: ImageSource {
    let file: ImageFile
    public let virtualSize: UInt64
    /// Bytes per grain.
    let grainBytes: UInt64
    let compressed: Bool
    /// One entry per grain, in guest order: 0 unallocated, 1 a zero grain (with the zeroed-grain flag), else the
    /// sector the grain (or its marker) starts at.
    private let grains: [UInt32]
    private let decompressor = ClusterDecompressor()

    public var path: String { file.path }

    /// Grain table entries this reader loads at most (256 MiB of tables: a 4 PiB disk of 64 KiB grains).
    static let maximumGrains = 64 << 20
    /// Flags of the sparse header (VMware's Virtual Disk Format 5.0, "Hosted Sparse Extent Header").
    static let zeroedGrainFlag: UInt32 = 1 << 2
    static let compressedFlag: UInt32 = 1 << 16

    public convenience init(path: String) throws {
        try self.init(file: ImageFile(path: path))
    }

    init(file: ImageFile) throws {
        self.file = file
        let path = file.path
        let first = ByteCursor(try file.bytes(at: 0, count: Int(min(file.size, 512)), what: "vmdk sparse header"), file: path)
        guard file.size >= 512, first.matches(VMDKDetector.magic, at: 0) else {
            throw FormatError(file: path, offset: 0, "is not a VMDK sparse extent (no KDMV magic); only single-file VMDKs (monolithicSparse, streamOptimized) are read")
        }
        var header = try VMDKDetector.SparseHeader(first, at: 0)
        var flags = try first.littleEndian(UInt32.self, at: 8)
        var gtes = try first.littleEndian(UInt32.self, at: 44)
        var headerBase: Int64 = 0
        if header.gdOffset == VMDKDetector.gdAtEnd {
            // streamOptimized: the header at the end, between the footer marker and the end-of-stream marker.
            let footerOffset = Int64(file.size / 512 * 512) - 1024
            guard footerOffset >= 512 else {
                throw FormatError(file: path, offset: 56, "defers its grain directory to a footer, but the file is too short to hold one")
            }
            let footer = ByteCursor(try file.bytes(at: UInt64(footerOffset), count: 512, what: "vmdk footer"),
                                    file: path, base: footerOffset)
            guard footer.matches(VMDKDetector.magic, at: 0) else {
                throw FormatError(file: path, offset: footerOffset, "defers its grain directory to a footer, but there is no footer (KDMV) in the second-to-last sector")
            }
            header = try VMDKDetector.SparseHeader(footer, at: 0)
            flags = try footer.littleEndian(UInt32.self, at: 8)
            gtes = try footer.littleEndian(UInt32.self, at: 44)
            headerBase = footerOffset
            guard header.gdOffset != VMDKDetector.gdAtEnd else {
                throw FormatError(file: path, offset: footerOffset + 56, "footer defers its grain directory to yet another footer")
            }
        }
        virtualSize = header.capacity * 512
        grainBytes = header.grainSize * 512
        compressed = flags & Self.compressedFlag != 0
        guard !compressed || header.compression == 1 else {
            throw FormatError(file: path, offset: headerBase + 77, "has compressed grains but compression algorithm \(header.compression), not deflate (1)")
        }
        guard header.grainSize >= 8 else {
            throw FormatError(file: path, offset: headerBase + 20, "grain size \(header.grainSize) sectors is under 8 (4 KiB)")
        }

        let grainCount = (header.capacity + header.grainSize - 1) / header.grainSize
        guard grainCount <= UInt64(Self.maximumGrains) else {
            throw FormatError(file: path, offset: headerBase + 12, "capacity of \(header.capacity) sectors needs \(grainCount) grain table entries, over this reader's \(Self.maximumGrains)")
        }
        let perTable = UInt64(gtes)
        let tables = Int((grainCount + perTable - 1) / perTable)
        let directoryOffset = header.gdOffset * 512
        guard header.gdOffset < file.size / 512, directoryOffset + UInt64(tables) * 4 <= file.size else {
            throw FormatError(file: path, offset: headerBase + 56, "grain directory at sector \(header.gdOffset) (\(tables) entries) lies beyond the end of the file (\(file.size) bytes)")
        }
        let directory = ByteCursor(try file.bytes(at: directoryOffset, count: tables * 4, what: "grain directory"),
                                   file: path, base: Int64(directoryOffset))
        var grains = [UInt32](repeating: 0, count: Int(grainCount))
        for t in 0..<tables {
            let tableSector = UInt64(try directory.littleEndian(UInt32.self, at: t * 4))
            // An unallocated grain table: its grains are unallocated.
            guard tableSector != 0 else { continue }
            let tableOffset = tableSector * 512
            guard tableOffset + perTable * 4 <= file.size else {
                throw FormatError(file: path, offset: Int64(directoryOffset) + Int64(t * 4), "grain table \(t) at sector \(tableSector) lies beyond the end of the file")
            }
            let table = ByteCursor(try file.bytes(at: tableOffset, count: Int(perTable) * 4, what: "grain table \(t)"),
                                   file: path, base: Int64(tableOffset))
            let first = t * Int(perTable)
            for e in 0..<min(Int(perTable), Int(grainCount) - first) {
                let entry = try table.littleEndian(UInt32.self, at: e * 4)
                if entry == 1, flags & Self.zeroedGrainFlag == 0 {
                    throw FormatError(file: path, offset: Int64(tableOffset) + Int64(e * 4), "grain \(first + e) is at sector 1, inside the header")
                }
                if entry > 1, UInt64(entry) * 512 >= file.size {
                    throw FormatError(file: path, offset: Int64(tableOffset) + Int64(e * 4), "grain \(first + e) at sector \(entry) lies beyond the end of the file (\(file.size) bytes)")
                }
                grains[first + e] = entry
            }
        }
        self.grains = grains
    }

    public func extents(in range: Range<UInt64>) throws -> [Extent] {
        guard range.upperBound <= virtualSize else {
            throw FormatError(file: path, offset: Int64(clamping: range.upperBound), "extent query past the virtual size \(virtualSize)")
        }
        var list = ExtentList()
        var position = range.lowerBound
        while position < range.upperBound {
            let grain = position / grainBytes
            let end = min((grain + 1) * grainBytes, range.upperBound)
            let kind: ExtentKind = switch grains[Int(grain)] {
            case 0: .unallocated
            case 1: .zero
            default: .data
            }
            list.append(kind, offset: position, length: end - position)
            position = end
        }
        return list.extents
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(self, offset: offset, count: buffer.count)
        var position = offset
        let end = offset + UInt64(buffer.count)
        while position < end {
            let grain = position / grainBytes
            let grainStart = grain * grainBytes
            let pieceEnd = min(grainStart + grainBytes, end)
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[Int(position - offset)..<Int(pieceEnd - offset)])
            let sector = UInt64(grains[Int(grain)])
            if sector <= 1 {
                target.initializeMemory(as: UInt8.self, repeating: 0)
            } else if compressed {
                let within = Int(position - grainStart)
                if within == 0 && target.count == Int(grainBytes) {
                    try inflate(grain: grain, at: sector * 512, into: target)
                } else {
                    var whole = [UInt8](repeating: 0, count: Int(grainBytes))
                    try whole.withUnsafeMutableBytes { try inflate(grain: grain, at: sector * 512, into: $0) }
                    whole.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[within..<within + target.count])) }
                }
            } else {
                // Like qemu, bytes of the last grain past the end of the file read as zeros.
                let host = sector * 512 + (position - grainStart)
                let present = Int(min(UInt64(target.count), file.size > host ? file.size - host : 0))
                try file.readExactly(at: host, into: UnsafeMutableRawBufferPointer(rebasing: target[..<present]), what: "grain \(grain)")
                UnsafeMutableRawBufferPointer(rebasing: target[present...]).initializeMemory(as: UInt8.self, repeating: 0)
            }
            position = pieceEnd
        }
    }

    /// A compressed grain: a marker (the grain's first guest sector, 8 bytes; the compressed size, 4 bytes) and a
    /// zlib stream that yields the grain, or less for the last grain of the disk.
    private func inflate(grain: UInt64, at offset: UInt64, into output: UnsafeMutableRawBufferPointer) throws {
        let marker = ByteCursor(try file.bytes(at: offset, count: 12, what: "grain \(grain) marker"), file: path, base: Int64(offset))
        let lba = try marker.littleEndian(UInt64.self, at: 0)
        let size = Int(try marker.littleEndian(UInt32.self, at: 8))
        guard lba == grain * (grainBytes / 512) else {
            throw FormatError(file: path, offset: Int64(offset), "grain \(grain)'s marker names sector \(lba), not \(grain * (grainBytes / 512))")
        }
        // zlib can grow incompressible data by a few bytes per 16 KiB block; anything larger is not a grain.
        guard size > 0, size <= Int(grainBytes) + Int(grainBytes) / 1024 + 64, offset + 12 + UInt64(size) <= file.size else {
            throw FormatError(file: path, offset: Int64(offset) + 8, "grain \(grain)'s compressed size \(size) is impossible for a \(grainBytes)-byte grain in a \(file.size)-byte file")
        }
        let input = try file.bytes(at: offset + 12, count: size, what: "grain \(grain)")
        let decoded = input.withUnsafeBytes { decompressor.inflateZlib($0, into: output) }
        guard let (produced, overflow) = decoded, !overflow else {
            throw FormatError(file: path, offset: Int64(offset) + 12, decoded == nil
                ? "grain \(grain) is not valid zlib data"
                : "grain \(grain) decompresses to more than the grain size \(grainBytes)")
        }
        let needed = Int(min(grainBytes, virtualSize - grain * grainBytes))
        guard produced >= needed else {
            throw FormatError(file: path, offset: Int64(offset) + 12, "grain \(grain) decompresses to \(produced) bytes, not \(needed)")
        }
        if produced < output.count {
            UnsafeMutableRawBufferPointer(rebasing: output[produced...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }
}
