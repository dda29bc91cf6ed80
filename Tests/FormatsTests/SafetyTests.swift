import Foundation
import Testing
@testable import Formats

/// Hostile images of every kind the reference names, made from honest ones with the real tools, each refused with
/// the violation a script would match on.
struct HostileImage: Sendable, CustomTestStringConvertible {
    let name: String
    let codes: Set<Violation.Code>
    let make: @Sendable (Scratch) throws -> String

    var testDescription: String { name }

    static func qemu(_ scratch: Scratch, _ file: String, _ arguments: [String]) throws -> String {
        let path = scratch.path(file)
        try scratch.must("qemu-img", ["create", "-q"] + arguments + [path])
        return path
    }

    static let all: [HostileImage] = [
        HostileImage(name: "qcow2 backing file /etc/passwd", codes: [.backingFile]) { s in
            try qemu(s, "b.qcow2", ["-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", "-u", "-o", "size=1G"])
        },
        HostileImage(name: "qcow2 external data file", codes: [.dataFile]) { s in
            try qemu(s, "d.qcow2", ["-f", "qcow2", "-o", "data_file=\(s.path("data.bin")),size=16M"])
        },
        HostileImage(name: "qcow2 unknown incompatible bit", codes: [.unknownIncompatibleFeatures]) { s in
            let path = try qemu(s, "u.qcow2", ["-f", "qcow2", "-o", "size=16M"])
            try patch(path, at: 72, bigEndianBytes(UInt64(1) << 40))
            return path
        },
        HostileImage(name: "qcow2 absurd cluster_bits", codes: [.malformedHeader]) { s in
            let path = try qemu(s, "c.qcow2", ["-f", "qcow2", "-o", "size=16M"])
            try patch(path, at: 20, Array(bigEndianBytes(UInt64(40)).suffix(4)))
            return path
        },
        HostileImage(name: "qcow2 absurd virtual size", codes: [.malformedHeader]) { s in
            let path = try qemu(s, "v.qcow2", ["-f", "qcow2", "-o", "size=16M"])
            try patch(path, at: 24, bigEndianBytes(UInt64.max))
            return path
        },
        HostileImage(name: "qcow2 L1 table beyond the end of the file", codes: [.malformedHeader]) { s in
            let path = try qemu(s, "l.qcow2", ["-f", "qcow2", "-o", "size=16M"])
            try patch(path, at: 40, bigEndianBytes(UInt64(1) << 40))
            return path
        },
        HostileImage(name: "qcow2 truncated header", codes: [.malformedHeader]) { s in
            let path = try qemu(s, "t.qcow2", ["-f", "qcow2", "-o", "size=16M"])
            try write(try bytes(of: path, count: 50), to: path)
            return path
        },
        HostileImage(name: "qcow2 data file named past the first 64 KiB of cluster 0", codes: [.dataFile]) { s in
            let path = try qemu(s, "far.qcow2", ["-f", "qcow2", "-o", "cluster_size=2M,size=16M"])
            let header = try bytes(of: path, count: 104)
            let headerLength = header[100..<104].reduce(0) { $0 << 8 | UInt64($1) }
            let name = Array("/etc/shadow".utf8)
            // An unknown extension of 70000 bytes, then the data file name, then the end of the chain.
            var chain = bigEndianBytes(UInt64(0x0BAD_C0DE) << 32 | 70000)
            chain += [UInt8](repeating: 0, count: 70000)
            chain += bigEndianBytes(UInt64(0x4441_5441) << 32 | UInt64(name.count))
            chain += name + [UInt8](repeating: 0, count: 16 - name.count + 8)
            try patch(path, at: headerLength, chain)
            return path
        },
        HostileImage(name: "qed backing file", codes: [.qedUnsupported, .backingFile]) { s in
            try qemu(s, "b.qed", ["-f", "qed", "-F", "raw", "-b", "/etc/passwd", "-u", "-o", "size=1G"])
        },
        HostileImage(name: "vmdk descriptor with extent /etc/shadow", codes: [.vmdkExtentPath, .vmdkCreateType]) { s in
            let path = s.path("shadow.vmdk")
            try write(Array("""
                # Disk DescriptorFile
                version=1
                CID=fffffffe
                parentCID=ffffffff
                createType="monolithicFlat"

                RW 2048 FLAT "/etc/shadow" 0
                """.utf8), to: path)
            return path
        },
        HostileImage(name: "vmdk sparse with embedded extent path", codes: [.vmdkExtentPath]) { s in
            let path = try qemu(s, "e.vmdk", ["-f", "vmdk", "-o", "size=16M"])
            var image = try bytes(of: path)
            let text = Array("RW 32768 SPARSE \"e.vmdk\"".utf8)
            guard let at = (0..<image.count - text.count).first(where: { image[$0..<$0 + text.count].elementsEqual(text) })
            else { throw Scratch.ToolFailure(message: "no extent line in \(path)") }
            image.replaceSubrange(at..<at + text.count, with: Array("RW 32768 SPARSE \"/dev/sda\"".utf8))
            try write(image, to: path)
            return path
        },
        HostileImage(name: "vmdk parentFileNameHint", codes: [.backingFile]) { s in
            let path = s.path("child.vmdk")
            try write(Array("""
                # Disk DescriptorFile
                version=1
                CID=fffffffe
                parentCID=12345678
                createType="monolithicSparse"
                parentFileNameHint="/var/lib/secret.vmdk"
                RW 2048 SPARSE "child-s001.vmdk"
                """.utf8), to: path)
            return path
        },
        HostileImage(name: "vmdk descriptor with a stray line", codes: [.vmdkDescriptor]) { s in
            let path = s.path("stray.vmdk")
            try write(Array("# Disk DescriptorFile\ncreateType=\"streamOptimized\"\nRW 8 SPARSE \"x.vmdk\"\n!include /etc\n".utf8), to: path)
            return path
        },
        HostileImage(name: "vmdk streamOptimized deferring to a missing footer", codes: [.vmdkFooter]) { s in
            let path = try qemu(s, "f.vmdk", ["-f", "vmdk", "-o", "subformat=streamOptimized,size=16M"])
            try patch(path, at: 56, [UInt8](repeating: 0xFF, count: 8))
            return path
        },
        HostileImage(name: "vmdk streamOptimized footer disagreeing with its header", codes: [.vmdkFooter]) { s in
            let path = try qemu(s, "g.vmdk", ["-f", "vmdk", "-o", "subformat=streamOptimized,size=16M"])
            var image = try bytes(of: path)
            var footer = Array(image[0..<512])
            footer.replaceSubrange(12..<20, with: bigEndianBytes(UInt64(1) << 30).reversed())
            var marker = [UInt8](repeating: 0, count: 512)
            marker[12] = 3
            image += marker + footer + [UInt8](repeating: 0, count: 512)
            image.replaceSubrange(56..<64, with: [UInt8](repeating: 0xFF, count: 8))
            try write(image, to: path)
            return path
        },
        HostileImage(name: "vmdk truncated before its descriptor", codes: [.malformedHeader]) { s in
            let path = try qemu(s, "t.vmdk", ["-f", "vmdk", "-o", "size=16M"])
            try write(try bytes(of: path, count: 600), to: path)
            return path
        },
        HostileImage(name: "qcow2 header planted in an ISO system area", codes: [.multipleFormats]) { s in
            let tree = s.path("tree")
            try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
            try write(Array("hello\n".utf8), to: tree + "/a.txt")
            let iso = s.path("poly.iso")
            try s.must("xorriso", ["-as", "mkisofs", "-quiet", "-o", iso, tree])
            let qcow2 = try qemu(s, "h.qcow2", ["-f", "qcow2", "-o", "size=16M"])
            try patch(iso, at: 0, try bytes(of: qcow2, count: 512))
            return iso
        },
        HostileImage(name: "gpt behind a hybrid MBR", codes: [.gptInvalid]) { s in
            let path = s.path("hybrid.raw")
            try shell("truncate -s 32M \(path) && sgdisk -n 1:2048:+8M -n 2:0:0 \(path) >/dev/null", in: s)
            // A second MBR entry next to the protective 0xEE one.
            try patch(path, at: 446 + 16, [0x80, 0, 0, 0, 0x83, 0, 0, 0] + [0, 8, 0, 0] + [0, 0x40, 0, 0])
            return path
        },
        HostileImage(name: "gpt with a corrupt header", codes: [.gptInvalid]) { s in
            let path = s.path("crc.raw")
            try shell("truncate -s 32M \(path) && sgdisk -n 1:2048:+8M \(path) >/dev/null", in: s)
            try patch(path, at: 512 + 40, bigEndianBytes(UInt64(7)))
            return path
        },
        HostileImage(name: "mbr with a bad boot flag", codes: [.mbrInvalid]) { s in
            let path = s.path("flag.raw")
            try shell("truncate -s 16M \(path) && printf 'label: dos\\n,8M,83\\n' | sfdisk -q \(path)", in: s)
            try patch(path, at: 446, [0x12])
            return path
        },
        HostileImage(name: "luks2", codes: [.luksVersion]) { s in
            let path = s.path("disk.luks2")
            let key = s.path("key")
            try write(Array("hunter2".utf8), to: key)
            try shell("truncate -s 20M \(path) && cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(key) \(path)", in: s)
            return path
        },
        HostileImage(name: "vdi truncated header", codes: [.malformedHeader]) { s in
            let path = try qemu(s, "t.vdi", ["-f", "vdi", "-o", "size=16M"])
            try write(try bytes(of: path, count: 0x100), to: path)
            return path
        },
        HostileImage(name: "vhd dynamic header beyond the end", codes: [.malformedHeader]) { s in
            let path = try qemu(s, "t.vhd", ["-f", "vpc", "-o", "size=16M"])
            try write(try bytes(of: path, count: 512), to: path)
            return path
        },
        HostileImage(name: "vhdx truncated before its region table", codes: [.malformedHeader]) { s in
            let path = try qemu(s, "t.vhdx", ["-f", "vhdx", "-o", "size=16M"])
            try write(try bytes(of: path, count: 64 << 10), to: path)
            return path
        },
        HostileImage(name: "empty file", codes: [.emptyImage]) { s in
            let path = s.path("empty")
            try write([], to: path)
            return path
        },
    ]
}

