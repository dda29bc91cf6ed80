import Foundation
import Testing
@testable import Formats

/// The hostile cases of oslo.utils' format_inspector test suite (oslo_utils/tests/imageutils/
/// test_format_inspector.py), rebuilt as files: each name says which oslo test it comes from. oslo works on
/// regions in memory; here every case is a whole file made from one qemu-img wrote, patched as oslo patches it.
struct OsloCase: Sendable, CustomTestStringConvertible {
    let name: String
    /// Codes the refusal must carry; empty for the cases oslo accepts and imgcustomize must accept too.
    let codes: Set<Violation.Code>
    let make: @Sendable (Scratch) throws -> String

    var testDescription: String { name }

    static func qemuFile(_ s: Scratch, _ file: String, _ arguments: [String]) throws -> String {
        let path = s.path(file)
        try s.must("qemu-img", ["create", "-q"] + arguments + [path])
        return path
    }

    static func streamOptimized(_ s: Scratch) throws -> (String, [UInt8]) {
        let path = try qemuFile(s, "so.vmdk", ["-f", "vmdk", "-o", "subformat=streamOptimized", "-o", "size=5M"])
        return (path, try bytes(of: path))
    }

    /// test_vmdk_footer_checks: the header defers to a footer (GD_AT_END), and the footer is a copy of the header
    /// with a real grain directory offset, between a footer marker and an end-of-stream marker; `change` spoils
    /// one of the three sectors.
    static func footer(_ name: String, _ code: Violation.Code?, change: @escaping @Sendable (inout [UInt8]) -> Void) -> OsloCase {
        OsloCase(name: "test_vmdk_footer_checks: \(name)", codes: code.map { [$0] } ?? []) { s in
            var (path, image) = try streamOptimized(s)
            let header = Array(image[0..<512])
            image.replaceSubrange(56..<64, with: [UInt8](repeating: 0xFF, count: 8))
            var tail = sector([(12, le(UInt32(3)))]) + header + sector([])
            change(&tail)
            try write(image + tail, to: path)
            return path
        }
    }

    /// test_vmdk_safety_checks: oslo's descriptor lines, as the embedded descriptor of a monolithicSparse file.
    static func descriptor(_ name: String, _ codes: Set<Violation.Code>, _ lines: [String]) -> OsloCase {
        OsloCase(name: "test_vmdk_safety_checks: \(name)", codes: codes) { s in
            let path = try qemuFile(s, "d.vmdk", ["-f", "vmdk", "-o", "size=5M"])
            let header = try bytes(of: path, count: 64)
            let offset = Int(header[28..<36].reversed().reduce(0) { $0 << 8 | UInt64($1) }) * 512
            let sectors = Int(header[36..<44].reversed().reduce(0) { $0 << 8 | UInt64($1) })
            var text = Array(lines.joined(separator: "\n").utf8)
            text += [UInt8](repeating: 0, count: sectors * 512 - text.count)
            try patch(path, at: UInt64(offset), text)
            return path
        }
    }

    static let osloLines = ["# a comment", "createType monolithicFlat", "", " ", "someUnknownThing=foo", "ddb whatever"]

    /// test_gpt_mbr_check: MBR entries written as oslo's mkpte writes them, over the protective MBR of a real GPT
    /// disk (so that only the MBR is wrong).
    static func mbr(_ name: String, _ code: Violation.Code?, _ entries: [(index: Int, boot: UInt8, type: UInt8, head: UInt8, lba: UInt32)]) -> OsloCase {
        OsloCase(name: "test_gpt_mbr_check: \(name)", codes: code.map { [$0] } ?? []) { s in
            let path = s.path("gpt.raw")
            try shell("truncate -s 4M gpt.raw && sgdisk -n 1:2048:0 gpt.raw >/dev/null", in: s)
            for entry in entries {
                try patch(path, at: UInt64(446 + entry.index * 16),
                          [entry.boot, 0, entry.head, 0, entry.type, 0, 0, 0] + le(entry.lba) + le(UInt32(8191)))
            }
            return path
        }
    }

