import Diagnostics
import Foundation
import Logging
import Synchronization

/// The one way the project makes a temporary directory: `mkdtemp`, so the name cannot be guessed and the directory
/// is new and private (0700). A root tool writing to a predictable path in /tmp can be made to write through a
/// symlink or into a directory someone else prepared.
///
/// Names are `PREFIX.PID.XXXXXX`, and the directory stays locked (flock) while the value lives: a later run removes
/// what a run killed with SIGKILL left, and never the directory of a live run, even one in another pid namespace
/// (a container) or on another host sharing the directory, where its process id means nothing.
///
/// Every directory is in `ScratchRegistry` from its making to its removal, so that a process ending at once (a second
/// Ctrl-C) removes it too; `with` scopes one to a closure.
package final class TemporaryDirectory: Sendable {
    package let path: String
    private let descriptor: Int32

    /// Makes a new directory in `parent` (TMPDIR when nil).
    package init(in parent: String? = nil, prefix: String) throws {
        let parent = parent ?? Self.defaultParent
        var template = Array(((parent as NSString).appendingPathComponent("\(prefix).\(getpid()).XXXXXX")).utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
        }
        guard let made else { throw TemporaryDirectoryError(parent: parent, code: errno) }
        path = made
        // Where flock does not work (some network filesystems), the process id alone tells stale from live.
        let descriptor = open(made, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if descriptor >= 0, flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            close(descriptor)
            self.descriptor = -1
        } else {
            self.descriptor = descriptor
        }
        ScratchRegistry.shared.add(made)
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Runs `body` with a new directory in `parent` (TMPDIR when nil), removed when `body` returns or throws.
    package static func with<T>(in parent: String? = nil, prefix: String,
                                _ body: (TemporaryDirectory) throws -> T) throws -> T {
        let directory = try TemporaryDirectory(in: parent, prefix: prefix)
        defer { directory.remove() }
        return try body(directory)
    }

    package func appending(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Removes the directory and what it holds.
    package func remove() {
        try? FileManager.default.removeItem(atPath: path)
        ScratchRegistry.shared.remove(path)
    }

    /// Leaves the directory to the user (a console log to read): a process ending at once no longer removes it.
    package func keep() { ScratchRegistry.shared.remove(path) }

    /// TMPDIR, or /tmp.
    package static var defaultParent: String {
        let directory = NSTemporaryDirectory()
        return directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    }

    /// Removes the directories that runs which are gone made in `parent` with `prefix`: this user's own, whose
    /// process is not alive here and whose lock nobody holds. (Another user's are not ours to judge.)
    package static func removeStale(in parent: String? = nil, prefix: String, logger: Logger) {
        let parent = parent ?? defaultParent
        for (path, pid) in made(in: parent, prefix: prefix) where pid != getpid() {
            let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard descriptor >= 0 else { continue }
            defer { close(descriptor) }
            var info = stat()
            guard fstat(descriptor, &info) == 0, info.st_uid == getuid(), !isLive(descriptor, pid: pid) else { continue }
            logger.info("removing what an interrupted run left: \(path)")
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// A directory some run made in `parent` with `prefix` whose run is still going, if there is one.
    package static func live(in parent: String, prefix: String) -> String? {
        made(in: parent, prefix: prefix).first { path, pid in
            let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard descriptor >= 0 else { return false }
            defer { close(descriptor) }
            return isLive(descriptor, pid: pid)
        }?.path
    }

    /// The directories named `PREFIX.PID.XXXXXX` in `parent`, with the process id in their name. Exactly that
    /// shape: the directories of a name that only starts like `prefix` are another's.
    private static func made(in parent: String, prefix: String) -> [(path: String, pid: Int32)] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return [] }
        return entries.compactMap { entry in
            guard entry.hasPrefix(prefix + ".") else { return nil }
            let parts = entry.dropFirst(prefix.count + 1).split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, let pid = Int32(parts[0]), parts[1].count == 6 else { return nil }
            return ((parent as NSString).appendingPathComponent(entry), pid)
        }
    }

    /// Whether the run that made the open directory `descriptor` is still going: its process is alive here, or it
    /// holds the directory's lock (a run in another pid namespace, whose process id means nothing here).
    private static func isLive(_ descriptor: Int32, pid: Int32) -> Bool {
        if kill(pid, 0) == 0 || errno == EPERM { return true }
        return flock(descriptor, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK
    }
}

package struct TemporaryDirectoryError: DiagnosticError {
    package var parent: String
    package var code: Int32

    package var diagnostic: Diagnostic {
        Diagnostic("cannot create a temporary directory in \(parent): \(String(cString: strerror(code)))",
                   hint: "set TMPDIR to a writable directory", path: parent)
    }
}

/// The temporary directories this process has made and not yet removed, for a process that must exit at once (see
/// `Transaction.removeAllScratch`). kill -9 cannot be caught: the next run removes what it leaves.
package final class ScratchRegistry: Sendable {
    package static let shared = ScratchRegistry()
    private let paths = Mutex<Set<String>>([])

    fileprivate func add(_ path: String) { paths.withLock { _ = $0.insert(path) } }
    fileprivate func remove(_ path: String) { paths.withLock { _ = $0.remove(path) } }

    package func holds(_ path: String) -> Bool { paths.withLock { $0.contains(path) } }

    /// Removes every directory still registered.
    package func removeAll() {
        let all = paths.withLock { $0 }
        for path in all { try? FileManager.default.removeItem(atPath: path) }
    }
}
