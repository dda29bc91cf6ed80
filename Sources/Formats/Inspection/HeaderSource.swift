#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func closeDescriptor(_ fd: Int32) { _ = close(fd) }

/// Where header bytes come from: an open file, or bytes in memory (tests, the fuzz target).
public protocol HeaderSource {
    /// A name for error messages: the path as the user gave it.
    var name: String { get }
    /// Size in bytes of the image file.
    var size: Int64 { get }
    /// Up to `count` bytes at `offset`; fewer only at the end of the data.
    func read(at offset: Int64, count: Int) throws -> [UInt8]
}

/// Why an image could not be inspected at all (as opposed to an image that was read and found unsafe).
public struct InspectionError: Error, CustomStringConvertible, Sendable, Equatable {
    public var path: String
    public var message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "cannot inspect \(path): \(message)" }
}

/// An image file opened read-only. Reads go through `pread`, so nothing but the requested ranges is touched.
public final class HeaderFile: HeaderSource {
    public let name: String
    public let size: Int64
    /// Allocated bytes (st_blocks * 512), what qemu-img calls actual-size.
    public let allocatedSize: Int64
    private var descriptor: Int32

    public init(path: String) throws {
        name = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw InspectionError(path: path, "\(reason); check the path and that it is readable")
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            closeDescriptor(fd)
            throw InspectionError(path: path, "stat failed: \(reason)")
        }
        let type = status.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFBLK else {
            closeDescriptor(fd)
            let kind = type == S_IFDIR ? "a directory" : "not a regular file or block device"
            throw InspectionError(path: path, "it is \(kind); give the path of an image file")
        }
        if type == S_IFBLK {
            let end = lseek(fd, 0, SEEK_END)
            guard end >= 0 else {
                closeDescriptor(fd)
                throw InspectionError(path: path, "cannot find the size of the block device")
            }
            size = Int64(end)
        } else {
            size = Int64(status.st_size)
        }
        allocatedSize = Int64(status.st_blocks) * 512
        descriptor = fd
    }

    deinit { close() }

    /// Closes the file now; later reads fail.
    public func close() {
        if descriptor >= 0 {
            closeDescriptor(descriptor)
            descriptor = -1
        }
    }

    /// Runs `body` with the open descriptor (while the file is open).
    func withDescriptor<T>(_ body: (Int32) throws -> T) throws -> T {
        guard descriptor >= 0 else { throw InspectionError(path: name, "the file is already closed") }
        return try body(descriptor)
    }

    public func read(at offset: Int64, count: Int) throws -> [UInt8] {
        guard offset >= 0, count >= 0 else { return [] }
        guard descriptor >= 0 else { throw InspectionError(path: name, "the file is already closed") }
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let fd = descriptor
            let got = buffer.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base + done, count - done, off_t(offset) + off_t(done))
            }
            if got < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                throw InspectionError(path: name, "read of \(count) bytes at offset \(offset) failed: \(reason)")
            }
            if got == 0 { break }
            done += got
        }
        buffer.removeSubrange(done...)
        return buffer
    }
}

/// Bytes already in memory, read as if they were an image file.
public struct MemoryImageSource: HeaderSource {
    public let name: String
    public let bytes: [UInt8]
    public var size: Int64 { Int64(bytes.count) }

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    public func read(at offset: Int64, count: Int) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset < size else { return [] }
        let start = Int(offset)
        return Array(bytes[start..<start + min(count, bytes.count - start)])
    }
}
