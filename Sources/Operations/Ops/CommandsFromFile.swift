import Diagnostics
import Foundation
import Host
/// `commands-from-file FILE`: the operations of a virt-customize command file, in its order, so that a file
/// written for `virt-customize --commands-from-file` runs unchanged. The file is read when the command line is
/// parsed; a run expands it into one step per line (`expandingCommandFiles`).
public struct CommandsFromFile: RegisteredOperation {
    public static let name = "commands-from-file"
    public static let sourceFile = #filePath
    public static let summary = "Run the operations of a virt-customize command file, one step per line, in order"
    public static let argumentIsHostFile = true
    public static let argument = OperationArgument.required(syntax: "FILE", example: "./customize.commands")

    public let file: String
    public let operations: [any GuestOperation]
    public var target: String { file }

    public init(file: String, operations: [any GuestOperation]) {
        self.file = file
        self.operations = operations
    }

    public static func parse(_ argument: String?) throws -> CommandsFromFile {
        let file = try required(argument)
        return CommandsFromFile(file: file, operations: try CommandFile.read(file))
    }

    /// Applies every operation in order: what a run does step by step, for a caller that applies the file as one.
    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        var outcomes: [OperationOutcome] = []
        for operation in operations {
            do {
                outcomes.append(try operation.apply(to: guest, context: context))
            } catch {
                throw OperationFailure(operation: operation.name, target: operation.target, underlying: error)
            }
        }
        let changed: Change = outcomes.contains { $0.changed == .unknown } ? .unknown
            : outcomes.contains { $0.changed == .yes } ? .yes : .no
        let warnings = outcomes.compactMap(\.warning)
        return OperationOutcome(changed: changed, summary: "ran \(operations.count) operations from \(file)",
                                warning: warnings.isEmpty ? nil : warnings.joined(separator: "; "))
    }
}

extension Sequence where Element == any GuestOperation {
    /// Each command file's operations in its place, so that each is a step of its own in the report.
    public var expandingCommandFiles: [any GuestOperation] {
        flatMap { ($0 as? CommandsFromFile)?.operations ?? [$0] }
    }
}

/// virt-customize's command-file syntax: one command per line, `option argument` or `option:argument` (whichever
/// separator comes first), a line whose first non-blank character is `#` a comment, blank lines ignored, and a line
/// ending in a backslash continued by the next (whose leading blanks are dropped). Options are virt-customize's
/// names: most are imgcustomize's too, and the few that differ (`chown`'s UID.GID, a `link` with
/// several links) are translated, and `sm-credentials` gives the file's `sm-register` lines their account.
public enum CommandFile {
    /// One logical line: its option and argument, and the number of its first physical line.
    public struct Command: Sendable, Equatable {
        public var line: Int
        public var option: String
        public var argument: String?
    }

    /// How deep files may name each other with `commands-from-file` (a file that names itself stops here).
    static let nestingLimit = 8

    /// Reads the host file `path` and builds its operations, in order; `${NAME}` in an argument becomes
    /// `substituting[NAME]` (a profile file's parameters), other `${...}` are left as written.
    public static func read(_ path: String, substituting values: [String: String] = [:]) throws -> [any GuestOperation] {
        try read(path, depth: 0, values: values)
    }