@Suite struct SafetyTests {
    @Test(arguments: HostileImage.all)
    func hostileImageIsRefused(_ hostile: HostileImage) throws {
        let scratch = try Scratch()
        let path = try hostile.make(scratch)
        let inspection = try ImageInspector.inspect(path: path)
        let codes = Set(inspection.safety.violations.map(\.code))
        #expect(!inspection.safety.safe)
        #expect(hostile.codes.isSubset(of: codes), "got \(inspection.safety.violations)")
        #expect(throws: UnsafeImageError.self) { try ImageInspector.requireSafe(path: path) }
    }

    @Test func refusalNamesTheImageTheFileAndWhatToDo() throws {
        let scratch = try Scratch()
        let path = try HostileImage.qemu(scratch, "b.qcow2", ["-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", "-u", "-o", "size=1G"])
        let error = try #require(throws: UnsafeImageError.self) { try ImageInspector.requireSafe(path: path) }
        let message = error.description
        #expect(message.hasPrefix("refusing \(path): qcow2 names a backing file '/etc/passwd' (CVE-2024-32498)"))
        #expect(message.contains("qemu-img convert"))
    }

    @Test func backingFileIsAcceptedOnlyWhenThePipelineAllowsIt() throws {
        let scratch = try Scratch()
        let base = try HostileImage.qemu(scratch, "base.qcow2", ["-f", "qcow2", "-o", "size=16M"])
        let overlay = try HostileImage.qemu(scratch, "overlay.qcow2", ["-f", "qcow2", "-F", "qcow2", "-b", base])
        #expect(try ImageInspector.inspect(path: overlay).safety.has(.backingFile))
        let allowed = try ImageInspector.inspect(path: overlay, policy: SafetyPolicy(allowBackingFile: true))
        #expect(allowed.safety.safe)
        guard case .qcow2(let info)? = allowed.formatSpecific else {
            Issue.record("no qcow2 data")
            return
        }
        #expect(info.backingFile == base && info.backingFormat == "qcow2")
    }

