import Foundation
import Testing
@testable import Formats

/// Every format and subformat, built with the real tools at test time, agrees with `qemu-img info` and carries
/// the introspection a user would look for.
@Suite struct CorpusTests {
    @Test(arguments: CorpusImage.all)
    func agreesWithQemuImg(_ image: CorpusImage) throws {
        let scratch = try Scratch()
        let path = try image.build(in: scratch)
        let inspection = try ImageInspector.inspect(path: path)
        #expect(inspection.format == image.format)
        let oracle = try qemuInfo(path, format: image.format.qemuFormat, in: scratch)
        #expect(oracle.format == image.format.qemuFormat)
        #expect(inspection.virtualSize == oracle.virtualSize)
        if image.format != .raw { #expect(inspection.formatsDetected == [image.format.rawValue]) }
        let unsafeByDesign: Set<String> = ["qed", "vmdk descriptor-only"]
        #expect(inspection.safety.safe == !unsafeByDesign.contains(image.name), "\(inspection.safety.violations)")
        try checkIntrospection(image, inspection)
    }

    func checkIntrospection(_ image: CorpusImage, _ inspection: ImageInspection) throws {
        switch (image.name, inspection.formatSpecific) {
        case ("qcow2 v2", .qcow2(let info)?):
            #expect(info.version == 2 && info.compat == "0.10" && info.clusterSize == 65536)
            #expect(info.compressionType == "zlib" && info.refcountBits == 16 && !info.dirty && !info.corrupt)
        case ("qcow2 v3 deflate", .qcow2(let info)?):
            #expect(info.version == 3 && info.compat == "1.1" && info.clusterSize == 2 << 20)
            #expect(info.compressionType == "zlib" && info.lazyRefcounts && info.backingFile == nil)
            // Cluster 0 is 2 MiB, but the header and its extensions end inside the first 64 KiB.
            #expect(inspection.bytesRead <= 80 << 10)
        case ("qcow2 v3 zstd", .qcow2(let info)?):
            #expect(info.compressionType == "zstd" && info.incompatibleFeatures == 1 << 3)
            #expect(info.featureNames == ["compression type"])
        case ("qed", .qed(let info)?):
            #expect(info.clusterSize == 65536 && info.backingFile == nil)
            #expect(inspection.safety.violations.map(\.code) == [.qedUnsupported])
        case ("vmdk monolithicSparse", .vmdk(let info)?):
            #expect(info.createType == "monolithicSparse" && info.adapterType == "lsilogic")
            #expect(info.virtualHWVersion == "6" && info.geometry?.heads == 255 && info.compressed == false)
            #expect(info.extents.map(\.filename) == ["sparse.vmdk"] && info.extents.first?.type == "SPARSE")
        case ("vmdk streamOptimized", .vmdk(let info)?):
            #expect(info.createType == "streamOptimized" && info.compressed == true && info.version == 3)
            #expect(info.extents.first?.sectors == 2 << 20)
        case ("vmdk descriptor-only", .vmdk(let info)?):
            #expect(info.container == "descriptor" && info.createType == "monolithicFlat")
            #expect(info.extents.map(\.filename) == ["flat-flat.vmdk"] && info.extents.first?.type == "FLAT")
            #expect(inspection.safety.violations.map(\.code) == [.vmdkCreateType])
        case ("vdi dynamic", .vdi(let info)?): #expect(info.imageType == "dynamic")
        case ("vdi static", .vdi(let info)?): #expect(info.imageType == "static")
        case ("vhd dynamic", .vpc(let info)?):
            #expect(info.diskType == "dynamic" && info.creatorApplication == "qemu" && info.blockSize == 2 << 20)
        case ("vhd fixed", .vpc(let info)?): #expect(info.diskType == "fixed" && info.creatorHostOS == "Wi2k")
        case ("vhdx", .vhdx(let info)?): #expect(info.hasParent == false && info.logicalSectorSize == 512)
        case ("luks", .luks(let info)?):
            #expect(info.version == 1 && info.cipherName == "aes" && info.activeKeySlots == 1)
        case ("raw", .raw(let info)?): #expect(info.partitionTable == nil && info.amazonKind == nil)
        case ("raw gpt", .raw(let info)?):
            let table = try #require(info.partitionTable)
            #expect(table.kind == .gpt && info.amazonKind == .ami)
            #expect(table.partitions.map(\.name) == ["EFI", "root"])
            let starts: [UInt64] = [1 << 20, 9 << 20]
            #expect(table.partitions.map(\.start) == starts)
            #expect(table.partitions.map(\.type) == ["C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                                                     "0FC63DAF-8483-4772-8E79-3D69D8477DE4"])
            #expect(inspection.formatsDetected == ["gpt"])
        case ("raw mbr", .raw(let info)?):
            let table = try #require(info.partitionTable)
            #expect(table.kind == .mbr)
            #expect(table.partitions.map(\.type) == ["0x83", "0x82"])
            #expect(table.partitions.map(\.bootable) == [true, false])
        case ("iso 9660", .iso(let info)?):
            #expect(info.filesystem == "iso9660" && info.volumeLabel == "CIDATA")
            #expect(info.volumeSize == inspection.fileSize)
        case ("udf", .iso(let info)?): #expect(info.filesystem == "udf" && info.volumeLabel == "UDFDISK")
        case ("aki kernel", .aki(let info)?):
            #expect(info.kernelVersion?.hasPrefix("6.") == true, "\(String(describing: info.kernelVersion))")
        case ("ari gzip cpio", .ari(let info)?): #expect(info.compression == "gzip")
        case ("ari xz cpio", .ari(let info)?): #expect(info.compression == "xz")
        case ("ari zstd cpio", .ari(let info)?): #expect(info.compression == "zstd")
        case ("ari lz4 cpio", .ari(let info)?): #expect(info.compression == "lz4")
        case ("ari plain cpio", .ari(let info)?): #expect(info.compression == "none")
        default:
            Issue.record("\(image.name): unexpected format-specific data \(String(describing: inspection.formatSpecific))")
        }
    }

    /// The header-only promise: a multi-GB image costs a few hundred KB of reads, whatever its size.
    @Test(arguments: [("qcow2", ""), ("vmdk", ""), ("vmdk", "subformat=streamOptimized"), ("vpc", ""),
                      ("vpc", "subformat=fixed"), ("vhdx", ""), ("vdi", "")])
    func readsOnlyHeaders(format: String, options: String) throws {
        let scratch = try Scratch()
        let path = scratch.path("big")
        try scratch.must("qemu-img", ["create", "-q", "-f", format] + (options.isEmpty ? [] : ["-o", options]) + [path, "64G"])
        let inspection = try ImageInspector.inspect(path: path)
        #expect(inspection.safety.safe)
        #expect(inspection.virtualSize == (try qemuInfo(path, format: format, in: scratch)).virtualSize)
        #expect(inspection.bytesRead <= 256 << 10, "read \(inspection.bytesRead) bytes")
    }

    @Test func glancePropertiesFollowTheFormat() throws {
        let scratch = try Scratch()
        let vhd = try CorpusImage.all.first { $0.name == "vhd dynamic" }.map { try $0.build(in: scratch) }
        let gpt = try CorpusImage.all.first { $0.name == "raw gpt" }.map { try $0.build(in: scratch) }
        // qemu sizes this VHD by its CHS geometry: a little over 2 GiB, so Glance needs a 3 GB disk.
        let vhdProperties = GlanceProperties(try ImageInspector.inspect(path: try #require(vhd)))
        #expect(vhdProperties.diskFormat == "vhd" && vhdProperties.containerFormat == "bare")
        #expect(vhdProperties.minDisk == 3)
        let disk = try ImageInspector.inspect(path: try #require(gpt))
        let raw = GlanceProperties(disk)
        #expect(raw.diskFormat == "raw" && raw.containerFormat == "bare" && raw.minDisk == 1)
        let ami = GlanceProperties(disk, amazon: true)
        #expect(ami.diskFormat == "ami" && ami.containerFormat == "ami")
    }
}
