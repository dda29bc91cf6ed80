import Diagnostics
import Glibc
import Host
import NativeReader
import Operations

/// The guest's filesystems read natively from the image file (`NativeGuest`), with every write kept in memory as a
/// copy-on-write overlay that later reads see: a dry run with no appliance. The image is only read. Paths resolve
/// inside the guest as the kernel resolves them (symlinks contained in the root, at most `guestSymlinkLimit` of
/// them per lookup); the overlay is keyed by the resolved path, so a write through a symlink lands where the
/// guest would put it.
///
/// What it cannot tell without the guest's own programs or a reader it lacks (guest commands, extended attributes
/// of the image's files, a path under a filesystem the reader does not read) throws `NativeDryRunDeclined`
/// (`wouldRun`: the run lists the step as one that would run; otherwise the run falls back to the appliance). The
/// overlay holds at most `memoryLimit` bytes of content: past it, `NativeDryRunDeclined` too.
public final class NativeOverlayFilesystem: GuestFilesystem {
    /// A file's content: still the image's (a chmod copies no data), or the overlay's own.
    enum Content {
        case base(any FilesystemReader, Node)
        case bytes([UInt8])

        var size: Int64 {
            switch self {
            case .base(_, let node): Int64(clamping: node.size)
            case .bytes(let bytes): Int64(bytes.count)
            }
        }
    }

    /// What the overlay says of a resolved path. A directory it created (or moved) is `opaque`: the image's
    /// entries under the same path (removed before) do not show through.
    enum Entry {
        case file(Content, FileStatus)
        case directory(FileStatus, opaque: Bool)
        case symlink(String, FileStatus)
        case removed
    }

    /// A resolved path's file: the overlay's, or the image's as it is.
    enum Found {
        case overlay(Entry)
        case base(any FilesystemReader, Node)
    }

    /// The overlay as it is, to be put back (`restore`) when a step turns out to need the guest's programs after
    /// it wrote something: what such a step would do is not guessed, its first writes included.
    public struct Snapshot {
        fileprivate var entries: [String: Entry]
        fileprivate var attributes: [String: [String: [UInt8]]]
        fileprivate var bytes: Int64
    }

    public let guestDescription: String
    private let guest: NativeGuest
    private var entries: [String: Entry] = [:]
    private var attributes: [String: [String: [UInt8]]] = [:]
    /// The image's files by resolved path (nil: not there), read once: the image does not change under a dry run.
    private var baseCache: [String: (any FilesystemReader, Node)?] = [:]
    private var augeasHandle: Augeas?
    /// Bytes the overlay holds: contents, link targets, attribute values, and `entryCost` per entry.
    private(set) var bytes: Int64 = 0
    public let memoryLimit: Int64

    static let entryCost: Int64 = 256
    /// Enough for any plan of configuration edits (the fixtures' profiles keep under 1 MiB), well under a small
    /// host's memory.
    public static let defaultMemoryLimit: Int64 = 256 << 20

    public init(_ guest: NativeGuest, image: String, memoryLimit: Int64 = defaultMemoryLimit) {
        self.guest = guest
        guestDescription = image
        self.memoryLimit = memoryLimit
    }

    public var snapshot: Snapshot { Snapshot(entries: entries, attributes: attributes, bytes: bytes) }

    public func restore(_ snapshot: Snapshot) {
        entries = snapshot.entries
        attributes = snapshot.attributes
        bytes = snapshot.bytes
    }

    public var commands: (any GuestCommands)? { NativeCommands(image: guestDescription) }

    // MARK: reading

    public func lstat(_ path: String) throws -> FileStatus? {
        try resolved(path, followLast: false, action: "lstat").map { status(of: $0.1) }
    }

    public func stat(_ path: String) throws -> FileStatus? {
        try resolved(path, followLast: true, action: "stat").map { status(of: $0.1) }
    }

