import Foundation
import Logging

/// A guest's SELinux file contexts (contexts/files/file_contexts and its .homedirs, .local and .subs companions),
/// answering "which label does this path get" the way libselinux's file backend does, so that setfiles and this
/// agree: regexes anchored as ^(...)$, specifications without regex meta characters tried before all others, and
/// otherwise the last matching specification in file order wins.
struct FileContexts {
    struct Specification {
        var source: String
        var regex: String
        var kind: Kind?
        /// nil for `<<none>>`: files that must keep whatever label they have.
        var context: String?
        /// Text every match starts with, to skip most regexes without running them.
        var literalPrefix: String
        var hasMetaCharacters: Bool
    }

    /// The file types a specification can be limited to (`--`, `-d`, `-l`, `-c`, `-b`, `-s`, `-p`).
    enum Kind: Equatable {
        case regular, directory, symlink, special
    }

    enum Label: Equatable {
        case context(String)
        case none
        case noMatch
    }

    /// In lookup order: the meta-character-free specifications last, since lookup walks from the end.
    private(set) var specifications: [Specification]
    /// (from, to) path prefixes of .subs (the administrator's) and .subs_dist (the policy's), applied in that order.
    private(set) var substitutions: [[(String, String)]]
    private var compiled: [Int: NSRegularExpression] = [:]
    private var broken: Set<Int> = []
    private let logger: Logger

    /// Reads the guest's file contexts for policy `type`; nil when the policy has no file_contexts.
    static func load(type: String, from guest: GuestFilesystem, logger: Logger) throws -> FileContexts? {
        let base = "/etc/selinux/\(type)/contexts/files/file_contexts"
        guard try guest.isFile(base) else { return nil }
        var specifications: [Specification] = []
        for path in [base, base + ".homedirs", base + ".local"] where try guest.isFile(path) {
            specifications += parse(try guest.readText(path), file: path, logger: logger)
        }
        let substitutions = try [base + ".subs", base + ".subs_dist"].map { path in
            try guest.isFile(path) ? parseSubstitutions(try guest.readText(path)) : []
        }
        return FileContexts(specifications: specifications, substitutions: substitutions, logger: logger)
    }

    init(specifications: [Specification], substitutions: [[(String, String)]] = [], logger: Logger) {
        // libselinux's sort_specs: a stable move of the literal specifications to the end.
        self.specifications = specifications.filter(\.hasMetaCharacters)
            + specifications.filter { !$0.hasMetaCharacters }
        self.substitutions = substitutions
        self.logger = logger
    }

    /// `REGEX [TYPE] CONTEXT` lines; a line that is not one is skipped with a debug message naming file and line.
    static func parse(_ text: String, file: String, logger: Logger) -> [Specification] {
        var result: [Specification] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = String(line).words
            guard let first = fields.first, !first.hasPrefix("#") else { continue }
            let kindField: String?
            let contextField: String
            switch fields.count {
            case 2: (kindField, contextField) = (nil, fields[1])
            case 3: (kindField, contextField) = (fields[1], fields[2])
            default:
                logger.debug("\(file):\(number + 1): skipped, expected REGEX [TYPE] CONTEXT")
                continue
            }
            var kind: Kind?
            if let kindField {
                switch kindField {
                case "--": kind = .regular
                case "-d": kind = .directory
                case "-l": kind = .symlink
                case "-c", "-b", "-s", "-p": kind = .special
                default:
                    logger.debug("\(file):\(number + 1): skipped, unknown file type \(kindField)")
                    continue
                }
            }
            let (prefix, meta) = literalPrefix(of: first)
            result.append(Specification(source: "\(file):\(number + 1)", regex: first, kind: kind,
                                        context: contextField == "<<none>>" ? nil : contextField,
                                        literalPrefix: prefix, hasMetaCharacters: meta))
        }
        return result
    }

    static func parseSubstitutions(_ text: String) -> [(String, String)] {
        text.split(separator: "\n").compactMap { line in
            let fields = String(line).words
            guard fields.count == 2, !fields[0].hasPrefix("#") else { return nil }
            return (fields[0], fields[1])
        }
    }

    /// The literal text a regex's matches begin with, and whether it has any meta character (libselinux's list:
    /// . ^ $ ? * + | [ ( {, with a backslash escaping the next character).
    static func literalPrefix(of regex: String) -> (prefix: String, hasMeta: Bool) {
        var prefix = ""
        var characters = regex.makeIterator()
        var stopped = false
        var hasMeta = false
        while let character = characters.next() {
            if character == "\\" {
                guard let escaped = characters.next() else { break }
                if escaped.isLetter || escaped.isNumber { stopped = true }  // \d, \w, \s: classes, not literals
                if !stopped { prefix.append(escaped) }
                continue
            }
            if ".^$?*+|[({".contains(character) {
                hasMeta = true
                // The character before ? * { may be absent from a match.
                if !stopped, "?*{".contains(character), !prefix.isEmpty { prefix.removeLast() }
                stopped = true
                if character == "|" { prefix = "" }
                continue
            }
            if !stopped { prefix.append(character) }
        }
        // An alternation anywhere means the matches need not share the first branch's prefix.
        return (regex.contains("|") ? "" : prefix, hasMeta)
    }

    /// The path as the policy files name it (libselinux's selabel_sub_key): in each substitution file, the first
    /// entry whose source is the path or one of its directories replaces that prefix.
    func substituted(_ path: String) -> String {
        substitutions.reduce(path) { path, entries in
            for (from, to) in entries where path == from || path.hasPrefix(from + "/") {
                return to + path.dropFirst(from.count)
            }
            return path
        }
    }

    /// The label `path` gets, for a file of `kind`.
    mutating func label(for path: String, kind: Kind) -> Label {
        let path = substituted(path)
        for index in specifications.indices.reversed() {
            let specification = specifications[index]
            if let wanted = specification.kind, wanted != kind { continue }
            guard path.hasPrefix(specification.literalPrefix), matches(index, path) else { continue }
            return specification.context.map(Label.context) ?? .none
        }
        return .noMatch
    }

    private mutating func matches(_ index: Int, _ path: String) -> Bool {
        let specification = specifications[index]
        if !specification.hasMetaCharacters, !specification.regex.contains("\\") {
            return specification.regex == path
        }
        guard !broken.contains(index) else { return false }
        let regex: NSRegularExpression
        if let cached = compiled[index] {
            regex = cached
        } else {
            do {
                regex = try NSRegularExpression(pattern: "^(" + specification.regex + ")$")
            } catch {
                logger.debug("\(specification.source): skipped, \(specification.regex) does not compile: \(error)")
                broken.insert(index)
                return false
            }
            compiled[index] = regex
        }
        let range = NSRange(path.startIndex..., in: path)
        return regex.firstMatch(in: path, options: [], range: range) != nil
    }
}
