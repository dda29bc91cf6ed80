/// Lays out a qcow2 v3 file written front to back: cluster 0 for the header, then data clusters in guest order
/// with each L2 table written once its guest range is done and each refcount block once the host clusters it
/// counts are complete, then the L1 table, the refcount table and the last refcount blocks; the header goes in
/// last. Compressed clusters are packed at byte granularity like qemu packs them. Memory: one L2 table, the L1
/// table (at most qemu's 32 MiB), one refcount block's worth of counts, 8 bytes per refcount block written, and
/// the write buffer.
struct QCOW2Output {
    private let file: OutputFile
    private let virtualSize: UInt64
    private let clusterBits: Int
    private let clusterSize: Int
    private let compression: QCOW2Header.CompressionType
    private let l2Entries: UInt64

    /// Bytes not yet written, which start at host offset `bufferStart`.
    private var buffer: [UInt8] = []
    private var bufferStart: UInt64 = 0
    /// Counts of the host clusters from `refcountBase` on; the ones before are in refcount blocks already.
    private var refcounts: [UInt16] = []
    private var refcountBase = 0
    /// Host offsets of the refcount blocks written so far: the refcount table's first entries.
    private var refcountBlocks: [UInt64] = []
    /// Clusters one refcount block counts (16-bit counts).
    private var perBlock: Int { clusterSize / 2 }
    private var l1: [UInt64]
    private var l2: [UInt64]
    private var l2Index = 0
    private var l2Used = false

    private static let copied: UInt64 = 1 << 63
    private static let flushBytes = 8 << 20
    static let headerLength = 112

    init(file: OutputFile, virtualSize: UInt64, clusterBits: Int, compression: QCOW2Header.CompressionType) {
        self.file = file
        self.virtualSize = virtualSize
        self.clusterBits = clusterBits
        self.clusterSize = 1 << clusterBits
        self.compression = compression
        self.l2Entries = UInt64(clusterSize / 8)
        let clusters = (virtualSize + UInt64(clusterSize) - 1) >> UInt64(clusterBits)
        l1 = [UInt64](repeating: 0, count: Int((clusters + l2Entries - 1) / l2Entries))
        l2 = [UInt64](repeating: 0, count: Int(l2Entries))
        buffer.reserveCapacity(Self.flushBytes + 2 * clusterSize)
        // Cluster 0 is the header's, written last.
        buffer.append(contentsOf: repeatElement(0, count: clusterSize))
        reference(0, UInt64(clusterSize))
    }

    private var end: UInt64 { bufferStart + UInt64(buffer.count) }

    /// Stores guest cluster `cluster` (clusters come in increasing order), compressed or as is.
    mutating func append(cluster: UInt64, _ bytes: UnsafeRawBufferPointer, compressed: Bool) throws {
        let table = Int(cluster / l2Entries)
        if table != l2Index {
            try flushL2()
            l2Index = table
        }
        let entry: UInt64
        if compressed {
            // A host cluster's refcount must not overflow 16 bits however small the compressed clusters are.
            let current = Int(end >> UInt64(clusterBits)) - refcountBase
            if refcounts.count > current, refcounts[current] == .max {
                alignToCluster()
            }
            let offset = end
            buffer.append(contentsOf: bytes)
            reference(offset, end)
            let shift = UInt64(62 - (clusterBits - 8))
            let sectors = ((end - 1) >> 9) - (offset >> 9)
            entry = 1 << 62 | sectors << shift | offset
        } else {
            alignToCluster()
            let offset = end
            buffer.append(contentsOf: bytes)
            reference(offset, end)
            entry = offset | Self.copied
        }
        l2[Int(cluster % l2Entries)] = entry
        l2Used = true
        writeCompleteRefcountBlocks()
        if buffer.count >= Self.flushBytes { try flush() }
    }

    /// Writes the refcount blocks whose clusters all lie before the one being filled: nothing references those
    /// clusters again.
    private mutating func writeCompleteRefcountBlocks() {
        while Int(end >> UInt64(clusterBits)) >= refcountBase + perBlock {
            alignToCluster()
            let offset = end
            for count in refcounts[0..<perBlock] {
                buffer.append(UInt8(count >> 8))
                buffer.append(UInt8(count & 0xFF))
            }
            refcounts.removeFirst(perBlock)
            refcountBase += perBlock
            refcountBlocks.append(offset)
            reference(offset, end)
        }
    }