    public func list(_ directory: String) throws -> [String] {
        guard let (physical, found) = try resolved(directory, followLast: true, action: "list") else {
            throw failure("list", directory, "no such file or directory")
        }
        guard status(of: found).kind == .directory else { throw failure("list", directory, "not a directory") }
        var names = Set<String>()
        if case .overlay(.directory(_, opaque: true)) = found {
        } else if let (filesystem, node) = try base(physical) {
            try refuseUnreadable(physical)
            for entry in try reading("list", directory, { try filesystem.entries(of: node) }) {
                names.insert(guestName(decoding: entry.name))
            }
        }
        let prefix = physical == "/" ? "/" : physical + "/"
        for (path, entry) in entries where path.hasPrefix(prefix) && path != "/" {
            let name = path.dropFirst(prefix.count)
            guard !name.isEmpty, !name.contains("/") else { continue }
            if case .removed = entry { names.remove(String(name)) } else { names.insert(String(name)) }
        }
        return names.sorted()
    }

    public func glob(_ pattern: String) throws -> [String] {
        try GuestGlob.expand(pattern, guest: guestDescription,
                             isDirectory: { try globStatus($0, followLast: true)?.kind == .directory },
                             exists: { try globStatus($0, followLast: false) != nil }, list: list)
    }

    /// A symlink loop counts as nothing there, as it does for a shell's glob.
    private func globStatus(_ path: String, followLast: Bool) throws -> FileStatus? {
        do {
            return try followLast ? stat(path) : lstat(path)
        } catch let error as GuestError where error.message.hasPrefix(Self.loop) {
            return nil
        }
    }

    public func readlink(_ path: String) throws -> String {
        guard let (_, found) = try resolved(path, followLast: false, action: "readlink") else {
            throw failure("readlink", path, "no such file or directory")
        }
        switch found {
        case .overlay(.symlink(let target, _)): return target
        case .base(let filesystem, let node) where node.kind == .symlink:
            return guestName(decoding: try reading("readlink", path) { try filesystem.readlink(node) })
        default: throw failure("readlink", path, "not a symbolic link")
        }
    }

    public func read(_ path: String) throws -> [UInt8] {
        guard let (_, found) = try resolved(path, followLast: true, action: "read") else {
            throw failure("read", path, "no such file or directory")
        }
        switch found {
        case .overlay(.file(let content, _)): return try bytes(of: content, path)
        case .base(let filesystem, let node) where node.kind == .regular:
            return try bytes(of: .base(filesystem, node), path)
        default:
            throw failure("read", path, status(of: found).kind == .directory ? "is a directory" : "not a regular file")
        }
    }

    public func getxattr(_ path: String, name: String) throws -> [UInt8]? {
        guard let (physical, found) = try resolved(path, followLast: false, action: "getxattr \(name)") else {
            throw failure("getxattr \(name)", path, "no such file or directory")
        }
        if let value = attributes[physical]?[name] { return value }
        if case .overlay = found { return nil }
        throw NativeDryRunDeclined(image: guestDescription,
                                   reason: "the native reader does not read extended attributes (\(name) of \(path))",
                                   wouldRun: false)
    }

    // MARK: writing

    public func write(_ path: String, _ content: [UInt8], mode: UInt32) throws {
        let (physical, found) = try target(path, followLast: true, action: "write")
        var status = FileStatus(kind: .regular, mode: mode & 0o7777, uid: 0, gid: 0, size: 0)
        if let found {
            let old = self.status(of: found)
            guard old.kind == .regular else {
                throw failure("write", path, old.kind == .directory ? "is a directory" : "not a regular file")
            }
            status = old
        }
        status.size = Int64(content.count)
        try put(physical, .file(.bytes(content), status))
    }

    public func mkdir(_ path: String, mode: UInt32, parents: Bool) throws {
        guard parents else { return try makeDirectory(path, mode: mode) }
        let components = path.split(separator: "/").map(String.init)
        for count in 1...max(components.count, 1) where !components.isEmpty {
            let prefix = "/" + components[0..<count].joined(separator: "/")
            switch try stat(prefix)?.kind {
            case .directory: continue
            case nil: try makeDirectory(prefix, mode: mode)
            default: throw failure("mkdir", path, "\(prefix) exists and is not a directory")
            }
        }
    }

