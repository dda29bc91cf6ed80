import Diagnostics
import Formats

/// A failure reading a guest natively: what (the structure, e.g. "ext4 inode 12", "GPT header"), where (the device
/// and the byte offset on it, when one is known), and of which kind, so that a caller can tell a malformed image
/// from a guest this reader does not handle (the appliance then decides) and from a path that is not there.
public struct ReaderError: DiagnosticError, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The structure contradicts itself or the device: a hostile or damaged image.
        case malformed
        /// Valid, but something this reader does not read (a feature, a segment type, a filesystem).
        case notHandled
        case notFound
        case notDirectory
        case notSymlink
        case isDirectory
        /// A file larger than the caller's limit.
        case tooLarge
        /// More symlinks than allowed while resolving one path.
        case symlinkLoop
        /// A traversal bound (entries, extents, depth, chain length) was reached.
        case limit
    }

    public var kind: Kind
    public var device: String
    public var structure: String
    public var offset: UInt64?
    public var message: String

    public init(_ kind: Kind, device: String, structure: String, offset: UInt64? = nil, _ message: String) {
        self.kind = kind
        self.device = device
        self.structure = structure
        self.offset = offset
        self.message = message
    }

    public var diagnostic: Diagnostic {
        let place = offset.map { "\(device): \(structure) at byte \($0)" } ?? "\(device): \(structure)"
        return Diagnostic("\(place): \(message)", path: device)
    }
}

/// Where a parser is reading: the device, the structure and its byte offset. Errors and the overflow-checked
/// arithmetic every value read from the image goes through are made here, so each names its place.
struct Site {
    var device: String
    var structure: String
    var offset: UInt64?

    init(_ device: String, _ structure: String, at offset: UInt64? = nil) {
        self.device = device
        self.structure = structure
        self.offset = offset
    }

    func error(_ kind: ReaderError.Kind, _ message: String) -> ReaderError {
        ReaderError(kind, device: device, structure: structure, offset: offset, message)
    }

    func error(_ message: String) -> ReaderError { error(.malformed, message) }

    func add(_ a: UInt64, _ b: UInt64) throws(ReaderError) -> UInt64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        if overflow { throw error("\(a) + \(b) overflows") }
        return sum
    }

    func multiply(_ a: UInt64, _ b: UInt64) throws(ReaderError) -> UInt64 {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        if overflow { throw error("\(a) * \(b) overflows") }
        return product
    }

    /// A value read from the image as an Int count or index, refused past `limit`.
    func count(_ value: UInt64, limit: Int, what: String) throws(ReaderError) -> Int {
        guard value <= UInt64(limit) else { throw error(.limit, "\(what) \(value) is more than the \(limit) allowed") }
        return Int(value)
    }

    /// A cursor over `bytes`, read from this site's offset, whose errors name the device and structure.
    func cursor(_ bytes: [UInt8]) -> ByteCursor {
        ByteCursor(bytes, file: "\(device): \(structure)", base: Int64(clamping: offset ?? 0))
    }
}

/// Runs `body`, turning a cursor's `FormatError` (bytes short of a field) into a malformed-structure error.
func parsing<T>(_ site: Site, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as FormatError {
        throw ReaderError(.malformed, device: site.device, structure: site.structure,
                          offset: error.offset.map { UInt64(clamping: $0) } ?? site.offset, error.message)
    }
}

/// "0f3c...": the usual text form of a UUID stored in byte order (ext4, XFS, btrfs superblocks).
func uuidText<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let hex = bytes.map { byte -> String in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined()
    guard hex.count == 32 else { return hex }
    let characters = Array(hex)
    return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
}
