import CCompress
import Formats

/// A btrfs key: the order every btrfs tree is sorted in.
struct BtrfsKey: Comparable, Sendable {
    var objectID: UInt64
    var type: UInt8
    var offset: UInt64

    static func < (a: BtrfsKey, b: BtrfsKey) -> Bool {
        (a.objectID, a.type, a.offset) < (b.objectID, b.type, b.offset)
    }

    static let inodeItem: UInt8 = 1, inodeRef: UInt8 = 12, dirItem: UInt8 = 84, dirIndex: UInt8 = 96
    static let extentData: UInt8 = 108, rootItem: UInt8 = 132, rootBackref: UInt8 = 144, chunkItem: UInt8 = 228
}

/// One btrfs filesystem on one device, read-only: the superblock (its crc32c checked; other checksum types are
/// "not handled"), the system chunk array and the chunk tree (SINGLE and DUP chunks; RAID profiles, more than one
/// device, zoned and extent-tree-v2 filesystems are "not handled"), tree nodes (each checked against its crc32c, its
/// address and the filesystem's id), the root tree, its subvolumes and the default one. `BtrfsFilesystem` reads the
/// files of one subvolume through it.
///
/// A filesystem with a log tree to replay (its last writer did not finish) is "not handled": its newest files are
/// only in that log, and the kernel would replay it on mount.
public final class BtrfsVolume {
    public let device: any BlockDevice
    public let uuid: String
    public let label: String
    let sectorSize: UInt64
    let nodeSize: UInt64
    let fsid: [UInt8]
    let deviceID: UInt64
    let rootTree: (bytenr: UInt64, level: UInt8)
    let rootDirectory: UInt64
    private(set) var chunks: [Chunk] = []
    private var nodeCache: [UInt64: [UInt8]] = [:]
    private var trees: [UInt64: (bytenr: UInt64, level: UInt8)] = [:]

    struct Chunk {
        var logical: UInt64
        var length: UInt64
        var physical: UInt64
    }

    static let superblockOffset: UInt64 = 65536
    static let headerSize = 101
    /// Incompatible features this reader reads: mixed backrefs, default subvolume, mixed groups, LZO (refused per
    /// extent), zstd, big metadata, extended inode refs, skinny metadata, no holes, metadata UUID, simple quotas.
    static let knownIncompat: UInt64 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x100 | 0x200 | 0x400 | 0x10000
    static let incompatMetadataUUID: UInt64 = 0x400
    /// The chunk type bits of a RAID profile (RAID0, RAID1, RAID10, RAID5, RAID6, RAID1C3, RAID1C4); DUP (0x20)
    /// keeps two copies on the one device and reads from the first.
    static let raidProfiles: UInt64 = 0x8 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400
    /// Bounds: chunks, B-tree height (the kernel's BTRFS_MAX_LEVEL), nodes visited and items returned by a search,
    /// nodes kept in the cache, subvolumes listed.
    static let maximumChunks = 1 << 16
    static let maximumLevel: UInt8 = 7
    static let maximumNodesVisited = 1 << 14
    static let maximumItems = 1 << 20
    static let cachedNodes = 512
    static let maximumSubvolumes = 1024

