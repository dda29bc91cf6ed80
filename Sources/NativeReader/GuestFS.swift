/// A guest's directory tree read natively: a root filesystem and others mounted on its paths, as the guest's fstab
/// would mount them. Every path is resolved inside the root: ".." at the root stays there, an absolute symlink
/// target starts again from the root, and resolving one path follows at most `maximumSymlinks` symlinks (then it
/// fails as a loop) and `maximumSteps` components in all. Read-only.
public final class GuestFS {
    public let root: any FilesystemReader
    private var mounts: [[UInt8]: any FilesystemReader] = [:]

    /// Linux's limit on symlinks followed in one lookup.
    public static let maximumSymlinks = 40
    public static let maximumSteps = 4096

    public init(root: any FilesystemReader) {
        self.root = root
    }

    /// Mounts `filesystem` on `path` (canonical, absolute); paths through it then read that filesystem.
    public func mount(_ filesystem: any FilesystemReader, on path: String) {
        mounts[Array(Self.canonical(path).utf8)] = filesystem
    }

    private struct Step {
        var filesystem: any FilesystemReader
        var node: Node
        var name: [UInt8]
    }

    /// What `path` names, following symlinks (the last one too when `followLast`).
    public func resolve(_ path: String, followLast: Bool = true) throws -> (filesystem: any FilesystemReader, node: Node) {
        let top = try root.node(root.rootNode)
        var stack = [Step(filesystem: root, node: top, name: [])]
        if let mounted = mounts[Array("/".utf8)] {
            stack = [Step(filesystem: mounted, node: try mounted.node(mounted.rootNode), name: [])]
        }
        var pending = Array(Self.components(Array(path.utf8)).reversed())
        var symlinks = 0, steps = 0
        func fail(_ kind: ReaderError.Kind, _ message: String) -> ReaderError {
            ReaderError(kind, device: stack[stack.count - 1].filesystem.device.name, structure: "path \(path)", message)
        }
        while let component = pending.popLast() {
            steps += 1
            guard steps <= Self.maximumSteps else { throw fail(.limit, "more than \(Self.maximumSteps) components to resolve") }
            if component == [0x2E, 0x2E] {
                if stack.count > 1 { stack.removeLast() }
                continue
            }
            let current = stack[stack.count - 1]
            guard current.node.kind == .directory else { throw fail(.notDirectory, "a component is not a directory") }
            guard let number = try current.filesystem.lookup(component, in: current.node) else {
                throw fail(.notFound, "no such file or directory")
            }
            let child = try current.filesystem.node(number)
            if child.kind == .symlink, followLast || !pending.isEmpty {
                symlinks += 1
                guard symlinks <= Self.maximumSymlinks else {
                    throw fail(.symlinkLoop, "more than \(Self.maximumSymlinks) symlinks (a loop?)")
                }
                let target = try current.filesystem.readlink(child)
                if target.first == 0x2F { stack.removeSubrange(1...) }
                pending += Self.components(target).reversed()
                continue
            }
            stack.append(Step(filesystem: current.filesystem, node: child, name: component))
            let here = [0x2F] + Array(stack.dropFirst().map(\.name).joined(separator: [0x2F]))
            if let mounted = mounts[here] {
                stack[stack.count - 1] = Step(filesystem: mounted, node: try mounted.node(mounted.rootNode),
                                              name: component)
            }
        }
        let last = stack[stack.count - 1]
        return (last.filesystem, last.node)
    }

    /// stat(2): the metadata of what `path` leads to.
    public func stat(_ path: String) throws -> Node { try resolve(path).node }

    /// lstat(2): a final symlink itself.
    public func lstat(_ path: String) throws -> Node { try resolve(path, followLast: false).node }

    /// What `path` leads to (following symlinks unless `followLast` is false), or nil when nothing is there.
    public func kind(_ path: String, followLast: Bool = true) throws -> NodeKind? {
        do {
            return try resolve(path, followLast: followLast).node.kind
        } catch let error as ReaderError where error.kind == .notFound || error.kind == .notDirectory {
            return nil
        }
    }

    public func readlink(_ path: String) throws -> String {
        let (filesystem, node) = try resolve(path, followLast: false)
        return String(decoding: try filesystem.readlink(node), as: UTF8.self)
    }

    /// The names in directory `path`, sorted, without "." and "..".
    public func listDirectory(_ path: String) throws -> [String] {
        let (filesystem, node) = try resolve(path)
        return try filesystem.entries(of: node).map { String(decoding: $0.name, as: UTF8.self) }.sorted()
    }

    /// The whole of regular file `path`; fails when it is larger than `limit` bytes.
    public func readFile(_ path: String, limit: Int = 1 << 20) throws -> [UInt8] {
        let (filesystem, node) = try resolve(path)
        guard node.kind == .regular else {
            throw ReaderError(node.kind == .directory ? .isDirectory : .malformed, device: filesystem.device.name,
                              structure: "path \(path)", "is not a regular file")
        }
        guard node.size <= UInt64(max(limit, 0)) else {
            throw ReaderError(.tooLarge, device: filesystem.device.name, structure: "path \(path)",
                              "is \(node.size) bytes, more than the \(limit) allowed")
        }
        return try filesystem.read(node, offset: 0, count: Int(node.size))
    }

    /// The first `count` bytes of regular file `path` (fewer when it is shorter).
    public func read(_ path: String, count: Int) throws -> [UInt8] {
        let (filesystem, node) = try resolve(path)
        return try filesystem.read(node, offset: 0, count: count)
    }

    static func components(_ path: [UInt8]) -> [[UInt8]] {
        path.split(separator: 0x2F).map(Array.init).filter { $0 != [0x2E] }
    }

    static func canonical(_ path: String) -> String {
        "/" + path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }
}
