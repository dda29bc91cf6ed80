import Foundation
import Testing
@testable import Formats

/// What `qemu-img info` says when it probes a file itself (no -f): the format it opened, or nil when it took the
/// file for a format it then could not open (with its message).
func qemuProbe(_ path: String, in scratch: Scratch) throws -> (format: String?, virtualSize: UInt64?, message: String) {
    let (status, output) = try scratch.run("qemu-img", ["info", "--output=json", path])
    guard status == 0, let start = output.firstIndex(of: "{") else { return (nil, nil, output) }
    let object = try JSONSerialization.jsonObject(with: Data(output[start...].utf8)) as? [String: Any]
    return (object?["format"] as? String, (object?["virtual-size"] as? NSNumber)?.uint64Value, output)
}

/// Little-endian and big-endian bytes of an integer, for headers written by hand.
func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

/// `bytes` placed at `offset` in a zero-filled buffer of `count` bytes.
func sector(_ fields: [(Int, [UInt8])], count: Int = 512) -> [UInt8] {
    var data = [UInt8](repeating: 0, count: count)
    for (offset, bytes) in fields { data.replaceSubrange(offset..<offset + bytes.count, with: bytes) }
    return data
}

/// A format qemu opens by probing and imgcustomize does not read: made with qemu-img where it can write the
/// format, from a few header bytes where it cannot.
struct QemuOnlyImage: Sendable, CustomTestStringConvertible {
    let name: String
    let file: String
    let format: ImageFormat
    let codes: Set<Violation.Code>
    /// Whether this qemu opens it (and so gives a virtual size to compare with).
    let qemuOpens: Bool
    let make: @Sendable (String, Scratch) throws -> Void

    var testDescription: String { name }

    static func text(_ string: String) -> [UInt8] { Array(string.utf8) }

    static let bochsHeader: @Sendable (UInt32) -> [UInt8] = { version in
        // A 1 MiB growing disk of 4 KiB extents: a catalog of 256 unallocated entries after the header.
        sector([(0, text("Bochs Virtual HD Image")), (32, text("Redolog")), (48, text("Growing")),
                (64, le(version)), (68, le(UInt32(512))), (72, le(UInt32(256))), (76, le(UInt32(512))),
                (80, le(UInt32(4096))), (version == 0x10000 ? 84 : 88, le(UInt64(1 << 20)))])
            + [UInt8](repeating: 0xFF, count: 1024)
    }

    static let all: [QemuOnlyImage] = [
        QemuOnlyImage(name: "parallels", file: "disk.hdd", format: .parallels, codes: [.unsupportedFormat], qemuOpens: true) { path, s in
            try s.must("qemu-img", ["create", "-q", "-f", "parallels", path, "70M"])
        },
        QemuOnlyImage(name: "qcow v1", file: "disk.qcow", format: .qcow, codes: [.unsupportedFormat], qemuOpens: true) { path, s in
            try s.must("qemu-img", ["create", "-q", "-f", "qcow", path, "3G"])
        },
        QemuOnlyImage(name: "qcow v1 backing /etc/passwd", file: "b.qcow", format: .qcow,
                      codes: [.unsupportedFormat, .backingFile], qemuOpens: true) { path, s in
            try s.must("qemu-img", ["create", "-q", "-f", "qcow", "-F", "raw", "-b", "/etc/passwd", "-u", path, "1G"])
        },
        QemuOnlyImage(name: "bochs v2", file: "disk.bochs", format: .bochs, codes: [.unsupportedFormat], qemuOpens: true) { path, _ in
            try write(bochsHeader(0x20000), to: path)
        },
        QemuOnlyImage(name: "bochs v1", file: "v1.bochs", format: .bochs, codes: [.unsupportedFormat], qemuOpens: true) { path, _ in
            try write(bochsHeader(0x10000), to: path)
        },
        QemuOnlyImage(name: "cloop", file: "disk.cloop", format: .cloop, codes: [.unsupportedFormat], qemuOpens: true) { path, _ in
            // Four 64 KiB blocks, each of zero compressed bytes (offsets all equal).
            var bytes = sector([(0, CloopDetector.banner)], count: 128) + be(UInt32(65536)) + be(UInt32(4))
            for _ in 0..<5 { bytes += be(UInt64(176)) }
            try write(bytes, to: path)
        },
        QemuOnlyImage(name: "dmg with a koly trailer", file: "apple.dmg", format: .dmg, codes: [.unsupportedFormat],
                      qemuOpens: false) { path, _ in
            try write([UInt8](repeating: 0, count: 4096)
                      + sector([(0, text("koly")), (4, be(UInt32(4))), (8, be(UInt32(512))), (0x1EC, be(UInt64(2048)))]),
                      to: path)
        },
        // qemu reads the probe buffer past the end of a short file as zeros: 8 bytes are a qcow header to it.
        QemuOnlyImage(name: "qcow magic in 8 bytes", file: "short", format: .qcow, codes: [.unsupportedFormat, .malformedHeader],
                      qemuOpens: false) { path, _ in
            try write([0x51, 0x46, 0x49, 0xFB, 0, 0, 0, 1], to: path)
        },
        QemuOnlyImage(name: "parallels header cut at 20 bytes", file: "cut.hdd", format: .parallels,
                      codes: [.unsupportedFormat, .malformedHeader], qemuOpens: false) { path, _ in
            try write(Array("WithoutFreeSpace".utf8) + le(UInt32(2)), to: path)
        },
        QemuOnlyImage(name: "raw bytes named .dmg", file: "disk.dmg", format: .dmg, codes: [.malformedHeader],
                      qemuOpens: false) { path, _ in
            try write([UInt8](repeating: 0, count: 8192), to: path)
        },
        QemuOnlyImage(name: "vmdk COWD", file: "old.vmdk", format: .vmdk, codes: [.unsupportedFormat], qemuOpens: false) { path, _ in
            try write(sector([(0, text("COWD")), (4, le(UInt32(1))), (8, le(UInt32(3))), (12, le(UInt32(2048))),
                                    (16, le(UInt32(16))), (20, le(UInt32(1))), (24, le(UInt32(1)))], count: 2048), to: path)
        },
        QemuOnlyImage(name: "vmdk text as qemu probes it", file: "probe.txt", format: .vmdk,
                      codes: [.vmdkCreateType, .vmdkExtentPath], qemuOpens: false) { path, _ in
            try write(text("# made by hand\n   \nversion=1\nRW 2048 FLAT \"/etc/shadow\" 0\n"), to: path)
        },
    ]
}

