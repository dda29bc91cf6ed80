/// What a file is, from its mode.
public enum NodeKind: Sendable, Equatable {
    case regular, directory, symlink, characterDevice, blockDevice, fifo, socket, unknown

    /// From the S_IFMT bits of a Unix mode.
    init(mode: UInt32) {
        switch mode & 0o170000 {
        case 0o100000: self = .regular
        case 0o040000: self = .directory
        case 0o120000: self = .symlink
        case 0o020000: self = .characterDevice
        case 0o060000: self = .blockDevice
        case 0o010000: self = .fifo
        case 0o140000: self = .socket
        default: self = .unknown
        }
    }
}

/// A file's metadata, as stat(2) gives it.
public struct Node: Sendable, Equatable {
    public var number: UInt64
    public var kind: NodeKind
    /// The whole mode: type and permission bits.
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var links: UInt32
    public var modified: Int64
}

/// One name in a directory ("." and ".." left out).
public struct DirectoryEntry: Sendable, Equatable {
    public var name: [UInt8]
    public var node: UInt64
}

/// A filesystem read natively: files by number, directories, link targets, contents. Implementations check every
/// value they read and bound every traversal.
public protocol FilesystemReader: AnyObject {
    var device: any BlockDevice { get }
    /// "ext4", "xfs"...
    var type: String { get }
    var uuid: String { get }
    var label: String { get }
    var rootNode: UInt64 { get }
    func node(_ number: UInt64) throws -> Node
    func entries(of directory: Node) throws -> [DirectoryEntry]
    func readlink(_ node: Node) throws -> [UInt8]
    /// The entry `name` of `directory`, or nil.
    func lookup(_ name: [UInt8], in directory: Node) throws -> UInt64?
    /// Up to `count` bytes from `offset` (fewer at the end of the file; holes read as zeros).
    func read(_ node: Node, offset: UInt64, count: Int) throws -> [UInt8]
}

extension FilesystemReader {
    /// A linear scan: directories of the size inspection reads are small. (btrfs looks names up by their hash.)
    public func lookup(_ name: [UInt8], in directory: Node) throws -> UInt64? {
        try entries(of: directory).first { $0.name == name }?.node
    }
}