    public init(device: any BlockDevice) throws {
        self.device = device
        let site = Site(device.name, "btrfs superblock", at: Self.superblockOffset)
        let bytes = try device.read(at: Self.superblockOffset, count: 4096)
        let c = site.cursor(bytes)
        let header = try parsing(site) { () throws -> (fields: [UInt64], chunkArray: [UInt8]) in
            guard c.matches(Array("_BHRfS_M".utf8), at: 0x40) else { throw site.error("has no btrfs magic _BHRfS_M") }
            let csumType = try c.littleEndian(UInt16.self, at: 0xC4)
            guard csumType == 0 else {
                throw site.error(.notHandled, "uses checksum type \(csumType), not crc32c (0), which this reader checks")
            }
            guard try c.littleEndian(UInt32.self, at: 0) == CRC32C.checksum(bytes[32...]) else {
                throw site.error("fails its crc32c checksum")
            }
            let arraySize = Int(try c.littleEndian(UInt32.self, at: 0xA0))
            guard arraySize <= 2048 else { throw site.error("system chunk array of \(arraySize) bytes is over 2048") }
            return ([try c.littleEndian(UInt64.self, at: 0x50), try c.littleEndian(UInt64.self, at: 0x58),
                     try c.littleEndian(UInt64.self, at: 0x60), try c.littleEndian(UInt64.self, at: 0x80),
                     try c.littleEndian(UInt64.self, at: 0x88), UInt64(try c.littleEndian(UInt32.self, at: 0x90)),
                     UInt64(try c.littleEndian(UInt32.self, at: 0x94)), try c.littleEndian(UInt64.self, at: 0xBC),
                     UInt64(try c.u8(0xC6)), UInt64(try c.u8(0xC7)), try c.littleEndian(UInt64.self, at: 0xC9)],
                    Array(try c.slice(0x32B, arraySize)))
        }
        let (root, chunkRoot, logRoot, rootDirectory, devices, sectorSize, nodeSize, incompat, rootLevel, chunkLevel,
             deviceID) = (header.fields[0], header.fields[1], header.fields[2], header.fields[3], header.fields[4],
                          header.fields[5], header.fields[6], header.fields[7], UInt8(header.fields[8]),
                          UInt8(header.fields[9]), header.fields[10])
        uuid = uuidText(bytes[0x20..<0x30])
        label = String(decoding: bytes[0x12B..<0x22B].prefix { $0 != 0 }, as: UTF8.self)
        fsid = Array(incompat & Self.incompatMetadataUUID != 0 ? bytes[0x23B..<0x24B] : bytes[0x20..<0x30])
        guard devices == 1 else { throw site.error(.notHandled, "spans \(devices) devices; this reader reads one") }
        guard incompat & ~Self.knownIncompat == 0 else {
            throw site.error(.notHandled, "uses incompatible features 0x\(String(incompat & ~Self.knownIncompat, radix: 16)) this reader does not read")
        }
        guard logRoot == 0 else {
            throw site.error(.notHandled, "has a log tree to replay (its last writer did not finish); its files may read stale")
        }
        guard sectorSize >= 4096, sectorSize <= 65536, sectorSize & (sectorSize - 1) == 0 else {
            throw site.error("sector size \(sectorSize) is not a power of two in 4096-65536")
        }
        guard nodeSize >= sectorSize, nodeSize <= 65536, nodeSize & (nodeSize - 1) == 0 else {
            throw site.error("node size \(nodeSize) is not a power of two in \(sectorSize)-65536")
        }
        guard rootLevel <= Self.maximumLevel, chunkLevel <= Self.maximumLevel else {
            throw site.error("tree levels \(rootLevel) and \(chunkLevel) are over \(Self.maximumLevel)")
        }
        self.sectorSize = sectorSize
        self.nodeSize = nodeSize
        self.deviceID = deviceID
        self.rootDirectory = rootDirectory
        self.rootTree = (root, rootLevel)
        try parsing(site) { try readSystemChunks(header.chunkArray, site: site) }
        for (key, data, itemSite) in try items(in: (chunkRoot, chunkLevel), tree: "chunk tree",
                                              from: BtrfsKey(objectID: 256, type: BtrfsKey.chunkItem, offset: 0),
                                              to: BtrfsKey(objectID: 256, type: BtrfsKey.chunkItem, offset: .max)) {
            try parsing(itemSite) {
                let chunk = try chunk(at: key.offset, itemSite.cursor(data), 0, site: itemSite)
                if !chunks.contains(where: { $0.logical == chunk.logical }) { try add(chunk, site: itemSite) }
            }
        }
    }

    // MARK: Chunks

    private func readSystemChunks(_ array: [UInt8], site: Site) throws {
        let c = site.cursor(array)
        var position = 0
        while position < array.count {
            let key = try c.littleEndian(UInt64.self, at: position + 9)
            guard try c.u8(position + 8) == BtrfsKey.chunkItem else {
                throw site.error("system chunk array entry at \(position) is not a chunk item")
            }
            let stripes = Int(try c.littleEndian(UInt16.self, at: position + 17 + 44))
            try add(try chunk(at: key, c, position + 17, site: site), site: site)
            position += 17 + 48 + 32 * stripes
        }
    }

