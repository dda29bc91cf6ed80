import Formats

/// Bytes of a guest block device: a disk, a partition, a logical volume. Read-only; every read is checked against
/// the device's size.
public protocol BlockDevice: AnyObject {
    /// The device as the guest's Linux would name it with the disk as /dev/sda: "/dev/sda2", "/dev/VG/LV".
    var name: String { get }
    var size: UInt64 { get }
    /// Exactly `count` bytes at `offset`; fails when the range does not lie within the device or `count` is larger
    /// than `maximumDeviceRead`.
    func read(at offset: UInt64, count: Int) throws -> [UInt8]
}

/// No single read of a device is larger: sizes come from the image, and a hostile one must not make us allocate
/// gigabytes.
public let maximumDeviceRead = 64 << 20

extension BlockDevice {
    func checkRange(_ offset: UInt64, _ count: Int, _ structure: String = "read") throws(ReaderError) {
        guard count >= 0, count <= maximumDeviceRead else {
            throw ReaderError(.limit, device: name, structure: structure, offset: offset,
                              "a read of \(count) bytes is larger than the \(maximumDeviceRead) allowed")
        }
        guard offset <= size, UInt64(count) <= size - offset else {
            throw ReaderError(.malformed, device: name, structure: structure, offset: offset,
                              "\(count) bytes run past the end of the device (\(size) bytes)")
        }
    }
}

/// The guest's whole disk, read through Formats' image readers (qcow2 with its backing chain when the image was
/// opened allowing one, single-file VMDK, raw), with a small cache of 64 KiB chunks: filesystem metadata is read
/// in many small pieces, often from the same compressed cluster.
public final class ImageDevice: BlockDevice {
    public let name: String
    public let source: any ImageSource
    public var size: UInt64 { source.virtualSize }
    private var cache: [UInt64: [UInt8]] = [:]
    private static let chunk: UInt64 = 64 << 10
    /// Chunks kept (16 MiB); the cache is emptied wholesale past it.
    private static let cachedChunks = 256

    public init(source: any ImageSource, name: String = "/dev/sda") {
        self.source = source
        self.name = name
    }

    /// Opens the image at `path` read-only (its format detected, backing files refused).
    public convenience init(path: String, name: String = "/dev/sda") throws {
        self.init(source: try openImage(path: path), name: name)
    }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        var result: [UInt8] = []
        result.reserveCapacity(count)
        var position = offset
        let end = offset + UInt64(count)
        while position < end {
            let start = position - position % Self.chunk
            let bytes = try chunk(at: start)
            let from = Int(position - start)
            let to = Int(min(end - start, UInt64(bytes.count)))
            guard from < to else { break }
            result.append(contentsOf: bytes[from..<to])
            position = start + UInt64(to)
        }
        return result
    }

    private func chunk(at start: UInt64) throws -> [UInt8] {
        if let cached = cache[start] { return cached }
        var bytes = [UInt8](repeating: 0, count: Int(min(Self.chunk, size - start)))
        try bytes.withUnsafeMutableBytes { try source.read(at: start, into: $0) }
        if cache.count >= Self.cachedChunks { cache.removeAll(keepingCapacity: true) }
        cache[start] = bytes
        return bytes
    }
}

/// A range of another device: a partition.
public final class SliceDevice: BlockDevice {
    public let name: String
    public let parent: any BlockDevice
    public let start: UInt64
    public let size: UInt64

    /// Fails when the range does not lie within `parent`.
    public init(_ parent: any BlockDevice, start: UInt64, length: UInt64, name: String) throws {
        guard start <= parent.size, length <= parent.size - start else {
            throw ReaderError(.malformed, device: parent.name, structure: "partition \(name)", offset: start,
                              "\(length) bytes at \(start) run past the end of the device (\(parent.size) bytes)")
        }
        self.parent = parent
        self.start = start
        self.size = length
        self.name = name
    }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        return try parent.read(at: start + offset, count: count)
    }
}

/// Bytes in memory as a device: what the fuzz targets parse.
public final class MemoryDevice: BlockDevice {
    public let name: String
    public let bytes: [UInt8]
    public var size: UInt64 { UInt64(bytes.count) }

    public init(_ bytes: [UInt8], name: String = "/dev/sda") {
        self.bytes = bytes
        self.name = name
    }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        return Array(bytes[Int(offset)..<Int(offset) + count])
    }
}
