import Glibc

// Glibc hides these behind _GNU_SOURCE; the values are Linux's.
private let seekData: Int32 = 3
private let seekHole: Int32 = 4

/// A raw image: the file is the disk. Holes, found with SEEK_DATA/SEEK_HOLE, are reported as zero extents so a
/// sparse file costs nothing to scan.
public final class RawReader: ImageSource {
    let file: ImageFile

    public var path: String { file.path }
    public var virtualSize: UInt64 { file.size }

    public convenience init(path: String) throws {
        self.init(file: try ImageFile(path: path))
    }

    init(file: ImageFile) {
        self.file = file
    }

    public func extents(in range: Range<UInt64>) throws -> [Extent] {
        guard range.upperBound <= virtualSize else {
            throw FormatError(file: path, offset: Int64(clamping: range.upperBound), "extent query past the end of the image (\(virtualSize) bytes)")
        }
        var list = ExtentList()
        var position = range.lowerBound
        while position < range.upperBound {
            let data = lseek(file.descriptor, off_t(position), seekData)
            if data < 0 {
                // ENXIO: only a hole remains. EINVAL: the filesystem cannot tell, so everything is data.
                if errno == ENXIO {
                    list.append(.zero, offset: position, length: range.upperBound - position)
                } else if errno == EINVAL {
                    list.append(.data, offset: position, length: range.upperBound - position)
                } else {
                    throw FormatError(file: path, offset: Int64(position), "SEEK_DATA failed: \(String(cString: strerror(errno)))")
                }
                break
            }
            let dataStart = min(UInt64(data), range.upperBound)
            list.append(.zero, offset: position, length: dataStart - position)
            if dataStart >= range.upperBound { break }
            let hole = lseek(file.descriptor, off_t(dataStart), seekHole)
            guard hole >= 0 else {
                throw FormatError(file: path, offset: Int64(dataStart), "SEEK_HOLE failed: \(String(cString: strerror(errno)))")
            }
            let dataEnd = min(max(UInt64(hole), dataStart + 1), range.upperBound)
            list.append(.data, offset: dataStart, length: dataEnd - dataStart)
            position = dataEnd
        }
        return list.extents
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(self, offset: offset, count: buffer.count)
        try file.readExactly(at: offset, into: buffer, what: "read")
    }
}
