// libFuzzer entry point over the directory-tree backend's path resolution. Built by scripts/fuzz with `swiftc
// -sanitize=fuzzer` into the DirectoryTree module itself (so it reaches the internal resolver), outside SwiftPM.
//
// Each input is a guest path (its bytes, decoded as the tree decodes names) resolved in a small generated tree
// whose symlinks try every way out: `..` past the root, absolute targets, a relative target that climbs into the
// directory beside the tree, the host's absolute path, loops, /proc magic links, a 255-byte name and names that are
// not UTF-8. Whatever the path, the directory the resolver lands in, and the entry it names when that is not a
// symlink, must be inside the tree; the tree's files are read, stat'ed and listed, and the secret beside the tree
// must never come back. A trap anywhere is a crash too.

import Glibc
import Operations

/// The generated tree: <scratch>/tree is the guest, <scratch>/outside holds the secret.
final class FuzzTree {
    let scratch: String
    let root: String
    let tree: TreeFilesystem
    static let secret = "OUTSIDE-THE-TREE"

    nonisolated(unsafe) static let shared = FuzzTree()

    private init() {
        let parent = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(parent)/imgcustomize-tree-fuzz-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp: \(String(cString: strerror(errno)))") }
        scratch = String(cString: made)
        root = scratch + "/tree"
        func run(_ body: () -> Int32, _ what: String) {
            if body() != 0 && errno != EEXIST { fatalError("\(what): \(String(cString: strerror(errno)))") }
        }
        func directory(_ path: String) { run({ mkdir(path, 0o755) }, "mkdir \(path)") }
        func file(_ path: [UInt8], _ text: String) {
            let fd = open(path.map { CChar(bitPattern: $0) } + [0], O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { fatalError("create \(path): \(String(cString: strerror(errno)))") }
            _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
            close(fd)
        }
        func link(_ path: String, _ target: String) { run({ symlink(target, path) }, "symlink \(path)") }
        for path in [scratch + "/outside", root, root + "/etc", root + "/home", root + "/home/alice", root + "/tmp"] {
            directory(path)
        }
        file(Array((scratch + "/outside/secret").utf8), Self.secret)
        file(Array((root + "/etc/passwd").utf8), "root:x:0:0::/root:/bin/sh\n")
        file(Array((root + "/secret").utf8), "the tree's own secret\n")
        file(Array((root + "/tmp/").utf8) + [0xFF, 0xFE, 0x2E, 0x6C, 0x6F, 0x67], "latin\n")
        file(Array((root + "/tmp/").utf8) + Array(repeating: UInt8(ascii: "n"), count: 255), "long\n")
        link(root + "/etc/up", "../../../../../../../..")
        link(root + "/etc/abs", "/etc")
        link(root + "/etc/escape", "../../outside")
        link(root + "/etc/host", scratch + "/outside/secret")
        link(root + "/etc/hostdir", scratch + "/outside")
        link(root + "/etc/loop", "loop")
        link(root + "/etc/ping", "pong")
        link(root + "/etc/pong", "ping")
        link(root + "/etc/proc", "/proc/self/root" + scratch + "/outside")
        link(root + "/etc/cwd", "/proc/self/cwd")
        link(root + "/home/alice/root", "/")
        link(root + "/home/alice/dotdot", "..")
        link(root + "/home/alice/deep", "../../etc/escape/../outside/secret")
        link(root + "/tmp/latin", "/tmp/\u{EFFF}\u{EFFE}.log")
        do {
            tree = try TreeFilesystem(root: root)
        } catch {
            fatalError("open tree: \(error)")
        }
    }

    /// The host path a descriptor stands for, from /proc (where the kernel says it is, not where a name led).
    func hostPath(_ fd: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard count >= 0 else { fatalError("readlink /proc/self/fd/\(fd): \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func isInside(_ hostPath: String) -> Bool { hostPath == root || hostPath.hasPrefix(root + "/") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let fuzz = FuzzTree.shared
    let input = Array(UnsafeBufferPointer(start: data, count: count))
    // The first byte picks the guest-side call, the rest is the path (relative inputs are made absolute).
    let selector = input.first ?? 0
    var path = guestName(decoding: input.dropFirst())
    if !path.hasPrefix("/") { path = "/" + path }

    for followLast in [false, true] {
        _ = try? fuzz.tree.resolve(path, followLast: followLast) { location in
            let directory = fuzz.hostPath(location.directory)
            if !fuzz.isInside(directory) { fatalError("\(path) resolved to directory \(directory), outside the tree") }
            let fd = openat(location.directory, location.name, __O_PATH | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { return }
            defer { close(fd) }
            let entry = fuzz.hostPath(fd)
            if !fuzz.isInside(entry) { fatalError("\(path) resolved to \(entry), outside the tree") }
        }
    }
    let guest: GuestFilesystem = fuzz.tree
    switch selector % 4 {
    case 0:
        if let content = try? guest.read(path), String(decoding: content, as: UTF8.self).contains(FuzzTree.secret) {
            fatalError("\(path) read the file outside the tree")
        }
    case 1:
        _ = try? guest.stat(path)
        _ = try? guest.lstat(path)
    case 2:
        if let names = try? guest.list(path), names.contains("secret"), (try? guest.read(path + "/secret")).map({
            String(decoding: $0, as: UTF8.self).contains(FuzzTree.secret)
        }) == true {
            fatalError("\(path) listed the directory outside the tree")
        }
    default:
        _ = try? guest.readlink(path)
        _ = try? guest.glob(path)
    }
    return 0
}
