import Diagnostics
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
public struct InspectionError: DiagnosticError, Sendable, Equatable {
    public var path: String
    public var message: String
    public var hint: String?

    public init(path: String, _ message: String, hint: String? = nil) {
        self.path = path
        self.message = message
        self.hint = hint
    }

    public var diagnostic: Diagnostic { Diagnostic("cannot inspect \(path): \(message)", hint: hint, image: path) }
}

/// How an image path may be opened. A symlink is refused unless followed on purpose: `inspect link-to-shadow`
/// must not report /etc/shadow as a safe raw image. A block device is refused unless allowed: it is not an image
/// file, and writing a result over its path would replace the device node.
public struct FileAccess: Sendable, Equatable {
    public var followSymlinks: Bool
    public var allowBlockDevices: Bool

    public init(followSymlinks: Bool = false, allowBlockDevices: Bool = false) {
        self.followSymlinks = followSymlinks
        self.allowBlockDevices = allowBlockDevices
    }

    /// What `path` is when it is not a regular file or a directory entry the caller may read: nil for a regular
    /// file. Never follows a final symlink.
    static func kind(_ mode: mode_t) -> String? { fileKind(mode) }

    /// Throws unless `path` is free to be written: missing, or a regular file. The commands call this on every
    /// path they write, so that no result is ever written through a symlink or over a device node.
    public static func checkDestination(_ path: String, image: String) throws {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        guard let kind = kind(status.st_mode) else { return }
        var message = "the destination \(path) is \(kind)"
        if status.st_mode & S_IFMT == S_IFLNK, let target = linkText(path) { message += " to '\(target)'" }
        throw InspectionError(path: image, message, hint: "imgcustomize never writes through a link or over a device: "
                              + "give --output a path that is not there yet or is a regular file")
    }

    static func linkText(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length >= 0 else { return nil }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An image file opened read-only. Reads go through `pread`, so nothing but the requested ranges is touched.
public final class HeaderFile: HeaderSource {
    public let name: String
    public let size: Int64
    /// Allocated bytes (st_blocks * 512), what qemu-img calls actual-size.
    public let allocatedSize: Int64
    /// The absolute path a followed symlink leads to; nil when `name` is not a symlink.
    public let linkTarget: String?
    private var descriptor: Int32

    public init(path: String, access: FileAccess = .init()) throws {
        name = path
        var entry = stat()
        guard lstat(path, &entry) == 0 else {
            let reason = String(cString: strerror(errno))
            throw InspectionError(path: path, reason, hint: "check the path and that it is readable")
        }
        if entry.st_mode & S_IFMT == S_IFLNK {
            let text = FileAccess.linkText(path).map { " to '\($0)'" } ?? ""
            guard access.followSymlinks else {
                throw InspectionError(path: path, "it is a symbolic link\(text)",
                                      hint: "give the image's own path, or --follow-symlinks to read what it points to")
            }
            guard let resolved = realpath(path, nil) else {
                throw InspectionError(path: path, "it is a symbolic link\(text) that leads nowhere: "
                                      + String(cString: strerror(errno)))
            }
            linkTarget = String(cString: resolved)
            free(resolved)
        } else {
            linkTarget = nil
        }
        // O_NOFOLLOW: a link swapped in after the lstat fails the open instead of being followed. O_NONBLOCK: a
        // FIFO swapped in does not hang the open; it has no effect on reads of a regular file.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (access.followSymlinks ? 0 : O_NOFOLLOW))
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "it became a symbolic link while being opened" : String(cString: strerror(errno))
            throw InspectionError(path: path, reason, hint: "check the path and that it is readable")
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            closeDescriptor(fd)
            throw InspectionError(path: path, "stat failed: \(reason)")
        }
        let type = status.st_mode & S_IFMT
        if let kind = FileAccess.kind(status.st_mode), !(type == S_IFBLK && access.allowBlockDevices) {
            closeDescriptor(fd)
            let hint = type == S_IFBLK ? "give --allow-device to read a block device" : "give the path of an image file"
            throw InspectionError(path: path, "it is \(kind)\(linkTarget.map { " (\($0))" } ?? "")", hint: hint)
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

    /// The same open file as an `ImageFile` to read the image through: a duplicate of the descriptor (the same
    /// open file description, so the same file whatever its path names by now, and the same locks).
    func imageFile() throws -> ImageFile {
        let copy = try withDescriptor { fcntl($0, F_DUPFD_CLOEXEC, 0) }
        guard copy >= 0 else { throw FormatError.system(file: name, "duplicating the descriptor") }
        return try ImageFile(descriptor: copy, path: name)
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
        let fd = descriptor
        let (done, failure) = buffer.withUnsafeMutableBytes { positionalRead(fd, into: $0, at: offset) }
        if let failure {
            let reason = String(cString: strerror(failure))
            throw InspectionError(path: name, "read of \(count) bytes at offset \(offset) failed: \(reason)")
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
