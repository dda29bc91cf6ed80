import Formats

/// ext2, ext3 and ext4, read-only: the superblock, group descriptors (32 and 64-bit), inodes, extent trees and
/// indirect block maps, linear directory scans (an htree directory's blocks are scanned as linear ones, which its
/// format allows), inline data, fast and slow symlinks.
///
/// metadata_csum filesystems are read without verifying the checksums: reading needs none, and a corrupt block
/// either parses within its bounds or fails its structure checks. A filesystem that needs journal recovery, or uses
/// an incompatible feature this reader does not know (meta_bg, compression, encryption), is "not handled".
public final class Ext4Filesystem: FilesystemReader {
    public let device: any BlockDevice
    public var type: String { hasJournal ? (incompat & Self.incompatExtents != 0 ? "ext4" : "ext3") : "ext2" }
    public let uuid: String
    public let label: String
    public var rootNode: UInt64 { 2 }

    let blockSize: UInt64
    let blocksCount: UInt64
    let inodesCount: UInt64
    let inodesPerGroup: UInt64
    let groupCount: UInt64
    let inodeSize: UInt64
    let descriptorSize: UInt64
    let descriptorTable: UInt64
    let incompat: UInt32
    let hasJournal: Bool

    static let incompatFiletype: UInt32 = 0x2, incompatRecover: UInt32 = 0x4, incompatJournalDevice: UInt32 = 0x8
    static let incompatExtents: UInt32 = 0x40, incompat64Bit: UInt32 = 0x80, incompatLargeDir: UInt32 = 0x4000
    /// What this reader reads: filetype, extents, 64bit, mmp, flex_bg, ea_inode, csum_seed, largedir, inline_data,
    /// casefold (names are compared exactly), and recover (refused below).
    static let knownIncompat: UInt32 = 0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000 | 0x8000
        | 0x20000
    static let flagExtents: UInt32 = 0x80000, flagInlineData: UInt32 = 0x1000_0000, flagEncrypted: UInt32 = 0x800
    static let flagHugeFile: UInt32 = 0x40000
    /// Bounds of traversals: extent tree depth (the kernel's own), entries of one directory, bytes of a directory.
    static let maximumExtentDepth = 5
    static let maximumDirectoryEntries = 1 << 20
    static let maximumDirectorySize: UInt64 = 64 << 20

