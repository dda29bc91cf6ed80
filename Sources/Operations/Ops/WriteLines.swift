/// `write-lines PATH:LINE\nLINE...`: the file consists of exactly these lines, whatever it held before, e.g. an
/// ifcfg-eth0 with nothing but TYPE, DEVICE, ONBOOT, BOOTPROTO and NM_CONTROLLED. A CRLF file stays CRLF. On the
/// command line, lines are separated by newlines or by the two characters `\n`.
public struct WriteLines: RegisteredOperation {
    public static let name = "write-lines"
    public static let sourceFile = #filePath
    public static let summary = "Make a file consist of exactly the given lines"
    public static let argument = OperationArgument.required(syntax: "PATH:LINE\\nLINE...", example: "/etc/sysconfig/network-scripts/ifcfg-eth0:DEVICE=eth0\\nONBOOT=yes")

    public let path: String
    public let lines: [String]
    public var target: String { path }

    public init(_ path: String, lines: [String]) {
        self.path = path
        self.lines = lines
    }

    public static func parse(_ argument: String?) throws -> WriteLines {
        let (path, text) = try pathAndRest(argument)
        var lines: [String] = [""]
        var characters = text[...]
        while let character = characters.popFirst() {
            if character == "\n" {
                lines.append("")
            } else if character == "\\" && characters.first == "n" {
                characters.removeFirst()
                lines.append("")
            } else {
                lines[lines.count - 1].append(character)
            }
        }
        if lines.last == "" { lines.removeLast() }
        return WriteLines(path, lines: lines)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        var wanted = TextFile(lines: lines)
        if try guest.isFile(path) {
            let current = TextFile(try TextFile.read(guest, path, action: Self.name))
            wanted.lineEnding = current.lineEnding
            if current == wanted { return .unchanged("\(path) already has exactly these \(lines.count) lines") }
        }
        try guest.writeText(path, wanted.text)
        return .changed("wrote \(lines.count) lines to \(path)")
    }
}

extension WriteLines: CommandLineRepresentable {
    public func commandLines() throws -> [String] {
        // A line holding "\\n" would read back as two lines, one ending in a backslash would continue the next.
        guard !lines.contains(where: { $0.contains("\\n") || $0.contains("\n") }), lines.last?.hasSuffix("\\") != true else {
            throw Self.invalid("\(path): a line holds a newline, \"\\n\" or a final backslash, which a command file cannot say")
        }
        // The parser drops one empty last line (a final "\\n" ends the last line): a wanted one takes one more.
        return ["\(Self.name):\(path):\(lines.joined(separator: "\\n"))\(lines.last == "" ? "\\n" : "")"]
    }
}
