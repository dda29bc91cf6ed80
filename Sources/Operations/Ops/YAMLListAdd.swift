/// `yaml-list-add PATH:KEY:ITEM`: ITEM in the block list under the top-level KEY of a YAML file, once, e.g.
/// `- resolv-conf` under `cloud_init_modules` in /etc/cloud/cloud.cfg.
///
/// A line editor rather than a YAML round trip, so that comments, order and indentation stay exactly as they are:
/// the item goes after the list's last item with the list's own indentation. A list written in flow style
/// (`key: [a, b]`) is refused rather than rewritten.
public struct YAMLListAdd: RegisteredOperation {
    public static let name = "yaml-list-add"
    public static let sourceFile = #filePath
    public static let summary = "Add an item to a top-level list of a YAML file, once"
    public static let argument = OperationArgument.required(syntax: "PATH:KEY:ITEM", example: "/etc/cloud/cloud.cfg:cloud_init_modules:resolv-conf")

    public let path: String
    public let key: String
    public let item: String
    public var target: String { path }

    public init(_ path: String, key: String, item: String) {
        self.path = path
        self.key = key
        self.item = item
    }

    public static func parse(_ argument: String?) throws -> YAMLListAdd {
        let (path, rest) = try pathAndRest(argument)
        guard let colon = rest.firstIndex(of: ":") else { throw invalid("no ':' between KEY and ITEM in \"\(rest)\"") }
        let key = String(rest[..<colon]), item = String(rest[rest.index(after: colon)...])
        guard !key.isEmpty, !item.isEmpty else { throw invalid("KEY and ITEM must not be empty") }
        return YAMLListAdd(path, key: key, item: item)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        func refuse(_ message: String) -> GuestError {
            GuestError(guest: guest.guestDescription, action: Self.name, path: path, message: message,
                       hint: "edit the file with edit-file or write")
        }
        guard try guest.isFile(path) else { throw refuse("no such file") }
        var file = TextFile(try TextFile.read(guest, path, action: Self.name))
        let rendered = Self.scalar(item)
        guard let keyLine = file.lines.firstIndex(where: { Self.isKeyLine($0, key) }) else {
            file.lines += ["\(key):", "  - \(rendered)"]
            file.endsWithNewline = true
            try guest.writeText(path, file.text)
            return .changed("added \(key) with item \(item)")
        }
        let afterKey = file.lines[keyLine].dropFirst(key.count + 1).trimmed
        guard afterKey.isEmpty || afterKey.hasPrefix("#") else {
            throw refuse("\(key) is not a block list (\"\(afterKey)\")")
        }
        var itemIndent: Substring?
        var insertAt = keyLine + 1
        var index = keyLine + 1
        while index < file.lines.count {
            let line = file.lines[index]
            let content = line.drop(while: { $0 == " " || $0 == "\t" })
            if content.isEmpty || content.hasPrefix("#") {
                index += 1
                continue
            }
            let indent = line.indentation
            if let itemIndent, indent.count > itemIndent.count {  // the continuation of a nested item
                insertAt = index + 1
            } else if content == "-" || content.hasPrefix("- "), itemIndent == nil || indent == itemIndent {
                itemIndent = indent
                if Self.unquote(content.dropFirst().trimmed) == item {
                    return .unchanged("\(item) already listed under \(key)")
                }
                insertAt = index + 1
            } else {
                break
            }
            index += 1
        }
        file.lines.insert("\(itemIndent ?? "  ")- \(rendered)", at: insertAt)
        try guest.writeText(path, file.text)
        return .changed("added \(item) under \(key)")
    }

    private static func isKeyLine(_ line: String, _ key: String) -> Bool {
        for form in [key, "\"\(key)\"", "'\(key)'"] where line.hasPrefix(form + ":") { return true }
        return false
    }

    private static func unquote(_ text: String) -> String {
        var text = text
        if let comment = text.firstRange(of: " #") { text = String(text[..<comment.lowerBound]).trimmed }
        if text.count >= 2, let first = text.first, first == "'" || first == "\"", text.last == first {
            return String(text.dropFirst().dropLast())
        }
        return text
    }

    /// The item as a YAML scalar: plain when it reads back as itself, single-quoted otherwise.
    static func scalar(_ item: String) -> String {
        let special = "-?:,[]{}#&*!|>'\"%@`"
        let plain = item.first.map { !special.contains($0) } == true && item.trimmed == item
            && !item.contains(": ") && !item.contains(" #") && !item.hasSuffix(":")
        if plain { return item }
        return "'" + item.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") + "'"
    }
}

extension YAMLListAdd: CommandLineRepresentable {
    public func commandLines() throws -> [String] { ["\(Self.name):\(path):\(key):\(item)"] }
}