    /// The chunk item at `base` of `c`, mapping logical `logical` on; its first stripe is the copy read.
    private func chunk(at logical: UInt64, _ c: ByteCursor, _ base: Int, site: Site) throws -> Chunk {
        let length = try c.littleEndian(UInt64.self, at: base)
        let type = try c.littleEndian(UInt64.self, at: base + 24)
        let stripes = try c.littleEndian(UInt16.self, at: base + 44)
        guard type & Self.raidProfiles == 0 else {
            throw site.error(.notHandled, "chunk at logical \(logical) has a RAID profile (type 0x\(String(type, radix: 16)))")
        }
        guard stripes >= 1 else { throw site.error("chunk at logical \(logical) has no stripe") }
        let device = try c.littleEndian(UInt64.self, at: base + 48)
        guard device == deviceID else {
            throw site.error(.notHandled, "chunk at logical \(logical) lies on device \(device), not this one (\(deviceID))")
        }
        let physical = try c.littleEndian(UInt64.self, at: base + 56)
        guard length > 0, try site.add(physical, length) <= self.device.size,
              !logical.addingReportingOverflow(length).overflow else {
            throw site.error("chunk of \(length) bytes at logical \(logical), physical \(physical) does not fit the device")
        }
        return Chunk(logical: logical, length: length, physical: physical)
    }

    private func add(_ chunk: Chunk, site: Site) throws {
        guard chunks.count < Self.maximumChunks else { throw site.error(.limit, "more than \(Self.maximumChunks) chunks") }
        chunks.append(chunk)
    }

    /// The device offset of `count` bytes at `logical`, which must lie in one chunk.
    func physical(_ logical: UInt64, count: UInt64, _ structure: @autoclosure () -> String) throws -> UInt64 {
        guard let chunk = chunks.first(where: { $0.logical <= logical && logical - $0.logical < $0.length }) else {
            throw ReaderError(.malformed, device: device.name, structure: structure(),
                              "logical address \(logical) lies in no chunk")
        }
        guard count <= chunk.length - (logical - chunk.logical) else {
            throw ReaderError(.malformed, device: device.name, structure: structure(),
                              "\(count) bytes at logical \(logical) run past the end of their chunk")
        }
        return chunk.physical + (logical - chunk.logical)
    }

    // MARK: Trees

    /// The tree node at `logical`, its checksum, address and filesystem id checked.
    func node(_ logical: UInt64, tree: String) throws -> [UInt8] {
        if let cached = nodeCache[logical] { return cached }
        let structure = "\(tree) node at logical \(logical)"
        let offset = try physical(logical, count: nodeSize, structure)
        let bytes = try device.read(at: offset, count: Int(nodeSize))
        let site = Site(device.name, structure, at: offset)
        try parsing(site) {
            let c = site.cursor(bytes)
            guard try c.littleEndian(UInt32.self, at: 0) == CRC32C.checksum(bytes[32...]) else {
                throw site.error("fails its crc32c checksum")
            }
            guard try c.littleEndian(UInt64.self, at: 0x30) == logical else {
                throw site.error("says it is at logical \(try c.littleEndian(UInt64.self, at: 0x30))")
            }
            guard bytes[0x20..<0x30].elementsEqual(fsid) else { throw site.error("belongs to another filesystem") }
        }
        if nodeCache.count >= Self.cachedNodes { nodeCache.removeAll(keepingCapacity: true) }
        nodeCache[logical] = bytes
        return bytes
    }

