/// `set-line PATH:KEY=VALUE`: a variable of a shell-variable file (ifcfg-*, /etc/sysconfig/*, /etc/default/grub)
/// through the Augeas Shellvars lens.
///
/// The value is the one the variable should hold: it is written in the quoting the line already uses ("x" stays
/// double-quoted, 'x' single-quoted, bare stays bare unless the value needs quotes). A value given with its own
/// quotes (`KEY="x"`) is written as given. A missing key is appended, a missing file created, and duplicates of the
/// key removed, so that the file ends up with exactly one assignment.
public struct SetLine: RegisteredOperation {
    public static let name = "set-line"
    public static let sourceFile = #filePath
    public static let summary = "Set KEY=VALUE in a shell-variable file (Augeas Shellvars), once"
    public static let argument = OperationArgument.required(syntax: "PATH:KEY=VALUE", example: "/etc/sysconfig/network:NOZEROCONF=yes")

    public let path: String
    public let key: String
    public let value: String

    public var target: String { path }

    public init(_ path: String, key: String, value: String) {
        self.path = path
        self.key = key
        self.value = value
    }

    public static func parse(_ argument: String?) throws -> SetLine {
        let (path, assignment) = try pathAndRest(argument)
        guard let equals = assignment.firstIndex(of: "=") else { throw invalid("no '=' in \"\(assignment)\"") }
        let key = String(assignment[..<equals])
        guard ShellValue.isName(key) else { throw invalid("\"\(key)\" is not a shell variable name") }
        return SetLine(path, key: key, value: String(assignment[assignment.index(after: equals)...]))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard ShellValue.isName(key) else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path,
                             message: "\"\(key)\" is not a shell variable name")
        }
        return try guest.withAugeas(lens: "Shellvars.lns", path: path) { edit in
            let nodes = try edit.match("\(edit.root)/\(key)")
            let existing = try nodes.first.flatMap { try edit.get($0) }
            let raw = ShellValue.isQuoted(value)
                ? value : ShellValue.render(value, like: existing ?? value)
            var changes: [String] = []
            // The kept assignment is the first; the shell would have used the last, which is now this value anyway.
            for duplicate in nodes.dropFirst().reversed() { try edit.remove(duplicate) }
            if nodes.count > 1 { changes.append("removed \(nodes.count - 1) duplicate \(key) line(s)") }
            if existing != raw || nodes.isEmpty {
                try edit.set(nodes.first ?? "\(edit.root)/\(key)", raw)
                changes.insert(nodes.isEmpty ? "added \(key)=\(raw)" : "set \(key)=\(raw)", at: 0)
            }
            return changes.isEmpty ? .unchanged("\(key)=\(raw) already set") : .changed(changes.joined(separator: "; "))
        }
    }
}

/// Shell variable values as Shellvars holds them: with their quotes.
enum ShellValue {
    static func isName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || isLetter(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || isLetter($0) || ("0"..."9").contains($0) }
    }

    private static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
    }

    static func isQuoted(_ raw: String) -> Bool {
        raw.count >= 2 && ((raw.hasPrefix("\"") && raw.hasSuffix("\"")) || (raw.hasPrefix("'") && raw.hasSuffix("'")))
    }

    /// The value a raw (quoted) assignment gives the variable.
    static func unquote(_ raw: String) -> String {
        guard isQuoted(raw) else { return raw }
        let inner = raw.dropFirst().dropLast()
        if raw.hasPrefix("'") { return String(inner) }
        var value = ""
        var characters = inner[...]
        while let character = characters.popFirst() {
            if character == "\\", let next = characters.first, "\"\\$`".contains(next) {
                value.append(next)
                characters.removeFirst()
            } else {
                value.append(character)
            }
        }
        return value
    }

    /// `value` quoted the way `existing` (a raw assignment) is quoted, or double quotes when bare will not do.
    static func render(_ value: String, like existing: String) -> String {
        if existing.hasPrefix("'") && isQuoted(existing) && !value.contains("'") { return "'\(value)'" }
        let safe = value.unicodeScalars.allSatisfy {
            isLetter($0) || ("0"..."9").contains($0) || "_@%+=:,./-".unicodeScalars.contains($0)
        }
        if safe && !(existing.hasPrefix("\"") && isQuoted(existing)) { return value }
        var quoted = "\""
        for character in value {
            if "\"\\$`".contains(character) { quoted.append("\\") }
            quoted.append(character)
        }
        return quoted + "\""
    }
}

extension SetLine: CommandLineRepresentable {
    public func commandLines() throws -> [String] { ["\(Self.name):\(path):\(key)=\(value)"] }
}
