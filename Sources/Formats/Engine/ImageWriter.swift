import Foundation
import CCompress
import CLinux
import Glibc
import Logging
import Synchronization

/// How clusters are stored in a qcow2 output. The names are qemu's `compression_type` values.
public enum ClusterCompression: String, Sendable, CaseIterable {
    case none, zlib, zstd
}

public struct WriteOptions: Sendable {
    public var format: OutputFormat
    public var compression: ClusterCompression
    /// qcow2 cluster size, a power of two from 512 to 2 MiB.
    public var clusterSize: Int
    /// Compression level; nil picks the default for the compression (see `defaultLevel`).
    public var level: Int32?
    public var threads: Int
    /// The output is on the device when `write` returns (fsync). Off, it may still be in the page cache, as
    /// `qemu-img convert` leaves it by default: for an output read at once and then removed (Glance's staging
    /// area), where a crash loses nothing anyone kept.
    public var durable: Bool

    public init(format: OutputFormat = .qcow2, compression: ClusterCompression = .zlib, clusterSize: Int = 65536,
                level: Int32? = nil, threads: Int = WriteOptions.defaultThreads, durable: Bool = true) {
        self.format = format
        self.compression = compression
        self.clusterSize = clusterSize
        self.level = level
        self.threads = threads
        self.durable = durable
    }

    /// Two workers per core: a worker blocked reading the source (a page cache miss, a backing file) leaves its
    /// core to another instead of idling it.
    public static var defaultThreads: Int { 2 * ProcessInfo.processInfo.activeProcessorCount }

    /// The levels each compression accepts: libdeflate's 0 to 12, zstd's own range (negative levels are its
    /// fastest).
    public static func levels(_ compression: ClusterCompression) -> ClosedRange<Int32> {
        switch compression {
        case .zlib: 0...12
        case .zstd: Int32(ZSTD_minCLevel())...Int32(ZSTD_maxCLevel())
        case .none: 0...0
        }
    }

    /// Refuses options no write could honour, naming `output`: what a command calls before it opens anything for
    /// writing, so that a bad option never costs the user a file.
    public func validate(output: String) throws {
        guard clusterSize >= 512, clusterSize <= 2 << 20, clusterSize & (clusterSize - 1) == 0 else {
            throw FormatError(file: output, "cluster size \(clusterSize) is not a power of two from 512 to 2097152")
        }
        guard let level else { return }
        if format == .raw {
            throw FormatError(file: output, "a compression level (\(level)) means nothing for a raw output, which is never compressed")
        }
        if compression == .none {
            throw FormatError(file: output, "a compression level (\(level)) means nothing without compression; choose --compress zlib or zstd")
        }
        let range = Self.levels(compression)
        guard range.contains(level) else {
            throw FormatError(file: output, "compression level \(level) is out of \(compression.rawValue)'s range, \(range.lowerBound) to \(range.upperBound)")
        }
    }

    /// libdeflate level 4 output is ~5% smaller than qemu's zlib level 6 (whose 4 KiB window costs more than
    /// libdeflate's quicker parsing) for a third of its CPU time; zstd level 1 takes half the CPU of qemu's default
    /// level 3 for ~4% more bytes. Measured on x86-64 binaries with scripts/bench-convert.
    public static func defaultLevel(_ compression: ClusterCompression) -> Int32 {
        switch compression {
        case .zlib: 4
        case .zstd: 1
        case .none: 0
        }
    }
}

/// How far a write has got, in guest bytes.
public struct WriteProgress: Sendable, Equatable {
    public var bytesDone: UInt64
    public var bytesTotal: UInt64
}

public struct WriteStats: Sendable, Equatable {
    /// The disk's size in bytes.
    public var virtualSize: UInt64 = 0
    /// Guest bytes read from the source (allocated extents only).
    public var bytesRead: UInt64
    /// qcow2 clusters stored, or 4 KiB blocks written for raw.
    public var clustersWritten: UInt64
    /// Bytes of the output file (for raw, its length; holes take no space).
    public var outputSize: UInt64
    public var seconds: Double
}

