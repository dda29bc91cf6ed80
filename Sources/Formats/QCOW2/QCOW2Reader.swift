import Glibc
import Synchronization

/// Reads the active layer of a qcow2 image (v2 or v3, any cluster size, deflate or zstd compressed clusters, zero
/// clusters, extended L2 entries) and, only when the caller allows it, the backing chain under it. Every offset
/// taken from the file is checked before it is followed; bad ones raise a `FormatError` naming file and offset.
public final class QCOW2Reader: ImageSource {
    let file: ImageFile
    public let header: QCOW2Header
    /// The image the unallocated clusters read through to, when the image has one and the caller allowed it.
    public let backing: (any ImageSource)?
    private let l1: [UInt64]
    private let l2Cache = Mutex<[UInt64: [UInt64]]>([:])
    private let decompressor = ClusterDecompressor()

    public var path: String { file.path }
    public var virtualSize: UInt64 { header.virtualSize }

    static let offsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00
    static let compressedFlag: UInt64 = 1 << 62
    static let l1ReservedMask: UInt64 = 0x7F00_0000_0000_01FF
    /// Cached L2 tables are dropped wholesale past this many bytes; a sequential pass reuses each table in turn.
    static let l2CacheBytes = 32 << 20

    public convenience init(path: String, allowBacking: Bool = false) throws {
        try self.init(file: ImageFile(path: path), allowBacking: allowBacking, depth: 0)
    }

