import Glibc

// Glibc hides these behind _GNU_SOURCE; the values are Linux's.
private let seekData: Int32 = 3
private let seekHole: Int32 = 4

/// A raw image: the file is the disk. Holes, found with SEEK_DATA/SEEK_HOLE, are reported as zero extents so a
/// sparse file costs nothing to scan. Like qemu, the disk is the file's size rounded up to 512-byte sectors, the
/// tail reading as zeros.
public final class RawReader: ImageSource {
    let file: ImageFile
    public let virtualSize: UInt64

    public var path: String { file.path }

    public convenience init(path: String) throws {
        self.init(file: try ImageFile(path: path))
    }

    init(file: ImageFile) {
        self.file = file
        // A file within 511 bytes of UInt64.max cannot exist; the clamp only keeps the arithmetic from trapping.
        virtualSize = file.size > UInt64.max - 511 ? file.size : (file.size + 511) & ~511
    }

    public func extents(in range: Range<UInt64>) throws -> [Extent] {
        guard range.upperBound <= virtualSize else {
            throw FormatError(file: path, offset: Int64(clamping: range.upperBound), "extent query past the end of the image (\(virtualSize) bytes)")
        }
        var list = ExtentList()
        // The sector tail past the end of the file reads as zeros.
        let fileEnd = min(range.upperBound, file.size)
        var position = range.lowerBound
        while position < fileEnd {
            let data = lseek(file.descriptor, off_t(position), seekData)
            if data < 0 {
                // ENXIO: only a hole remains, or the file was cut short while being read. EINVAL: the filesystem
                // cannot tell, so everything is data.
                if errno == ENXIO {
                    try requireNotCutShort(at: position)
                    list.append(.zero, offset: position, length: fileEnd - position)
                } else if errno == EINVAL {
                    list.append(.data, offset: position, length: fileEnd - position)
                } else {
                    throw FormatError(file: path, offset: Int64(position), "SEEK_DATA failed: \(String(cString: strerror(errno)))")
                }
                position = fileEnd
                break
            }
            let dataStart = min(UInt64(data), fileEnd)
            list.append(.zero, offset: position, length: dataStart - position)
            if dataStart >= fileEnd {
                position = fileEnd
                break
            }
            let hole = lseek(file.descriptor, off_t(dataStart), seekHole)
            guard hole >= 0 else {
                throw FormatError(file: path, offset: Int64(dataStart), "SEEK_HOLE failed: \(String(cString: strerror(errno)))")
            }
            let dataEnd = min(max(UInt64(hole), dataStart + 1), fileEnd)
            list.append(.data, offset: dataStart, length: dataEnd - dataStart)
            position = dataEnd
        }
        list.append(.zero, offset: max(position, range.lowerBound), length: range.upperBound - max(position, range.lowerBound))
        return list.extents
    }

    /// A file shorter now than when it was opened has no data past its new end, which SEEK_DATA reports as a hole:
    /// reading it as zeros would copy a disk that never existed.
    private func requireNotCutShort(at position: UInt64) throws {
        var now = stat()
        guard fstat(file.descriptor, &now) == 0, now.st_mode & S_IFMT == S_IFREG else { return }
        if UInt64(max(now.st_size, 0)) < file.size {
            throw FormatError(file: path, offset: Int64(clamping: position),
                              "the file was cut short while being read (\(now.st_size) bytes now, \(file.size) when opened)")
        }
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(self, offset: offset, count: buffer.count)
        let inFile = offset < file.size ? Int(min(UInt64(buffer.count), file.size - offset)) : 0
        try file.readExactly(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<inFile]), what: "read")
        UnsafeMutableRawBufferPointer(rebasing: buffer[inFile...]).initializeMemory(as: UInt8.self, repeating: 0)
    }
}