    /// The items of the tree rooted at `root` whose keys lie in `low...high`, in key order, each with its data and
    /// a site naming it.
    func items(in root: (bytenr: UInt64, level: UInt8), tree: String, from low: BtrfsKey, to high: BtrfsKey) throws
        -> [(key: BtrfsKey, data: [UInt8], site: Site)] {
        var result: [(key: BtrfsKey, data: [UInt8], site: Site)] = []
        var visited = 0
        func visit(_ logical: UInt64, level: UInt8) throws {
            visited += 1
            guard visited <= Self.maximumNodesVisited else {
                throw ReaderError(.limit, device: device.name, structure: tree,
                                  "a search visits more than \(Self.maximumNodesVisited) nodes")
            }
            let bytes = try node(logical, tree: tree)
            let site = Site(device.name, "\(tree) node at logical \(logical)")
            let c = site.cursor(bytes)
            let (count, nodeLevel) = try parsing(site) {
                (Int(try c.littleEndian(UInt32.self, at: 0x60)), try c.u8(0x64))
            }
            guard nodeLevel == level else { throw site.error("has level \(nodeLevel) where its parent says \(level)") }
            let entrySize = level == 0 ? 25 : 33
            guard count <= (bytes.count - Self.headerSize) / entrySize else {
                throw site.error("\(count) items overflow the node")
            }
            func key(_ index: Int) throws -> BtrfsKey {
                let base = Self.headerSize + index * entrySize
                return BtrfsKey(objectID: try c.littleEndian(UInt64.self, at: base), type: try c.u8(base + 8),
                                offset: try c.littleEndian(UInt64.self, at: base + 9))
            }
            try parsing(site) {
                if level == 0 {
                    for index in 0..<count {
                        let key = try key(index)
                        guard key <= high else { break }
                        guard key >= low else { continue }
                        let base = Self.headerSize + index * entrySize
                        let offset = Int(try c.littleEndian(UInt32.self, at: base + 17))
                        let size = Int(try c.littleEndian(UInt32.self, at: base + 21))
                        let data = Array(try c.slice(Self.headerSize + offset, size))
                        guard result.count < Self.maximumItems else {
                            throw site.error(.limit, "a search finds more than \(Self.maximumItems) items")
                        }
                        result.append((key, data, Site(device.name, "\(tree) item (\(key.objectID) \(key.type) \(key.offset))")))
                    }
                    return
                }
                for index in 0..<count {
                    // Child `index` holds the keys from its own up to the next child's.
                    if index + 1 < count, try key(index + 1) <= low { continue }
                    guard try key(index) <= high else { break }
                    let base = Self.headerSize + index * entrySize
                    try visit(try c.littleEndian(UInt64.self, at: base + 17), level: level - 1)
                }
            }
        }
        try visit(root.bytenr, level: root.level)
        return result
    }

    /// The item with exactly `key`, or nil.
    func item(in root: (bytenr: UInt64, level: UInt8), tree: String, _ key: BtrfsKey) throws
        -> (data: [UInt8], site: Site)? {
        try items(in: root, tree: tree, from: key, to: key).first.map { ($0.data, $0.site) }
    }

    /// Where the tree of subvolume `id` (5, the top level, or 256 on) starts.
    func tree(_ id: UInt64) throws -> (bytenr: UInt64, level: UInt8) {
        if let known = trees[id] { return known }
        let found = try items(in: rootTree, tree: "root tree", from: BtrfsKey(objectID: id, type: BtrfsKey.rootItem, offset: 0),
                              to: BtrfsKey(objectID: id, type: BtrfsKey.rootItem, offset: .max)).last
        guard let found else {
            throw ReaderError(.notFound, device: device.name, structure: "root tree", "has no subvolume \(id)")
        }
        let root = try parsing(found.site) { () throws -> (bytenr: UInt64, level: UInt8) in
            let c = found.site.cursor(found.data)
            return (try c.littleEndian(UInt64.self, at: 176), try c.u8(238))
        }
        guard root.level <= Self.maximumLevel else {
            throw found.site.error("tree level \(root.level) is over \(Self.maximumLevel)")
        }
        trees[id] = root
        return root
    }

    /// The subvolume mounting the device gives: the root tree directory's "default" entry, else the top level (5).
    public func defaultSubvolume() throws -> UInt64 {
        let name = Array("default".utf8)
        let key = BtrfsKey(objectID: rootDirectory, type: BtrfsKey.dirItem, offset: UInt64(BtrfsFilesystem.nameHash(name)))
        guard let (data, site) = try item(in: rootTree, tree: "root tree", key) else { return 5 }
        return try BtrfsFilesystem.directoryItems(data, site: site).first { $0.name == name }?.location.objectID ?? 5
    }