    init(file: ImageFile, allowBacking: Bool, depth: Int) throws {
        self.file = file
        let prefixCount = Int(min(UInt64(QCOW2Header.prefixLength), file.size))
        let prefix = try file.bytes(at: 0, count: prefixCount, what: "header")
        let header = try QCOW2Header(prefix: prefix, fileSize: Int64(clamping: file.size), file: file.path)
        self.header = header
        let path = file.path
        guard header.unknownIncompatibleFeatures == 0 else {
            throw FormatError(file: path, offset: 72, "uses incompatible features 0x\(String(header.unknownIncompatibleFeatures, radix: 16)) this reader does not know; refusing it")
        }
        guard header.cryptMethod == 0 else {
            throw FormatError(file: path, offset: 32, "is encrypted (crypt_method \(header.cryptMethod)); decrypt it with qemu-img first")
        }
        guard !header.incompatibleFeatures.contains(.externalDataFile) else {
            throw FormatError(file: path, offset: 72, "keeps its data in an external file\(header.externalDataFile.map { " (\($0))" } ?? ""); refusing to follow it")
        }

        var l1: [UInt64] = []
        if header.l1Size > 0 {
            let bytes = try file.bytes(at: header.l1TableOffset, count: Int(header.l1Size) * 8, what: "L1 table")
            let cursor = ByteCursor(bytes, file: path, base: Int64(header.l1TableOffset))
            l1.reserveCapacity(Int(header.l1Size))
            for i in 0..<Int(header.l1Size) { l1.append(try cursor.bigEndian(UInt64.self, at: i * 8)) }
        }
        self.l1 = l1

        if let name = header.backingFile {
            guard allowBacking else {
                throw FormatError(file: path, offset: Int64(header.backingFileOffset), "names a backing file \"\(name)\"; refusing to follow it (allow backing files only for images you created)")
            }
            guard depth < maximumBackingDepth else {
                throw FormatError(file: path, offset: Int64(header.backingFileOffset), "backing chain is deeper than \(maximumBackingDepth) images (a loop?)")
            }
            guard let formatName = header.backingFormat, let format = ImageFormat(rawValue: formatName) else {
                throw FormatError(file: path, offset: Int64(header.backingFileOffset), "backing file \"\(name)\" has \(header.backingFormat.map { "format \"\($0)\"" } ?? "no recorded format"); only qcow2 and raw backing files with a recorded format are read (rebase with -F)")
            }
            guard !name.isEmpty, !name.hasPrefix("json:"), !name.contains("://") else {
                throw FormatError(file: path, offset: Int64(header.backingFileOffset), "backing file \"\(name)\" is not a plain file name")
            }
            let resolved: String
            if name.hasPrefix("/") {
                resolved = name
            } else if let slash = path.lastIndex(of: "/") {
                resolved = String(path[...slash]) + name
            } else {
                resolved = name
            }
            backing = try openImage(path: resolved, format: format, allowBacking: true, depth: depth + 1)
        } else {
            backing = nil
        }
    }

    // MARK: Address translation

    /// Where a run of guest bytes comes from.
    enum Piece {
        /// Stored uncompressed, starting at this host offset.
        case data(host: UInt64)
        case zero
        case unallocated
        /// Part of the compressed cluster starting at guest offset `clusterStart`.
        case compressed(descriptor: UInt64, clusterStart: UInt64)
    }

    private func error(_ offset: UInt64, _ message: String) -> FormatError {
        FormatError(file: file.path, offset: Int64(clamping: offset), message)
    }

    /// The L2 table that L1 entry `index` points to, nil when unallocated. Extended L2 tables hold entry and
    /// bitmap pairs.
    private func l2Table(_ index: Int) throws -> [UInt64]? {
        let entryOffset = header.l1TableOffset + UInt64(index) * 8
        let entry = l1[index]
        let offset = entry & Self.offsetMask
        guard offset != 0 else { return nil }
        guard entry & Self.l1ReservedMask == 0 else {
            throw error(entryOffset, "L1 entry \(index) has reserved bits set (0x\(String(entry, radix: 16)))")
        }
        let clusterSize = UInt64(header.clusterSize)
        guard offset % clusterSize == 0 else {
            throw error(entryOffset, "L1 entry \(index) points to an L2 table at \(offset), not cluster aligned")
        }
        guard offset < file.size, clusterSize <= file.size - offset else {
            throw error(entryOffset, "L1 entry \(index) points to an L2 table at \(offset), beyond the end of the file (\(file.size) bytes)")
        }
        if let table = l2Cache.withLock({ $0[offset] }) { return table }
        let bytes = try file.bytes(at: offset, count: header.clusterSize, what: "L2 table")
        var table = [UInt64](repeating: 0, count: header.clusterSize / 8)
        for i in table.indices {
            var value: UInt64 = 0
            for b in 0..<8 { value = value << 8 | UInt64(bytes[i * 8 + b]) }
            table[i] = value
        }
        l2Cache.withLock { cache in
            if (cache.count + 1) * header.clusterSize > Self.l2CacheBytes { cache.removeAll(keepingCapacity: true) }
            cache[offset] = table
        }
        return table
    }

    /// Calls `body` for consecutive runs covering `range`, merging neighbours that read alike (zeros, holes, host
    /// contiguous data).
    func walk(_ range: Range<UInt64>, _ body: (UInt64, UInt64, Piece) throws -> Void) throws {
        let bits = UInt64(header.clusterBits)
        let clusterSize = UInt64(header.clusterSize)
        let l2Entries = UInt64(header.l2Entries)
        let extended = header.extendedL2
        var pending: (offset: UInt64, length: UInt64, piece: Piece)?

        func emit(_ offset: UInt64, _ length: UInt64, _ piece: Piece) throws {
            if let p = pending, p.offset + p.length == offset {
                switch (p.piece, piece) {
                case (.zero, .zero), (.unallocated, .unallocated):
                    pending?.length += length
                    return
                case let (.data(a), .data(b)) where a + p.length == b:
                    pending?.length += length
                    return
                default: break
                }
            }
            if let p = pending { try body(p.offset, p.length, p.piece) }
            pending = (offset, length, piece)
        }

        var position = range.lowerBound
        while position < range.upperBound {
            let cluster = position >> bits
            let clusterStart = cluster << bits
            let l1Index = Int(cluster / l2Entries)
            guard l1Index < l1.count else {
                throw error(header.l1TableOffset, "guest offset \(position) lies beyond the L1 table (\(l1.count) entries)")
            }
            guard let table = try l2Table(l1Index) else {
                let tableEnd = (UInt64(l1Index) + 1) * l2Entries << bits
                let end = min(tableEnd, range.upperBound)
                try emit(position, end - position, .unallocated)
                position = end
                continue
            }
            let l2Index = Int(cluster % l2Entries)
            let entryOffset = (l1[l1Index] & Self.offsetMask) + UInt64(l2Index) * (extended ? 16 : 8)
            let entry = table[extended ? l2Index * 2 : l2Index]
            let clusterEnd = min(clusterStart + clusterSize, range.upperBound)
            if entry & Self.compressedFlag != 0 {
                try emit(position, clusterEnd - position, .compressed(descriptor: entry, clusterStart: clusterStart))
                position = clusterEnd
                continue
            }
            let host = entry & Self.offsetMask
            if host != 0 {
                guard host % clusterSize == 0 else {
                    throw error(entryOffset, "L2 entry for guest offset \(clusterStart) points to \(host), not cluster aligned")
                }
                guard host < file.size else {
                    throw error(entryOffset, "L2 entry for guest offset \(clusterStart) points to \(host), beyond the end of the file (\(file.size) bytes)")
                }
            }
            if !extended {
                let piece: Piece = if entry & 1 != 0 { .zero } else if host == 0 { .unallocated } else {
                    .data(host: host + (position - clusterStart))
                }
                try emit(position, clusterEnd - position, piece)
                position = clusterEnd
                continue
            }
            let bitmap = table[l2Index * 2 + 1]
            let allocated = bitmap & 0xFFFF_FFFF
            guard (bitmap >> 32) & allocated == 0, host != 0 || allocated == 0 else {
                throw error(entryOffset + 8, "L2 subcluster bitmap 0x\(String(bitmap, radix: 16)) for guest offset \(clusterStart) is inconsistent")
            }
            let subclusterSize = clusterSize / 32
            while position < clusterEnd {
                let sub = (position - clusterStart) / subclusterSize
                let subEnd = min(clusterStart + (sub + 1) * subclusterSize, clusterEnd)
                let piece: Piece = if bitmap >> (32 + sub) & 1 != 0 { .zero } else if bitmap >> sub & 1 != 0 {
                    .data(host: host + (position - clusterStart))
                } else { .unallocated }
                try emit(position, subEnd - position, piece)
                position = subEnd
            }
        }
        if let p = pending { try body(p.offset, p.length, p.piece) }
    }

    /// How the image's compressed clusters are compressed, when its active layer has any: nil when none is.
    /// Reads the L2 tables up to the first compressed entry.
    public func compressedClusters() throws -> ClusterCompression? {
        let stride = header.extendedL2 ? 2 : 1
        for index in l1.indices {
            guard let table = try l2Table(index) else { continue }
            for entry in Swift.stride(from: 0, to: table.count, by: stride) where table[entry] & Self.compressedFlag != 0 {
                return header.compressionType == .zstd ? .zstd : .zlib
            }
        }
        return nil
    }

    // MARK: ImageSource

    public func extents(in range: Range<UInt64>) throws -> [Extent] {
        guard range.upperBound <= virtualSize else {
            throw error(0, "extent query up to \(range.upperBound) past the virtual size \(virtualSize)")
        }
        var list = ExtentList()
        try walk(range) { offset, length, piece in
            switch piece {
            case .data, .compressed: list.append(.data, offset: offset, length: length)
            case .zero: list.append(.zero, offset: offset, length: length)
            case .unallocated:
                guard let backing else {
                    list.append(.unallocated, offset: offset, length: length)
                    return
                }
                let below = min(offset + length, max(backing.virtualSize, offset))
                if below > offset { list.append(contentsOf: try backing.extents(in: offset..<below)) }
                list.append(.unallocated, offset: below, length: offset + length - below)
            }
        }
        return list.extents
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(self, offset: offset, count: buffer.count)
        guard buffer.count > 0 else { return }
        try walk(offset..<offset + UInt64(buffer.count)) { guest, length, piece in
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[Int(guest - offset)..<Int(guest - offset + length)])
            switch piece {
            case .zero:
                target.initializeMemory(as: UInt8.self, repeating: 0)
            case .unallocated:
                let below = min(guest + length, max(backing?.virtualSize ?? 0, guest))
                let split = Int(below - guest)
                if let backing, split > 0 {
                    try backing.read(at: guest, into: UnsafeMutableRawBufferPointer(rebasing: target[..<split]))
                }
                UnsafeMutableRawBufferPointer(rebasing: target[split...]).initializeMemory(as: UInt8.self, repeating: 0)
            case .data(let host):
                // Like qemu, bytes past the end of the file read as zeros; bytes it had when opened must be there.
                let present = Int(min(UInt64(target.count), file.size > host ? file.size - host : 0))
                try file.readExactly(at: host, into: UnsafeMutableRawBufferPointer(rebasing: target[..<present]),
                                     what: "data cluster read")
                UnsafeMutableRawBufferPointer(rebasing: target[present...]).initializeMemory(as: UInt8.self, repeating: 0)
            case .compressed(let descriptor, let clusterStart):
                if guest == clusterStart && length == UInt64(header.clusterSize) {
                    try decompressCluster(descriptor, clusterStart: clusterStart, into: target)
                } else {
                    var whole = [UInt8](repeating: 0, count: header.clusterSize)
                    try whole.withUnsafeMutableBytes { try decompressCluster(descriptor, clusterStart: clusterStart, into: $0) }
                    let from = Int(guest - clusterStart)
                    whole.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[from..<from + Int(length)])) }
                }
            }
        }
    }

    /// The host byte offset and length of a compressed cluster, as qemu decodes the descriptor: the length runs to
    /// the end of the last 512-byte sector the data touches.
    func compressedLocation(_ descriptor: UInt64) -> (offset: UInt64, length: Int) {
        let shift = 62 - (UInt64(header.clusterBits) - 8)
        let offset = descriptor & ((1 << shift) - 1)
        let sectors = (descriptor >> shift) & ((1 << (UInt64(header.clusterBits) - 8)) - 1) + 1
        return (offset, Int(sectors * 512 - (offset & 511)))
    }

    private func decompressCluster(_ descriptor: UInt64, clusterStart: UInt64, into target: UnsafeMutableRawBufferPointer) throws {
        let (offset, length) = compressedLocation(descriptor)
        guard offset < file.size else {
            throw error(offset, "compressed cluster for guest offset \(clusterStart) starts beyond the end of the file (\(file.size) bytes)")
        }
        // The final sector may be cut short by the end of the file; qemu reads the missing bytes as zeros.
        let available = Int(min(UInt64(length), file.size - offset))
        let compressed = try [UInt8](unsafeUninitializedCapacity: available) { bytes, count in
            try file.readExactly(at: offset, into: UnsafeMutableRawBufferPointer(bytes), what: "compressed cluster read")
            count = available
        }
        try compressed.withUnsafeBytes {
            try decompressor.decompress(header.compressionType, $0, into: target, file: file.path, offset: offset)
        }
    }
}