    private func makeDirectory(_ path: String, mode: UInt32) throws {
        let (physical, found) = try target(path, followLast: false, action: "mkdir")
        guard found == nil else { throw failure("mkdir", path, "file exists") }
        try put(physical, .directory(FileStatus(kind: .directory, mode: mode & 0o7777, uid: 0, gid: 0, size: 0),
                                     opaque: true))
    }

    public func remove(_ path: String, recursive: Bool) throws {
        let (physical, found) = try target(path, followLast: false, action: "remove")
        guard physical != "/" else {
            throw failure("remove", path, "refusing to remove the guest's root or a path ending in ..")
        }
        guard let found else { return }
        if status(of: found).kind == .directory, !recursive { throw failure("remove", path, "is a directory") }
        try put(physical, .removed)
    }

    public func chmod(_ path: String, mode: UInt32) throws {
        try change("chmod", path, followLast: true) { $0.mode = mode & 0o7777 }
    }

    public func chown(_ path: String, uid: Int, gid: Int) throws {
        guard uid >= 0, gid >= 0, uid <= Int(UInt32.max), gid <= Int(UInt32.max) else {
            throw failure("chown", path, "invalid argument")
        }
        try change("chown", path, followLast: true) { $0.uid = uid; $0.gid = gid }
    }

    public func symlink(target linkTarget: String, at path: String) throws {
        guard !guestPathBytes(linkTarget).contains(0) else { throw failure("symlink", path, "invalid argument") }
        let (physical, found) = try target(path, followLast: false, action: "symlink")
        guard found == nil else { throw failure("symlink", path, "file exists") }
        try put(physical, .symlink(linkTarget, FileStatus(kind: .symlink, mode: 0o777, uid: 0, gid: 0,
                                                          size: Int64(guestPathBytes(linkTarget).count))))
    }

    public func truncate(_ path: String, size: Int64) throws {
        guard size >= 0 else { throw failure("truncate", path, "invalid argument") }
        let (physical, found) = try target(path, followLast: true, action: "truncate")
        guard let found, case .file(let content, var status) = entry(found), status.kind == .regular else {
            throw failure("truncate", path, found == nil ? "no such file or directory" : "not a regular file")
        }
        guard size <= memoryLimit else { throw overLimit(path, size) }
        var data = size == 0 ? [] : try bytes(of: content, path)
        if data.count > Int(size) { data.removeSubrange(Int(size)...) }
        data += [UInt8](repeating: 0, count: Int(size) - data.count)
        status.size = size
        try put(physical, .file(.bytes(data), status))
    }

    /// Scrubbing overwrites the file's blocks, then removes it: in the overlay, the name goes.
    public func scrub(_ path: String) throws {
        let (physical, found) = try target(path, followLast: false, action: "scrub")
        guard let found else { throw failure("scrub", path, "no such file or directory") }
        guard status(of: found).kind == .regular else { throw failure("scrub", path, "invalid argument") }
        try put(physical, .removed)
    }

    /// Times are not kept: an existing file is left as it is.
    public func touch(_ path: String) throws {
        let (physical, found) = try target(path, followLast: true, action: "touch")
        guard found == nil else { return }
        try put(physical, .file(.bytes([]), FileStatus(kind: .regular, mode: 0o644, uid: 0, gid: 0, size: 0)))
    }

    public func rename(_ from: String, to: String) throws {
        let (source, found) = try target(from, followLast: false, action: "rename")
        guard let found else { throw failure("rename", from, "no such file or directory") }
        let (destination, existing) = try target(to, followLast: false, action: "rename")
        guard source != destination else { return }
        guard source != "/", !destination.hasPrefix(source + "/") else {
            throw failure("rename", from, "invalid argument: \(to) is inside it")
        }
        if let existing, status(of: existing).kind == .directory {
            throw failure("rename", to, "is a directory")
        }
        guard status(of: found).kind == .directory else {
            try put(destination, entry(found))
            attributes[destination] = attributes[source]
            return try put(source, .removed)
        }
        // A directory moves with everything under it, copied into the overlay (contents stay the image's until
        // changed), under a new opaque directory.
        var moved: [(String, Entry)] = []
        try collect(source, found, into: &moved, relative: "")
        for (relative, entry) in moved {
            try put(destination + relative, entry)
            attributes[destination + relative] = attributes[source + relative]
        }
        try put(source, .removed)
    }

