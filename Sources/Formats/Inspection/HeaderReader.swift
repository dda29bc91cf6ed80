/// Reads the few regions of an image that detection and introspection need, and counts every byte it reads so the
/// header-only promise can be measured. The head and the tail are read once and shared by all detectors.
final class HeaderReader {
    /// The first bytes of the file: every magic number except the footers, and the ISO 9660 volume descriptors.
    static let headLength = 64 << 10
    /// The last bytes: the VHD footer (512) and the streamOptimized VMDK footer, marker and end-of-stream (1536).
    static let tailLength = 2048
    /// No single read asked of a reader is larger: the bound behind "never a huge allocation".
    static let maximumRead = 2 << 20

    let source: HeaderSource
    let size: Int64
    let head: ByteCursor
    let tail: ByteCursor
    private(set) var bytesRead: Int

    var name: String { source.name }

    init(_ source: HeaderSource) throws {
        self.source = source
        size = source.size
        let headBytes = try source.read(at: 0, count: Self.headLength)
        head = ByteCursor(headBytes, file: source.name)
        bytesRead = headBytes.count
        let tailStart = max(0, size - Int64(Self.tailLength))
        if tailStart < Int64(headBytes.count) {
            let start = Int(tailStart)
            tail = ByteCursor(Array(headBytes[start...]), file: source.name, base: tailStart)
        } else {
            let tailBytes = try source.read(at: tailStart, count: Self.tailLength)
            tail = ByteCursor(tailBytes, file: source.name, base: tailStart)
            bytesRead += tailBytes.count
        }
    }

    /// `count` bytes at `offset` as a cursor whose errors name absolute offsets. Throws a `FormatError` when the
    /// region is not wholly inside the file or is larger than any header region can be.
    func cursor(at offset: Int64, count: Int, what: String) throws -> ByteCursor {
        guard count >= 0, count <= Self.maximumRead else {
            throw FormatError(file: name, offset: offset, "\(what) of \(count) bytes is larger than any header can be")
        }
        guard offset >= 0, offset <= size, Int64(count) <= size - offset else {
            throw FormatError(file: name, offset: offset,
                              "\(what) (\(count) bytes) lies beyond the end of the file (\(size) bytes)")
        }
        if offset + Int64(count) <= Int64(head.count) {
            let start = Int(offset)
            return ByteCursor(Array(head.bytes[start..<start + count]), file: name, base: offset)
        }
        if offset >= tail.base, offset + Int64(count) <= tail.base + Int64(tail.count) {
            let start = Int(offset - tail.base)
            return ByteCursor(Array(tail.bytes[start..<start + count]), file: name, base: offset)
        }
        let bytes = try source.read(at: offset, count: count)
        bytesRead += bytes.count
        guard bytes.count == count else {
            throw FormatError(file: name, offset: offset, "\(what): the file ended after \(bytes.count) of \(count) bytes")
        }
        return ByteCursor(bytes, file: name, base: offset)
    }
}
