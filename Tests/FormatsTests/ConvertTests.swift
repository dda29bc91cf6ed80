import Foundation
import Synchronization
import Testing
@testable import Formats

/// What ImageWriter writes must pass `qemu-img check` and `qemu-img compare` with its source.
@Suite struct ConvertTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var compression: ClusterCompression
        var clusterSize: Int
        var testDescription: String { "\(compression), \(clusterSize) B clusters" }
    }

    static let cases: [Case] = [
        Case(compression: .zlib, clusterSize: 65536),
        Case(compression: .zstd, clusterSize: 65536),
        Case(compression: .none, clusterSize: 65536),
        Case(compression: .zlib, clusterSize: 512),
        Case(compression: .zstd, clusterSize: 4096),
        Case(compression: .zlib, clusterSize: 2 << 20),
        Case(compression: .none, clusterSize: 2 << 20),
    ]

    /// `qemu-img check` exits 0 (no corruption, no leaks: `run` throws on any other status) and says so.
    func expectClean(_ image: String) throws {
        #expect(try run("qemu-img", ["check", image]).contains("No errors were found"))
    }

    /// `qemu-img compare` exits 0: the same guest-visible bytes (`run` throws on any other status).
    func expectSame(_ source: String, _ sourceFormat: String, _ image: String, _ format: String) throws {
        try run("qemu-img", ["compare", "-f", sourceFormat, "-F", format, source, image])
    }

    @Test(arguments: cases)
    func writesQcow2ThatQemuAccepts(_ c: Case) throws {
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("guest.raw", size: 5 << 20 + 3 * 512)
        let out = scratch.path("out.qcow2")
        let options = WriteOptions(compression: c.compression, clusterSize: c.clusterSize)
        let stats = try ImageWriter(options).write(RawReader(path: raw), to: out)
        try expectClean(out)
        try expectSame(raw, "raw", out, "qcow2")

        let info = try run("qemu-img", ["info", "--output=json", out])
        #expect(info.contains("\"cluster-size\": \(c.clusterSize)"))
        #expect(info.contains("\"compression-type\": \"\(c.compression == .zstd ? "zstd" : "zlib")\""))
        let size = try FileManager.default.attributesOfItem(atPath: out)[.size] as? UInt64
        #expect(stats.outputSize == size)
        #expect(stats.bytesRead > 0)
        // Our reader agrees with qemu on what we wrote.
        #expect(try readAll(QCOW2Reader(path: out)) == scratch.qemuContents(out))

        // The guest disk has zero pieces: clusters holding only zeros are not stored.
        let source = try [UInt8](Data(contentsOf: URL(fileURLWithPath: raw)))
        let nonZero = stride(from: 0, to: source.count, by: c.clusterSize).filter { start in
            source[start..<min(start + c.clusterSize, source.count)].contains { $0 != 0 }
        }.count
        #expect(stats.clustersWritten == UInt64(nonZero))
    }

    @Test func compressesBetterThanQemuWithDeflate() throws {
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("guest.raw", size: 8 << 20)
        let ours = scratch.path("ours.qcow2"), theirs = scratch.path("theirs.qcow2")
        let stats = try ImageWriter(WriteOptions(compression: .zlib)).write(RawReader(path: raw), to: ours)
        try run("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", raw, theirs])
        let theirSize = try #require(try FileManager.default.attributesOfItem(atPath: theirs)[.size] as? UInt64)
        #expect(Double(stats.outputSize) <= Double(theirSize) * 1.02)
    }

    @Test func writesSparseRawFromCompressedQcow2() throws {
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("guest.raw", size: 6 << 20)
        let qcow2 = scratch.path("guest.qcow2")
        try run("qemu-img", ["convert", "-c", "-W", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd", raw, qcow2])
        let out = scratch.path("out.raw")
        let stats = try ImageWriter(WriteOptions(format: .raw)).write(QCOW2Reader(path: qcow2), to: out)
        try expectSame(qcow2, "qcow2", out, "raw")
        #expect(stats.outputSize == 6 << 20)
        // Holes where the guest has zeros.
        var info = stat()
        #expect(stat(out, &info) == 0)
        #expect(Int(info.st_blocks) * 512 < 6 << 20)
        #expect(try RawReader(path: out).extents(in: 0..<(6 << 20)).contains { $0.kind == .zero })
    }

    @Test(arguments: [0, 512, 1536, 65536 + 512])
    func writesEmptyTinyAndOddSizes(_ size: Int) throws {
        let scratch = try Scratch()
        let raw = scratch.path("tiny.raw")
        try run("qemu-img", ["create", "-q", "-f", "raw", raw, String(size)])
        if size > 0 { try run("qemu-io", ["-f", "raw", "-c", "write -P 0x61 \(size - 512) 512", raw]) }
        for compression in ClusterCompression.allCases {
            let out = scratch.path("tiny-\(compression).qcow2")
            _ = try ImageWriter(WriteOptions(compression: compression)).write(RawReader(path: raw), to: out)
            try expectClean(out)
            try expectSame(raw, "raw", out, "qcow2")
        }
        let back = scratch.path("back.raw")
        _ = try ImageWriter(WriteOptions(format: .raw)).write(QCOW2Reader(path: scratch.path("tiny-zlib.qcow2")), to: back)
        try expectSame(raw, "raw", back, "raw")
        #expect(try FileManager.default.attributesOfItem(atPath: back)[.size] as? UInt64 == UInt64(size))
    }

    @Test(arguments: ["qcow2", "raw"])
    func flattensBackingChains(_ baseFormat: String) throws {
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("base.raw", size: 3 << 20)
        let base = scratch.path("base.\(baseFormat)")
        if baseFormat == "qcow2" { try run("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", raw, base]) }
        let overlay = scratch.path("overlay.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", baseFormat == "qcow2" ? base : raw, "-F", baseFormat, overlay, "4M"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x21 64k 100k", "-c", "write -z 1M 128k",
                                     "-c", "write -P 0x22 3500k 200k", overlay])
        let out = scratch.path("flat.qcow2")
        _ = try ImageWriter().write(openImage(path: overlay, allowBacking: true), to: out)
        try expectClean(out)
        try expectSame(overlay, "qcow2", out, "qcow2")
        let info = try run("qemu-img", ["info", out])
        #expect(!info.contains("backing file"))
    }

    @Test func outputDoesNotDependOnThreadCount() throws {
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("guest.raw", size: 12 << 20, seed: 7)
        var outputs: [Data] = []
        for threads in [1, 3, 8] {
            let out = scratch.path("out-\(threads).qcow2")
            _ = try ImageWriter(WriteOptions(threads: threads)).write(RawReader(path: raw), to: out)
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: out)))
        }
        #expect(outputs.allSatisfy { $0 == outputs[0] })
    }

    @Test func reportsProgressUpToTheTotal() throws {
        let scratch = try Scratch()
        let size: UInt64 = 10 << 20 + 4096
        let raw = try scratch.guestDisk("guest.raw", size: Int(size))
        var seen: [WriteProgress] = []
        _ = try ImageWriter().write(RawReader(path: raw), to: scratch.path("out.qcow2")) { seen.append($0) }
        // Once per batch, the last one short.
        #expect(seen.count == Int((size + ImageWriter.batchBytes - 1) / ImageWriter.batchBytes))
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.bytesDone < $1.bytesDone })
        #expect(seen.last == WriteProgress(bytesDone: 10 << 20 + 4096, bytesTotal: 10 << 20 + 4096))
    }

    @Test func removesTheOutputWhenTheSourceIsCorrupt() throws {
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("guest.raw", size: 9 << 20)
        let image = scratch.path("guest.qcow2")
        try run("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", raw, image])
        // Corrupt the last stored compressed cluster, so that earlier batches were already written.
        let reader = try QCOW2Reader(path: image)
        let last = try #require(try reader.extents(in: 0..<reader.virtualSize).last { $0.kind == .data })
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: image)))
        let l1 = ByteCursor(bytes, file: image)
        let l2 = try l1.bigEndian(UInt64.self, at: Int(reader.header.l1TableOffset)) & QCOW2Reader.offsetMask
        let entry = try l1.bigEndian(UInt64.self, at: Int(l2) + Int((last.end - 1) / 65536) * 8)
        let (offset, _) = reader.compressedLocation(entry)
        try patch(image, at: offset, [UInt8](repeating: 0xFF, count: 32))

        let out = scratch.path("out.qcow2")
        #expect(throws: FormatError.self) {
            _ = try ImageWriter().write(QCOW2Reader(path: image), to: out)
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// What the progress callback throws (a cancelled run) stops the write in the middle, with the partial output
    /// removed and the workers shut down cleanly.
    @Test func stopsWhenProgressThrowsAndRemovesTheOutput() throws {
        struct Stop: Error {}
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("guest.raw", size: 64 << 20)
        let out = scratch.path("out.qcow2")
        var calls = 0
        #expect(throws: Stop.self) {
            _ = try ImageWriter().write(RawReader(path: raw), to: out) { _ in
                calls += 1
                if calls == 2 { throw Stop() }
            }
        }
        #expect(calls == 2)
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// The input is read through the descriptor that was checked: a symlink to another image or a FIFO put at its
    /// path afterwards is never read (nor waited on).
    @Test(arguments: ["symlink", "fifo"])
    func theInputIsReadThroughTheDescriptorThatWasChecked(swap: String) throws {
        let scratch = try Scratch()
        let raw = try scratch.guestDisk("guest.raw", size: 3 << 20)
        let image = scratch.path("guest.qcow2")
        try run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, image])
        let other = try scratch.guestDisk("other.raw", size: 3 << 20, seed: 9)
        let input = try InputImage(path: image)
        try FileManager.default.moveItem(atPath: image, toPath: scratch.path("moved.qcow2"))
        if swap == "symlink" {
            #expect(symlink(other, image) == 0)
        } else {
            #expect(mkfifo(image, 0o600) == 0)
        }
        let out = scratch.path("out.qcow2")
        _ = try ImageWriter().write(input.source, to: out)
        try expectSame(raw, "raw", out, "qcow2")
        try input.requireUnchanged()
        #expect(!input.isSameFile(as: image))
        #expect(input.isSameFile(as: scratch.path("moved.qcow2")))
    }

    /// A raw disk is its file rounded up to whole 512-byte sectors, the tail reading as zeros, as qemu reads it.
    @Test(arguments: [1, 1000, 4097, (1 << 20) + 3])
    func aRawFileOfAnySizeIsReadAsQemuReadsIt(size: Int) throws {
        let scratch = try Scratch()
        let raw = scratch.path("odd.raw")
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: raw))
        let reader = try RawReader(path: raw)
        #expect(reader.virtualSize == UInt64((size + 511) / 512 * 512))
        #expect(try readAll(reader) == bytes + [UInt8](repeating: 0, count: Int(reader.virtualSize) - size))
        let out = scratch.path("odd.qcow2")
        _ = try ImageWriter().write(reader, to: out)
        try expectClean(out)
        try expectSame(raw, "raw", out, "qcow2")
    }

    @Test(arguments: [
        (WriteOptions(level: 13), "out of zlib's range, 0 to 12"),
        (WriteOptions(compression: .zstd, level: 99), "out of zstd's range"),
        (WriteOptions(compression: .none, level: 1), "without compression"),
        (WriteOptions(format: .raw, level: 1), "raw output"),
        (WriteOptions(clusterSize: 3000), "cluster size 3000"),
        (WriteOptions(clusterSize: 4 << 20), "cluster size 4194304"),
    ])
    func optionsNoWriteCouldHonourAreRefusedUpFront(options: WriteOptions, message: String) throws {
        let error = try #require(throws: FormatError.self) { try options.validate(output: "/nowhere/out.qcow2") }
        #expect(error.message.contains(message), "\(error)")
        #expect(error.file == "/nowhere/out.qcow2")
        try WriteOptions(compression: .zstd, level: 19).validate(output: "x")
    }

    /// Holes are planned around, not read: only batches holding data become work.
    @Test func onlyBatchesHoldingDataArePlanned() throws {
        let scratch = try Scratch()
        let raw = scratch.path("sparse.raw")
        try run("truncate", ["-s", "3T", raw])
        try run("qemu-io", ["-f", "raw", "-c", "write -P 1 1G 1536k", "-c", "write -P 2 2047G 4k", raw])
        var planner = BatchPlanner(source: try RawReader(path: raw), batchBytes: ImageWriter.batchBytes)
        var planned: [UInt64] = []
        var calls = 0
        while let starts = try planner.next() {
            planned += starts
            calls += 1
        }
        let gibibyte: UInt64 = 1 << 30
        let expected: [UInt64] = [gibibyte, gibibyte + ImageWriter.batchBytes, 2047 * gibibyte]
        #expect(planned == expected)
        #expect(calls < 64, "\(calls) windows for 3 TiB")
    }
}