    public init(device: any BlockDevice) throws {
        self.device = device
        let site = Site(device.name, "ext superblock", at: 1024)
        let bytes = try device.read(at: 1024, count: 1024)
        let c = site.cursor(bytes)
        let fields = try parsing(site) { () throws -> [UInt64] in
            guard try c.littleEndian(UInt16.self, at: 56) == 0xEF53 else { throw site.error("has no ext magic 0xEF53") }
            return [UInt64(try c.littleEndian(UInt32.self, at: 0)), UInt64(try c.littleEndian(UInt32.self, at: 4)),
                    UInt64(try c.littleEndian(UInt32.self, at: 20)), UInt64(try c.littleEndian(UInt32.self, at: 24)),
                    UInt64(try c.littleEndian(UInt32.self, at: 32)), UInt64(try c.littleEndian(UInt32.self, at: 40)),
                    UInt64(try c.littleEndian(UInt32.self, at: 76)), UInt64(try c.littleEndian(UInt16.self, at: 88)),
                    UInt64(try c.littleEndian(UInt32.self, at: 92)), UInt64(try c.littleEndian(UInt32.self, at: 96)),
                    UInt64(try c.littleEndian(UInt16.self, at: 254)), UInt64(try c.littleEndian(UInt32.self, at: 336))]
        }
        let (inodes, blocksLow, firstData, logBlock, blocksPerGroup, inodesPerGroup, revision, inodeSize, compat,
             incompat, descSize, blocksHigh) = (fields[0], fields[1], fields[2], fields[3], fields[4], fields[5],
                                                fields[6], fields[7], fields[8], UInt32(fields[9]), fields[10],
                                                fields[11])
        uuid = uuidText(bytes[104..<120])
        label = String(decoding: bytes[120..<136].prefix { $0 != 0 }, as: UTF8.self)
        self.incompat = incompat
        hasJournal = compat & 0x4 != 0
        guard incompat & Self.incompatJournalDevice == 0 else {
            throw site.error(.notHandled, "is an external journal device, not a filesystem")
        }
        guard incompat & ~Self.knownIncompat == 0 else {
            throw site.error(.notHandled, "uses incompatible features 0x\(String(incompat & ~Self.knownIncompat, radix: 16)) this reader does not read")
        }
        guard incompat & Self.incompatRecover == 0 else {
            throw site.error(.notHandled, "needs journal recovery (the guest was not shut down cleanly); its files may read stale")
        }
        guard logBlock <= 6 else { throw site.error("block size 1024 << \(logBlock) is larger than 64 KiB") }
        blockSize = 1024 << logBlock
        blocksCount = incompat & Self.incompat64Bit != 0 ? blocksHigh << 32 | blocksLow : blocksLow
        guard blocksPerGroup > 0, blocksPerGroup <= blockSize * 8 else {
            throw site.error("\(blocksPerGroup) blocks per group do not fit a block bitmap")
        }
        guard inodesPerGroup > 0, inodesPerGroup <= blockSize * 8 else {
            throw site.error("\(inodesPerGroup) inodes per group do not fit an inode bitmap")
        }
        guard try site.multiply(blocksCount, blockSize) <= device.size else {
            throw site.error("\(blocksCount) blocks of \(blockSize) bytes are more than the device's \(device.size) bytes")
        }
        guard firstData < blocksCount else { throw site.error("first data block \(firstData) is past the end") }
        groupCount = (blocksCount - firstData + blocksPerGroup - 1) / blocksPerGroup
        guard try site.multiply(groupCount, inodesPerGroup) >= inodes, inodes >= 2 else {
            throw site.error("\(inodes) inodes do not fit \(groupCount) groups of \(inodesPerGroup)")
        }
        self.inodesCount = inodes
        self.inodesPerGroup = inodesPerGroup
        self.inodeSize = revision == 0 ? 128 : inodeSize
        guard self.inodeSize >= 128, self.inodeSize <= blockSize, self.inodeSize & (self.inodeSize - 1) == 0 else {
            throw site.error("inode size \(self.inodeSize) is not a power of two in 128-\(blockSize)")
        }
        if incompat & Self.incompat64Bit != 0 {
            guard descSize >= 64, descSize <= 1024, descSize & (descSize - 1) == 0 else {
                throw site.error("group descriptor size \(descSize) is not a power of two in 64-1024")
            }
            descriptorSize = descSize
        } else {
            descriptorSize = 32
        }
        descriptorTable = (firstData + 1) * blockSize
    }

    // MARK: Blocks and inodes

    func block(_ number: UInt64, _ structure: @autoclosure () -> String) throws -> [UInt8] {
        guard number < blocksCount, number > 0 else {
            throw ReaderError(.malformed, device: device.name, structure: structure(),
                              "names block \(number), outside the filesystem's 1-\(blocksCount - 1)")
        }
        return try device.read(at: number * blockSize, count: Int(blockSize))
    }

    /// The raw inode `number` (1-based), after checking it exists.
    func inodeBytes(_ number: UInt64) throws -> (bytes: [UInt8], offset: UInt64) {
        guard number >= 1, number <= inodesCount else {
            throw ReaderError(.malformed, device: device.name, structure: "inode \(number)",
                              "is outside the filesystem's 1-\(inodesCount)")
        }
        let group = (number - 1) / inodesPerGroup, index = (number - 1) % inodesPerGroup
        let descriptorOffset = descriptorTable + group * descriptorSize
        let site = Site(device.name, "group descriptor \(group)", at: descriptorOffset)
        let descriptor = try device.read(at: descriptorOffset, count: Int(descriptorSize))
        let table = try parsing(site) { () throws -> UInt64 in
            let c = site.cursor(descriptor)
            let low = UInt64(try c.littleEndian(UInt32.self, at: 8))
            let high = descriptorSize >= 64 ? UInt64(try c.littleEndian(UInt32.self, at: 0x28)) : 0
            return high << 32 | low
        }
        guard table > 0, table < blocksCount else {
            throw site.error("names inode table block \(table), outside the filesystem")
        }
        let offset = try site.add(try site.multiply(table, blockSize), index * inodeSize)
        return (try device.read(at: offset, count: Int(inodeSize)), offset)
    }