/// Rewrites an image: qcow2 v3 (no backing file, no data file; clusters deflate or zstd compressed, or stored) or
/// sparse raw. Clusters that read as zeros are never written, and holes are never read: only the batches the
/// source's extent map shows data in become work (`BatchPlanner`). Reading and compression run on `threads`
/// threads, a MiB at a time (qcow2 clusters are placed in order by one consumer, raw blocks written by the
/// workers), so memory stays bounded whatever the image size.
///
/// The file at `path` is written in place: a caller replacing a user's file writes in a scratch directory and
/// renames (`Conversion` and the pipeline in Customize, through their `Transaction`).
public struct ImageWriter: Sendable {
    public var options: WriteOptions
    private static let logger = Logger(label: "imgcustomize.formats.writer")
    /// Guest bytes handed to one worker at a time (or the cluster, when larger): small enough that the batches in
    /// flight stay in the CPU's cache between the read, the compression and the write. On this project's 2-core VM
    /// a qcow2-to-raw conversion of the 6 GiB rhel7 fixture took 0.29 s with 1 MiB, 0.34 s with 512 KiB and 1.1 to
    /// 2.5 s with 4 MiB, whose copies missed the cache (scripts/bench-glance).
    static let batchBytes: UInt64 = 1 << 20
    /// Raw outputs skip zeros at this granularity, like `qemu-img convert -S 4k`.
    static let rawBlock = 4096

    public init(_ options: WriteOptions = WriteOptions()) {
        self.options = options
    }

    /// Writes `source` to `path` (created or truncated), fsyncs it unless `durable` is off, and returns what it did.
    /// On failure the output file is removed. `progress` is called on the calling thread each time a batch is
    /// written, and after each stretch of holes; what it throws (a cancelled run) stops the write the same way.
    public func write(_ source: any ImageSource, to path: String,
                      progress: (WriteProgress) throws -> Void = { _ in }) throws -> WriteStats {
        try options.validate(output: path)
        let clusterSize = options.clusterSize
        let began = Date()
        let total = source.virtualSize
        // qemu refuses L1 tables over 32 MiB.
        let clusters = total / UInt64(clusterSize) + (total % UInt64(clusterSize) == 0 ? 0 : 1)
        let l1Entries = clusters / UInt64(clusterSize / 8) + 1
        guard options.format == .raw || l1Entries <= 32 << 20 / 8 else {
            throw FormatError(file: path, "a virtual size of \(total) bytes needs an L1 table over qemu's 32 MiB with \(clusterSize)-byte clusters; use larger clusters")
        }
        // Never through a symlink, never over a device node (the failure path below unlinks what it opened).
        var entry = stat()
        if lstat(path, &entry) == 0, let kind = FileAccess.kind(entry.st_mode) {
            throw FormatError(file: path, "is \(kind); the output must be a new path or a regular file")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw FormatError.system(file: path, "create") }
        var keep = false
        defer {
            close(fd)
            if !keep { unlink(path) }
        }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw FormatError(file: path, "output is not a regular file")
        }
        let output = OutputFile(descriptor: fd, path: path)

        let compression = options.format == .raw ? ClusterCompression.none : options.compression
        let level = options.level ?? WriteOptions.defaultLevel(compression)
        // A raw output's blocks have fixed places, so the workers write them themselves, in parallel; only qcow2's
        // clusters, placed as they come, need the ordered consumer.
        let plan = BatchPlan(source: source, clusterSize: options.format == .raw ? Self.rawBlock : clusterSize,
                             compression: compression, level: level,
                             rawOutput: options.format == .raw ? output : nil, writeback: options.durable,
                             buffers: BufferPool())
        var qcow2 = options.format == .qcow2
            ? QCOW2Output(file: output, virtualSize: total, clusterBits: clusterSize.trailingZeroBitCount,
                          compression: compression == .zstd ? .zstd : .deflate)
            : nil
        // A raw output has its length from the start: writes within the file's size are cheaper for the filesystem
        // than writes that extend it.
        if options.format == .raw {
            guard ftruncate(fd, off_t(total)) == 0 else {
                throw FormatError.system(file: path, "setting the length to \(total)")
            }
        }
        var stats = WriteStats(virtualSize: total, bytesRead: 0, clustersWritten: 0, outputSize: 0, seconds: 0)
        let batchBytes = plan.batchBytes
        let threads = max(1, options.threads)
        var planner = BatchPlanner(source: source, batchBytes: batchBytes)
        var reported: UInt64?

