import Foundation
import Testing
@testable import Formats

/// What qemu-img writes, read back byte for byte against `qemu-img convert -O raw`.
@Suite struct QCOW2ReaderTests {
    struct Variant: CustomTestStringConvertible, Sendable {
        var compat: String
        var clusterSize: Int
        /// -c with this compression_type, or nil for plain clusters.
        var compression: String?
        var parallel = false
        var extendedL2 = false

        var testDescription: String {
            "compat \(compat), \(clusterSize) B clusters, \(compression ?? "uncompressed")\(parallel ? ", -W" : "")\(extendedL2 ? ", extended L2" : "")"
        }
    }

    static let variants: [Variant] = [
        Variant(compat: "0.10", clusterSize: 65536, compression: "zlib"),
        Variant(compat: "0.10", clusterSize: 4096, compression: nil),
        Variant(compat: "1.1", clusterSize: 65536, compression: "zlib"),
        Variant(compat: "1.1", clusterSize: 65536, compression: "zlib", parallel: true),
        Variant(compat: "1.1", clusterSize: 65536, compression: "zstd", parallel: true),
        Variant(compat: "1.1", clusterSize: 4096, compression: "zstd"),
        Variant(compat: "1.1", clusterSize: 512, compression: "zlib"),
        Variant(compat: "1.1", clusterSize: 512, compression: nil),
        Variant(compat: "1.1", clusterSize: 2 << 20, compression: "zlib", parallel: true),
        Variant(compat: "1.1", clusterSize: 2 << 20, compression: "zstd"),
        Variant(compat: "1.1", clusterSize: 65536, compression: nil, extendedL2: true),
        Variant(compat: "1.1", clusterSize: 65536, compression: "zlib", extendedL2: true),
        Variant(compat: "1.1", clusterSize: 2 << 20, compression: nil, extendedL2: true),
    ]

    @Test(arguments: variants)
    func readsWhatQemuWrote(_ variant: Variant) throws {
        let scratch = try Scratch()
        // 3 MiB and 7 sectors: not a multiple of any cluster size but 512.
        let raw = try scratch.guestDisk("guest.raw", size: 3 << 20 + 7 * 512)
        let image = scratch.path("guest.qcow2")
        var options = ["compat=\(variant.compat)", "cluster_size=\(variant.clusterSize)"]
        if variant.extendedL2 { options.append("extended_l2=on") }
        if variant.compression == "zstd" { options.append("compression_type=zstd") }
        var arguments = ["convert", "-f", "raw", "-O", "qcow2", "-o", options.joined(separator: ",")]
        if variant.compression != nil { arguments.append("-c") }
        if variant.parallel { arguments.append("-W") }
        try run("qemu-img", arguments + [raw, image])
        // Rewrites in place: uncompressed clusters among compressed ones, zero clusters (zero-flagged in v3),
        // and with extended L2 partly allocated and zeroed subclusters.
        try run("qemu-io", ["-f", "qcow2",
                                     "-c", "write -P 0x5a 300k 5k",
                                     "-c", "write -z 1024k 192k",
                                     "-c", "write -z 2050k 4k",
                                     "-c", "write -P 0x33 3000k 3k",
                                     image])

        let expected = try scratch.qemuContents(image)
        let reader = try QCOW2Reader(path: image)
        #expect(reader.virtualSize == UInt64(expected.count))
        #expect(try readAll(reader) == expected)
        #expect(try readAll(reader, chunk: 100_003) == expected)

        // Every non-zero byte lies in a data extent, and the extents tile the image.
        let extents = try reader.extents(in: 0..<reader.virtualSize)
        var position: UInt64 = 0
        for extent in extents {
            #expect(extent.offset == position)
            position = extent.end
            if extent.kind != .data {
                #expect(expected[Int(extent.offset)..<Int(extent.end)].allSatisfy { $0 == 0 })
            }
        }
        #expect(position == reader.virtualSize)
    }

    @Test(arguments: ["0", "512", "70000"])
    func readsEmptyAndTinyImages(_ size: String) throws {
        let scratch = try Scratch()
        let image = scratch.path("tiny.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", image, size])
        if size != "0" { try run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x7e 0 512", image]) }
        let reader = try QCOW2Reader(path: image)
        #expect(try readAll(reader) == scratch.qemuContents(image))
    }

    @Test func readsQcow2OverQcow2OnlyWhenAllowed() throws {
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("base.raw", size: 2 << 20)
        let base = scratch.path("base.qcow2")
        try run("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", raw, base])
        let overlay = scratch.path("overlay.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", overlay, "3M"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x44 100k 70k", "-c", "write -z 1M 64k",
                                     "-c", "write -P 0x45 2500k 10k", overlay])

        #expect {
            _ = try openImage(path: overlay)
        } throws: { error in
            guard let error = error as? FormatError else { return false }
            return error.file == overlay && error.message.contains("backing file \"base.qcow2\"")
        }
        let reader = try openImage(path: overlay, allowBacking: true)
        #expect(try readAll(reader, chunk: 65_000) == scratch.qemuContents(overlay))
    }

    @Test func readsQcow2OverRawPastTheBackingFilesEnd() throws {
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("base.raw", size: 1 << 20)
        let overlay = scratch.path("overlay.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", raw, "-F", "raw", overlay, "2M"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x46 900k 200k", overlay])
        let reader = try openImage(path: overlay, format: .qcow2, allowBacking: true)
        #expect(try readAll(reader) == scratch.qemuContents(overlay))
    }

    @Test func refusesBackingFileWithoutRecordedFormat() throws {
        let scratch = try Scratch()
        let base = scratch.path("base.raw")
        try run("qemu-img", ["create", "-q", "-f", "raw", base, "1M"])
        let overlay = scratch.path("overlay.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", overlay, "1M"])
        // Turn the backing format extension into an unknown one, which readers skip.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: overlay)).prefix(4096))
        let marker: [UInt8] = [0xE2, 0x79, 0x2A, 0xCA]
        let at = try #require((0..<bytes.count - 4).first { Array(bytes[$0..<$0 + 4]) == marker })
        try patch(overlay, at: UInt64(at), [0x0B, 0xAD, 0xBE, 0xEF])
        #expect {
            _ = try openImage(path: overlay, allowBacking: true)
        } throws: { error in
            (error as? FormatError)?.message.contains("no recorded format") == true
        }
    }
}

