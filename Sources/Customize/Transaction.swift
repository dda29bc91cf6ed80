import Diagnostics
import Foundation
import Logging
import Formats
import Host
import Operations

/// The commit discipline of every command that writes an image: the user's image is never modified in place.
///
/// The new image is written in a scratch directory beside the destination (same filesystem, so the final rename
/// is atomic), fsynced and renamed over the destination, then the directory is fsynced. The overlay the appliance
/// writes to goes there too, or in a private directory in a scratch directory the user chose (another filesystem
/// is fine: the overlay is never renamed). Whatever happens before the rename (an error, a signal, kill -9, a power
/// cut), the destination is untouched; scratch left by a killed run is removed by the next run. Right before the
/// rename, under the lock, the image must still be the file the safety check read: a run whose image another
/// program changed or replaced in the meantime commits nothing.
public final class Transaction {
    public let image: ImageIdentity
    public let destination: String
    /// The scratch directory beside the destination, `.imgcustomize-NAME.PID.XXXXXX`, where the new image is written.
    public var scratch: String { scratchDirectory.path }
    /// Where the overlay goes: `scratch`, or `imgcustomize-overlay.PID.XXXXXX` in the chosen scratch directory.
    public var overlayDirectory: String { (overlayTemporary ?? scratchDirectory).path }
    /// The destination has been replaced by the new image.
    public private(set) var committed = false
    private let scratchDirectory: TemporaryDirectory
    private let overlayTemporary: TemporaryDirectory?
    private let lockDescriptors: [Int32]
    private var finished = false
    private let logger: Logger

    /// Free space a run needs: the new image beside the destination, the overlay wherever it goes.
    public struct SpaceNeeds: Sendable {
        public var newImage: Int64
        public var overlay: Int64

        public init(newImage: Int64, overlay: Int64) {
            self.newImage = newImage
            self.overlay = overlay
        }
    }