    static let all: [OsloCase] = [
        OsloCase(name: "test_bad_iso_qcow2: the first 32 KiB of a qcow2, then an ISO", codes: [.multipleFormats]) { s in
            let qcow2 = try qemuFile(s, "q.qcow2", ["-f", "qcow2", "-o", "size=5M"])
            try FileManager.default.createDirectory(atPath: s.path("tree"), withIntermediateDirectories: true)
            try write(Array("nameserver 192.0.2.1\n".utf8), to: s.path("tree/resolv.conf"))
            let iso = s.path("orig.iso")
            try s.must("xorriso", ["-as", "mkisofs", "-quiet", "-o", iso, s.path("tree")])
            let bad = s.path("bad.iso")
            try write(Array(try bytes(of: qcow2, count: 32 << 10)) + Array(try bytes(of: iso).dropFirst(32 << 10)), to: bad)
            return bad
        },
        OsloCase(name: "test_qed_always_unsafe", codes: [.qedUnsupported]) { s in
            try qemuFile(s, "a.qed", ["-f", "qed", "-o", "size=5M"])
        },
        OsloCase(name: "test_vmdk_non_sparse_unsafe: monolithicFlat", codes: [.vmdkCreateType]) { s in
            try qemuFile(s, "flat.vmdk", ["-f", "vmdk", "-o", "subformat=monolithicFlat", "-o", "size=5M"])
        },
        OsloCase(name: "test_vmdk_bad_descriptor_offset: monolithicSparse", codes: [.vmdkDescriptor]) { s in
            let path = try qemuFile(s, "o.vmdk", ["-f", "vmdk", "-o", "size=5M"])
            try patch(path, at: 0x1C, le(UInt64(0x400 / 512)))
            return path
        },
        OsloCase(name: "test_vmdk_bad_descriptor_offset: streamOptimized", codes: [.vmdkDescriptor]) { s in
            let (path, _) = try streamOptimized(s)
            try patch(path, at: 0x1C, le(UInt64(0x400 / 512)))
            return path
        },
        // oslo only caps the descriptor it reads at 1 MiB and accepts the image; a descriptor of 2 MiB is no
        // descriptor any writer makes, so it is refused here.
        OsloCase(name: "test_vmdk_bad_descriptor_mem_limit: descriptor of 2 MiB", codes: [.malformedHeader]) { s in
            let path = try qemuFile(s, "m.vmdk", ["-f", "vmdk", "-o", "size=5M"])
            try patch(path, at: 0x1C + 8, le(UInt64((2 << 20) / 512)))
            return path
        },
        OsloCase(name: "test_qcow2_safety_checks: backing file", codes: [.backingFile]) { s in
            try write(Array("foobar".utf8), to: s.path("backing"))
            return try qemuFile(s, "b.qcow2", ["-f", "qcow2", "-F", "raw", "-b", s.path("backing"), "-o", "size=5M"])
        },
        OsloCase(name: "test_qcow2_safety_checks: data file", codes: [.dataFile]) { s in
            try qemuFile(s, "d.qcow2", ["-f", "qcow2", "-o", "data_file=\(s.path("data")),data_file_raw=on,size=5M"])
        },
        OsloCase(name: "test_qcow2_feature_flag_checks: highest incompatible bit", codes: [.unknownIncompatibleFeatures]) { s in
            let path = try qemuFile(s, "f.qcow2", ["-f", "qcow2", "-o", "size=5M"])
            try patch(path, at: 0x48, [0x01])
            return path
        },
        OsloCase(name: "test_qcow2_feature_flag_checks: incompatible bit 7", codes: [.unknownIncompatibleFeatures]) { s in
            let path = try qemuFile(s, "f.qcow2", ["-f", "qcow2", "-o", "size=5M"])
            try patch(path, at: 0x4F, [0x80])
            return path
        },
        OsloCase(name: "test_qcow2_feature_flag_checks: dirty bit is known", codes: []) { s in
            let path = try qemuFile(s, "f.qcow2", ["-f", "qcow2", "-o", "size=5M"])
            try patch(path, at: 0x4F, [0x01])
            return path
        },
        OsloCase(name: "test_qcow2_feature_flag_checks: version 1", codes: [.unsupportedFormat]) { s in
            let path = try qemuFile(s, "f.qcow2", ["-f", "qcow2", "-o", "size=5M"])
            try patch(path, at: 7, [1])
            return path
        },
        OsloCase(name: "test_qcow2_feature_flag_checks: version 4", codes: [.malformedHeader]) { s in
            let path = try qemuFile(s, "f.qcow2", ["-f", "qcow2", "-o", "size=5M"])
            try patch(path, at: 7, [4])
            return path
        },
        OsloCase(name: "test_vmdk_invalid_type: createType someunknownformat", codes: [.vmdkCreateType]) { s in
            let path = s.path("u.vmdk")
            try write(Array("# Disk DescriptorFile\nversion=1\ncreateType=\"someunknownformat\"\nRW 2048 SPARSE \"u-s001.vmdk\"\n".utf8), to: path)
            return path
        },
        OsloCase(name: "test_vmdk_with_footer: a footer of zeros", codes: [.vmdkFooter]) { s in
            var (path, image) = try streamOptimized(s)
            image.replaceSubrange(56..<64, with: [UInt8](repeating: 0xFF, count: 8))
            try write(image + [UInt8](repeating: 0, count: 1536), to: path)
            return path
        },
        footer("everything in place", nil) { _ in },
        footer("signature", .vmdkFooter) { $0.replaceSubrange(512..<516, with: Array("leak".utf8)) },
        footer("version", .vmdkFooter) { $0.replaceSubrange(516..<520, with: le(UInt32(2))) },
        footer("descriptor relocated", .vmdkFooter) { $0.replaceSubrange(512 + 28..<512 + 36, with: le(UInt64(2))) },
        footer("descriptor of another size", .vmdkFooter) { $0.replaceSubrange(512 + 36..<512 + 44, with: le(UInt64(0x300))) },
        footer("another footer", .vmdkFooter) { $0.replaceSubrange(512 + 56..<512 + 64, with: [UInt8](repeating: 0xFF, count: 8)) },
        footer("footer marker type", .vmdkFooter) { $0[12] = 7 },
        footer("footer marker size", .vmdkFooter) { $0[8] = 1 },
        footer("footer marker padding", .vmdkFooter) { $0.replaceSubrange(16..<512, with: [UInt8](repeating: 1, count: 496)) },
        footer("end-of-stream marker type", .vmdkFooter) { $0[1024 + 12] = 7 },
        footer("end-of-stream marker size", .vmdkFooter) { $0[1024 + 8] = 1 },
        footer("end-of-stream marker padding", .vmdkFooter) {
            $0.replaceSubrange(1024 + 16..<1536, with: [UInt8](repeating: 1, count: 496))
        },
        descriptor("createType without quotes", [.vmdkDescriptor, .vmdkCreateType],
                   osloLines + ["RW 2048 SPARSE \"d.vmdk\""]),
        descriptor("createType monolithicFlat", [.vmdkCreateType],
                   osloLines.map { $0.hasPrefix("createType") ? "createType=\"monolithicFlat\"" : $0 } + ["RW 2048 SPARSE \"d.vmdk\""]),
        descriptor("comments, unknown keys and a bare ddb line are accepted", [],
                   osloLines.map { $0.hasPrefix("createType") ? "createType=\"monolithicSparse\"" : $0 }
                   + ["ddb.unknownKey = \"x\"", "RW 10240 SPARSE \"d.vmdk\""]),
        descriptor("extent in an unknown mode", [.vmdkDescriptor],
                   osloLines.map { $0.hasPrefix("createType") ? "createType=\"monolithicSparse\"" : $0 }
                   + ["RW 10240 SPARSE \"d.vmdk\"", "wronly 2048 somefile2.vmdk"]),
        descriptor("extent naming a path", [.vmdkDescriptor],
                   osloLines.map { $0.hasPrefix("createType") ? "createType=\"monolithicSparse\"" : $0 }
                   + ["RW 10240 SPARSE \"d.vmdk\"", "rw 2048 /etc/hosts"]),
        descriptor("quoted extent naming a path", [.vmdkExtentPath],
                   osloLines.map { $0.hasPrefix("createType") ? "createType=\"monolithicSparse\"" : $0 }
                   + ["RW 2048 FLAT \"/etc/hosts\" 0"]),
        descriptor("no extents", [.vmdkDescriptor],
                   osloLines.map { $0.hasPrefix("createType") ? "createType=\"monolithicSparse\"" : $0 }),
        OsloCase(name: "test_vmdk_format_checks: KDMV with version 0", codes: [.malformedHeader]) { s in
            let path = s.path("v0.vmdk")
            try write(Array("KDMV".utf8) + [UInt8](repeating: 0, count: 4096), to: path)
            return path
        },
        OsloCase(name: "test_vmdk_format_checks: KDMV version 1, descriptor at sector 0", codes: [.vmdkDescriptor]) { s in
            let path = s.path("v1.vmdk")
            try write(sector([(0, Array("KDMV".utf8)), (4, le(UInt32(1))), (20, le(UInt64(128))), (44, le(UInt32(512)))], count: 4096),
                      to: path)
            return path
        },
        mbr("protective MBR as sgdisk writes it", nil, []),
        mbr("invalid boot flag", .mbrInvalid, [(0, 0x0A, 0xEE, 2, 1)]),
        mbr("no partitions defined", .mbrInvalid, [(0, 0, 0, 2, 1)]),
        mbr("protective MBR with an extra partition", .gptInvalid, [(0, 0, 0xEE, 2, 1), (1, 0, 0xEE, 2, 1)]),
        mbr("any start CHS and LBA for other types", nil, [(0, 0, 0x8E, 1, 2), (1, 0, 0x02, 2, 1)]),
        mbr("protective MBR with start head 1", .gptInvalid, [(0, 0, 0xEE, 1, 1)]),
        mbr("protective MBR with start LBA 2", .gptInvalid, [(0, 0, 0xEE, 2, 2)]),
        OsloCase(name: "test_vhd_table_over_limit: a metadata item longer than the metadata region", codes: [.malformedHeader]) { s in
            let path = try qemuFile(s, "t.vhdx", ["-f", "vhdx", "-o", "size=16M"])
            let image = try bytes(of: path)
            // Every metadata table entry's length, in the table qemu put at a MiB boundary.
            let table = try #require(stride(from: 1 << 20, to: image.count, by: 1 << 20).first {
                Array(image[$0..<$0 + 8]) == Array("metadata".utf8)
            })
            for index in 0..<Int(image[table + 10]) {
                try patch(path, at: UInt64(table + 32 + index * 32 + 20), le(UInt32(33 * 2048 * 32)))
            }
            return path
        },
        OsloCase(name: "TestLUKSInspector.test_check_version_v2_raises", codes: [.luksVersion]) { s in
            let path = s.path("v2.luks")
            try write(Array("hunter2".utf8), to: s.path("key"))
            try shell("truncate -s 20M \(path) && cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(s.path("key")) \(path)", in: s)
            return path
        },
    ]
}

