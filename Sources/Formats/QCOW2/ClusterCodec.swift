import CCompress
import Synchronization

/// Decompresses qcow2 compressed clusters the way qemu does: deflate is raw (no zlib header) and decoded in one
/// call into a full-cluster buffer, so any window size decodes; zstd is one frame, and bytes after it are sector
/// padding. Decoder states are pooled so that concurrent readers do not allocate one per cluster.
final class ClusterDecompressor: Sendable {
    // Pointers kept as bit patterns: a decoder is used by one thread at a time, between pop and push.
    fileprivate let deflaters = Mutex<[UInt]>([])
    private let zstdContexts = Mutex<[UInt]>([])

    deinit {
        deflaters.withLock { for d in $0 { libdeflate_free_decompressor(OpaquePointer(bitPattern: d)) } }
        zstdContexts.withLock { for c in $0 { ZSTD_freeDCtx(OpaquePointer(bitPattern: c)) } }
    }

    /// Decodes `input` into exactly `output.count` bytes; anything else is an error naming `file` and `offset`.
    func decompress(_ type: QCOW2Header.CompressionType, _ input: UnsafeRawBufferPointer,
                    into output: UnsafeMutableRawBufferPointer, file: String, offset: UInt64) throws {
        func fail(_ why: String) -> FormatError {
            FormatError(file: file, offset: Int64(clamping: offset), "compressed cluster does not decode: \(why)")
        }
        guard let source = input.baseAddress, let destination = output.baseAddress else {
            throw fail("empty compressed data")
        }
        switch type {
        case .deflate:
            guard let d = OpaquePointer(bitPattern: deflaters.withLock { $0.popLast() } ?? 0) ?? libdeflate_alloc_decompressor() else {
                throw fail("out of memory for a deflate decoder")
            }
            defer { deflaters.withLock { $0.append(UInt(bitPattern: d)) } }
            var produced = 0
            let result = libdeflate_deflate_decompress(d, source, input.count, destination, output.count, &produced)
            guard result == LIBDEFLATE_SUCCESS else {
                throw fail(result == LIBDEFLATE_INSUFFICIENT_SPACE ? "deflate data expands beyond the cluster size" : "bad deflate data")
            }
            guard produced == output.count else {
                throw fail("deflate data yields \(produced) bytes, not the cluster size \(output.count)")
            }
        case .zstd:
            guard let c = OpaquePointer(bitPattern: zstdContexts.withLock { $0.popLast() } ?? 0) ?? ZSTD_createDCtx() else {
                throw fail("out of memory for a zstd decoder")
            }
            defer { zstdContexts.withLock { $0.append(UInt(bitPattern: c)) } }
            let frame = ZSTD_findFrameCompressedSize(source, input.count)
            guard ZSTD_isError(frame) == 0 else { throw fail(String(cString: ZSTD_getErrorName(frame))) }
            let produced = ZSTD_decompressDCtx(c, destination, output.count, source, frame)
            guard ZSTD_isError(produced) == 0 else { throw fail(String(cString: ZSTD_getErrorName(produced))) }
            guard produced == output.count else {
                throw fail("zstd frame yields \(produced) bytes, not the cluster size \(output.count)")
            }
        }
    }
}

extension ClusterDecompressor {
    /// Decodes a zlib stream (RFC 1950, as VMDK's compressed grains hold) into at most `output.count` bytes with a
    /// pooled decoder; returns how many it produced, or nil when the data is not zlib or expands beyond `output`.
    func inflateZlib(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> (produced: Int, overflow: Bool)? {
        guard let d = OpaquePointer(bitPattern: deflaters.withLock { $0.popLast() } ?? 0) ?? libdeflate_alloc_decompressor() else {
            return nil
        }
        defer { deflaters.withLock { $0.append(UInt(bitPattern: d)) } }
        var produced = 0
        let result = libdeflate_zlib_decompress(d, input.baseAddress, input.count, output.baseAddress, output.count, &produced)
        switch result {
        case LIBDEFLATE_SUCCESS: return (produced, false)
        case LIBDEFLATE_INSUFFICIENT_SPACE: return (0, true)
        default: return nil
        }
    }
}

/// One thread's compressor for whole clusters. Returns nil when the compressed form would not be smaller than
/// the cluster, the point where qemu stores the cluster uncompressed.
final class ClusterCompressor {
    private let level: Int32
    private var deflater: OpaquePointer?
    private var zstdContext: OpaquePointer?

    init(_ type: QCOW2Header.CompressionType, level: Int32) throws {
        self.level = level
        switch type {
        case .deflate:
            guard let d = libdeflate_alloc_compressor(level) else {
                throw FormatError(file: "libdeflate", "cannot create a compressor at level \(level)")
            }
            deflater = d
        case .zstd:
            guard let c = ZSTD_createCCtx() else { throw FormatError(file: "zstd", "cannot create a compressor") }
            zstdContext = c
        }
    }

    deinit {
        if let deflater { libdeflate_free_compressor(deflater) }
        if let zstdContext { ZSTD_freeCCtx(zstdContext) }
    }

    /// Compresses `input` into `output` (which should hold `input.count - 1` bytes); the compressed length, or
    /// nil when it does not fit.
    func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard let source = input.baseAddress, let destination = output.baseAddress else { return nil }
        if let deflater {
            let n = libdeflate_deflate_compress(deflater, source, input.count, destination, output.count)
            return n == 0 ? nil : n
        }
        if let zstdContext {
            let n = ZSTD_compressCCtx(zstdContext, destination, output.count, source, input.count, level)
            return ZSTD_isError(n) != 0 ? nil : n
        }
        return nil
    }
}
