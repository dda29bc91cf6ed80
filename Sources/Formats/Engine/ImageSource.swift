import Glibc

/// What a guest byte range holds, as far as the image's metadata tells without reading the data.
public enum ExtentKind: Sendable, Equatable {
    /// Stored bytes (possibly compressed, possibly all zero once read).
    case data
    /// Known to read as zeros: a zero-flagged qcow2 cluster or a hole in a raw file.
    case zero
    /// Mapped by nothing in the chain; reads as zeros.
    case unallocated
}

public struct Extent: Sendable, Equatable {
    public var offset: UInt64
    public var length: UInt64
    public var kind: ExtentKind

    public init(offset: UInt64, length: UInt64, kind: ExtentKind) {
        self.offset = offset
        self.length = length
        self.kind = kind
    }

    public var end: UInt64 { offset + length }
}

/// A disk image seen as the guest sees it. Reads may run concurrently from any number of threads.
public protocol ImageSource: AnyObject, Sendable {
    var path: String { get }
    var virtualSize: UInt64 { get }
    /// The extents covering `range` (which must lie within the virtual size) in order, adjacent ones of the same
    /// kind merged. Costs metadata reads only.
    func extents(in range: Range<UInt64>) throws -> [Extent]
    /// Fills `buffer` with the guest bytes starting at `offset`; the range must lie within the virtual size.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
}

/// What the writer produces.
public enum OutputFormat: String, Sendable, CaseIterable {
    case qcow2, raw
}

/// Opens `path` as `format`, or, without one, as what `ImageInspector` detects. qcow2, single-file VMDK
/// (monolithicSparse, streamOptimized) and the formats qemu reads as raw are readable; others are refused rather
/// than read as raw. A qcow2 naming a backing file is refused
/// unless `allowBacking` is set: following a name found in an untrusted image makes us read arbitrary host files.
public func openImage(path: String, format: ImageFormat? = nil, allowBacking: Bool = false) throws -> any ImageSource {
    try openImage(path: path, format: format, allowBacking: allowBacking, depth: 0)
}

/// Longer chains than this are treated as a loop.
let maximumBackingDepth = 16

func openImage(path: String, format: ImageFormat?, allowBacking: Bool, depth: Int) throws -> any ImageSource {
    let resolved = try format ?? ImageInspector.inspect(path: path).format
    return try openImage(file: ImageFile(path: path), format: resolved, allowBacking: allowBacking, depth: depth)
}

/// Reads the image already open as `file`: no second open by its path, which may name another file by now.
func openImage(file: ImageFile, format: ImageFormat, allowBacking: Bool, depth: Int) throws -> any ImageSource {
    switch format {
    case .qcow2: return try QCOW2Reader(file: file, allowBacking: allowBacking, depth: depth)
    case .vmdk: return try VMDKReader(file: file)
    case _ where format.qemuFormat == "raw": return RawReader(file: file)
    default:
        throw FormatError(file: file.path, "is \(format.rawValue); only qcow2, single-file VMDK and raw can be read (convert it with qemu-img first)")
    }
}

/// An open image file read with pread, so any number of threads can read it at once. Closed on deinit.
final class ImageFile: Sendable {
    let path: String
    let descriptor: Int32
    let size: UInt64
    /// What fstat said when the file was opened, to tell at the end of a read whether it changed meanwhile.
    private let opened: FileState

    struct FileState: Sendable, Equatable {
        var size: Int64
        var modified: Int
        var modifiedNanoseconds: Int

        init(_ status: stat, size: Int64) {
            self.size = size
            modified = status.st_mtim.tv_sec
            modifiedNanoseconds = status.st_mtim.tv_nsec
        }
    }

    /// Opens a file the image itself names (a backing file) or one the caller made (an overlay). O_NONBLOCK: a FIFO
    /// there fails the type check instead of hanging the open.
    convenience init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw FormatError(file: path, "cannot open: \(String(cString: strerror(errno)))") }
        try self.init(descriptor: fd, path: path)
    }

    /// Takes `descriptor`, open for reading, as the image `path`: it is closed when this goes away, or now when it is
    /// neither a regular file nor a block device.
    init(descriptor fd: Int32, path: String) throws {
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw FormatError(file: path, "cannot stat: \(message)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG || (info.st_mode & S_IFMT) == S_IFBLK else {
            close(fd)
            throw FormatError(file: path, "is neither a regular file nor a block device")
        }
        var size = UInt64(max(info.st_size, 0))
        if (info.st_mode & S_IFMT) == S_IFBLK {
            let end = lseek(fd, 0, SEEK_END)
            size = UInt64(max(end, 0))
        }
        self.path = path
        self.descriptor = fd
        self.size = size
        opened = FileState(info, size: Int64(clamping: size))
    }

    /// How the file differs from what it was when opened (its size or its modification time), in words; nil when
    /// it does not. A regular file only: a block device's times mean nothing.
    func changeSinceOpened() -> String? {
        var now = stat()
        guard fstat(descriptor, &now) == 0 else { return "it can no longer be examined: \(String(cString: strerror(errno)))" }
        guard now.st_mode & S_IFMT == S_IFREG else { return nil }
        let state = FileState(now, size: Int64(now.st_size))
        if state.size != opened.size { return "its size went from \(opened.size) to \(state.size) bytes while it was read" }
        if state != opened { return "it was modified while it was read" }
        return nil
    }

    deinit { close(descriptor) }

    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the file. Returns the count read.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let (done, failure) = positionalRead(descriptor, into: buffer, at: Int64(offset))
        if let failure {
            throw FormatError(file: path, offset: Int64(offset) + Int64(done),
                              "read failed: \(String(cString: strerror(failure)))", systemError: failure)
        }
        return done
    }

    /// Reads exactly `buffer.count` bytes at `offset`, or fails naming what was being read.
    func readExactly(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, what: String) throws {
        let got = try read(at: offset, into: buffer)
        guard got == buffer.count else {
            var now = stat()
            if fstat(descriptor, &now) == 0, (now.st_mode & S_IFMT) == S_IFREG, UInt64(max(now.st_size, 0)) < size {
                throw FormatError(file: path, offset: Int64(offset), "\(what) of \(buffer.count) bytes runs past the end of the file: it was cut short while being read (\(now.st_size) bytes now, \(size) when opened)")
            }
            throw FormatError(file: path, offset: Int64(offset), "\(what) of \(buffer.count) bytes runs past the end of the file (\(size) bytes)")
        }
    }

    func bytes(at offset: UInt64, count: Int, what: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try readExactly(at: offset, into: $0, what: what) }
        return bytes
    }
}

/// Builds an extent list in order, merging neighbours of the same kind.
struct ExtentList {
    private(set) var extents: [Extent] = []

    mutating func append(_ kind: ExtentKind, offset: UInt64, length: UInt64) {
        guard length > 0 else { return }
        if let last = extents.last, last.kind == kind, last.end == offset {
            extents[extents.count - 1].length += length
        } else {
            extents.append(Extent(offset: offset, length: length, kind: kind))
        }
    }

    mutating func append(contentsOf other: [Extent]) {
        for extent in other { append(extent.kind, offset: extent.offset, length: extent.length) }
    }
}

func checkRange(_ source: some ImageSource, offset: UInt64, count: Int) throws {
    guard offset <= source.virtualSize, UInt64(count) <= source.virtualSize - offset else {
        throw FormatError(file: source.path, offset: Int64(clamping: offset),
                          "read of \(count) bytes runs past the virtual size \(source.virtualSize)")
    }
}
