/// Guest paths are Swift strings, but a guest's file names are bytes: "caf\xe9.log" written by a Latin-1 program is
/// not UTF-8, and decoding it lossily (U+FFFD) names a different file, so a removal reports success and leaves it.
/// Every name read from a guest is decoded with `guestName(decoding:)` and every path handed to a system call is
/// encoded with `guestPathBytes(_:)`, which together round-trip any byte string:
///
/// - valid UTF-8 stays as it is;
/// - each byte that is not part of valid UTF-8 becomes one scalar of U+EF80...U+EFFF (byte 0x80...0xFF; bytes below
///   0x80 are always valid), the private-use range of MirBSD's OPTU-8;
/// - a name that really holds one of those scalars has each of its three bytes escaped the same way, so that
///   the range itself stays unambiguous.
///
/// Such a name prints as private-use characters, which is wrong-looking but exact: the path a report shows is the
/// path that is removed.
public func guestName(decoding bytes: some Collection<UInt8>) -> String {
    let bytes = Array(bytes)
    var scalars = String.UnicodeScalarView()
    var index = 0
    func escape(_ byte: UInt8) { scalars.append(Unicode.Scalar(escapeBase + UInt32(byte))!) }
    while index < bytes.count {
        let lead = bytes[index]
        if lead < 0x80 {
            scalars.append(Unicode.Scalar(lead))
            index += 1
            continue
        }
        let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
        if length > 1, index + length <= bytes.count,
           let text = String(validating: bytes[index..<index + length], as: UTF8.self),
           let scalar = text.unicodeScalars.first, text.unicodeScalars.count == 1 {
            if escapedRange.contains(scalar.value) {
                for byte in bytes[index..<index + length] { escape(byte) }
            } else {
                scalars.append(scalar)
            }
            index += length
        } else {
            escape(lead)
            index += 1
        }
    }
    return String(scalars)
}

/// The bytes of a guest path for a system call: the inverse of `guestName(decoding:)`.
public func guestPathBytes(_ path: String) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(path.utf8.count)
    for scalar in path.unicodeScalars {
        if escapedRange.contains(scalar.value) {
            bytes.append(UInt8(scalar.value - escapeBase))
        } else {
            bytes.append(contentsOf: String(scalar).utf8)
        }
    }
    return bytes
}

private let escapeBase: UInt32 = 0xEF00
private let escapedRange: ClosedRange<UInt32> = 0xEF80...0xEFFF