    /// Locks the image, exclusively when it is the destination and shared when it is only read (runs that write
    /// elsewhere read one image together; a run changing it in place waits for none of them and is refused while
    /// they read), and `destination` exclusively when it exists and differs; removes the scratch
    /// of earlier runs that died, checks free space, and makes the scratch directories.
    ///
    /// The destination is claimed even when it does not exist yet: a run that finds the live scratch directory of
    /// another run for the same destination is refused, so two writers never race to the rename.
    ///
    /// - Parameter scratchParent: a directory for the overlay; nil puts it beside the destination.
    /// - Parameter imageDescriptor: the image as the run has it open, locked through a duplicate instead of opening
    ///   its path again (which may name another file by now, or a FIFO); the caller keeps its own descriptor.
    public init(image: ImageIdentity, destination: String, scratchParent: String? = nil, needs: SpaceNeeds,
                imageDescriptor: Int32? = nil, logger: Logger) throws {
        self.image = image
        self.destination = destination
        self.logger = logger
        var locks: [Int32] = []
        var made: [TemporaryDirectory] = []
        func fail(_ error: CustomizeError) -> CustomizeError {
            locks.forEach { close($0) }
            made.forEach { $0.remove() }
            return error
        }
        do {
            let inPlace = destination == image.path
            if let imageDescriptor {
                locks.append(try Self.lock(descriptor: imageDescriptor, image.path, exclusive: inPlace))
            } else {
                locks.append(try Self.lock(image.path, exclusive: inPlace))
            }
            if !inPlace, FileManager.default.fileExists(atPath: destination) {
                locks.append(try Self.lock(destination, exclusive: true, follow: false))
            }
        } catch let error as CustomizeError {
            throw fail(error)
        }

        let directory = (destination as NSString).deletingLastPathComponent.isEmpty
            ? "." : (destination as NSString).deletingLastPathComponent
        let prefix = ".imgcustomize-\((destination as NSString).lastPathComponent)"
        // Scratch first, free space after: a read-only or unwritable directory is the first thing to say.
        TemporaryDirectory.removeStale(in: directory, prefix: prefix, logger: logger)
        if let scratchParent { TemporaryDirectory.removeStale(in: scratchParent, prefix: Self.overlayPrefix, logger: logger) }

        do {
            scratchDirectory = try Self.claimScratch(in: directory, prefix: prefix, image: image.path,
                                                     destination: destination)
        } catch let error as CustomizeError {
            throw fail(error)
        } catch {
            throw fail(CustomizeError(image: image.path, "cannot write beside the destination \(destination): \(Diagnostic(of: error).message)",
                hint: "the new image is written in \(directory) so that it replaces \(destination) in one atomic rename; "
                    + "make that directory writable, or write the result to a writable place with --output PATH"))
        }
        made.append(scratchDirectory)
        if let scratchParent {
            let overlayTemporary: TemporaryDirectory
            do {
                overlayTemporary = try TemporaryDirectory(in: scratchParent, prefix: Self.overlayPrefix)
            } catch {
                throw fail(CustomizeError(image: image.path, "cannot use the scratch directory: \(Diagnostic(of: error).message)",
                                          hint: "choose a writable --scratch directory"))
            }
            made.append(overlayTemporary)
            self.overlayTemporary = overlayTemporary
        } else {
            overlayTemporary = nil
        }
        let overlayApart = scratchParent.map { !Self.sameFilesystem($0, directory) } ?? false
        let besideDestination = needs.newImage + (overlayApart ? 0 : needs.overlay)
        if let available = Self.freeBytes(directory), available < besideDestination {
            throw fail(CustomizeError(image: image.path,
                "needs about \(formatBytes(besideDestination)) free in \(directory) but only \(formatBytes(available)) is available",
                hint: "free some space there, or write elsewhere with --output"
                    + (overlayApart ? "" : ", or put the overlay on another filesystem with --scratch DIR")))
        }
        if overlayApart, let scratchParent, let available = Self.freeBytes(scratchParent), available < needs.overlay {
            throw fail(CustomizeError(image: image.path,
                "needs about \(formatBytes(needs.overlay)) free in the scratch directory \(scratchParent) for the overlay but only \(formatBytes(available)) is available",
                hint: "free some space there, or choose another --scratch directory"))
        }
        lockDescriptors = locks
    }

    deinit {
        if !finished { abandon() }
        lockDescriptors.forEach { close($0) }
    }

    public func scratchPath(_ name: String) -> String { (scratch as NSString).appendingPathComponent(name) }

    /// The overlay's path.
    public var overlay: String { (overlayDirectory as NSString).appendingPathComponent("overlay.qcow2") }

    /// Makes `newImage` (a file in the scratch directory) the destination: fsync, check that the image is still
    /// the one checked, rename, fsync the directory. Not `durable`, the fsyncs are skipped (a crash may then leave
    /// an incomplete file at the destination); the rename is atomic all the same.
    public func commit(_ newImage: String, durable: Bool = true) throws {
        if durable { try fsyncPath(newImage) }
        try requireUnchangedImage()
        // The file replaced keeps its permissions, as it would if it had been rewritten in place.
        if let attributes = try? FileManager.default.attributesOfItem(atPath: destination),
           let permissions = attributes[.posixPermissions] as? NSNumber {
            chmod(newImage, mode_t(permissions.uint16Value))
        }
        guard rename(newImage, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            throw CustomizeError(image: image.path, "cannot rename the new image over \(destination): \(reason)",
                                 hint: "the original is unchanged")
        }
        committed = true
        if durable {
            try fsyncPath((destination as NSString).deletingLastPathComponent.isEmpty
                          ? "." : (destination as NSString).deletingLastPathComponent)
        }
        abandon()
    }

    /// Fails when the image is no longer the file the safety check read, as it was then.
    public func requireUnchangedImage() throws {
        if let error = imageChange() { throw error }
    }