    private func collect(_ physical: String, _ found: Found, into moved: inout [(String, Entry)],
                         relative: String) throws {
        guard moved.count < Self.maximumMoved else {
            throw overLimit(physical, Int64(moved.count) * Self.entryCost)
        }
        var moving = entry(found)
        if case .directory(let status, _) = moving { moving = .directory(status, opaque: true) }
        moved.append((relative, moving))
        guard status(of: found).kind == .directory else { return }
        for name in try list(physical) {
            let child = physical == "/" ? "/" + name : physical + "/" + name
            guard let (_, childFound) = try resolved(child, followLast: false, action: "rename") else { continue }
            try collect(child, childFound, into: &moved, relative: relative + "/" + name)
        }
    }

    /// The most entries one rename of a directory copies into the overlay.
    static let maximumMoved = 100_000

    public func setxattr(_ path: String, name: String, value: [UInt8]) throws {
        let (physical, found) = try target(path, followLast: false, action: "setxattr \(name)")
        guard found != nil else { throw failure("setxattr \(name)", path, "no such file or directory") }
        try account(Int64(value.count) + Self.entryCost, path)
        attributes[physical, default: [:]][name] = value
    }

    /// The real Augeas, on the text the overlay holds (`editWithHostAugeas`), as for the appliance and a tree.
    public func withAugeas<T>(lens: String, path: String, _ body: (AugeasEdit) throws -> T) throws -> T {
        let augeas = try augeasHandle ?? Augeas()
        augeasHandle = augeas
        return try editWithHostAugeas(augeas, lens: lens, path: path, body)
    }

    // MARK: the overlay

    private func put(_ physical: String, _ entry: Entry) throws {
        if case .removed = entry {
            // What was under a removed directory goes too; a directory made there again is opaque.
            let prefix = physical + "/"
            for (path, old) in entries where path.hasPrefix(prefix) {
                bytes -= cost(old)
                entries[path] = nil
            }
            for path in attributes.keys where path == physical || path.hasPrefix(prefix) { attributes[path] = nil }
        }
        let added = cost(entry) - (entries[physical].map(cost) ?? 0)
        if added > 0 { try account(added, physical) } else { bytes += added }
        entries[physical] = entry
    }

    private func account(_ added: Int64, _ path: String) throws {
        guard bytes + added <= memoryLimit else { throw overLimit(path, bytes + added) }
        bytes += added
    }

    private func cost(_ entry: Entry) -> Int64 {
        switch entry {
        case .file(.bytes(let content), _): Self.entryCost + Int64(content.count)
        case .symlink(let target, _): Self.entryCost + Int64(target.utf8.count)
        case .file(.base, _), .directory, .removed: Self.entryCost
        }
    }

    private func overLimit(_ path: String, _ needed: Int64) -> NativeDryRunDeclined {
        NativeDryRunDeclined(image: guestDescription,
                             reason: "the dry run's changes (\(formatBytes(needed)) at \(path)) would pass the "
                                + "\(formatBytes(memoryLimit)) it keeps in memory", wouldRun: false)
    }

    private func change(_ action: String, _ path: String, followLast: Bool, _ edit: (inout FileStatus) -> Void) throws {
        let (physical, found) = try target(path, followLast: followLast, action: action)
        guard let found else { throw failure(action, path, "no such file or directory") }
        var changed = entry(found)
        switch changed {
        case .file(let content, var status): edit(&status); changed = .file(content, status)
        case .directory(var status, let opaque): edit(&status); changed = .directory(status, opaque: opaque)
        case .symlink(let target, var status): edit(&status); changed = .symlink(target, status)
        case .removed: throw failure(action, path, "no such file or directory")
        }
        try put(physical, changed)
    }

    /// The overlay entry standing for `found`: an image's file keeps its content in the image.
    private func entry(_ found: Found) -> Entry {
        switch found {
        case .overlay(let entry): return entry
        case .base(let filesystem, let node):
            let status = status(of: found)
            switch node.kind {
            case .directory: return .directory(status, opaque: false)
            case .symlink:
                let target = (try? filesystem.readlink(node)).map { guestName(decoding: $0) } ?? ""
                return .symlink(target, status)
            default: return .file(.base(filesystem, node), status)
            }
        }
    }

