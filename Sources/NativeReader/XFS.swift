import Formats

/// XFS v4 and v5, read-only ("XFS Algorithms & Data Structures"): the superblock, inodes from their numbers,
/// data forks in local, extent-list and B+tree format, short-form, block, leaf and node directories (their data
/// blocks scanned linearly, the hash index left aside), local and remote symlinks.
///
/// Metadata CRCs are not verified (reading needs none; damaged blocks fail their magic and bounds checks). The
/// log is not replayed: a filesystem that was not cleanly unmounted may read stale. Filesystems with large extent
/// counters (nrext64) or a realtime device are "not handled".
public final class XFSFilesystem: FilesystemReader {
    public let device: any BlockDevice
    public var type: String { "xfs" }
    public let uuid: String
    public let label: String
    public let rootNode: UInt64

    let blockSize: UInt64
    let blocks: UInt64
    let agBlocks: UInt64
    let agCount: UInt64
    let agBlockLog: UInt64
    let inodesPerBlockLog: UInt64
    let inodeSize: UInt64
    let directoryBlockSize: UInt64
    let version5: Bool
    let hasFileType: Bool

    static let maximumExtents = 1 << 20
    static let maximumTreeDepth = 10
    /// Directory data lives below this byte offset of the directory; the leaf and free indexes above it.
    static let leafOffset: UInt64 = 32 << 30

    public init(device: any BlockDevice) throws {
        self.device = device
        let site = Site(device.name, "XFS superblock", at: 0)
        let bytes = try device.read(at: 0, count: 512)
        let c = site.cursor(bytes)
        let values = try parsing(site) { () throws -> [UInt64] in
            guard c.matches(Array("XFSB".utf8), at: 0) else { throw site.error("has no XFSB magic") }
            return [UInt64(try c.bigEndian(UInt32.self, at: 4)), try c.bigEndian(UInt64.self, at: 8),
                    try c.bigEndian(UInt64.self, at: 56), UInt64(try c.bigEndian(UInt32.self, at: 84)),
                    UInt64(try c.bigEndian(UInt32.self, at: 88)), UInt64(try c.bigEndian(UInt16.self, at: 100)),
                    UInt64(try c.bigEndian(UInt16.self, at: 104)), UInt64(try c.u8(120)), UInt64(try c.u8(123)),
                    UInt64(try c.u8(124)), UInt64(try c.u8(192)), UInt64(try c.bigEndian(UInt32.self, at: 200)),
                    UInt64(try c.bigEndian(UInt32.self, at: 216)), try c.bigEndian(UInt64.self, at: 16)]
        }
        let (size, dblocks, root, agBlocks, agCount, version, inodeSize, blockLog, inodesPerBlockLog, agBlockLog,
             dirBlockLog, features2, incompat, rtBlocks) = (values[0], values[1], values[2], values[3], values[4],
                                                            values[5], values[6], values[7], values[8], values[9],
                                                            values[10], values[11], values[12], values[13])
        uuid = uuidText(bytes[32..<48])
        label = String(decoding: bytes[108..<120].prefix { $0 != 0 }, as: UTF8.self)
        guard (9...16).contains(blockLog), size == 1 << blockLog else {
            throw site.error("block size \(size) is not 2^\(blockLog) in 512-65536")
        }
        blockSize = size
        version5 = version & 0xF == 5
        guard version & 0xF == 4 || version5 else { throw site.error(.notHandled, "is XFS version \(version & 0xF)") }
        guard rtBlocks == 0 else { throw site.error(.notHandled, "has a realtime device") }
        if version5 {
            // ftype, sparse inodes, meta_uuid, bigtime are read; nrext64 and anything newer are not.
            guard incompat & ~0x1F == 0, incompat & 0x10 == 0 else {
                throw site.error(.notHandled, "uses incompatible features 0x\(String(incompat, radix: 16)) this reader does not read")
            }
        }
        hasFileType = version5 ? incompat & 0x1 != 0 : features2 & 0x200 != 0
        guard [256, 512, 1024, 2048].contains(inodeSize), inodeSize <= blockSize,
              1 << inodesPerBlockLog == blockSize / inodeSize else {
            throw site.error("inode size \(inodeSize) and \(1 << min(inodesPerBlockLog, 16)) per block do not fit blocks of \(blockSize)")
        }
        guard agBlockLog <= 31, agBlocks > 0, agBlocks <= 1 << agBlockLog, agCount > 0 else {
            throw site.error("allocation groups of \(agBlocks) blocks (log \(agBlockLog)) are not valid")
        }
        guard dirBlockLog <= 16 - blockLog else { throw site.error("directory blocks of 2^\(dirBlockLog) blocks are too large") }
        guard try site.multiply(dblocks, blockSize) <= device.size else {
            throw site.error("\(dblocks) blocks of \(blockSize) bytes are more than the device's \(device.size) bytes")
        }
        blocks = dblocks
        self.agBlocks = agBlocks
        self.agCount = agCount
        self.agBlockLog = agBlockLog
        self.inodesPerBlockLog = inodesPerBlockLog
        self.inodeSize = inodeSize
        directoryBlockSize = blockSize << dirBlockLog
        rootNode = root
    }