    /// A subvolume: its id and its path from the top level ("root", "home/user"), as `btrfs subvolume list` gives it.
    public struct Subvolume: Sendable, Equatable {
        public var id: UInt64
        public var path: String
    }

    /// Every subvolume but the top level, by id.
    public func subvolumes() throws -> [Subvolume] {
        let backrefs = try items(in: rootTree, tree: "root tree", from: BtrfsKey(objectID: 256, type: 0, offset: 0),
                                 to: BtrfsKey(objectID: .max - 256, type: .max, offset: .max))
            .filter { $0.key.type == BtrfsKey.rootBackref }
        var parents: [UInt64: (parent: UInt64, directory: UInt64, name: [UInt8])] = [:]
        for (key, data, site) in backrefs where parents[key.objectID] == nil {
            parents[key.objectID] = try parsing(site) {
                let c = site.cursor(data)
                let length = Int(try c.littleEndian(UInt16.self, at: 16))
                return (key.offset, try c.littleEndian(UInt64.self, at: 0), Array(try c.slice(18, length)))
            }
        }
        guard parents.count <= Self.maximumSubvolumes else {
            throw ReaderError(.limit, device: device.name, structure: "root tree",
                              "more than \(Self.maximumSubvolumes) subvolumes")
        }
        // Each subvolume's path is its parent's, the directory it sits in there, and its name: computed once each.
        var paths: [UInt64: [[UInt8]]] = [5: []]
        func path(_ id: UInt64, depth: Int) throws -> [[UInt8]] {
            if let known = paths[id] { return known }
            guard depth <= parents.count, let (parent, directory, name) = parents[id] else {
                throw ReaderError(.malformed, device: device.name, structure: "root tree",
                                  "subvolume \(id) does not lead up to the top level")
            }
            let result = try path(parent, depth: depth + 1)
                + BtrfsFilesystem(volume: self, subvolume: parent).path(of: directory) + [name]
            paths[id] = result
            return result
        }
        var result: [Subvolume] = []
        for id in parents.keys.sorted() {
            result.append(Subvolume(id: id, path: try path(id, depth: 0).map { String(decoding: $0, as: UTF8.self) }
                .joined(separator: "/")))
        }
        return result
    }
}

/// The files of one btrfs subvolume (and of the subvolumes below it): directory items looked up by their name hash
/// and listed from their index items, inode items, inline and regular extents, holes (explicit or, with no-holes,
/// implied), preallocated extents (zeros), zlib and zstd compressed extents; LZO and encrypted extents are "not
/// handled". Node numbers carry the subvolume: its id times 2^40 plus the inode's objectid.
public final class BtrfsFilesystem: FilesystemReader {
    public let volume: BtrfsVolume
    public let subvolume: UInt64
    public var device: any BlockDevice { volume.device }
    public var type: String { "btrfs" }
    public var uuid: String { volume.uuid }
    public var label: String { volume.label }
    public var rootNode: UInt64 { subvolume << Self.treeShift | Self.firstFree }

    static let treeShift: UInt64 = 40
    static let firstFree: UInt64 = 256
    /// Bounds: a compressed extent's size either way (the kernel's 128 KiB), extents of one read, directory depth of
    /// the place a subvolume sits in.
    static let maximumCompressed: UInt64 = 128 << 10
    static let maximumExtents = 1 << 16
    static let maximumDepth = 256

    /// The subvolume `subvolume` of `volume`; nil for its default one.
    public init(volume: BtrfsVolume, subvolume: UInt64? = nil) throws {
        self.volume = volume
        let id = try subvolume ?? volume.defaultSubvolume()
        guard id >> (64 - Self.treeShift) == 0 else {
            throw ReaderError(.notHandled, device: volume.device.name, structure: "subvolume \(id)",
                              "has an id over 2^\(64 - Self.treeShift)")
        }
        self.subvolume = id
        _ = try volume.tree(id)
    }

    public convenience init(device: any BlockDevice) throws {
        try self.init(volume: try BtrfsVolume(device: device))
    }