        // Only batches holding data are work: a run's time follows the data, not the virtual size.
        while let starts = try planner.next() {
            if starts.isEmpty {
                // Holes only so far: progress (and with it a cancellation) still gets its turn.
                try progress(WriteProgress(bytesDone: planner.position, bytesTotal: total))
                reported = planner.position
                continue
            }
            try runOrdered(count: starts.count, threads: threads, window: threads + 2,
                           makeState: { try plan.makeCompressor() },
                           work: { compressor, index in try plan.run(from: starts[index], compressor: compressor) },
                           consume: { _, batch in
                defer { plan.buffers.recycle(batch) }
                stats.bytesRead += batch.bytesRead
                if qcow2 != nil {
                    for cluster in batch.clusters {
                        let bytes = cluster.compressed ? batch.compressed : batch.input
                        try bytes.withUnsafeBytes {
                            try qcow2?.append(cluster: cluster.guestCluster, UnsafeRawBufferPointer(rebasing: $0[cluster.range]),
                                              compressed: cluster.compressed)
                        }
                    }
                    stats.clustersWritten += UInt64(batch.clusters.count)
                } else {
                    for cluster in batch.clusters {
                        stats.clustersWritten += UInt64((cluster.range.count + Self.rawBlock - 1) / Self.rawBlock)
                    }
                }
                let done = min(batch.start + batchBytes, total)
                try progress(WriteProgress(bytesDone: done, bytesTotal: total))
                reported = done
            })
        }
        if reported != total { try progress(WriteProgress(bytesDone: total, bytesTotal: total)) }

        if qcow2 != nil {
            stats.outputSize = try qcow2?.finish() ?? 0
        } else {
            stats.outputSize = total
        }
        if options.durable {
            guard fsync(fd) == 0 else { throw FormatError.system(file: path, "fsync") }
        }
        keep = true
        stats.seconds = Date().timeIntervalSince(began)
        Self.logger.debug("wrote \(path): \(stats.clustersWritten) clusters, \(stats.outputSize) bytes in \(stats.seconds) s")
        return stats
    }
}

/// The output file, written with pwrite.
struct OutputFile: Sendable {
    let descriptor: Int32
    let path: String

    /// Has the kernel start writing `range` to the device now, without waiting: the fsync at the end then finds
    /// most of the file already written instead of writing it all while the caller waits. Advisory; errors are
    /// the fsync's to report.
    func startWriteback(_ range: Range<UInt64>) {
        _ = sync_file_range(descriptor, Int64(range.lowerBound), Int64(range.count), UInt32(IMGCUSTOMIZE_SYNC_FILE_RANGE_WRITE))
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, base + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError.system(file: path, offset: Int64(offset) + Int64(done), "write")
            }
            done += n
        }
    }
}

/// One batch's clusters to store, in guest order.
struct Batch: Sendable {
    struct Stored: Sendable {
        var guestCluster: UInt64
        var compressed: Bool
        /// Bytes in `compressed` or `input`.
        var range: Range<Int>
    }

    var start: UInt64
    var input: [UInt8] = []
    var compressed: [UInt8] = []
    var clusters: [Stored] = []
    var bytesRead: UInt64 = 0
}

/// What a worker does with one batch: read the allocated extents, drop zero clusters, compress the rest.
struct BatchPlan: Sendable {
    let source: any ImageSource
    /// The unit of zero detection and storage: the qcow2 cluster, or the raw block.
    let clusterSize: Int
    let compression: ClusterCompression
    let level: Int32
    /// Set for a raw output, which `run` writes to.
    let rawOutput: OutputFile?
    /// Start the device writes of each raw batch at once, for the fsync at the end.
    let writeback: Bool
    let buffers: BufferPool

