import Glibc

/// What makes an image file the one that was checked: the file (device and inode), its size, its modification and
/// status-change times, and a CRC-32 of its first and last 64 KiB. Taken from the descriptor the safety check reads,
/// and compared with what the path names just before a run commits: a file replaced, rewritten, truncated or grown
/// by another program in between is noticed. (The status-change time moves on every write and cannot be set back;
/// the sample covers writes landing within the timestamp granularity, where headers live.)
public struct ImageIdentity: Sendable, Equatable {
    public let path: String
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modified: Timestamp
    let changed: Timestamp
    let sample: UInt32

    struct Timestamp: Sendable, Equatable, CustomStringConvertible {
        var seconds: Int
        var nanoseconds: Int
        init(_ time: timespec) { (seconds, nanoseconds) = (time.tv_sec, time.tv_nsec) }
        var description: String { "\(seconds).\(String(nanoseconds + 1_000_000_000).dropFirst())" }
    }

    static let sampleBytes = 64 << 10

    /// The identity of the file open at `descriptor`, named `path`.
    init(descriptor: Int32, path: String) throws {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw FormatError.system(file: path, "stat") }
        self.path = path
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        if status.st_mode & S_IFMT == S_IFBLK {
            size = Int64(lseek(descriptor, 0, SEEK_END))
        } else {
            size = Int64(status.st_size)
        }
        modified = Timestamp(status.st_mtim)
        changed = Timestamp(status.st_ctim)
        var crc = CRC32.start
        for offset in Set([0, max(0, size - Int64(Self.sampleBytes))]).sorted() {
            var bytes = [UInt8](repeating: 0, count: Self.sampleBytes)
            let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
            guard count >= 0 else { throw FormatError.system(file: path, offset: offset, "read") }
            crc = CRC32.update(crc, bytes[0..<count])
        }
        sample = CRC32.finish(crc)
    }

    /// The identity of what `path` names now. O_NONBLOCK: a FIFO put in the image's place must not hang the check
    /// that is there to notice it.
    public init(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw FormatError.system(file: path, "open") }
        defer { close(descriptor) }
        try self.init(descriptor: descriptor, path: path)
    }

    /// How what `path` names now differs from this identity, in words; empty when it is the same file, unchanged.
    public func changesSince() -> [String] {
        let now: ImageIdentity
        do {
            now = try ImageIdentity(path: path)
        } catch {
            return ["it can no longer be read (\(error))"]
        }
        if now.device != device || now.inode != inode {
            return ["another file was put in its place (inode \(inode) is now \(now.inode))"]
        }
        var changes: [String] = []
        if now.size != size { changes.append("its size went from \(size) to \(now.size) bytes") }
        if now.modified != modified { changes.append("its modification time went from \(modified) to \(now.modified)") }
        if now.changed != changed, now.modified == modified { changes.append("its status-change time moved") }
        if now.sample != sample { changes.append("its first or last 64 KiB changed") }
        return changes
    }
}

/// An image that passed the safety check, and the identity of the file that was checked.
public struct CheckedImage: Sendable {
    public let inspection: ImageInspection
    public let identity: ImageIdentity
    public var path: String { identity.path }
}

extension ImageInspector {
    /// Inspects and refuses like `requireSafe`, and records the identity of the file read, for a run to make sure
    /// at its end that it is still working on that file. An image a running qemu has open for writing is refused as
    /// qemu-img refuses it, unless the policy forces sharing.
    public static func check(path: String, policy: SafetyPolicy = .init()) throws -> CheckedImage {
        let file = try HeaderFile(path: path, access: policy.access)
        defer { file.close() }
        try file.withDescriptor { try QemuImageLock.check(descriptor: $0, path: path, forceShare: policy.forceShare) }
        return try check(file: file, policy: policy)
    }

    /// Inspects and refuses the image already open as `file`, reading it through that descriptor only.
    public static func check(file: HeaderFile, policy: SafetyPolicy = .init()) throws -> CheckedImage {
        let identity = try file.withDescriptor { try ImageIdentity(descriptor: $0, path: file.name) }
        var inspection = try inspect(source: file, actualSize: UInt64(max(file.allocatedSize, 0)), policy: policy)
        inspection.linkTarget = file.linkTarget
        try inspection.requireSafe()
        return CheckedImage(inspection: inspection, identity: identity)
    }
}