@Suite struct QemuFormatsTests {
    /// qemu-img's own probe is the oracle: whatever it takes for a format other than raw is never raw here, and
    /// the sizes agree where qemu opens the file.
    @Test(arguments: QemuOnlyImage.all)
    func detectedAsQemuProbesIt(_ image: QemuOnlyImage) throws {
        let scratch = try Scratch()
        let path = scratch.path(image.file)
        try image.make(path, scratch)
        let inspection = try ImageInspector.inspect(path: path)
        let oracle = try qemuProbe(path, in: scratch)
        #expect(inspection.format == image.format)
        #expect(oracle.format != "raw", "qemu-img took it for raw: \(oracle.message)")
        if image.qemuOpens {
            #expect(oracle.format == image.format.rawValue, "\(oracle.message)")
            #expect(inspection.virtualSize == oracle.virtualSize)
        } else {
            #expect(oracle.format == nil, "qemu-img opened it: \(oracle.message)")
        }
        let codes = Set(inspection.safety.violations.map(\.code))
        #expect(image.codes.isSubset(of: codes), "\(inspection.safety.violations)")
        let error = try #require(throws: UnsafeImageError.self) { try ImageInspector.requireSafe(path: path) }
        #expect(error.description.hasPrefix("refusing \(path):"))
        if codes.contains(.unsupportedFormat) {
            #expect(error.description.contains("qemu-img convert -f \(image.format.qemuFormat) -O qcow2"))
        }
    }

    /// A koly trailer is a dmg here whatever the name; qemu's probe only looks at the name and calls it raw, which
    /// would copy the container's bytes as the disk.
    @Test func dmgTrailerIsADmgWhateverTheName() throws {
        let scratch = try Scratch()
        let path = scratch.path("apple.img")
        try write([UInt8](repeating: 0, count: 4096) + sector([(0, Array("koly".utf8)), (0x1EC, be(UInt64(8)))]), to: path)
        #expect(try ImageInspector.inspect(path: path).format == .dmg)
        #expect(try qemuProbe(path, in: scratch).format == "raw")
    }

    /// Files that only look like those formats stay raw, as they do for qemu.
    @Test func nearMissesStayRaw() throws {
        let scratch = try Scratch()
        let padding = [UInt8](repeating: 0x20, count: 4096)
        let cases: [(String, [UInt8])] = [
            ("bochs magic, type Undoable", sector([(0, Array("Bochs Virtual HD Image".utf8)), (32, Array("Redolog".utf8)),
                                                  (48, Array("Undoable".utf8)), (64, le(UInt32(0x20000)))]) + padding),
            ("parallels magic, version 3", sector([(0, Array("WithoutFreeSpace".utf8)), (16, le(UInt32(3)))]) + padding),
            ("text with a line before version=1", Array("hello\nversion=1\n".utf8) + padding),
            ("cloop banner cut short", Array(CloopDetector.banner.prefix(40))),
        ]
        for (name, bytes) in cases {
            let path = scratch.path(name.replacingOccurrences(of: " ", with: "-"))
            try write(bytes, to: path)
            let inspection = try ImageInspector.inspect(path: path)
            #expect(inspection.format == .raw, "\(name): \(inspection.format)")
            #expect(try qemuProbe(path, in: scratch).format == "raw", "\(name)")
        }
    }