    var raw: Bool { rawOutput != nil }
    /// A multiple of the cluster size.
    var batchBytes: UInt64 { max(ImageWriter.batchBytes, UInt64(clusterSize)) }

    func makeCompressor() throws -> ClusterCompressor? {
        switch compression {
        case .none: nil
        case .zlib: try ClusterCompressor(.deflate, level: level)
        case .zstd: try ClusterCompressor(.zstd, level: level)
        }
    }

    /// Reads, sorts and compresses the batch at `start` (a multiple of `batchBytes`).
    func run(from start: UInt64, compressor: ClusterCompressor?) throws -> Batch {
        let end = min(start + batchBytes, source.virtualSize)
        var batch = Batch(start: start)
        let extents = try source.extents(in: start..<end).filter { $0.kind == .data }
        guard !extents.isEmpty else { return batch }

        let size = UInt64(clusterSize)
        let clusterCount = Int((end - start + size - 1) / size)
        let length = clusterCount * clusterSize
        // Only clusters holding data are looked at later; their bytes outside the data extents must read as zero.
        var hasData = [Bool](repeating: false, count: clusterCount)
        batch.input = buffers.take(length)
        try batch.input.withUnsafeMutableBytes { bytes in
            var covered = 0
            func zero(_ from: Int, _ to: Int) {
                let lower = max(from, 0), upper = min(to, length)
                guard lower < upper else { return }
                let firstCluster = lower / clusterSize, lastCluster = (upper - 1) / clusterSize
                // Zero only within clusters that also hold data: whole-zero clusters are never looked at.
                let head = min(upper, (firstCluster + 1) * clusterSize)
                UnsafeMutableRawBufferPointer(rebasing: bytes[lower..<head]).initializeMemory(as: UInt8.self, repeating: 0)
                if lastCluster > firstCluster {
                    let tail = lastCluster * clusterSize
                    UnsafeMutableRawBufferPointer(rebasing: bytes[tail..<upper]).initializeMemory(as: UInt8.self, repeating: 0)
                }
            }
            for extent in extents {
                let from = Int(extent.offset - start), to = Int(extent.end - start)
                zero(covered, from)
                try source.read(at: extent.offset, into: UnsafeMutableRawBufferPointer(rebasing: bytes[from..<to]))
                for c in from / clusterSize...(to - 1) / clusterSize { hasData[c] = true }
                covered = to
            }
            zero(covered, length)
        }
        batch.bytesRead = extents.reduce(0) { $0 + $1.length }

        if compressor != nil {
            batch.compressed = buffers.take(hasData.filter { $0 }.count * (clusterSize - 1))
        }
        var packed = 0
        batch.input.withUnsafeBytes { input in
            batch.compressed.withUnsafeMutableBytes { output in
                for c in 0..<clusterCount where hasData[c] {
                    let range = c * clusterSize..<(c + 1) * clusterSize
                    let cluster = UnsafeRawBufferPointer(rebasing: input[range])
                    if isZero(cluster) { continue }
                    let guestCluster = start / size + UInt64(c)
                    if raw, let last = batch.clusters.last, last.range.upperBound == range.lowerBound {
                        batch.clusters[batch.clusters.count - 1].range = last.range.lowerBound..<range.upperBound
                        continue
                    }
                    if let compressor,
                       let n = compressor.compress(cluster, into: UnsafeMutableRawBufferPointer(rebasing: output[packed..<packed + clusterSize - 1])) {
                        batch.clusters.append(.init(guestCluster: guestCluster, compressed: true, range: packed..<packed + n))
                        packed += n
                    } else {
                        batch.clusters.append(.init(guestCluster: guestCluster, compressed: false, range: range))
                    }
                }
            }
        }
        // The last raw block may run past the virtual size; the file is cut to it at the end.
        if raw, let last = batch.clusters.last, start + UInt64(last.range.upperBound) > end {
            batch.clusters[batch.clusters.count - 1].range = last.range.lowerBound..<Int(end - start)
        }
        if let rawOutput {
            try batch.input.withUnsafeBytes { input in
                for run in batch.clusters {
                    try rawOutput.write(UnsafeRawBufferPointer(rebasing: input[run.range]),
                                        at: start + UInt64(run.range.lowerBound))
                }
            }
            if writeback { rawOutput.startWriteback(start..<end) }
        }
        return batch
    }
}

