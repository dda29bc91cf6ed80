import Diagnostics
import Glibc

/// A parse failure in an image file: what was wrong, at which byte offset, in which file.
public struct FormatError: DiagnosticError, Sendable, Equatable {
    public var file: String
    public var offset: Int64?
    public var message: String
    /// The errno of the failed system call, when a system call failed (ENOSPC, EIO...).
    public var systemError: Int32?

    public init(file: String, offset: Int64? = nil, _ message: String, systemError: Int32? = nil) {
        self.file = file
        self.offset = offset
        self.message = message
        self.systemError = systemError
    }

    /// "`action` failed: `strerror(errno)`", keeping errno; call it right after the failing call.
    public static func system(file: String, offset: Int64? = nil, _ action: String) -> FormatError {
        let code = errno
        return FormatError(file: file, offset: offset, "\(action) failed: \(String(cString: strerror(code)))",
                           systemError: code)
    }

    public var diagnostic: Diagnostic {
        Diagnostic(offset.map { "\(file): at byte \($0): \(message)" } ?? "\(file): \(message)", path: file)
    }
}

/// Reads integers of a named byte order out of a byte buffer that came from `file` at `base`. Every read is bounds
/// checked and fails with a `FormatError` naming the absolute offset; nothing here traps on hostile input.
public struct ByteCursor {
    public let bytes: [UInt8]
    public let file: String
    /// The file offset of `bytes[0]`, so that errors name absolute offsets.
    public let base: Int64

    public init(_ bytes: [UInt8], file: String, base: Int64 = 0) {
        self.bytes = bytes
        self.file = file
        self.base = base
    }

    public var count: Int { bytes.count }

    public func error(at offset: Int, _ message: String) -> FormatError {
        FormatError(file: file, offset: base + Int64(offset), message)
    }

    private func check(_ offset: Int, _ size: Int) throws(FormatError) {
        guard offset >= 0, size >= 0, offset <= bytes.count, bytes.count - offset >= size else {
            throw error(at: offset, "needs \(size) bytes but the data ends at byte \(base + Int64(bytes.count))")
        }
    }

    public func u8(_ offset: Int) throws(FormatError) -> UInt8 {
        try check(offset, 1)
        return bytes[offset]
    }

    public func bigEndian<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, at offset: Int) throws(FormatError) -> T {
        try check(offset, MemoryLayout<T>.size)
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value = value << 8 | T(bytes[offset + i]) }
        return value
    }

    public func littleEndian<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, at offset: Int) throws(FormatError) -> T {
        try check(offset, MemoryLayout<T>.size)
        var value: T = 0
        for i in (0..<MemoryLayout<T>.size).reversed() { value = value << 8 | T(bytes[offset + i]) }
        return value
    }

    public func slice(_ offset: Int, _ size: Int) throws(FormatError) -> ArraySlice<UInt8> {
        try check(offset, size)
        return bytes[offset..<offset + size]
    }

    /// True when the bytes at `offset` equal `magic`; false (not an error) when the data is too short.
    public func matches(_ magic: [UInt8], at offset: Int) -> Bool {
        guard offset >= 0, bytes.count - offset >= magic.count else { return false }
        return bytes[offset..<offset + magic.count].elementsEqual(magic)
    }

    /// Text of `size` bytes at `offset`, up to the first NUL.
    public func string(_ offset: Int, _ size: Int) throws(FormatError) -> String {
        let raw = try slice(offset, size)
        return String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}
