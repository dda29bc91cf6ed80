/// The text of a guest file that an operation edits line by line.
///
/// Works on bytes, not Characters: Swift treats "\r\n" as one Character, so splitting a String on "\n" would miss
/// the lines of a CRLF file.
struct TextFile: Equatable {
    /// "\r\n" when every line of the file ends so, "\n" otherwise: edits keep a CRLF file CRLF.
    var lineEnding: String
    /// Lines without their line endings.
    var lines: [String]
    /// Whether the last line ends with a line ending; an empty file counts as ending with one.
    var endsWithNewline: Bool

    init(_ text: String) {
        let bytes = Array(text.utf8)
        var raw = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        endsWithNewline = bytes.isEmpty || bytes.last == UInt8(ascii: "\n")
        if bytes.isEmpty { raw = [] } else if endsWithNewline { raw.removeLast() }
        let terminated = endsWithNewline ? raw[...] : raw.dropLast()
        let crlf = !terminated.isEmpty && terminated.allSatisfy { $0.last == UInt8(ascii: "\r") }
        lineEnding = crlf ? "\r\n" : "\n"
        lines = raw.enumerated().map { index, line in
            let strip = crlf && (index < terminated.count)
            return String(decoding: strip ? line.dropLast() : line, as: UTF8.self)
        }
    }

    init(lines: [String], lineEnding: String = "\n") {
        self.lines = lines
        self.lineEnding = lineEnding
        endsWithNewline = true
    }

    var text: String {
        guard !lines.isEmpty else { return "" }
        return lines.joined(separator: lineEnding) + (endsWithNewline ? lineEnding : "")
    }

    /// Reads `path` as text, refusing binary content with an error naming the guest and file.
    static func read(_ guest: GuestFilesystem, _ path: String, action: String) throws -> String {
        let content = try guest.read(path)
        guard !UnifiedDiff.isBinary(content), let text = String(validating: content, as: UTF8.self) else {
            throw GuestError(guest: guest.guestDescription, action: action, path: path,
                             message: "binary file (NUL bytes or invalid UTF-8)",
                             hint: "only text files can be edited; replace it with upload or write")
        }
        return text
    }
}

extension String {
    /// Split on blanks, the way the kernel and shells split argument lists.
    var words: [String] { split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }

    /// Leading blanks, which line editors keep as they are.
    var indentation: Substring { prefix(while: { $0 == " " || $0 == "\t" }) }
}

extension StringProtocol {
    /// Without leading and trailing whitespace.
    var trimmed: String {
        String(drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