/// Corrupt images give a FormatError naming the file and the offset of the bad field, never a trap.
@Suite struct QCOW2CorruptionTests {
    /// A 1 MiB image of 64 KiB clusters, its header and its first L2 table's offset and first used entry index.
    struct Sample {
        var path: String
        var header: QCOW2Header
        var l2Offset: UInt64
        var entryIndex: Int
        var entry: UInt64
        var fileSize: UInt64
    }

    func sample(_ scratch: Scratch, compressed: Bool) throws -> Sample {
        let raw = try scratch.guestDisk("guest.raw", size: 1 << 20)
        let image = scratch.path("guest.qcow2")
        try run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2"] + (compressed ? ["-c"] : []) + [raw, image])
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: image)))
        let header = try QCOW2Header(prefix: Array(data.prefix(QCOW2Header.prefixLength)), fileSize: Int64(data.count), file: image)
        let cursor = ByteCursor(data, file: image)
        let l2Offset = try cursor.bigEndian(UInt64.self, at: Int(header.l1TableOffset)) & QCOW2Reader.offsetMask
        let index = try #require((0..<header.l2Entries).first { try cursor.bigEndian(UInt64.self, at: Int(l2Offset) + $0 * 8) != 0 })
        let entry = try cursor.bigEndian(UInt64.self, at: Int(l2Offset) + index * 8)
        return Sample(path: image, header: header, l2Offset: l2Offset, entryIndex: index, entry: entry, fileSize: UInt64(data.count))
    }

    func expectError(_ path: String, offset: UInt64, _ body: () throws -> Void) {
        #expect {
            try body()
        } throws: { error in
            guard let error = error as? FormatError else { return false }
            return error.file == path && error.offset == Int64(offset)
        }
    }

    @Test func l1EntryBeyondTheEnd() throws {
        let scratch = try Scratch()
        let s = try sample(scratch, compressed: false)
        try patch(s.path, at: s.header.l1TableOffset, bigEndianBytes((s.fileSize + 1 << 20) & ~0xFFFF | 1 << 63))
        let reader = try QCOW2Reader(path: s.path)
        expectError(s.path, offset: s.header.l1TableOffset) { _ = try readAll(reader) }
        expectError(s.path, offset: s.header.l1TableOffset) { _ = try reader.extents(in: 0..<reader.virtualSize) }
    }

    @Test func l2EntryBeyondTheEnd() throws {
        let scratch = try Scratch()
        let s = try sample(scratch, compressed: false)
        let at = s.l2Offset + UInt64(s.entryIndex) * 8
        try patch(s.path, at: at, bigEndianBytes((s.fileSize + 1 << 30) & ~0xFFFF | 1 << 63))
        expectError(s.path, offset: at) { _ = try readAll(QCOW2Reader(path: s.path)) }
    }

    @Test func l2EntryNotAligned() throws {
        let scratch = try Scratch()
        let s = try sample(scratch, compressed: false)
        let at = s.l2Offset + UInt64(s.entryIndex) * 8
        try patch(s.path, at: at, bigEndianBytes(s.entry + 512))
        expectError(s.path, offset: at) { _ = try readAll(QCOW2Reader(path: s.path)) }
    }

    @Test func compressedDescriptorOutsideTheFile() throws {
        let scratch = try Scratch()
        let s = try sample(scratch, compressed: true)
        #expect(s.entry & QCOW2Reader.compressedFlag != 0)
        let outside = s.fileSize + 12345
        try patch(s.path, at: s.l2Offset + UInt64(s.entryIndex) * 8, bigEndianBytes(QCOW2Reader.compressedFlag | outside))
        expectError(s.path, offset: outside) { _ = try readAll(QCOW2Reader(path: s.path)) }
    }

    @Test func compressedDataThatDoesNotDecode() throws {
        let scratch = try Scratch()
        let s = try sample(scratch, compressed: true)
        let reader = try QCOW2Reader(path: s.path)
        let (offset, length) = reader.compressedLocation(s.entry)
        try patch(s.path, at: offset, [UInt8](repeating: 0xFF, count: min(length, 64)))
        expectError(s.path, offset: offset) { _ = try readAll(QCOW2Reader(path: s.path)) }
    }

    @Test func refcountTableBeyondTheEnd() throws {
        let scratch = try Scratch()
        let s = try sample(scratch, compressed: false)
        try patch(s.path, at: 48, bigEndianBytes(s.fileSize + 1 << 20 & ~0xFFFF))
        expectError(s.path, offset: 48) { _ = try QCOW2Reader(path: s.path) }
    }

    @Test func refcountOrderOutOfRange() throws {
        let scratch = try Scratch()
        let s = try sample(scratch, compressed: false)
        try patch(s.path, at: 96, [0, 0, 0, 9])
        expectError(s.path, offset: 96) { _ = try QCOW2Reader(path: s.path) }
    }

    @Test func unknownIncompatibleFeature() throws {
        let scratch = try Scratch()
        let s = try sample(scratch, compressed: false)
        try patch(s.path, at: 72, bigEndianBytes(1 << 40))
        expectError(s.path, offset: 72) { _ = try QCOW2Reader(path: s.path) }
    }
}