    /// How the image changed since the safety check, as the error to report; nil when it did not.
    func imageChange() -> CustomizeError? {
        let changes = image.changesSince()
        guard !changes.isEmpty else { return nil }
        return CustomizeError(image: image.path,
            "changed while this run was working on it: \(changes.joined(separator: "; ")); nothing was committed",
            hint: "another program wrote to the image or replaced it, so the result would mix two images; "
                + "make sure nothing else uses it, then run again (imgcustomize wrote nothing to it)")
    }

    /// Removes the scratch directories and what they hold; the destination stays as it was.
    public func abandon() {
        finished = true
        scratchDirectory.remove()
        overlayTemporary?.remove()
    }

    static let overlayPrefix = "imgcustomize-overlay"

    /// O_NONBLOCK: a FIFO put at the path must not hang the run. The destination's final symlink is never
    /// followed (the checks refused one already; this keeps one put there since from being followed).
    private static func lock(_ path: String, exclusive: Bool, follow: Bool = true) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW))
        guard fd >= 0 else {
            throw CustomizeError(image: path, "cannot open: \(String(cString: strerror(errno)))",
                                 hint: "check the path and its permissions")
        }
        return try lock(owning: fd, path, exclusive: exclusive)
    }

    private static func lock(descriptor: Int32, _ path: String, exclusive: Bool) throws -> Int32 {
        let fd = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        guard fd >= 0 else {
            throw CustomizeError(image: path, "cannot duplicate its descriptor: \(String(cString: strerror(errno)))")
        }
        return try lock(owning: fd, path, exclusive: exclusive)
    }

    private static func lock(owning fd: Int32, _ path: String, exclusive: Bool) throws -> Int32 {
        guard flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 else {
            close(fd)
            throw CustomizeError(image: path, exclusive
                ? "another imgcustomize run is working on this image"
                : "another imgcustomize run is changing this image in place",
                hint: "wait for it to finish; a run that changes an image in place excludes every other run on it")
        }
        return fd
    }

    /// Makes this run's scratch directory beside the destination unless another live run has one for the same
    /// destination. The look and the making happen under an exclusive lock on the directory, held for that moment
    /// only, so of two runs starting together exactly one finds the other's.
    private static func claimScratch(in directory: String, prefix: String, image: String,
                                     destination: String) throws -> TemporaryDirectory {
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { if directoryDescriptor >= 0 { close(directoryDescriptor) } }
        if directoryDescriptor >= 0 {
            // Another run holds it for a directory listing and a mkdir: a few milliseconds.
            var tries = 0
            while flock(directoryDescriptor, LOCK_EX | LOCK_NB) != 0, errno == EWOULDBLOCK, tries < 500 {
                usleep(10_000)
                tries += 1
            }
        }
        if let live = TemporaryDirectory.live(in: directory, prefix: prefix) {
            throw CustomizeError(image: image, "another imgcustomize run is writing \(destination) (its scratch "
                                 + "directory \(live) is in use)",
                                 hint: "wait for it to finish, or write the result to another path")
        }
        return try TemporaryDirectory(in: directory, prefix: prefix)
    }

    static func freeBytes(_ directory: String) -> Int64? {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    private static func sameFilesystem(_ first: String, _ second: String) -> Bool {
        var a = stat(), b = stat()
        return stat(first, &a) == 0 && stat(second, &b) == 0 && a.st_dev == b.st_dev
    }
}

func fsyncPath(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw CustomizeError(image: path, "cannot open for fsync: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw CustomizeError(image: path, "fsync failed: \(String(cString: strerror(errno)))") }
}

extension Transaction {
    /// Removes the scratch directory of every transaction still open in this process, leaving each destination as
    /// it was. For a caller about to exit without unwinding (a second Ctrl-C): a cancelled run removes its own.
    public static func removeAllScratch() {
        ScratchRegistry.shared.removeAll()
    }
}