    // MARK: Addresses

    /// The device byte offset of filesystem block `fsb` (AG number in its high bits), checked.
    func byteOffset(block fsb: UInt64, _ site: Site) throws -> UInt64 {
        let ag = fsb >> agBlockLog, agBlock = fsb & ((1 << agBlockLog) - 1)
        guard ag < agCount, agBlock < agBlocks else {
            throw site.error("names block \(fsb) (AG \(ag), block \(agBlock)), outside the filesystem")
        }
        let linear = try site.add(try site.multiply(ag, agBlocks), agBlock)
        guard linear < blocks else { throw site.error("names block \(linear), past the filesystem's \(blocks)") }
        return linear * blockSize
    }

    func readBlocks(_ fsb: UInt64, count: UInt64, _ site: Site) throws -> [UInt8] {
        let offset = try byteOffset(block: fsb, site)
        let length = try site.multiply(count, blockSize)
        guard length <= UInt64(maximumDeviceRead) else { throw site.error(.limit, "a read of \(length) bytes") }
        return try device.read(at: offset, count: Int(length))
    }

    struct Inode {
        var node: Node
        var format: UInt8
        var extentCount: UInt64
        /// The data fork's bytes (inline data, extent records or a B+tree root).
        var fork: [UInt8]
        var site: Site
    }

    func inode(_ number: UInt64) throws -> Inode {
        let site = Site(device.name, "XFS inode \(number)")
        let ag = number >> (agBlockLog + inodesPerBlockLog)
        let agBlock = (number >> inodesPerBlockLog) & ((1 << agBlockLog) - 1)
        let index = number & ((1 << inodesPerBlockLog) - 1)
        guard ag < agCount, agBlock < agBlocks else { throw site.error("is outside the filesystem") }
        let offset = try site.add(try byteOffset(block: (ag << agBlockLog) | agBlock, site), index * inodeSize)
        let located = Site(device.name, "XFS inode \(number)", at: offset)
        let bytes = try device.read(at: offset, count: Int(inodeSize))
        return try parsing(located) {
            let c = located.cursor(bytes)
            guard c.matches([0x49, 0x4E], at: 0) else { throw located.error("has no IN magic") }
            let mode = UInt32(try c.bigEndian(UInt16.self, at: 2))
            let version = try c.u8(4)
            let format = try c.u8(5)
            let coreSize = version >= 3 ? 176 : 100
            let forkOffset = Int(try c.u8(82)) * 8
            let forkEnd = forkOffset > 0 ? coreSize + forkOffset : Int(inodeSize)
            guard forkEnd <= Int(inodeSize) else { throw located.error("its attribute fork offset is past the inode") }
            let node = Node(number: number, kind: NodeKind(mode: mode), mode: mode,
                            uid: try c.bigEndian(UInt32.self, at: 8), gid: try c.bigEndian(UInt32.self, at: 12),
                            size: try c.bigEndian(UInt64.self, at: 56),
                            links: version >= 2 ? try c.bigEndian(UInt32.self, at: 16) : UInt32(try c.bigEndian(UInt16.self, at: 6)),
                            modified: Int64(try c.bigEndian(UInt32.self, at: 40)))
            return Inode(node: node, format: format, extentCount: UInt64(try c.bigEndian(UInt32.self, at: 76)),
                         fork: Array(try c.slice(coreSize, forkEnd - coreSize)), site: located)
        }
    }

    public func node(_ number: UInt64) throws -> Node { try inode(number).node }

    // MARK: Extents

    struct Extent {
        var logical: UInt64
        var block: UInt64
        var count: UInt64
        var unwritten: Bool
    }

    static func extent(_ c: ByteCursor, at offset: Int) throws -> Extent {
        let high = try c.bigEndian(UInt64.self, at: offset), low = try c.bigEndian(UInt64.self, at: offset + 8)
        return Extent(logical: (high & 0x7FFF_FFFF_FFFF_FFFF) >> 9, block: (high & 0x1FF) << 43 | low >> 21,
                      count: low & 0x1F_FFFF, unwritten: high >> 63 == 1)
    }