@Suite struct OsloCasesTests {
    @Test(arguments: OsloCase.all)
    func osloCase(_ oslo: OsloCase) throws {
        let scratch = try Scratch()
        let path = try oslo.make(scratch)
        let inspection = try ImageInspector.inspect(path: path)
        let codes = Set(inspection.safety.violations.map(\.code))
        if oslo.codes.isEmpty {
            #expect(inspection.safety.safe, "\(inspection.safety.violations)")
        } else {
            #expect(!inspection.safety.safe)
            #expect(oslo.codes.isSubset(of: codes), "got \(inspection.safety.violations)")
        }
    }

    /// The footer and marker problems name the field and the byte offset.
    @Test func footerRefusalNamesFieldAndOffset() throws {
        let scratch = try Scratch()
        let oslo = try #require(OsloCase.all.first { $0.name.hasSuffix("end-of-stream marker size") })
        let path = try oslo.make(scratch)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        let message = try ImageInspector.inspect(path: path).safety.violations.map(\.message).joined(separator: "\n")
        #expect(message.contains("end-of-stream marker size at byte \(size - 512 + 8) is 1, not 0"), "\(message)")
    }

    /// qemu itself refuses the footers whose markers are wrong: the oracle that these cases are real.
    @Test func qemuRefusesTheBrokenMarkersToo() throws {
        for name in ["footer marker type", "end-of-stream marker size", "everything in place"] {
            let scratch = try Scratch()
            let oslo = try #require(OsloCase.all.first { $0.name.hasSuffix(name) })
            let path = try oslo.make(scratch)
            let (status, output) = try scratch.run("qemu-img", ["info", "-f", "vmdk", path])
            #expect((status == 0) == (name == "everything in place"), "\(name): \(output)")
        }
    }
}
