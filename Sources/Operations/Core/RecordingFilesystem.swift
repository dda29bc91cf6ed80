/// A guest filesystem that passes every call through and remembers what changed: each file's content before the
/// first change and after the last (for diffs), and every path written, created or re-owned (for SELinux
/// relabelling, which must label what the run touched and nothing else).
final class RecordingFilesystem: GuestFilesystem {
    /// Files larger than this are compared by size only: a diff of an uploaded tarball helps nobody, and reading
    /// it back through the appliance costs time.
    static let contentLimit: Int64 = 1 << 20

    enum Content: Equatable {
        case missing
        case bytes([UInt8])
        case directory
        case symlink(String)
        case large(Int64)
    }

    struct Change {
        var path: String
        var before: Content
        var after: Content
        var metadata: [String] = []
    }

    let inner: GuestFilesystem
    private(set) var changes: [Change] = []
    private(set) var touched: [String] = []
    private var touchedSet: Set<String> = []

    init(_ inner: GuestFilesystem) { self.inner = inner }

    var guestDescription: String { inner.guestDescription }

    /// Forgets the changes (not the touched paths) before the next step.
    func startStep() { changes.removeAll() }

    private func content(_ path: String) throws -> Content {
        guard let status = try inner.lstat(path) else { return .missing }
        switch status.kind {
        case .regular: return status.size > Self.contentLimit ? .large(status.size) : .bytes(try inner.read(path))
        case .directory: return .directory
        case .symlink: return .symlink(try inner.readlink(path))
        case .other: return .large(status.size)
        }
    }

    /// The file a content change through `path` lands in: a write to /etc/sysconfig/selinux changes
    /// /etc/selinux/config, and that is the file to diff and to relabel.
    private func followingLinks(_ path: String) throws -> String {
        var current = path
        for _ in 0..<guestSymlinkLimit {
            guard try inner.lstat(current)?.kind == .symlink else { return current }
            let target = try inner.readlink(current)
            let base = target.hasPrefix("/") ? [] : current.split(separator: "/").dropLast().map(String.init)
            var components: [String] = []
            for component in base + target.split(separator: "/").map(String.init) {
                if component == ".." { _ = components.popLast() } else if component != "." { components.append(component) }
            }
            current = "/" + components.joined(separator: "/")
        }
        return current
    }

    private func markTouched(_ path: String) {
        if touchedSet.insert(path).inserted { touched.append(path) }
    }

    /// Runs `body`, which changes `path`, and records the content on either side of it.
    private func recording<T>(_ path: String, touches: Bool = true, _ body: () throws -> T) throws -> T {
        let before = try content(path)
        let result = try body()
        let after = try content(path)
        // Two large files compare by size only: one the body wrote over counts as changed.
        var large = false
        if case .large = after { large = true }
        if before != after || large {
            if let index = changes.firstIndex(where: { $0.path == path }) {
                changes[index].after = after
            } else {
                changes.append(Change(path: path, before: before, after: after))
            }
            if touches && after != .missing { markTouched(path) }
        }
        return result
    }

    private func recordMetadata(_ path: String, _ description: String) {
        if let index = changes.firstIndex(where: { $0.path == path }) {
            changes[index].metadata.append(description)
        } else {
            changes.append(Change(path: path, before: .missing, after: .missing, metadata: [description]))
        }
        markTouched(path)
    }

    func lstat(_ path: String) throws -> FileStatus? { try inner.lstat(path) }
    func stat(_ path: String) throws -> FileStatus? { try inner.stat(path) }
    func list(_ directory: String) throws -> [String] { try inner.list(directory) }
    func glob(_ pattern: String) throws -> [String] { try inner.glob(pattern) }
    func readlink(_ path: String) throws -> String { try inner.readlink(path) }
    func read(_ path: String) throws -> [UInt8] { try inner.read(path) }

    func write(_ path: String, _ content: [UInt8], mode: UInt32) throws {
        try recording(try followingLinks(path)) { try inner.write(path, content, mode: mode) }
    }

    func mkdir(_ path: String, mode: UInt32, parents: Bool) throws {
        try recording(path) { try inner.mkdir(path, mode: mode, parents: parents) }
    }

    func remove(_ path: String, recursive: Bool) throws {
        try recording(path) { try inner.remove(path, recursive: recursive) }
    }

    func chmod(_ path: String, mode: UInt32) throws {
        let old = try inner.stat(path)?.mode
        try inner.chmod(path, mode: mode)
        if let old, old != mode & 0o7777 {
            recordMetadata(try followingLinks(path), "mode \(octal(old)) -> \(octal(mode & 0o7777))")
        }
    }

    func chown(_ path: String, uid: Int, gid: Int) throws {
        let old = try inner.stat(path)
        try inner.chown(path, uid: uid, gid: gid)
        if let old, old.uid != uid || old.gid != gid {
            recordMetadata(try followingLinks(path), "owner \(old.uid):\(old.gid) -> \(uid):\(gid)")
        }
    }

    func symlink(target: String, at path: String) throws {
        try recording(path) { try inner.symlink(target: target, at: path) }
    }

    func truncate(_ path: String, size: Int64) throws {
        try recording(try followingLinks(path)) { try inner.truncate(path, size: size) }
    }

    func scrub(_ path: String) throws {
        try recording(path) { try inner.scrub(path) }
    }

    func touch(_ path: String) throws {
        try recording(try followingLinks(path)) { try inner.touch(path) }
    }

    func rename(_ from: String, to: String) throws {
        try recording(to) {
            try recording(from, touches: false) { try inner.rename(from, to: to) }
        }
    }

    func withAugeas<T>(lens: String, path: String, _ body: (AugeasEdit) throws -> T) throws -> T {
        try recording(try followingLinks(path)) { try inner.withAugeas(lens: lens, path: path, body) }
    }

    func getxattr(_ path: String, name: String) throws -> [UInt8]? { try inner.getxattr(path, name: name) }
    /// Labels are what relabelling sets, so setting one does not count as touching the file.
    func setxattr(_ path: String, name: String, value: [UInt8]) throws {
        try inner.setxattr(path, name: name, value: value)
    }

    var devices: (any GuestDevices)? { inner.devices }
    /// What a guest command changes goes unrecorded: its steps say their change is unknown.
    var commands: (any GuestCommands)? { inner.commands }

    /// The recorded changes as diffs, in the order the files were first changed.
    func diffs() -> [FileDiff] {
        changes.compactMap { change in
            var text = ""
            switch (change.before, change.after) {
            case (.bytes(let old), .bytes(let new)):
                text = UnifiedDiff.make(path: change.path, before: old, after: new)
            case (.missing, .bytes(let new)):
                text = UnifiedDiff.make(path: change.path, before: nil, after: new)
            case (.bytes(let old), .missing):
                text = UnifiedDiff.make(path: change.path, before: old, after: nil)
            case (let before, .large(let size)):
                text = "\(describe(before)) -> file of \(size) bytes (too large to diff)\n"
            case let (before, after) where before != after:
                text = "\(describe(before)) -> \(describe(after))\n"
            default:
                break
            }
            text += change.metadata.map { $0 + "\n" }.joined()
            return text.isEmpty ? nil : FileDiff(path: change.path, unified: text)
        }
    }

    private func describe(_ content: Content) -> String {
        switch content {
        case .missing: "nothing"
        case .bytes(let bytes): "file of \(bytes.count) bytes"
        case .directory: "directory"
        case .symlink(let target): "symlink to \(target)"
        case .large(let size): "file of \(size) bytes"
        }
    }

    private func octal(_ mode: UInt32) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