    public func node(_ number: UInt64) throws -> Node {
        let (bytes, offset) = try inodeBytes(number)
        return try node(number, bytes, offset).node
    }

    struct Inode {
        var node: Node
        var flags: UInt32
        var blocks: [UInt8]
        var sectors: UInt64
        var fileACL: UInt64
        var bytes: [UInt8]
        var site: Site
    }

    func node(_ number: UInt64, _ bytes: [UInt8], _ offset: UInt64) throws -> Inode {
        let site = Site(device.name, "inode \(number)", at: offset)
        return try parsing(site) {
            let c = site.cursor(bytes)
            let mode = UInt32(try c.littleEndian(UInt16.self, at: 0))
            let kind = NodeKind(mode: mode)
            let sizeLow = UInt64(try c.littleEndian(UInt32.self, at: 4))
            let sizeHigh = UInt64(try c.littleEndian(UInt32.self, at: 108))
            let size = kind == .directory && incompat & Self.incompatLargeDir == 0 ? sizeLow : sizeHigh << 32 | sizeLow
            let uid = UInt32(try c.littleEndian(UInt16.self, at: 2)) | UInt32(try c.littleEndian(UInt16.self, at: 120)) << 16
            let gid = UInt32(try c.littleEndian(UInt16.self, at: 24)) | UInt32(try c.littleEndian(UInt16.self, at: 122)) << 16
            let flags = try c.littleEndian(UInt32.self, at: 32)
            guard flags & Self.flagEncrypted == 0 else { throw site.error(.notHandled, "is encrypted") }
            let sectors = UInt64(try c.littleEndian(UInt32.self, at: 28))
                | UInt64(try c.littleEndian(UInt16.self, at: 116)) << 32
            let acl = UInt64(try c.littleEndian(UInt32.self, at: 104))
                | UInt64(try c.littleEndian(UInt16.self, at: 118)) << 32
            let node = Node(number: number, kind: kind, mode: mode, uid: uid, gid: gid, size: size,
                            links: UInt32(try c.littleEndian(UInt16.self, at: 26)),
                            modified: Int64(try c.littleEndian(UInt32.self, at: 16)))
            return Inode(node: node, flags: flags, blocks: Array(try c.slice(40, 60)), sectors: sectors,
                         fileACL: acl, bytes: bytes, site: site)
        }
    }

    func inode(_ node: Node) throws -> Inode {
        let (bytes, offset) = try inodeBytes(node.number)
        return try self.node(node.number, bytes, offset)
    }

    // MARK: Contents

    /// The value of the in-inode extended attribute system.data: the rest of an inline file past i_block.
    func inlineData(_ inode: Inode) throws -> [UInt8] {
        let site = inode.site
        return try parsing(site) {
            let c = site.cursor(inode.bytes)
            guard inodeSize > 128 else { return [] }
            let extra = Int(try c.littleEndian(UInt16.self, at: 128))
            guard extra % 4 == 0, 128 + extra + 4 <= Int(inodeSize) else { return [] }
            let start = 128 + extra
            guard try c.littleEndian(UInt32.self, at: start) == 0xEA02_0000 else { return [] }
            let first = start + 4
            var position = first
            var seen = 0
            while position + 16 <= Int(inodeSize), seen < 256 {
                seen += 1
                let nameLength = Int(try c.u8(position))
                let index = try c.u8(position + 1)
                if nameLength == 0 && index == 0 { break }
                let valueOffset = Int(try c.littleEndian(UInt16.self, at: position + 2))
                let valueSize = Int(try c.littleEndian(UInt32.self, at: position + 8))
                let name = try c.slice(position + 16, nameLength)
                if index == 7, name.elementsEqual("data".utf8) {
                    return Array(try c.slice(first + valueOffset, valueSize))
                }
                position += (16 + nameLength + 3) & ~3
            }
            return []
        }
    }

    /// Where logical block `logical` of the file lives: its physical block and how many blocks run on from it, or
    /// nil (a hole or an unwritten extent, read as zeros) for `count` blocks.
    func map(_ inode: Inode, _ logical: UInt64) throws -> (physical: UInt64?, count: UInt64) {
        if inode.flags & Self.flagExtents != 0 {
            return try mapExtent(inode.blocks, logical, depth: 0, inode: inode)
        }
        return (try mapIndirect(inode, logical), 1)
    }

