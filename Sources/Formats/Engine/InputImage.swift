import Glibc

/// An image opened once to be read whole, as `convert` reads its input: opened without following a final symlink
/// (unless the access allows it) and without blocking on a FIFO, checked to be a regular file (or an allowed block
/// device), locked as `qemu-img` locks what it reads (`QemuImageLock`), inspected and refused when unsafe, and
/// read through that same descriptor. Whatever is put at its path after the open (a symlink to another file, a
/// FIFO) is never read.
public final class InputImage: Sendable {
    public let checked: CheckedImage
    /// The guest's bytes, read through the one descriptor.
    public let source: any ImageSource
    private let file: ImageFile

    public var path: String { file.path }

    public init(path: String, policy: SafetyPolicy = .init()) throws {
        let header = try HeaderFile(path: path, access: policy.access)
        defer { header.close() }
        let file = try header.imageFile()
        try QemuImageLock.lockForReading(descriptor: file.descriptor, path: path, forceShare: policy.forceShare)
        checked = try ImageInspector.check(file: header, policy: policy)
        source = try openImage(file: file, format: checked.inspection.format, allowBacking: policy.allowBackingFile,
                               depth: 0)
        self.file = file
    }

    /// Whether `other` names this very file (same device and inode) however it is spelt: another name for it, a
    /// `..` detour, a hard link, a symlink to it. False when nothing is at `other`.
    public func isSameFile(as other: String) -> Bool {
        var mine = stat(), theirs = stat()
        guard fstat(file.descriptor, &mine) == 0, stat(other, &theirs) == 0 else { return false }
        return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino
    }

    /// Fails when the file changed while it was read: its size or modification time moved (a writer, a truncation),
    /// which the read itself may not have noticed.
    public func requireUnchanged() throws {
        if let change = file.changeSinceOpened() {
            throw FormatError(file: path, "\(change); the copy would mix two states of the image")
        }
    }

    /// Runs `body` with the descriptor the image is read through (borrowed: `body` must not close it), for a lock
    /// that must cover this very file.
    public func withDescriptor<T>(_ body: (Int32) throws -> T) rethrows -> T {
        try body(file.descriptor)
    }
}