    /// btrfs's hash of a directory entry's name: crc32c from the seed ~1, not inverted.
    static func nameHash(_ name: [UInt8]) -> UInt32 { CRC32C.update(~1, name) }

    struct DirectoryItem {
        var location: BtrfsKey
        var name: [UInt8]
    }

    /// The directory items packed in one DIR_ITEM or DIR_INDEX item (names whose hashes collide share one).
    static func directoryItems(_ data: [UInt8], site: Site) throws -> [DirectoryItem] {
        try parsing(site) {
            let c = site.cursor(data)
            var result: [DirectoryItem] = []
            var position = 0
            while position < data.count {
                let location = BtrfsKey(objectID: try c.littleEndian(UInt64.self, at: position), type: try c.u8(position + 8),
                                        offset: try c.littleEndian(UInt64.self, at: position + 9))
                let dataLength = Int(try c.littleEndian(UInt16.self, at: position + 25))
                let nameLength = Int(try c.littleEndian(UInt16.self, at: position + 27))
                result.append(DirectoryItem(location: location, name: Array(try c.slice(position + 30, nameLength))))
                position += 30 + nameLength + dataLength
            }
            return result
        }
    }

    private func split(_ number: UInt64) throws -> (tree: (bytenr: UInt64, level: UInt8), name: String, objectID: UInt64) {
        let id = number >> Self.treeShift
        return (try volume.tree(id), "subvolume \(id)", number & (1 << Self.treeShift - 1))
    }

    private func number(_ location: BtrfsKey, in number: UInt64, site: Site) throws -> UInt64 {
        switch location.type {
        case BtrfsKey.inodeItem:
            guard location.objectID >> Self.treeShift == 0 else {
                throw site.error(.notHandled, "names inode \(location.objectID), over 2^\(Self.treeShift)")
            }
            return number & ~(1 << Self.treeShift - 1) | location.objectID
        case BtrfsKey.rootItem:
            guard location.objectID >> (64 - Self.treeShift) == 0 else {
                throw site.error(.notHandled, "names subvolume \(location.objectID), over 2^\(64 - Self.treeShift)")
            }
            return location.objectID << Self.treeShift | Self.firstFree
        default:
            throw site.error("names key type \(location.type), neither an inode nor a subvolume")
        }
    }

    public func node(_ number: UInt64) throws -> Node {
        let (tree, name, objectID) = try split(number)
        guard let (data, site) = try volume.item(in: tree, tree: name,
                                                 BtrfsKey(objectID: objectID, type: BtrfsKey.inodeItem, offset: 0)) else {
            throw ReaderError(.malformed, device: device.name, structure: name, "has no inode item \(objectID)")
        }
        return try parsing(site) {
            let c = site.cursor(data)
            let mode = try c.littleEndian(UInt32.self, at: 52)
            return Node(number: number, kind: NodeKind(mode: mode), mode: mode, uid: try c.littleEndian(UInt32.self, at: 44),
                        gid: try c.littleEndian(UInt32.self, at: 48), size: try c.littleEndian(UInt64.self, at: 16),
                        links: try c.littleEndian(UInt32.self, at: 40),
                        modified: Int64(bitPattern: try c.littleEndian(UInt64.self, at: 136)))
        }
    }

    public func entries(of directory: Node) throws -> [DirectoryEntry] {
        guard directory.kind == .directory else {
            throw ReaderError(.notDirectory, device: device.name, structure: "inode \(directory.number)", "is not a directory")
        }
        let (tree, name, objectID) = try split(directory.number)
        var result: [DirectoryEntry] = []
        for (_, data, site) in try volume.items(in: tree, tree: name,
                                                from: BtrfsKey(objectID: objectID, type: BtrfsKey.dirIndex, offset: 0),
                                                to: BtrfsKey(objectID: objectID, type: BtrfsKey.dirIndex, offset: .max)) {
            for item in try Self.directoryItems(data, site: site) {
                result.append(DirectoryEntry(name: item.name, node: try number(item.location, in: directory.number, site: site)))
            }
        }
        return result
    }