    @Test func allowListRefusesOtherFormats() throws {
        let scratch = try Scratch()
        let path = try HostileImage.qemu(scratch, "a.vdi", ["-f", "vdi", "-o", "size=16M"])
        let refused = try ImageInspector.inspect(path: path, policy: SafetyPolicy(allowedFormats: [.raw, .iso]))
        #expect(refused.safety.violations.map(\.code) == [.formatNotAllowed])
        #expect(try ImageInspector.inspect(path: path, policy: SafetyPolicy(allowedFormats: [.vdi])).safety.safe)
    }

    @Test func unreadablePathsThrowNamingThePath() throws {
        let scratch = try Scratch()
        for path in [scratch.directory, scratch.path("missing.qcow2"), "/dev/null"] {
            let error = try #require(throws: InspectionError.self) { try ImageInspector.inspect(path: path) }
            #expect(error.path == path)
            #expect(error.description.hasPrefix("cannot inspect \(path): "))
        }
    }
}

/// Paths that are not image files: a symlink is refused unless followed on purpose, a FIFO or a device always,
/// and nothing is ever written through a link.
@Suite struct FileAccessTests {
    @Test func symlinkIsRefusedUnlessFollowed() throws {
        let scratch = try Scratch()
        let link = scratch.path("disk.raw")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc/shadow")
        let error = try #require(throws: InspectionError.self) { try ImageInspector.inspect(path: link) }
        #expect(error.diagnostic.message == "cannot inspect \(link): it is a symbolic link to '/etc/shadow'")
        #expect(error.diagnostic.hint == "give the image's own path, or --follow-symlinks to read what it points to")

        let target = try HostileImage.qemu(scratch, "real.qcow2", ["-f", "qcow2", "-o", "size=16M"])
        try FileManager.default.createSymbolicLink(atPath: scratch.path("link.qcow2"), withDestinationPath: "real.qcow2")
        let followed = try ImageInspector.inspect(path: scratch.path("link.qcow2"),
                                                  policy: SafetyPolicy(access: FileAccess(followSymlinks: true)))
        #expect(followed.format == .qcow2 && followed.safety.safe)
        #expect(followed.linkTarget == URL(fileURLWithPath: target).resolvingSymlinksInPath().path)
        #expect(followed.resolvedPath == followed.linkTarget)
    }

