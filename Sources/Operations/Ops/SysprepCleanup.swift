#if canImport(Glibc)
import Glibc
#endif

/// One thing a sysprep clean-up does to the guest. Most virt-sysprep operations are a short list of these, so each
/// operation is data (see SysprepOperations.swift) and this is the one place that does the work.
public enum CleanupStep: Sendable, Equatable {
    /// `rm -rf` every match of the glob. A glob ending in `/*` keeps its directory, which is how package-owned
    /// directories (/var/log/audit, /var/spool/abrt) survive.
    case removeTree(String)
    /// Removes every match of the glob that is not a directory, but for entries named in `keeping`.
    case removeFiles(String, keeping: Set<String> = [])
    /// Removes every file below each directory matching the glob, at any depth, keeping the directories themselves
    /// (package caches, spools whose subdirectories packages own) and entries named in `keeping`.
    case removeFilesBelow(String, keeping: Set<String> = [])
    /// Removes every entry of the directory, dotfiles included (a shell glob would skip them), keeping the directory.
    case removeContents(String)
    /// Under each root, removes regular files whose name matches one of the fnmatch patterns, not following symlinks.
    case removeFilesNamed([String], under: [String])
    /// Replaces the content of the file where it exists and differs (at's job sequence file back to zero).
    case reset(String, content: String)
    /// Empties the file where it exists, creating it empty where only its directory exists.
    case empty(String)
    /// Removes these shell variables from every file matching the glob (ifcfg-*), through Augeas Shellvars.
    case removeShellVariables([String], from: String)
}

/// A sysprep operation whose whole behaviour is its list of steps; on the command line, a flag.
public protocol CleanupOperation: RegisteredOperation {
    static var steps: [CleanupStep] { get }
    init()
    /// Whether the operation means anything on this guest (virt-sysprep skips some per distribution).
    static func applies(to guest: GuestFacts) -> Bool
}

extension CleanupOperation {
    public var target: String { "" }
    public static var argument: OperationArgument { .none }
    public static var sysprep: SysprepDefault { .virtSysprep(as: name) }

    public static func parse(_ argument: String?) throws -> Self {
        try noArgument(argument)
        return Self()
    }

    public static func applies(to guest: GuestFacts) -> Bool { guest.isLinuxOrUnknown }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard Self.applies(to: context.guest) else {
            return .unchanged("does not apply to \(context.guest.distro ?? "this guest")")
        }
        var done: [String] = []
        for step in Self.steps {
            done += try step.run(on: guest)
        }
        if done.isEmpty { return .unchanged("nothing to remove") }
        context.logger.debug("\(Self.name): \(done.joined(separator: ", "))")
        return .changed(shortList(done))
    }
}

/// The first three items and how many more: a step's summary stays one line however much it did.
func shortList(_ items: [String]) -> String {
    let shown = items.prefix(3).joined(separator: ", ")
    return items.count > 3 ? "\(shown) and \(items.count - 3) more" : shown
}

extension GuestFacts {
    var isLinuxOrUnknown: Bool { type == nil || type == "linux" }

    /// The distributions virt-sysprep treats as Red Hat's: their network settings live in ifcfg files.
    /// Debian and the distributions built on it (their package manager is apt).
    var isDebianFamily: Bool {
        guard let distro else { return type == nil }
        return ["debian", "ubuntu", "linuxmint", "kalilinux"].contains(distro)
    }

    var isRedHatFamily: Bool {
        guard let distro else { return type == nil }
        return ["rhel", "centos", "fedora", "scientificlinux", "oraclelinux", "redhat-based", "rocky",
                "almalinux"].contains(distro)
    }
}

extension CleanupStep {
    /// Does the step; returns one short description per thing changed ("removed /var/log/messages").
    func run(on guest: GuestFilesystem) throws -> [String] {
        switch self {
        case .removeTree(let pattern):
            return try guest.glob(pattern).compactMap { path in
                try guest.remove(path, recursive: true)
                return "removed \(path)"
            }
        case .removeFiles(let pattern, let keeping):
            return try guest.glob(pattern).compactMap { path in
                guard !keeping.contains(path.split(separator: "/").last.map(String.init) ?? path),
                      let status = try guest.lstat(path), status.kind != .directory else { return nil }
                try guest.remove(path, recursive: false)
                return "removed \(path)"
            }
        case .removeFilesBelow(let pattern, let keeping):
            var removed: [String] = []
            for directory in try guest.glob(pattern) where try guest.lstat(directory)?.kind == .directory {
                try guest.walk(directory) { path, status in
                    let name = path.split(separator: "/").last.map(String.init) ?? path
                    guard status.kind != .directory, !keeping.contains(name) else { return }
                    try guest.remove(path, recursive: false)
                    removed.append("removed \(path)")
                }
            }
            return removed
        case .removeContents(let directory):
            guard try guest.lstat(directory)?.kind == .directory else { return [] }
            return try guest.list(directory).sorted().map { name in
                let path = directory.joinedPath(name)
                try guest.remove(path, recursive: true)
                return "removed \(path)"
            }
        case .removeFilesNamed(let patterns, let roots):
            var removed: [String] = []
            for root in roots where try guest.lstat(root)?.kind == .directory {
                try guest.walk(root) { path, status in
                    let name = path.split(separator: "/").last.map(String.init) ?? path
                    guard status.kind == .regular,
                          patterns.contains(where: { fnmatch($0, name, FNM_NOESCAPE) == 0 }) else { return }
                    try guest.remove(path, recursive: false)
                    removed.append("removed \(path)")
                }
            }
            return removed
        case .reset(let path, let content):
            guard try guest.lstat(path)?.kind == .regular, try !guest.holds(path, exactly: Array(content.utf8)) else {
                return []
            }
            try guest.write(path, Array(content.utf8), mode: 0o600)
            return ["reset \(path)"]
        case .empty(let path):
            if let status = try guest.lstat(path) {
                guard status.kind == .regular, status.size > 0 else { return [] }
                try guest.truncate(path, size: 0)
                return ["emptied \(path)"]
            }
            guard try guest.lstat(path.parentPath)?.kind == .directory else { return [] }
            try guest.write(path, [], mode: 0o600)
            return ["created empty \(path)"]
        case .removeShellVariables(let keys, let pattern):
            var removed: [String] = []
            for path in try guest.glob(pattern) where try guest.lstat(path)?.kind == .regular {
                let gone = try guest.withAugeas(lens: "Shellvars.lns", path: path) { edit in
                    try keys.filter { key in try edit.remove("\(edit.root)/\(key)") > 0 }
                }
                removed += gone.map { "removed \($0) from \(path)" }
            }
            return removed
        }
    }
}

extension GuestFilesystem {
    /// Calls `body` for every entry below `directory` (not the directory itself), depth first, children before
    /// their directory so that a body that removes files sees each directory's final state. Symlinks are reported,
    /// never followed.
    func walk(_ directory: String, _ body: (String, FileStatus) throws -> Void) throws {
        for name in try list(directory).sorted() {
            let path = directory.joinedPath(name)
            guard let status = try lstat(path) else { continue }
            if status.kind == .directory { try walk(path, body) }
            try body(path, status)
        }
    }
}

extension String {
    func joinedPath(_ name: String) -> String { hasSuffix("/") ? self + name : self + "/" + name }

    /// "/etc/sysconfig/network" -> "/etc/sysconfig"; "/etc" -> "/".
    var parentPath: String {
        guard let slash = lastIndex(of: "/"), slash != startIndex else { return "/" }
        return String(self[..<slash])
    }
}