    /// Every extent of the data fork, in the order stored, bounded.
    func extents(_ inode: Inode) throws -> [Extent] {
        let site = inode.site
        let c = site.cursor(inode.fork)
        switch inode.format {
        case 2:
            guard inode.extentCount <= UInt64(inode.fork.count / 16) else {
                throw site.error("\(inode.extentCount) extents do not fit its data fork")
            }
            return try parsing(site) { try (0..<Int(inode.extentCount)).map { try Self.extent(c, at: $0 * 16) } }
        case 3:
            return try parsing(site) {
                let level = Int(try c.bigEndian(UInt16.self, at: 0))
                let count = Int(try c.bigEndian(UInt16.self, at: 2))
                let maximum = (inode.fork.count - 4) / 16
                guard level > 0, level <= Self.maximumTreeDepth, count <= maximum else {
                    throw site.error("its B+tree root (level \(level), \(count) records) is not valid")
                }
                var result: [Extent] = []
                var visited = 0
                for index in 0..<count {
                    let pointer = try c.bigEndian(UInt64.self, at: 4 + maximum * 8 + index * 8)
                    try collect(pointer, level: level - 1, into: &result, visited: &visited, owner: inode.node.number)
                }
                return result
            }
        default:
            throw site.error(.notHandled, "has a data fork of format \(inode.format), not extents or a B+tree")
        }
    }

    /// Blocks of one B+tree read at most: pointers may repeat, so the depth alone does not bound the walk.
    static let maximumTreeBlocks = 1 << 14

    func collect(_ block: UInt64, level: Int, into result: inout [Extent], visited: inout Int, owner: UInt64) throws {
        let site = Site(device.name, "XFS bmap block \(block) of inode \(owner)")
        visited += 1
        guard visited <= Self.maximumTreeBlocks else {
            throw site.error(.limit, "more than \(Self.maximumTreeBlocks) B+tree blocks")
        }
        let bytes = try readBlocks(block, count: 1, site)
        try parsing(site) {
            let c = site.cursor(bytes)
            guard c.matches(Array((version5 ? "BMA3" : "BMAP").utf8), at: 0) else { throw site.error("has no BMAP magic") }
            let header = version5 ? 72 : 24
            guard Int(try c.bigEndian(UInt16.self, at: 4)) == level else { throw site.error("is not at level \(level)") }
            let count = Int(try c.bigEndian(UInt16.self, at: 6))
            let maximum = (bytes.count - header) / 16
            guard count <= maximum else { throw site.error("\(count) records do not fit the block") }
            if level == 0 {
                guard result.count + count <= Self.maximumExtents else {
                    throw site.error(.limit, "more than \(Self.maximumExtents) extents")
                }
                for index in 0..<count { result.append(try Self.extent(c, at: header + index * 16)) }
            } else {
                for index in 0..<count {
                    let pointer = try c.bigEndian(UInt64.self, at: header + maximum * 8 + index * 8)
                    try collect(pointer, level: level - 1, into: &result, visited: &visited, owner: owner)
                }
            }
        }
    }