    public func lookup(_ entry: [UInt8], in directory: Node) throws -> UInt64? {
        guard directory.kind == .directory else {
            throw ReaderError(.notDirectory, device: device.name, structure: "inode \(directory.number)", "is not a directory")
        }
        let (tree, name, objectID) = try split(directory.number)
        let key = BtrfsKey(objectID: objectID, type: BtrfsKey.dirItem, offset: UInt64(Self.nameHash(entry)))
        guard let (data, site) = try volume.item(in: tree, tree: name, key),
              let item = try Self.directoryItems(data, site: site).first(where: { $0.name == entry }) else { return nil }
        return try number(item.location, in: directory.number, site: site)
    }

    public func readlink(_ node: Node) throws -> [UInt8] {
        guard node.kind == .symlink else {
            throw ReaderError(.notSymlink, device: device.name, structure: "inode \(node.number)", "is not a symlink")
        }
        guard node.size <= 4096 else {
            throw ReaderError(.malformed, device: device.name, structure: "inode \(node.number)",
                              "symlink target of \(node.size) bytes is longer than 4096")
        }
        return try read(node, offset: 0, count: Int(node.size))
    }

    public func read(_ node: Node, offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset < node.size, count > 0 else { return [] }
        let wanted = min(UInt64(min(count, maximumDeviceRead)), node.size - offset)
        let end = offset + wanted
        var result = [UInt8](repeating: 0, count: Int(wanted))
        let (tree, name, objectID) = try split(node.number)
        // An extent starting before `offset` covers it: the search starts at the file's first extent.
        let extents = try volume.items(in: tree, tree: name,
                                       from: BtrfsKey(objectID: objectID, type: BtrfsKey.extentData, offset: 0),
                                       to: BtrfsKey(objectID: objectID, type: BtrfsKey.extentData, offset: end - 1))
        guard extents.count <= Self.maximumExtents else {
            throw ReaderError(.limit, device: device.name, structure: "inode \(node.number)",
                              "has more than \(Self.maximumExtents) extents before byte \(end)")
        }
        for (key, data, site) in extents {
            try parsing(site) { try copy(extent: data, at: key.offset, site: site, into: &result, from: offset) }
        }
        return result
    }

    /// Copies what the extent item `data` at file offset `start` holds of the bytes from `offset` into `result`.
    private func copy(extent data: [UInt8], at start: UInt64, site: Site, into result: inout [UInt8],
                      from offset: UInt64) throws {
        let c = site.cursor(data)
        let ramBytes = try c.littleEndian(UInt64.self, at: 8)
        let compression = try c.u8(16)
        guard try c.u8(17) == 0, try c.littleEndian(UInt16.self, at: 18) == 0 else {
            throw site.error(.notHandled, "is an encrypted or encoded extent")
        }
        let kind = try c.u8(20)
        let end = offset + UInt64(result.count)
        func place(_ bytes: ArraySlice<UInt8>, at fileOffset: UInt64) {
            // The part of `bytes` (file bytes from `fileOffset`) that falls in offset..<end.
            let (last, overflow) = fileOffset.addingReportingOverflow(UInt64(bytes.count))
            guard !overflow, fileOffset < end, last > offset else { return }
            let from = max(fileOffset, offset), to = min(last, end)
            let source = bytes.startIndex + Int(from - fileOffset)
            result.replaceSubrange(Int(from - offset)..<Int(to - offset), with: bytes[source..<source + Int(to - from)])
        }
        switch kind {
        case 0:
            let inline = try c.slice(21, data.count - 21)
            if compression == 0 {
                place(inline, at: start)
            } else {
                guard ramBytes <= volume.sectorSize else { throw site.error("inline extent of \(ramBytes) bytes is over a sector") }
                place(try decompress(Array(inline), compression, size: Int(ramBytes), site: site)[...], at: start)
            }
        case 1, 2:
            let diskStart = try c.littleEndian(UInt64.self, at: 21)
            let diskLength = try c.littleEndian(UInt64.self, at: 29)
            let extentOffset = try c.littleEndian(UInt64.self, at: 37)
            let length = try c.littleEndian(UInt64.self, at: 45)
            let extentEnd = try site.add(start, length)
            // A hole, a preallocated extent, or one outside the range read: zeros, or nothing to copy.
            guard diskStart != 0, kind == 1, start < end, extentEnd > offset else { return }
            if compression == 0 {
                let from = max(start, offset), to = min(extentEnd, end)
                let logical = try site.add(diskStart, try site.add(extentOffset, from - start))
                let physical = try volume.physical(logical, count: to - from, site.structure)
                place(try device.read(at: physical, count: Int(to - from))[...], at: from)
            } else {
                guard diskLength <= Self.maximumCompressed, ramBytes <= Self.maximumCompressed else {
                    throw site.error("compressed extent of \(diskLength) bytes for \(ramBytes) is over \(Self.maximumCompressed)")
                }
                guard try site.add(extentOffset, length) <= ramBytes else {
                    throw site.error("\(length) bytes at \(extentOffset) run past the extent's \(ramBytes)")
                }
                let physical = try volume.physical(diskStart, count: diskLength, site.structure)
                let plain = try decompress(try device.read(at: physical, count: Int(diskLength)), compression,
                                           size: Int(ramBytes), site: site)
                place(plain[Int(extentOffset)..<Int(extentOffset + length)], at: start)
            }
        default:
            throw site.error("has extent type \(kind)")
        }
    }

