/// LVM2's text metadata (lvm2's `lib/format_text/`, any `vgcfgbackup` file): `name = value` and `name { ... }`,
/// values being strings, integers and arrays of them, `#` comments. Parsed with bounded depth and item count.
public indirect enum LVMValue: Sendable, Equatable {
    case string(String)
    case number(Int64)
    case array([LVMValue])
    case section([(key: String, value: LVMValue)])

    public static func == (a: LVMValue, b: LVMValue) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.section(let x), .section(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    public subscript(key: String) -> LVMValue? {
        guard case .section(let items) = self else { return nil }
        return items.first { $0.key == key }?.value
    }

    public var string: String? { if case .string(let value) = self { value } else { nil } }
    public var number: Int64? { if case .number(let value) = self { value } else { nil } }
    public var array: [LVMValue]? { if case .array(let value) = self { value } else { nil } }
    public var items: [(key: String, value: LVMValue)] { if case .section(let value) = self { value } else { [] } }

    static let maximumDepth = 16
    static let maximumItems = 200_000

    /// Parses metadata text; errors name `site` and the byte offset in the text.
    static func parse(_ text: [UInt8], site: Site) throws(ReaderError) -> LVMValue {
        var parser = Parser(bytes: text, site: site)
        let top = try parser.items(depth: 0, closing: false)
        return .section(top)
    }

    struct Parser {
        let bytes: [UInt8]
        let site: Site
        var position = 0
        var count = 0

        func fail(_ message: String) -> ReaderError {
            site.error("metadata text at byte \(position): \(message)")
        }

        mutating func skipSpace() {
            while position < bytes.count {
                let byte = bytes[position]
                if byte == 0x23 {  // '#' to the end of the line
                    while position < bytes.count, bytes[position] != 0x0A { position += 1 }
                } else if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
                    position += 1
                } else {
                    return
                }
            }
        }

        static func isNameByte(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2E || byte == 0x2B || byte == 0x2D
        }

        mutating func items(depth: Int, closing: Bool) throws(ReaderError) -> [(key: String, value: LVMValue)] {
            guard depth <= LVMValue.maximumDepth else { throw fail("sections nest deeper than \(LVMValue.maximumDepth)") }
            var result: [(key: String, value: LVMValue)] = []
            while true {
                skipSpace()
                if position >= bytes.count || bytes[position] == 0 {
                    if closing { throw fail("a section is not closed") }
                    return result
                }
                if bytes[position] == 0x7D {  // '}'
                    guard closing else { throw fail("unexpected '}'") }
                    position += 1
                    return result
                }
                let start = position
                while position < bytes.count, Self.isNameByte(bytes[position]) { position += 1 }
                guard position > start else { throw fail("expected a name") }
                let name = String(decoding: bytes[start..<position], as: UTF8.self)
                skipSpace()
                guard position < bytes.count else { throw fail("\(name) has no value") }
                count += 1
                guard count <= LVMValue.maximumItems else { throw fail("more than \(LVMValue.maximumItems) items") }
                if bytes[position] == 0x7B {  // '{'
                    position += 1
                    result.append((name, .section(try items(depth: depth + 1, closing: true))))
                } else if bytes[position] == 0x3D {  // '='
                    position += 1
                    result.append((name, try value(depth: depth)))
                } else {
                    throw fail("expected '=' or '{' after \(name)")
                }
            }
        }

        mutating func value(depth: Int) throws(ReaderError) -> LVMValue {
            skipSpace()
            guard position < bytes.count else { throw fail("a value is missing") }
            switch bytes[position] {
            case 0x22:  // '"'
                position += 1
                var text: [UInt8] = []
                while true {
                    guard position < bytes.count else { throw fail("a string is not closed") }
                    let byte = bytes[position]
                    position += 1
                    if byte == 0x22 { break }
                    if byte == 0x5C {
                        guard position < bytes.count else { throw fail("a string ends in a backslash") }
                        text.append(bytes[position])
                        position += 1
                    } else {
                        text.append(byte)
                    }
                }
                return .string(String(decoding: text, as: UTF8.self))
            case 0x5B:  // '['
                guard depth < LVMValue.maximumDepth else { throw fail("arrays nest too deep") }
                position += 1
                var elements: [LVMValue] = []
                while true {
                    skipSpace()
                    guard position < bytes.count else { throw fail("an array is not closed") }
                    if bytes[position] == 0x5D { position += 1; return .array(elements) }
                    if !elements.isEmpty {
                        guard bytes[position] == 0x2C else { throw fail("expected ',' in an array") }
                        position += 1
                        skipSpace()
                        // lvm2 writes no trailing comma, but tolerates one.
                        if position < bytes.count, bytes[position] == 0x5D { position += 1; return .array(elements) }
                    }
                    count += 1
                    guard count <= LVMValue.maximumItems else { throw fail("more than \(LVMValue.maximumItems) items") }
                    elements.append(try value(depth: depth + 1))
                }
            default:
                let start = position
                if bytes[position] == 0x2D { position += 1 }
                var number: Int64 = 0
                while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 {
                    let (times, o1) = number.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = times.addingReportingOverflow(Int64(bytes[position] - 0x30))
                    guard !o1, !o2 else { throw fail("a number overflows 64 bits") }
                    number = sum
                    position += 1
                }
                guard position > start, bytes[position - 1] != 0x2D else { throw fail("expected a value") }
                // A float (lvm2 allows them in config; metadata has none worth reading): its fraction skipped.
                if position < bytes.count, bytes[position] == 0x2E {
                    position += 1
                    while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 { position += 1 }
                }
                return .number(bytes[start] == 0x2D ? -number : number)
            }
        }
    }
}