    /// Bytes `offset..<offset+count` of the data fork mapped by `extents` (holes and unwritten extents as zeros).
    func read(_ extents: [Extent], offset: UInt64, count: Int, site: Site) throws -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        let end = offset + UInt64(count)
        for extent in extents where !extent.unwritten {
            let start = try site.multiply(extent.logical, blockSize)
            let stop = try site.add(start, try site.multiply(extent.count, blockSize))
            let from = max(start, offset), to = min(stop, end)
            guard from < to else { continue }
            let first = (from - start) / blockSize, last = (to - start - 1) / blockSize
            let bytes = try readBlocks(try site.add(extent.block, first), count: last - first + 1, site)
            let skip = Int((from - start) - first * blockSize)
            result.replaceSubrange(Int(from - offset)..<Int(to - offset), with: bytes[skip..<skip + Int(to - from)])
        }
        return result
    }

    // MARK: Files

    public func read(_ node: Node, offset: UInt64, count: Int) throws -> [UInt8] {
        let inode = try inode(node.number)
        guard offset < node.size, count > 0 else { return [] }
        let wanted = Int(min(UInt64(min(count, maximumDeviceRead)), node.size - offset))
        if inode.format == 1 {
            guard node.size <= UInt64(inode.fork.count) else { throw inode.site.error("inline data overflows its fork") }
            return Array(inode.fork[Int(offset)..<Int(offset) + wanted])
        }
        return try read(try extents(inode), offset: offset, count: wanted, site: inode.site)
    }

    public func readlink(_ node: Node) throws -> [UInt8] {
        guard node.kind == .symlink else {
            throw ReaderError(.notSymlink, device: device.name, structure: "XFS inode \(node.number)", "is not a symlink")
        }
        let inode = try inode(node.number)
        guard node.size <= 1024 else { throw inode.site.error("symlink target of \(node.size) bytes is longer than 1024") }
        if inode.format == 1 || !version5 { return try read(node, offset: 0, count: Int(node.size)) }
        // v5 remote symlink blocks start with a 56-byte XSLM header each.
        var target: [UInt8] = []
        for extent in try extents(inode) where target.count < Int(node.size) {
            guard extent.count <= 8 else { throw inode.site.error("symlink extent of \(extent.count) blocks") }
            let bytes = try readBlocks(extent.block, count: extent.count, inode.site)
            for start in stride(from: 0, to: bytes.count, by: Int(blockSize)) where target.count < Int(node.size) {
                guard bytes[start..<start + 4].elementsEqual("XSLM".utf8) else { throw inode.site.error("has no XSLM magic") }
                let take = min(Int(blockSize) - 56, Int(node.size) - target.count)
                target += bytes[(start + 56)..<(start + 56 + take)]
            }
        }
        guard target.count == Int(node.size) else { throw inode.site.error("symlink blocks are shorter than its size") }
        return target
    }

    public func entries(of directory: Node) throws -> [DirectoryEntry] {
        guard directory.kind == .directory else {
            throw ReaderError(.notDirectory, device: device.name, structure: "XFS inode \(directory.number)", "is not a directory")
        }
        let inode = try inode(directory.number)
        if inode.format == 1 { return try shortForm(inode) }
        var entries: [DirectoryEntry] = []
        let dataBlocks = Self.leafOffset / blockSize
        for extent in try extents(inode) where extent.logical < dataBlocks && !extent.unwritten {
            let count = min(extent.count, dataBlocks - extent.logical)
            let perDirectoryBlock = directoryBlockSize / blockSize
            var block: UInt64 = 0
            while block < count {
                let site = Site(device.name, "XFS directory block of inode \(directory.number)")
                let bytes = try readBlocks(try site.add(extent.block, block), count: min(perDirectoryBlock, count - block), site)
                try parseDataBlock(bytes, into: &entries, site: site)
                block += perDirectoryBlock
            }
        }
        return entries
    }

    func shortForm(_ inode: Inode) throws -> [DirectoryEntry] {
        let site = inode.site
        return try parsing(site) {
            let c = site.cursor(inode.fork)
            let count = Int(try c.u8(0)), wide = try c.u8(1) > 0
            let numberSize = wide ? 8 : 4
            var position = 2 + numberSize
            var entries: [DirectoryEntry] = []
            for _ in 0..<count {
                let length = Int(try c.u8(position))
                let name = Array(try c.slice(position + 3, length))
                position += 3 + length + (hasFileType ? 1 : 0)
                let number = wide ? try c.bigEndian(UInt64.self, at: position) : UInt64(try c.bigEndian(UInt32.self, at: position))
                position += numberSize
                entries.append(DirectoryEntry(name: name, node: number))
            }
            return entries
        }
    }

    func parseDataBlock(_ bytes: [UInt8], into entries: inout [DirectoryEntry], site: Site) throws {
        try parsing(site) {
            let c = site.cursor(bytes)
            let magic = String(decoding: try c.slice(0, 4), as: UTF8.self)
            var end = bytes.count
            switch magic {
            case "XD2B", "XDB3":
                // A single-block directory: its leaf entries and tail end the block.
                let leafCount = Int(try c.bigEndian(UInt32.self, at: bytes.count - 8))
                guard leafCount <= bytes.count / 8 else { throw site.error("\(leafCount) leaf entries overflow the block") }
                end = bytes.count - 8 - leafCount * 8
            case "XD2D", "XDD3":
                break
            default:
                throw site.error("has no directory data magic")
            }
            var position = magic.hasSuffix("3") ? 64 : 16
            while position + 8 <= end {
                if try c.bigEndian(UInt16.self, at: position) == 0xFFFF {
                    let length = Int(try c.bigEndian(UInt16.self, at: position + 2))
                    guard length >= 8, length % 8 == 0 else { throw site.error("an unused entry of \(length) bytes") }
                    position += length
                    continue
                }
                let number = try c.bigEndian(UInt64.self, at: position)
                let length = Int(try c.u8(position + 8))
                guard length > 0 else { throw site.error("an entry with an empty name") }
                let name = Array(try c.slice(position + 9, length))
                position += (8 + 1 + length + (hasFileType ? 1 : 0) + 2 + 7) & ~7
                if name != [0x2E] && name != [0x2E, 0x2E] {
                    guard entries.count < 1 << 20 else { throw site.error(.limit, "more than 2^20 entries") }
                    entries.append(DirectoryEntry(name: name, node: number))
                }
            }
        }
    }
}
