import Glibc

/// A guest glob pattern expanded one component at a time, as the guest's shell would: `*`, `?` and `[...]` match
/// within a component (fnmatch on the names' bytes, a leading dot matched only explicitly), other components must
/// exist. For the backends that read the guest themselves (a directory tree, the native reader's overlay); the
/// appliance asks the guest's own glob.
///
/// Symlinked directories that loop (a link to "..") make every wildcard level multiply the matches, so that a
/// pattern of twenty `*` levels would never end: the expansion is bounded in paths matched and in directories listed,
/// and says so past the bound.
public enum GuestGlob {
    /// The most paths a pattern matches, and the most directories it lists: far above any real guest's pattern.
    public static let limit = 20_000

    /// `isDirectory` follows symlinks; `exists` does not (a dangling link exists). Both answer false for a symlink
    /// loop, as a shell's glob does.
    public static func expand(_ pattern: String, guest: String, isDirectory: (String) throws -> Bool,
                              exists: (String) throws -> Bool, list: (String) throws -> [String]) throws -> [String] {
        guard pattern.hasPrefix("/") else {
            throw GuestError(guest: guest, action: "glob", path: pattern,
                             message: "not an absolute guest path", hint: "guest paths start with /")
        }
        func tooMuch() -> GuestError {
            GuestError(guest: guest, action: "glob", path: pattern,
                       message: "the pattern matches more than \(limit) paths or needs more than \(limit) directories "
                           + "listed (symlinked directories may loop)",
                       hint: "give a more specific pattern")
        }
        var matches = ["/"]
        var listed = 0
        for component in pattern.split(separator: "/").map(String.init) {
            var next: [String] = []
            let wildcard = component.contains { "*?[".contains($0) }
            let compiled = guestPathBytes(component).map { CChar(bitPattern: $0) } + [0]
            for base in matches {
                let prefix = base == "/" ? "/" : base + "/"
                if wildcard {
                    guard try isDirectory(base) else { continue }
                    listed += 1
                    guard listed <= limit else { throw tooMuch() }
                    for name in try list(base)
                    where fnmatch(compiled, guestPathBytes(name).map { CChar(bitPattern: $0) } + [0], FNM_PERIOD) == 0 {
                        next.append(prefix + name)
                    }
                } else if try exists(prefix + component) {
                    next.append(prefix + component)
                }
            }
            guard next.count <= limit else { throw tooMuch() }
            matches = next
        }
        return matches.sorted()
    }
}
