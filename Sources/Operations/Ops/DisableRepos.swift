import Glibc

/// `disable-repos [GLOB]`: `enabled=0` in every repository (section) whose id matches GLOB (default: all) in
/// /etc/yum.repos.d/*.repo, through the Augeas Yum lens. A section without `enabled` counts as enabled for yum, so
/// it gets `enabled=0` too. Comments and layout stay as they are.
public struct DisableRepos: RegisteredOperation {
    public static let name = "disable-repos"
    public static let sourceFile = #filePath
    public static let summary = "Set enabled=0 in every matching repository of /etc/yum.repos.d"
    public static let argument = OperationArgument.optional(syntax: "GLOB", example: "rhel-*")
    static let directory = "/etc/yum.repos.d"

    public let glob: String
    public var target: String { glob }

    public init(_ glob: String = "*") {
        self.glob = glob
    }

    /// The argument is optional: `--disable-repos` alone disables every repository.
    public static func parse(_ argument: String?) throws -> DisableRepos {
        DisableRepos(argument.flatMap { $0.isEmpty ? nil : $0 } ?? "*")
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        var disabled: [String] = []
        var already = 0
        for path in try guest.glob("\(Self.directory)/*.repo") where try guest.isFile(path) {
            try guest.withAugeas(lens: "Yum.lns", path: path) { edit in
                for section in try edit.match("\(edit.root)/*") {
                    guard let id = try edit.label(section), id != "#comment", fnmatch(glob, id, 0) == 0 else {
                        continue
                    }
                    let enabled = try edit.match("\(section)/enabled")
                    if enabled.count == 1, try edit.get(enabled[0])?.trimmed == "0" {
                        already += 1
                        continue
                    }
                    for duplicate in enabled.dropFirst().reversed() { try edit.remove(duplicate) }
                    if enabled.isEmpty {
                        // The lens hangs the comments and blank lines before the next section on this one: a new
                        // key goes after the section's last setting, not after those.
                        if let last = try edit.match("\(section)/*[label() != '#comment'][last()]").first {
                            try edit.insert(last, label: "enabled", before: false)
                        } else if let first = try edit.match("\(section)/*[1]").first {
                            try edit.insert(first, label: "enabled", before: true)
                        }
                    }
                    try edit.set(enabled.first ?? "\(section)/enabled", "0")
                    disabled.append(id)
                }
            }
        }
        if disabled.isEmpty {
            return .unchanged(already == 0 ? "no repository matches \(glob)" : "\(already) repositories already disabled")
        }
        return .changed("disabled \(disabled.joined(separator: ", "))")
    }
}

extension DisableRepos: CommandLineRepresentable {
    public func commandLines() throws -> [String] { ["\(Self.name):\(glob)"] }
}
