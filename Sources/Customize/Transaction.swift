import Foundation
import Synchronization
import Logging
import Operations

/// The commit discipline of every command that writes an image: the user's image is never modified in place.
///
/// Work happens in a scratch directory beside the destination (same filesystem, so the final rename is atomic):
/// the overlay the appliance writes to and the new image. The new image is fsynced and renamed over the
/// destination, then the directory is fsynced. Whatever happens before the rename (an error, a signal, kill -9,
/// a power cut), the destination is untouched; scratch left by a killed run is removed by the next run.
public final class Transaction {
    public let image: String
    public let destination: String
    /// The scratch directory, `.imgcustomize-NAME.PID.tmp` beside the destination.
    public let scratch: String
    private let lockDescriptors: [Int32]
    private var finished = false
    private let logger: Logger

    /// Takes an exclusive lock on `image` (and on `destination` when it exists and differs), removes the scratch
    /// of earlier runs that died, checks free space, and makes a scratch directory.
    ///
    /// - Parameter neededBytes: free space the run needs beside the destination (overlay plus the new image).
    public init(image: String, destination: String, neededBytes: Int64, logger: Logger) throws {
        self.image = image
        self.destination = destination
        self.logger = logger
        var locks: [Int32] = []
        do {
            locks.append(try Self.lock(image))
            if destination != image, FileManager.default.fileExists(atPath: destination) {
                locks.append(try Self.lock(destination))
            }
        } catch {
            locks.forEach { close($0) }
            throw error
        }
        lockDescriptors = locks

        let directory = (destination as NSString).deletingLastPathComponent.isEmpty
            ? "." : (destination as NSString).deletingLastPathComponent
        let name = (destination as NSString).lastPathComponent
        Self.removeStaleScratch(in: directory, name: name, logger: logger)

        let available = Self.freeBytes(directory)
        if let available, available < neededBytes {
            locks.forEach { close($0) }
            throw CustomizeError(image: image,
                                 "needs about \(formatBytes(neededBytes)) free in \(directory) but only \(formatBytes(available)) is available",
                                 hint: "free some space there, or write elsewhere with --output")
        }
        scratch = (directory as NSString).appendingPathComponent(".imgcustomize-\(name).\(getpid()).tmp")
        do {
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        } catch {
            locks.forEach { close($0) }
            throw CustomizeError(image: image, "cannot create scratch directory \(scratch): \(error.localizedDescription)")
        }
        ScratchRegistry.shared.add(scratch)
    }

    deinit {
        if !finished { abandon() }
        lockDescriptors.forEach { close($0) }
    }

    public func scratchPath(_ name: String) -> String { (scratch as NSString).appendingPathComponent(name) }

    /// Makes `newImage` (a file in the scratch directory) the destination: fsync, rename, fsync the directory.
    public func commit(_ newImage: String) throws {
        try fsyncPath(newImage)
        if let attributes = try? FileManager.default.attributesOfItem(atPath: image),
           let permissions = attributes[.posixPermissions] as? NSNumber, destination == image {
            chmod(newImage, mode_t(permissions.uint16Value))
        }
        guard rename(newImage, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            throw CustomizeError(image: image, "cannot rename the new image over \(destination): \(reason)",
                                 hint: "the original is unchanged")
        }
        try fsyncPath((destination as NSString).deletingLastPathComponent.isEmpty
                      ? "." : (destination as NSString).deletingLastPathComponent)
        abandon()
    }

    /// Removes the scratch directory and what it holds; the destination stays as it was.
    public func abandon() {
        finished = true
        try? FileManager.default.removeItem(atPath: scratch)
        ScratchRegistry.shared.remove(scratch)
    }

    private static func lock(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CustomizeError(image: path, "cannot open: \(String(cString: strerror(errno)))",
                                 hint: "check the path and its permissions")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw CustomizeError(image: path, "another imgcustomize run is working on this image",
                                 hint: "wait for it to finish; two runs on one image are refused")
        }
        return fd
    }

    /// Scratch directories of this destination whose process is gone.
    private static func removeStaleScratch(in directory: String, name: String, logger: Logger) {
        let prefix = ".imgcustomize-\(name)."
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for entry in entries where entry.hasPrefix(prefix) && entry.hasSuffix(".tmp") {
            let pidText = entry.dropFirst(prefix.count).dropLast(4)
            guard let pid = Int32(pidText), pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            let path = (directory as NSString).appendingPathComponent(entry)
            logger.notice("removing scratch left by an interrupted run: \(path)")
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    private static func freeBytes(_ directory: String) -> Int64? {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }
}

func fsyncPath(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw CustomizeError(image: path, "cannot open for fsync: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw CustomizeError(image: path, "fsync failed: \(String(cString: strerror(errno)))") }
}

/// Scratch directories of live transactions, for a process that must exit at once (see
/// `Transaction.removeAllScratch`). kill -9 cannot be caught: the next run removes what it leaves.
final class ScratchRegistry: Sendable {
    static let shared = ScratchRegistry()
    private let paths = Mutex<Set<String>>([])

    func add(_ path: String) { paths.withLock { _ = $0.insert(path) } }
    func remove(_ path: String) { paths.withLock { _ = $0.remove(path) } }

    func removeAll() {
        let all = paths.withLock { $0 }
        for path in all { try? FileManager.default.removeItem(atPath: path) }
    }
}

extension Transaction {
    /// Removes the scratch directory of every transaction still open in this process, leaving each destination as
    /// it was. For a caller about to exit without unwinding (a second Ctrl-C): a cancelled run removes its own.
    public static func removeAllScratch() {
        ScratchRegistry.shared.removeAll()
    }
}