    /// Writes the tables and the header and returns the file's size. Call once, after the last cluster.
    mutating func finish() throws -> UInt64 {
        try flushL2()
        alignToCluster()
        // An empty image has no L1 table; qemu records offset 0 for it, and a cluster there would leak.
        let l1Offset = l1.isEmpty ? 0 : end
        if !l1.isEmpty {
            let l1Clusters = (l1.count * 8 + clusterSize - 1) / clusterSize
            for entry in l1 { appendBigEndian(entry) }
            buffer.append(contentsOf: repeatElement(0, count: l1Clusters * clusterSize - l1.count * 8))
            reference(l1Offset, end)
        }

        writeCompleteRefcountBlocks()

        // The refcount table and the last blocks count themselves: grow them until they cover everything.
        let first = Int(end >> UInt64(clusterBits))
        var blocks = 0, tableClusters = 0
        while true {
            let total = first + tableClusters + blocks
            let needBlocks = (total - refcountBase + perBlock - 1) / perBlock
            let needTable = ((refcountBlocks.count + needBlocks) * 8 + clusterSize - 1) / clusterSize
            if needBlocks == blocks && needTable == tableClusters { break }
            blocks = needBlocks
            tableClusters = needTable
        }
        let tableOffset = end
        reference(tableOffset, tableOffset + UInt64((tableClusters + blocks) * clusterSize))
        for block in refcountBlocks { appendBigEndian(block) }
        for block in 0..<blocks { appendBigEndian(UInt64(first + tableClusters + block) << UInt64(clusterBits)) }
        buffer.append(contentsOf: repeatElement(0, count: tableClusters * clusterSize - (refcountBlocks.count + blocks) * 8))
        try flush()
        for block in 0..<blocks {
            let counts = refcounts[min(block * perBlock, refcounts.count)..<min((block + 1) * perBlock, refcounts.count)]
            for count in counts {
                buffer.append(UInt8(count >> 8))
                buffer.append(UInt8(count & 0xFF))
            }
            buffer.append(contentsOf: repeatElement(0, count: clusterSize - counts.count * 2))
            if buffer.count >= Self.flushBytes { try flush() }
        }
        try flush()
        let header = Self.header(virtualSize: virtualSize, clusterBits: clusterBits, compression: compression,
                                 l1Size: l1.count, l1Offset: l1Offset, refcountTableOffset: tableOffset,
                                 refcountTableClusters: tableClusters)
        try header.withUnsafeBytes { try file.write($0, at: 0) }
        return end
    }

    static func header(virtualSize: UInt64, clusterBits: Int, compression: QCOW2Header.CompressionType, l1Size: Int,
                       l1Offset: UInt64, refcountTableOffset: UInt64, refcountTableClusters: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
        }
        bytes.append(contentsOf: QCOW2Header.magic)
        put(UInt32(3))
        put(UInt64(0))  // backing file offset
        put(UInt32(0))  // backing file size
        put(UInt32(clusterBits))
        put(virtualSize)
        put(UInt32(0))  // crypt method
        put(UInt32(l1Size))
        put(l1Offset)
        put(refcountTableOffset)
        put(UInt32(refcountTableClusters))
        put(UInt32(0))  // snapshots
        put(UInt64(0))
        put(compression == .zstd ? QCOW2Header.IncompatibleFeatures.compressionType.rawValue : 0)
        put(UInt64(0))  // compatible features
        put(UInt64(0))  // autoclear features
        put(UInt32(4))  // refcount order: 16-bit refcounts
        put(UInt32(headerLength))
        bytes.append(compression.rawValue)
        bytes.append(contentsOf: repeatElement(0, count: headerLength - bytes.count))
        // An end-of-extensions marker: zeros.
        bytes.append(contentsOf: repeatElement(0, count: 8))
        return bytes
    }

    private mutating func flushL2() throws {
        guard l2Used else { return }
        alignToCluster()
        let offset = end
        for entry in l2 { appendBigEndian(entry) }
        reference(offset, end)
        l1[l2Index] = offset | Self.copied
        for i in l2.indices { l2[i] = 0 }
        l2Used = false
    }

    private mutating func alignToCluster() {
        let misalignment = Int(end & UInt64(clusterSize - 1))
        if misalignment != 0 { buffer.append(contentsOf: repeatElement(0, count: clusterSize - misalignment)) }
    }

    private mutating func appendBigEndian(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { buffer.append(contentsOf: $0) }
    }

    /// One more reference to every host cluster that bytes `from..<to` touch.
    private mutating func reference(_ from: UInt64, _ to: UInt64) {
        let first = Int(from >> UInt64(clusterBits)) - refcountBase, last = Int((to - 1) >> UInt64(clusterBits)) - refcountBase
        if refcounts.count <= last { refcounts.append(contentsOf: repeatElement(0, count: last + 1 - refcounts.count)) }
        for c in first...last { refcounts[c] += 1 }
    }

    private mutating func flush() throws {
        try buffer.withUnsafeBytes { try file.write($0, at: bufferStart) }
        bufferStart += UInt64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }
}