    private func status(of found: Found) -> FileStatus {
        switch found {
        case .overlay(.file(_, let status)), .overlay(.directory(let status, _)), .overlay(.symlink(_, let status)):
            return status
        case .overlay(.removed):
            return FileStatus(kind: .other, mode: 0, uid: 0, gid: 0, size: 0)
        case .base(_, let node):
            let kind: FileStatus.Kind = switch node.kind {
            case .regular: .regular
            case .directory: .directory
            case .symlink: .symlink
            default: .other
            }
            return FileStatus(kind: kind, mode: node.mode & 0o7777, uid: Int(node.uid), gid: Int(node.gid),
                              size: Int64(clamping: node.size))
        }
    }

    private func bytes(of content: Content, _ path: String) throws -> [UInt8] {
        switch content {
        case .bytes(let bytes): return bytes
        case .base(let filesystem, let node):
            guard node.size <= UInt64(guestReadLimit) else {
                throw failure("read", path, "file of \(formatBytes(Int64(clamping: node.size))), over the "
                              + "\(formatBytes(guestReadLimit)) imgcustomize reads whole")
            }
            return try reading("read", path) { try filesystem.read(node, offset: 0, count: Int(node.size)) }
        }
    }

    // MARK: resolution

    private static let loop = "too many levels of symbolic links"

    /// What `path` names, by its resolved path (no symlink, no "." or ".."); nil when nothing is there, or when a
    /// component on the way is missing or not a directory (as stat(2)'s ENOENT and ENOTDIR).
    private func resolved(_ path: String, followLast: Bool, action: String) throws -> (String, Found)? {
        guard let (physical, found) = try walk(path, followLast: followLast, action: action), let found else {
            return nil
        }
        return (physical, found)
    }

    /// The resolved path where a change to `path` goes, and what is there now; the directory holding it must exist.
    private func target(_ path: String, followLast: Bool, action: String) throws -> (String, Found?) {
        guard let result = try walk(path, followLast: followLast, action: action) else {
            throw failure(action, path, "no such file or directory (a directory on the way is missing)")
        }
        return result
    }

    /// Resolves `path` component by component through the overlay and the image. Returns nil when a directory on
    /// the way is missing; the found value is nil when only the last component is.
    private func walk(_ path: String, followLast: Bool, action: String) throws -> (String, Found?)? {
        guard path.hasPrefix("/") else {
            throw GuestError(guest: guestDescription, action: action, path: path,
                             message: "not an absolute guest path", hint: "guest paths start with /")
        }
        var stack: [String] = []
        var pending = Array(path.split(separator: "/").map(String.init).filter { $0 != "." }.reversed())
        var symlinks = 0, steps = 0
        var current: Found? = try lookup("/")
        while let component = pending.popLast() {
            steps += 1
            guard steps <= 4096 else { throw failure(action, path, "more than 4096 components to resolve") }
            if component == ".." {
                if !stack.isEmpty { stack.removeLast() }
                current = try lookup(join(stack))
                continue
            }
            guard let directory = current else { return nil }
            guard status(of: directory).kind == .directory else { return nil }
            let candidate = join(stack + [component])
            let found = try lookup(candidate)
            guard let found else {
                if pending.isEmpty { return (candidate, nil) }
                return nil
            }
            if status(of: found).kind == .symlink, followLast || !pending.isEmpty {
                symlinks += 1
                guard symlinks <= guestSymlinkLimit else { throw failure(action, path, Self.loop) }
                let target = try readlink(candidate)
                if target.hasPrefix("/") { stack = [] }
                pending += target.split(separator: "/").map(String.init).filter { $0 != "." }.reversed()
                current = try lookup(join(stack))
                continue
            }
            stack.append(component)
            current = found
        }
        return (join(stack), current)
    }

    private func join(_ components: [String]) -> String { "/" + components.joined(separator: "/") }

