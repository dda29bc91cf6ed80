import Foundation
import Testing
@testable import Formats

/// The single-file VMDKs qemu-img writes (what VMware, ovftool and Glance's users bring), read by `VMDKReader`
/// and checked against qemu's own reading of them.
@Suite struct VMDKReaderTests {
    /// 5 MiB and a sector, so that the last grain is partial; every subformat qemu writes in one file.
    static let subformats = ["streamOptimized", "monolithicSparse"]

    func vmdk(_ scratch: Scratch, _ subformat: String) throws -> (raw: String, vmdk: String) {
        let raw = try scratch.guestDisk("guest.raw", size: 5 << 20 + 512)
        // A MiB of zeros, whole grains qemu-img leaves unallocated.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: raw))
        try handle.seek(toOffset: 1 << 20)
        handle.write(Data(count: 1 << 20))
        try handle.close()
        let image = scratch.path("guest-\(subformat).vmdk")
        try run("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=\(subformat),adapter_type=buslogic",
                             raw, image])
        return (raw, image)
    }

    @Test(arguments: subformats)
    func readsWhatQemuReads(_ subformat: String) throws {
        let scratch = try Scratch()
        let (raw, image) = try vmdk(scratch, subformat)
        let reader = try openImage(path: image)
        #expect(reader is VMDKReader)
        #expect(reader.virtualSize == 5 << 20 + 512)
        #expect(try readAll(reader) == scratch.qemuContents(image, format: "vmdk"))
        // Reads that start and end inside grains.
        var piece = [UInt8](repeating: 0xAA, count: 100_000)
        try piece.withUnsafeMutableBytes { try reader.read(at: 70_001, into: $0) }
        let source = try [UInt8](Data(contentsOf: URL(fileURLWithPath: raw)))
        #expect(piece[...] == source[70_001..<170_001])
        // The grains qemu-img left out (all-zero ones) are not data.
        let extents = try reader.extents(in: 0..<reader.virtualSize)
        #expect(extents.contains { $0.kind != .data })
        #expect(extents.reduce(0) { $0 + $1.length } == reader.virtualSize)
    }

    @Test(arguments: subformats)
    func convertsToRawAndQcow2ThatQemuFindsEqual(_ subformat: String) throws {
        let scratch = try Scratch()
        let (_, image) = try vmdk(scratch, subformat)
        let raw = scratch.path("out.raw"), qcow2 = scratch.path("out.qcow2")
        _ = try ImageWriter(WriteOptions(format: .raw)).write(openImage(path: image), to: raw)
        _ = try ImageWriter(WriteOptions()).write(openImage(path: image), to: qcow2)
        try run("qemu-img", ["compare", "-f", "vmdk", "-F", "raw", image, raw])
        try run("qemu-img", ["compare", "-f", "vmdk", "-F", "qcow2", image, qcow2])
    }

    /// A compressed grain whose bytes were damaged: the read fails naming the grain and where it is, never returns
    /// garbage.
    @Test func aDamagedGrainIsAnErrorNamingIt() throws {
        let scratch = try Scratch()
        let (_, image) = try vmdk(scratch, "streamOptimized")
        let reader = try VMDKReader(path: image)
        // The first stored grain: find its marker through the reader's own extents, then break its zlib header.
        let first = try #require(reader.extents(in: 0..<reader.virtualSize).first { $0.kind == .data })
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: image))
        let contents = try handle.readToEnd() ?? Data()
        // qemu-img writes grains after the header, descriptor and (for streamOptimized) nothing else: the first
        // marker is the first sector-aligned run naming the grain's sector.
        let lba = first.offset / 512
        let markerOffset = try #require(stride(from: 512, to: contents.count - 12, by: 512).first { offset in
            contents[offset..<offset + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } == lba
                && contents[offset + 12] == 0x78  // zlib's first byte
        })
        try handle.seek(toOffset: UInt64(markerOffset + 12))
        handle.write(Data([0x00, 0x00, 0x00, 0x00]))
        try handle.close()
        let damaged = try VMDKReader(path: image)
        var buffer = [UInt8](repeating: 0, count: Int(first.length))
        #expect {
            try buffer.withUnsafeMutableBytes { try damaged.read(at: first.offset, into: $0) }
        } throws: { error in
            "\(error)".contains(image) && "\(error)".contains("grain \(first.offset / damaged.grainBytes)")
        }
    }

    /// A VMDK descriptor file (its data in other files) is not read, with the way out.
    @Test func aDescriptorFileIsRefused() throws {
        let scratch = try Scratch()
        let descriptor = scratch.path("disk.vmdk")
        try Data("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"disk-flat.vmdk\" 0\n".utf8)
            .write(to: URL(fileURLWithPath: descriptor))
        #expect { try VMDKReader(path: descriptor) } throws: { "\($0)".contains("only single-file VMDKs") }
    }
}