/// Finds the batches that hold data from the source's extent map, a window of the virtual size at a time: a hole
/// of any size costs one extent query (SEEK_DATA on raw, one L1 entry per L2 range on qcow2), never a batch. The
/// window grows while it finds few extents, so a 64 PiB hole takes a few thousand queries, and shrinks when it finds
/// many, which keeps the extent lists and the batch lists in memory small.
struct BatchPlanner {
    let source: any ImageSource
    let batchBytes: UInt64
    /// Where the next window starts: everything before it is planned.
    private(set) var position: UInt64 = 0
    private var window: UInt64 = BatchPlanner.smallestWindow

    static let smallestWindow: UInt64 = 1 << 30
    static let largestWindow: UInt64 = 1 << 42
    /// Batches handed out at once: a GiB of work at 1 MiB batches.
    static let batchesAtOnce = 1024

    init(source: any ImageSource, batchBytes: UInt64) {
        self.source = source
        self.batchBytes = batchBytes
    }

    /// The starts of the next batches holding data, in order; empty when a window held none (so that the caller
    /// can report progress), nil at the end.
    mutating func next() throws -> [UInt64]? {
        let total = source.virtualSize
        guard position < total else { return nil }
        var starts: [UInt64] = []
        while position < total {
            // Windows end on batch boundaries, so that no batch is split between two of them.
            let end = position + min(window, total - position)
            let windowEnd = end == total ? total : min(total, max(position + batchBytes, end / batchBytes * batchBytes))
            let extents = try source.extents(in: position..<windowEnd)
            for extent in extents where extent.kind == .data && extent.length > 0 {
                var batch = extent.offset / batchBytes * batchBytes
                while batch < extent.end {
                    if starts.last.map({ $0 < batch }) ?? true { starts.append(batch) }
                    if starts.count == Self.batchesAtOnce {
                        // Enough for now; the next call goes on right after the last batch handed out.
                        position = batch + batchBytes
                        window = Self.smallestWindow
                        return starts
                    }
                    batch += batchBytes
                }
            }
            position = windowEnd
            if extents.count > 16384 {
                window = max(Self.smallestWindow, window / 2)
            } else if extents.count < 1024 {
                window = min(Self.largestWindow, window * 2)
            }
            // A window of holes alone is handed back empty, for progress.
            if starts.isEmpty { break }
        }
        return starts
    }
}

/// Batch buffers handed back by the consumer for the workers to reuse: fresh multi-MiB arrays cost a page fault
/// and a page clear per 4 KiB, a quarter of the CPU time of a zstd conversion.
final class BufferPool: Sendable {
    private let free = Mutex<[[UInt8]]>([])
    /// Enough for every batch in flight; more would only hold memory.
    private static let limit = 64

    /// A buffer of `count` bytes with arbitrary contents.
    func take(_ count: Int) -> [UInt8] {
        guard var buffer = free.withLock({ $0.popLast() }) else { return [UInt8](repeating: 0, count: count) }
        // Within the capacity a buffer once had, resizing touches no new pages.
        if buffer.count > count {
            buffer.removeLast(buffer.count - count)
        } else {
            buffer.append(contentsOf: repeatElement(0, count: count - buffer.count))
        }
        return buffer
    }

    func recycle(_ batch: Batch) {
        free.withLock { buffers in
            for buffer in [batch.input, batch.compressed] where !buffer.isEmpty && buffers.count < Self.limit {
                buffers.append(buffer)
            }
        }
    }
}

/// True when every byte is zero. memcmp against itself shifted by one byte uses glibc's vector code.
func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return true }
    return base.load(as: UInt8.self) == 0 && memcmp(base, base + 1, bytes.count - 1) == 0
}