    @Test func qcow2AndQcowAreToldApartByVersion() throws {
        let scratch = try Scratch()
        let v1 = scratch.path("a.qcow")
        let v2 = scratch.path("a.qcow2")
        try scratch.must("qemu-img", ["create", "-q", "-f", "qcow", v1, "16M"])
        try scratch.must("qemu-img", ["create", "-q", "-f", "qcow2", v2, "16M"])
        #expect(try ImageInspector.inspect(path: v1).formatsDetected == ["qcow"])
        #expect(try ImageInspector.inspect(path: v2).formatsDetected == ["qcow2"])
    }

    @Test func parallelsIsPublishedToGlanceAsPloop() throws {
        let scratch = try Scratch()
        let path = scratch.path("disk.hdd")
        try scratch.must("qemu-img", ["create", "-q", "-f", "parallels", path, "1G"])
        #expect(GlanceProperties(try ImageInspector.inspect(path: path)).diskFormat == "ploop")
    }
}

/// VHDX whose log holds an entry: what a crash while qemu or Hyper-V wrote it leaves. Made from qemu-img's
/// file: the current header names a log GUID, and the log's first 4 KiB is an entry of that log.
@Suite struct VHDXLogTests {
    static func dirtyVHDX(_ scratch: Scratch) throws -> String {
        let path = scratch.path("dirty.vhdx")
        try scratch.must("qemu-img", ["create", "-q", "-f", "vhdx", path, "16M"])
        let image = try bytes(of: path)
        func u64(_ at: Int) -> UInt64 { image[at..<at + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func u32(_ at: Int) -> UInt32 { image[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        let current = [64 << 10, 128 << 10].max { u64($0 + 8) < u64($1 + 8) }!
        let guid: [UInt8] = (0..<16).map { UInt8($0 * 7 + 1) }
        var header = Array(image[current..<current + 4096])
        header.replaceSubrange(48..<64, with: guid)
        header.replaceSubrange(4..<8, with: [0, 0, 0, 0])
        header.replaceSubrange(4..<8, with: le(CRC32.castagnoli(header)))
        try patch(path, at: UInt64(current), header)
        let logOffset = u64(current + 72)
        let fileSize = UInt64(image.count)
        // An entry with no descriptors: signature, checksum, length, tail, sequence, count, GUID, file offsets.
        var entry = sector([(0, Array("loge".utf8)), (8, le(UInt32(4096))), (12, le(UInt32(0))), (16, le(UInt64(1))),
                            (24, le(UInt32(0))), (32, guid), (48, le(fileSize)), (56, le(fileSize))], count: 4096)
        entry.replaceSubrange(4..<8, with: le(CRC32.castagnoli(entry)))
        try patch(path, at: logOffset, entry)
        #expect(u32(current + 68) >= 1 << 20)
        return path
    }

    @Test func logThatNeedsReplayIsRefused() throws {
        let scratch = try Scratch()
        let path = try Self.dirtyVHDX(scratch)
        // The oracle: qemu itself will not open it read-only.
        let (status, output) = try scratch.run("qemu-img", ["info", "-f", "vhdx", path])
        #expect(status != 0 && output.contains("log that needs to be replayed"), "\(output)")
        let inspection = try ImageInspector.inspect(path: path)
        #expect(inspection.format == .vhdx && inspection.safety.violations.map(\.code) == [.vhdxLog])
        let error = try #require(throws: UnsafeImageError.self) { try ImageInspector.requireSafe(path: path) }
        #expect(error.description.contains("qemu-img check -r all"))
    }

    /// After `qemu-img check -r all` replays it, the same file is accepted.
    @Test func replayedLogIsAccepted() throws {
        let scratch = try Scratch()
        let path = try Self.dirtyVHDX(scratch)
        try scratch.run("qemu-img", ["check", "-q", "-r", "all", "-f", "vhdx", path])
        #expect(try ImageInspector.inspect(path: path).safety.safe)
        #expect(try qemuInfo(path, format: "vhdx", in: scratch).virtualSize == 16 << 20)
    }
}
