/// `append-line PATH:LINE`: LINE is added at the end of the file unless the file already has it as a line. The file
/// is created when missing; a last line without a line ending gets one first; a CRLF file stays CRLF.
public struct AppendLine: RegisteredOperation {
    public static let name = "append-line"
    public static let sourceFile = #filePath
    public static let summary = "Append a line to a file unless it is already there"
    public static let argument = OperationArgument.required(syntax: "PATH:LINE", example: "/etc/hosts.allow:sshd: ALL")

    public let path: String
    public let line: String
    public var target: String { path }

    public init(_ path: String, line: String) {
        self.path = path
        self.line = line
    }

    public static func parse(_ argument: String?) throws -> AppendLine {
        let (path, line) = try pathAndRest(argument)
        guard !line.contains("\n") else { throw invalid("the line contains a newline") }
        return AppendLine(path, line: line)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        var file = TextFile(lines: [])
        if try guest.isFile(path) { file = TextFile(try TextFile.read(guest, path, action: Self.name)) }
        if file.lines.contains(line) { return .unchanged("\(path) already has the line") }
        file.lines.append(line)
        file.endsWithNewline = true
        try guest.writeText(path, file.text)
        return .changed("appended a line to \(path)")
    }
}
