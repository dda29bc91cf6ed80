import Foundation
import Logging

/// The one way the project makes a temporary directory: `mkdtemp`, so the name cannot be guessed and the directory
/// is new and private (0700). A root tool writing to a predictable path in /tmp can be made to write through a
/// symlink or into a directory someone else prepared.
///
/// Names are `PREFIX.PID.XXXXXX`: the process id lets a later run find what a run killed with SIGKILL left.
package enum TemporaryDirectory {
    /// Makes a new directory in `parent` (TMPDIR when nil) and returns its path.
    package static func make(in parent: String? = nil, prefix: String) throws -> String {
        let parent = parent ?? defaultParent
        var template = Array(((parent as NSString).appendingPathComponent("\(prefix).\(getpid()).XXXXXX")).utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
        }
        guard let made else { throw TemporaryDirectoryError(parent: parent, code: errno) }
        return made
    }

    /// TMPDIR, or /tmp.
    package static var defaultParent: String {
        let directory = NSTemporaryDirectory()
        return directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    }

    /// Removes the directories `make(in: parent, prefix: prefix)` made for processes that are gone. Only this user's
    /// own directories are looked at: in a shared /tmp another user's, or another container's, are not ours to judge.
    package static func removeStale(in parent: String? = nil, prefix: String, logger: Logger) {
        let parent = parent ?? defaultParent
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for entry in entries where entry.hasPrefix(prefix + ".") {
            let rest = entry.dropFirst(prefix.count + 1)
            guard let dot = rest.firstIndex(of: "."), let pid = Int32(rest[..<dot]), pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            let path = (parent as NSString).appendingPathComponent(entry)
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == getuid() else { continue }
            logger.notice("removing what an interrupted run left: \(path)")
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}

package struct TemporaryDirectoryError: Error, CustomStringConvertible {
    package var parent: String
    package var code: Int32

    package var description: String {
        "cannot create a temporary directory in \(parent): \(String(cString: strerror(code)))"
    }
}
