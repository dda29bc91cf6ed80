/// What one format's detector found in a file it matched.
struct Finding {
    var format: ImageFormat
    /// nil when the format keeps it where a header-only read cannot see it (LUKS2 JSON metadata).
    var virtualSize: UInt64?
    var specific: FormatSpecific
    var violations: [Violation] = []
}

/// One image format: a cheap magic test over the shared head and tail, then a full header parse. The parse throws
/// a `FormatError` for anything malformed; the inspector turns that into a malformed-header violation.
protocol FormatDetector {
    /// The detector's name in `formatsDetected`.
    static var name: String { get }
    static var format: ImageFormat { get }
    static func matches(_ reader: HeaderReader) -> Bool
    static func inspect(_ reader: HeaderReader) throws -> Finding
}

extension FormatDetector {
    static var name: String { format.rawValue }
}

/// Overflow-checked `a * b` for sizes read from files.
func product(_ a: UInt64, _ b: UInt64, _ what: String, in file: String, at offset: Int64) throws(FormatError) -> UInt64 {
    let (value, overflow) = a.multipliedReportingOverflow(by: b)
    guard !overflow else { throw FormatError(file: file, offset: offset, "\(what) overflows 64 bits") }
    return value
}

/// `value` rounded up to a multiple of 512, as qemu counts sizes in sectors.
func roundedToSector(_ value: UInt64) -> UInt64 {
    value % 512 == 0 ? value : (value / 512 &+ 1) &* 512
}

/// A little-endian-first ("mixed-endian") GUID as Microsoft and UEFI store them, in its usual text form.
func guidString(_ c: ByteCursor, at offset: Int) throws(FormatError) -> String {
    let a = try c.littleEndian(UInt32.self, at: offset)
    let b = try c.littleEndian(UInt16.self, at: offset + 4)
    let d = try c.littleEndian(UInt16.self, at: offset + 6)
    let rest = try c.slice(offset + 8, 8)
    func hex<T: BinaryInteger>(_ v: T, _ width: Int) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    let tail = rest.map { hex($0, 2) }
    return "\(hex(a, 8))-\(hex(b, 4))-\(hex(d, 4))-\(tail[0..<2].joined())-\(tail[2..<8].joined())"
}

/// Text of a fixed-size field with trailing NULs and spaces removed.
func trimmedText<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    var text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    while let last = text.last, last == " " { text.removeLast() }
    return text
}
