import Diagnostics
/// `edit-file PATH:s/REGEX/REPLACEMENT/FLAGS`, or a Swift closure over the file's text.
///
/// A substitution applies to each line on its own, as `sed` and `virt-customize --edit` do; flag `g` replaces
/// every match in a line, `i` ignores case, `m` applies the expression to the whole file at once (so it can span
/// lines) with `^` and `$` matching at each line. In the replacement, `\1` or `$1` is the first group, `\0` or `$0`
/// the whole match, `\\` a backslash and `\$` a dollar sign.
///
/// The text handed to the edit has "\n" line endings even in a CRLF file; they are put back on writing.
public struct EditFile: RegisteredOperation {
    public static let name = "edit-file"
    public static let sourceFile = #filePath
    public static let summary = "Edit a text file with a substitution (or, in Swift, a closure over its text)"
    public static let argument = OperationArgument.required(syntax: "PATH:s/REGEX/REPLACEMENT/FLAGS", example: "/etc/ssh/sshd_config:s/^PermitRootLogin yes/PermitRootLogin no/")

    public let path: String
    /// What the edit does, for reports: the substitution, or the description given with a closure.
    public let edit: String
    private let transform: @Sendable (String) throws -> String

    public var target: String { path }

    public init(_ path: String, description: String, _ transform: @escaping @Sendable (String) throws -> String) {
        self.path = path
        edit = description
        self.transform = transform
    }

    public init(_ path: String, substitution: String) throws {
        let parsed = try Substitution(substitution)
        self.path = path
        edit = substitution
        transform = { try parsed.apply(to: $0) }
    }

    public static func parse(_ argument: String?) throws -> EditFile {
        let (path, expression) = try pathAndRest(argument)
        do {
            return try EditFile(path, substitution: expression)
        } catch let error as Substitution.Problem {
            throw invalid(error.description)
        }
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard try guest.isFile(path) else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path,
                             message: "no such regular file", hint: "create it first with write or append-line")
        }
        let original = TextFile(try TextFile.read(guest, path, action: Self.name))
        var unix = original
        unix.lineEnding = "\n"
        var edited = TextFile(try transform(unix.text))
        edited.lineEnding = original.lineEnding
        guard edited != original else { return .unchanged("\(edit): nothing to change") }
        try guest.writeText(path, edited.text)
        return .changed("applied \(edit)")
    }
}

/// A parsed `s/REGEX/REPLACEMENT/FLAGS`.
struct Substitution: Sendable {
    struct Problem: DiagnosticError {
        var message: String
        var diagnostic: Diagnostic { Diagnostic(message, hint: "write it as s/REGEX/REPLACEMENT/FLAGS, e.g. s/^a/b/g") }
        init(description: String) { message = description }
    }

    enum Piece: Sendable, Equatable {
        case literal(String)
        case group(Int)
    }

    let pattern: String
    let replacement: [Piece]
    let global: Bool
    let ignoreCase: Bool
    let wholeFile: Bool

    init(_ expression: String) throws {
        var characters = Array(expression)
        guard characters.count >= 2, characters[0] == "s" else {
            throw Problem(description: "\"\(expression)\" is not a substitution s/REGEX/REPLACEMENT/FLAGS")
        }
        let delimiter = characters[1]
        guard !delimiter.isLetter, !delimiter.isNumber, delimiter != "\\", !delimiter.isWhitespace else {
            throw Problem(description: "\"\(delimiter)\" cannot delimit a substitution")
        }
        characters.removeFirst(2)
        // Split on unescaped delimiters; an escaped delimiter stands for itself, other escapes stay for the regex.
        var parts: [String] = [""]
        var index = 0
        while index < characters.count {
            let character = characters[index]
            if character == "\\" && index + 1 < characters.count {
                let next = characters[index + 1]
                parts[parts.count - 1] += next == delimiter ? String(next) : "\\\(next)"
                index += 2
                continue
            }
            if character == delimiter { parts.append("") } else { parts[parts.count - 1].append(character) }
            index += 1
        }
        guard parts.count == 3 else {
            throw Problem(description: "\"\(expression)\" needs three \(delimiter) separators: s\(delimiter)REGEX\(delimiter)REPLACEMENT\(delimiter)FLAGS")
        }
        for flag in parts[2] where !"gim".contains(flag) {
            throw Problem(description: "unknown flag \"\(flag)\" (g, i and m are known)")
        }
        pattern = parts[0]
        replacement = try Self.pieces(parts[1])
        global = parts[2].contains("g")
        ignoreCase = parts[2].contains("i")
        wholeFile = parts[2].contains("m")
        do {
            _ = try Regex(pattern)
        } catch {
            throw Problem(description: "invalid regular expression \"\(pattern)\": \(error)")
        }
    }

    private static func pieces(_ text: String) throws -> [Piece] {
        var pieces: [Piece] = []
        var literal = ""
        var characters = text[...]
        while let character = characters.popFirst() {
            guard character == "\\" || character == "$", let next = characters.first else {
                literal.append(character)
                continue
            }
            if let digit = next.wholeNumberValue, next.isASCII {
                characters.removeFirst()
                if !literal.isEmpty { pieces.append(.literal(literal)) }
                literal = ""
                pieces.append(.group(digit))
            } else if character == "\\" {
                characters.removeFirst()
                literal.append(next == "n" ? "\n" : next == "t" ? "\t" : next)
            } else {
                literal.append(character)
            }
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        return pieces
    }

    func apply(to text: String) throws -> String {
        var regex = try Regex(pattern)
        if ignoreCase { regex = regex.ignoresCase() }
        if wholeFile { regex = regex.anchorsMatchLineEndings() }
        let limit = global ? Int.max : 1
        func replace(_ subject: Substring) throws -> String {
            return try String(subject).replacing(regex, maxReplacements: limit) { match in
                var output = ""
                for piece in replacement {
                    switch piece {
                    case .literal(let literal): output += literal
                    case .group(let number):
                        guard number < match.output.count else {
                            throw Substitution.Problem(description: "\\\(number) refers to a group the expression does not have")
                        }
                        output += match.output[number].substring.map(String.init) ?? ""
                    }
                }
                return output
            }
        }
        if wholeFile { return try replace(text[...]) }
        // Line by line on unicode scalars, so that "\r\n" (one Character) cannot hide a line break.
        var lines: [String] = []
        var current = ""
        for scalar in text.unicodeScalars {
            if scalar == "\n" {
                lines.append(try replace(current[...]) + "\n")
                current = ""
            } else {
                current.unicodeScalars.append(scalar)
            }
        }
        if !current.isEmpty { lines.append(try replace(current[...])) }
        return lines.joined()
    }
}