    /// `text` with each `${NAME}` that `values` names replaced by its value, in one pass from the left: a value that
    /// itself holds `${...}` stays as given, whatever order the names come in.
    static func substitute(_ values: [String: String], in text: String) -> String {
        guard !values.isEmpty else { return text }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            result += rest[..<start.lowerBound]
            if let end = rest[start.upperBound...].firstIndex(of: "}"),
               let value = values[String(rest[start.upperBound..<end])] {
                result += value
                rest = rest[rest.index(after: end)...]
            } else {
                result += "${"
                rest = rest[start.upperBound...]
            }
        }
        return result + rest
    }

    private static func read(_ path: String, depth: Int, values: [String: String] = [:]) throws -> [any GuestOperation] {
        let bytes: [UInt8]
        do {
            bytes = try HostFiles.read(path).content
        } catch let error as SystemCallError {
            throw CommandFileError(file: path, line: nil, problem: "cannot read it: \(error.message)",
                                   hint: "give the path of a readable virt-customize command file on this host")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CommandFileError(file: path, line: nil, problem: "is not UTF-8 text",
                                   hint: "a command file is text: one `option argument` per line")
        }
        var operations: [any GuestOperation] = []
        // virt-customize's sm-credentials is a setting, not a step: the account of every sm-register in the file,
        // wherever the line is (the last one wins, as on virt-customize's command line).
        var credentials: SubscriptionCredentials?
        for var command in parse(text) {
            command.argument = command.argument.map { substitute(values, in: $0) }
            guard command.option == "sm-credentials" else {
                operations += try self.operations(for: command, file: path, depth: depth)
                continue
            }
            do {
                credentials = try SubscriptionCredentials(selector: command.argument ?? "")
            } catch {
                let inner = Diagnostic(of: error)
                throw CommandFileError(file: path, line: command.line, problem: inner.message,
                                       hint: inner.hint ?? "give sm-credentials USER:password:PASSWORD or USER:file:FILE")
            }
        }
        return try operations.supplyingSubscriptionCredentials(credentials, required: false)
    }

    /// The logical lines of a command file's text.
    public static func parse(_ text: String) -> [Command] {
        // Splitting on Character: "\r\n" is one character, and a newline.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        var commands: [Command] = []
        var index = 0
        while index < lines.count {
            let first = index
            var logical = String(lines[index])
            index += 1
            // A comment ends at its line: a backslash there continues nothing.
            if logical.drop(while: \.isWhitespace).hasPrefix("#") { continue }
            while logical.hasSuffix("\\") {
                logical.removeLast()
                guard index < lines.count else { break }
                logical += lines[index].drop(while: \.isWhitespace)
                index += 1
            }
            let content = logical.drop(while: \.isWhitespace)
            guard !content.allSatisfy(\.isWhitespace) else { continue }
            guard let separator = content.firstIndex(where: { $0 == ":" || $0.isWhitespace }) else {
                commands.append(Command(line: first + 1, option: String(content), argument: nil))
                continue
            }
            let option = String(content[..<separator])
            var argument = content[content.index(after: separator)...]
            if content[separator] != ":" { argument = argument.drop(while: \.isWhitespace) }
            commands.append(Command(line: first + 1, option: option,
                                    argument: argument.allSatisfy(\.isWhitespace) ? nil : String(argument)))
        }
        return commands
    }

    /// The imgcustomize operations a command stands for (a `link` with several links is several).
    static func operations(for command: Command, file: String, depth: Int) throws -> [any GuestOperation] {
        func fail(_ problem: String, hint: String? = nil) -> CommandFileError {
            CommandFileError(file: file, line: command.line, problem: problem,
                             hint: hint ?? "`imgcustomize operations` lists the operations a command file may use")
        }
        let option = command.option
        if option == "commands-from-file" {
            guard depth < nestingLimit, let nested = command.argument else {
                throw fail(command.argument == nil ? "commands-from-file needs a file"
                           : "command files nest more than \(nestingLimit) deep (does one include itself?)",
                           hint: "give each file once")
            }
            return try read(nested, depth: depth + 1)
        }
        var arguments: [String?] = [command.argument]
        switch option {
        case "chown":
            // UID.GID:PATH
            if let argument = command.argument, let colon = argument.firstIndex(of: ":"),
               let dot = argument[..<colon].firstIndex(of: ".") {
                arguments = [argument[..<dot] + ":" + argument[argument.index(after: dot)...]]
            }
        case "link":
            // TARGET:LINK[:LINK...]
            if let argument = command.argument {
                let parts = argument.split(separator: ":", omittingEmptySubsequences: false)
                if parts.count > 2 { arguments = parts.dropFirst().map { "\(parts[0]):\($0)" } }
            }
        default:
            break
        }
        guard let descriptor = OperationRegistry.named(option) else {
            throw fail("unknown command \"\(option)\"")
        }
        return try arguments.map { argument in
            do {
                return try descriptor.parse(argument)
            } catch {
                let inner = Diagnostic(of: error)
                throw fail(inner.message, hint: inner.hint)
            }
        }
    }
}

/// A command file that cannot be used: which file, which line, what is wrong with it.
public struct CommandFileError: DiagnosticError, Sendable {
    public var file: String
    /// The line (from 1) of the command, nil for a problem with the whole file.
    public var line: Int?
    public var problem: String
    public var hint: String?

    public init(file: String, line: Int?, problem: String, hint: String?) {
        self.file = file
        self.line = line
        self.problem = problem
        self.hint = hint
    }

    public var diagnostic: Diagnostic {
        Diagnostic("\(file)\(line.map { ":\($0)" } ?? ""): \(problem)", hint: hint, path: file)
    }
}