    func mapExtent(_ node: [UInt8], _ logical: UInt64, depth: Int, inode: Inode) throws
        -> (physical: UInt64?, count: UInt64) {
        let site = Site(device.name, "extent node of inode \(inode.node.number)", at: nil)
        return try parsing(site) {
            let c = site.cursor(node)
            guard try c.littleEndian(UInt16.self, at: 0) == 0xF30A else { throw site.error("has no extent magic 0xF30A") }
            let entries = Int(try c.littleEndian(UInt16.self, at: 2))
            let treeDepth = Int(try c.littleEndian(UInt16.self, at: 6))
            guard 12 + entries * 12 <= node.count else { throw site.error("\(entries) entries overflow the node") }
            guard treeDepth <= Self.maximumExtentDepth - depth else {
                throw site.error(.limit, "extent tree is deeper than \(Self.maximumExtentDepth)")
            }
            if treeDepth == 0 {
                for index in 0..<entries {
                    let base = 12 + index * 12
                    let first = UInt64(try c.littleEndian(UInt32.self, at: base))
                    var length = UInt64(try c.littleEndian(UInt16.self, at: base + 4))
                    let unwritten = length > 32768
                    if unwritten { length -= 32768 }
                    let start = UInt64(try c.littleEndian(UInt16.self, at: base + 6)) << 32
                        | UInt64(try c.littleEndian(UInt32.self, at: base + 8))
                    if logical < first { return (nil, first - logical) }
                    if logical < first + length {
                        let into = logical - first
                        guard !unwritten else { return (nil, length - into) }
                        let physical = try site.add(start, into)
                        return (physical, length - into)
                    }
                }
                return (nil, 1)
            }
            var chosen: UInt64?
            for index in 0..<entries {
                let base = 12 + index * 12
                let first = UInt64(try c.littleEndian(UInt32.self, at: base))
                guard first <= logical else { break }
                chosen = UInt64(try c.littleEndian(UInt16.self, at: base + 8)) << 32
                    | UInt64(try c.littleEndian(UInt32.self, at: base + 4))
            }
            guard let chosen else { return (nil, 1) }
            let child = try block(chosen, "extent index of inode \(inode.node.number)")
            return try mapExtent(child, logical, depth: depth + 1, inode: inode)
        }
    }

    /// ext2/3 block maps: 12 direct blocks, then single, double and triple indirect ones.
    func mapIndirect(_ inode: Inode, _ logical: UInt64) throws -> UInt64? {
        let perBlock = blockSize / 4
        let site = Site(device.name, "block map of inode \(inode.node.number)", at: nil)
        func entry(_ bytes: [UInt8], _ index: UInt64) throws -> UInt64 {
            try parsing(site) { UInt64(try site.cursor(bytes).littleEndian(UInt32.self, at: Int(index) * 4)) }
        }
        var index = logical
        if index < 12 { return try nonZero(entry(inode.blocks, index)) }
        index -= 12
        var levels = 1
        var span = perBlock
        while index >= span {
            index -= span
            levels += 1
            guard levels <= 3 else { throw site.error("block \(logical) is past a triple indirect map") }
            span = try site.multiply(span, perBlock)
        }
        var pointer = try entry(inode.blocks, UInt64(11 + levels))
        while levels > 0 {
            guard pointer != 0 else { return nil }
            span /= perBlock
            let table = try block(pointer, "indirect block of inode \(inode.node.number)")
            pointer = try entry(table, index / span)
            index %= span
            levels -= 1
        }
        return nonZero(pointer)
    }

    private func nonZero(_ value: UInt64) -> UInt64? { value == 0 ? nil : value }