    /// What is at the resolved path `physical`, whose parent is a directory (or "/").
    private func lookup(_ physical: String) throws -> Found? {
        if let entry = entries[physical] {
            if case .removed = entry { return nil }
            return .overlay(entry)
        }
        if physical != "/" {
            switch try lookup(parentOf(physical)) {
            case .overlay(.directory(_, opaque: false))?: break
            case .base(_, let node)? where node.kind == .directory: break
            default: return nil  // gone, not a directory, or made anew by the overlay
            }
        }
        return try base(physical).map { .base($0.0, $0.1) }
    }

    private func parentOf(_ physical: String) -> String {
        guard let slash = physical.lastIndex(of: "/"), slash != physical.startIndex else { return "/" }
        return String(physical[..<slash])
    }

    /// The image's file at the resolved path `physical`, through the guest's mounts.
    private func base(_ physical: String) throws -> (any FilesystemReader, Node)? {
        if let cached = baseCache[physical] { return cached }
        if physical != "/" { try refuseUnreadable(parentOf(physical)) }
        let found: (any FilesystemReader, Node)?
        if physical == "/" {
            found = (guest.root, try reading("stat", "/") { try guest.root.node(guest.root.rootNode) })
        } else if let mounted = guest.mounts[physical] {
            found = (mounted, try reading("stat", physical) { try mounted.node(mounted.rootNode) })
        } else if let (filesystem, directory) = try base(parentOf(physical)), directory.kind == .directory {
            let name = guestPathBytes(String(physical.split(separator: "/").last ?? ""))
            found = try reading("stat", physical) {
                try filesystem.lookup(name, in: directory).map { (filesystem, try filesystem.node($0)) }
            }
        } else {
            found = nil
        }
        guard baseCache.count < 1_000_000 else { baseCache = [:]; return found }
        baseCache[physical] = found
        return found
    }

    /// The mountpoint of a filesystem the reader does not read is the directory it hides, as the guest would see
    /// it unmounted; what is below it cannot be told.
    private func refuseUnreadable(_ directory: String) throws {
        guard let device = guest.unreadable[directory] else { return }
        throw NativeDryRunDeclined(image: guestDescription,
                                   reason: "\(directory) is \(device), a filesystem the native reader does not read",
                                   wouldRun: false)
    }

    /// A reader's error, named after the image, the action and the path.
    private func reading<T>(_ action: String, _ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ReaderError {
            throw GuestError(guest: guestDescription, action: action, path: path, message: "\(error)",
                             hint: "the image's filesystem is damaged where the native reader read it; "
                                + "--dry-run --appliance reads it through the appliance instead")
        }
    }

    private func failure(_ action: String, _ path: String, _ message: String) -> GuestError {
        GuestError(guest: guestDescription, action: action, path: path, message: message)
    }
}

/// "/" followed by the path's components, "." left out.
func canonicalGuestPath(_ path: String) -> String {
    "/" + path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
}

/// Why a native dry run cannot go on: `wouldRun`, a step needs the guest's own programs (the run lists it as one
/// that would run, without guessing its effect); otherwise the whole dry run goes to the appliance.
public struct NativeDryRunDeclined: DiagnosticError, Sendable {
    public var image: String
    public var reason: String
    public var wouldRun: Bool

    public init(image: String, reason: String, wouldRun: Bool) {
        self.image = image
        self.reason = reason
        self.wouldRun = wouldRun
    }

    public var diagnostic: Diagnostic {
        Diagnostic("\(image): the dry run cannot go on without the appliance: \(reason)",
                   hint: "run with --dry-run --appliance", image: image)
    }
}

/// The guest's programs, which a native dry run never runs: every call says the step would run.
final class NativeCommands: GuestCommands {
    let image: String

    init(image: String) { self.image = image }

    var network: Bool { false }

    func run(_ command: String, operation: String) throws -> GuestCommandResult {
        throw NativeDryRunDeclined(image: image, reason: "\(operation) runs the guest's programs", wouldRun: true)
    }

    func run(_ command: String, shownAs display: String, operation: String) throws -> GuestCommandResult {
        try run(display, operation: operation)
    }

    func runInAppliance(hostScript: String, operation: String) throws -> GuestCommandResult {
        throw NativeDryRunDeclined(image: image, reason: "\(operation) runs a script in the appliance", wouldRun: true)
    }
}