    /// `input` decompressed into `size` bytes (zeros past what the stream yields).
    private func decompress(_ input: [UInt8], _ compression: UInt8, size: Int, site: Site) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: size)
        guard size > 0, !input.isEmpty else { return output }
        let failure: String? = input.withUnsafeBytes { source in
            output.withUnsafeMutableBytes { destination -> String? in
                switch compression {
                case 1:
                    guard let decompressor = libdeflate_alloc_decompressor() else { return "out of memory for a zlib decoder" }
                    defer { libdeflate_free_decompressor(decompressor) }
                    var consumed = 0, produced = 0
                    let result = libdeflate_zlib_decompress_ex(decompressor, source.baseAddress, source.count,
                                                               destination.baseAddress, destination.count,
                                                               &consumed, &produced)
                    return result == LIBDEFLATE_SUCCESS ? nil : "bad zlib data or more than \(size) bytes"
                case 3:
                    let frame = ZSTD_findFrameCompressedSize(source.baseAddress, source.count)
                    guard ZSTD_isError(frame) == 0 else { return String(cString: ZSTD_getErrorName(frame)) }
                    let produced = ZSTD_decompress(destination.baseAddress, destination.count, source.baseAddress, frame)
                    return ZSTD_isError(produced) == 0 ? nil : String(cString: ZSTD_getErrorName(produced))
                case 2:
                    return ""
                default:
                    return "unknown compression \(compression)"
                }
            }
        }
        if let failure {
            guard !failure.isEmpty else { throw site.error(.notHandled, "is LZO compressed, which this reader does not read") }
            throw site.error("does not decompress: \(failure)")
        }
        return output
    }

    /// The names from this subvolume's root directory down to directory `objectID`, through its inode refs.
    func path(of objectID: UInt64) throws -> [[UInt8]] {
        let tree = try volume.tree(subvolume)
        let name = "subvolume \(subvolume)"
        var components: [[UInt8]] = []
        var current = objectID
        while current != Self.firstFree {
            guard components.count < Self.maximumDepth else {
                throw ReaderError(.limit, device: device.name, structure: name,
                                  "directory \(objectID) is more than \(Self.maximumDepth) levels deep (a loop?)")
            }
            let refs = try volume.items(in: tree, tree: name,
                                        from: BtrfsKey(objectID: current, type: BtrfsKey.inodeRef, offset: 0),
                                        to: BtrfsKey(objectID: current, type: BtrfsKey.inodeRef, offset: .max))
            guard let (key, data, site) = refs.first else {
                throw ReaderError(.malformed, device: device.name, structure: name, "directory \(current) has no inode ref")
            }
            components.insert(try parsing(site) {
                let c = site.cursor(data)
                return Array(try c.slice(10, Int(try c.littleEndian(UInt16.self, at: 8))))
            }, at: 0)
            current = key.offset
        }
        return components
    }
}