    public func read(_ node: Node, offset: UInt64, count: Int) throws -> [UInt8] {
        let inode = try inode(node)
        guard offset < node.size, count > 0 else { return [] }
        let wanted = Int(min(UInt64(min(count, maximumDeviceRead)), node.size - offset))
        if inode.flags & Self.flagInlineData != 0 {
            let inline = Array(inode.blocks.prefix(Int(min(node.size, 60)))) + (node.size > 60 ? try inlineData(inode) : [])
            guard offset < UInt64(inline.count) else { return [UInt8](repeating: 0, count: wanted) }
            let part = Array(inline[Int(offset)..<min(inline.count, Int(offset) + wanted)])
            return part + [UInt8](repeating: 0, count: wanted - part.count)
        }
        var result: [UInt8] = []
        result.reserveCapacity(wanted)
        var position = offset
        while result.count < wanted {
            let logical = position / blockSize
            let (physical, run) = try map(inode, logical)
            let within = position % blockSize
            let available = Int(min(UInt64(wanted - result.count), max(run, 1) * blockSize - within))
            guard available > 0 else { break }
            if let physical {
                let site = Site(device.name, "data of inode \(node.number)", at: nil)
                let last = try site.add(physical, max(run, 1) - 1)
                guard physical > 0, last < blocksCount else {
                    throw site.error("names blocks \(physical)-\(last), outside the filesystem")
                }
                let byte = try site.add(try site.multiply(physical, blockSize), within)
                result += try device.read(at: byte, count: available)
            } else {
                result += [UInt8](repeating: 0, count: available)
            }
            position += UInt64(available)
        }
        return result
    }

    public func readlink(_ node: Node) throws -> [UInt8] {
        guard node.kind == .symlink else {
            throw ReaderError(.notSymlink, device: device.name, structure: "inode \(node.number)", "is not a symlink")
        }
        let inode = try inode(node)
        guard node.size <= 4096 else { throw inode.site.error("symlink target of \(node.size) bytes is longer than 4096") }
        let aclSectors = inode.fileACL != 0 ? blockSize / 512 : 0
        let dataSectors = inode.flags & Self.flagHugeFile != 0 ? inode.sectors * (blockSize / 512) : inode.sectors
        if inode.flags & Self.flagInlineData == 0, node.size < 60, dataSectors <= aclSectors {
            return Array(inode.blocks.prefix(Int(node.size)))
        }
        return try read(node, offset: 0, count: Int(node.size))
    }

    public func entries(of directory: Node) throws -> [DirectoryEntry] {
        guard directory.kind == .directory else {
            throw ReaderError(.notDirectory, device: device.name, structure: "inode \(directory.number)", "is not a directory")
        }
        let inode = try inode(directory)
        guard directory.size <= Self.maximumDirectorySize else {
            throw inode.site.error(.limit, "directory of \(directory.size) bytes is larger than \(Self.maximumDirectorySize)")
        }
        var entries: [DirectoryEntry] = []
        if inode.flags & Self.flagInlineData != 0 {
            // Four bytes of parent inode number, then entries in the rest of i_block and in system.data.
            try parseEntries(Array(inode.blocks[4...]), into: &entries, directory: directory)
            let more = try inlineData(inode)
            if !more.isEmpty { try parseEntries(more, into: &entries, directory: directory) }
            return entries
        }
        let bytes = try read(directory, offset: 0, count: Int(directory.size))
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + Int(blockSize))
            try parseEntries(Array(bytes[start..<end]), into: &entries, directory: directory)
            start = end
        }
        return entries
    }

    func parseEntries(_ bytes: [UInt8], into entries: inout [DirectoryEntry], directory: Node) throws {
        let site = Site(device.name, "directory inode \(directory.number)", at: nil)
        try parsing(site) {
            let c = site.cursor(bytes)
            var position = 0
            while position + 8 <= bytes.count {
                let number = UInt64(try c.littleEndian(UInt32.self, at: position))
                let recordLength = Int(try c.littleEndian(UInt16.self, at: position + 4))
                let nameLength = incompat & Self.incompatFiletype != 0 ? Int(try c.u8(position + 6))
                    : Int(try c.littleEndian(UInt16.self, at: position + 6))
                guard recordLength >= 8, recordLength % 4 == 0, position + recordLength <= bytes.count,
                      8 + nameLength <= recordLength else {
                    throw site.error("entry at \(position) has record length \(recordLength), name length \(nameLength)")
                }
                if number != 0, nameLength > 0 {
                    let name = Array(try c.slice(position + 8, nameLength))
                    if name != [0x2E] && name != [0x2E, 0x2E] {
                        guard entries.count < Self.maximumDirectoryEntries else {
                            throw site.error(.limit, "more than \(Self.maximumDirectoryEntries) entries")
                        }
                        entries.append(DirectoryEntry(name: name, node: number))
                    }
                }
                position += recordLength
            }
        }
    }
}