    @Test func fifoAndDevicesAreRefusedWithoutBlocking() throws {
        let scratch = try Scratch()
        let fifo = scratch.path("pipe")
        #expect(mkfifo(fifo, 0o600) == 0)
        for path in [fifo, "/dev/zero"] {
            let error = try #require(throws: InspectionError.self) {
                try ImageInspector.inspect(path: path, policy: SafetyPolicy(access: FileAccess(followSymlinks: true)))
            }
            #expect(error.description.contains("give the path of an image file"), "\(error)")
        }
    }

    @Test func nothingIsWrittenThroughALink() throws {
        let scratch = try Scratch()
        let victim = scratch.path("victim")
        try write(Array("precious\n".utf8), to: victim)
        let link = scratch.path("out.qcow2")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: victim)
        let source = try HostileImage.qemu(scratch, "in.qcow2", ["-f", "qcow2", "-o", "size=1M"])
        #expect(throws: FormatError.self) { try ImageWriter(WriteOptions()).write(try openImage(path: source), to: link) }
        let refusal = try #require(throws: InspectionError.self) { try FileAccess.checkDestination(link, image: source) }
        #expect(refusal.description.contains("the destination \(link) is a symbolic link to '\(victim)'"))
        #expect(try bytes(of: victim) == Array("precious\n".utf8))
        #expect(FileManager.default.fileExists(atPath: link))
    }
}
