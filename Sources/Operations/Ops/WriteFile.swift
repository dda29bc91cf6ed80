/// `write PATH:CONTENT`: the file holds exactly CONTENT (a new file gets mode 0644, or the mode a profile gives; an
/// existing one keeps its mode and owner).
public struct WriteFile: RegisteredOperation {
    public static let name = "write"
    public static let sourceFile = #filePath
    public static let summary = "Write CONTENT to a file, replacing what it held"
    public static let argument = OperationArgument.required(syntax: "PATH:CONTENT", example: "/etc/motd:Welcome")

    public let path: String
    public let content: [UInt8]
    /// The mode of a new file: 0600 for what only root may read (NetworkManager ignores a keyfile others can read).
    public let mode: UInt32
    public var target: String { path }

    public init(_ path: String, content: [UInt8], mode: UInt32 = 0o644) {
        self.path = path
        self.content = content
        self.mode = mode
    }

    public init(_ path: String, text: String, mode: UInt32 = 0o644) {
        self.init(path, content: Array(text.utf8), mode: mode)
    }

    public static func parse(_ argument: String?) throws -> WriteFile {
        let (path, content) = try pathAndRest(argument)
        return WriteFile(path, text: content)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        try ensureContent(guest, path, content, mode: mode)
    }
}

extension WriteFile: CommandLineRepresentable {
    /// `write PATH:CONTENT` for one line of text; a text of several lines, which a command file cannot hold in one
    /// line, as `write-lines` (the same bytes in a new file), and a mode other than 0644 as a `chmod` after it.
    public func commandLines() throws -> [String] {
        guard let text = String(validating: content, as: UTF8.self) else {
            throw Self.invalid("\(path): its content is not text, which a command file cannot hold")
        }
        var lines: [String]
        if !text.contains("\n") {
            lines = try [Self.name + ":" + path + ":" + text].map { line in
                guard !line.hasSuffix("\\") else { throw Self.invalid("\(path): a content ending in a backslash") }
                return line
            }
        } else {
            guard text.hasSuffix("\n") else {
                throw Self.invalid("\(path): text of several lines without a final newline, which a command file cannot say")
            }
            lines = try WriteLines(path, lines: text.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
                .map(String.init)).commandLines()
        }
        if mode != 0o644 { lines.append("chmod:0\(String(mode, radix: 8)):\(path)") }
        return lines
    }
}

/// Writes `content` unless the file already holds it.
func ensureContent(_ guest: GuestFilesystem, _ path: String, _ content: [UInt8], mode: UInt32) throws
    -> OperationOutcome {
    if try guest.holds(path, exactly: content) {
        return .unchanged("\(path) already has this content")
    }
    try guest.write(path, content, mode: mode)
    return .changed("wrote \(content.count) bytes to \(path)")
}
