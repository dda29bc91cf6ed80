import Foundation
import Synchronization
import Testing
@testable import Appliance
import TestSupport

/// The appliance's initrd without the modules no launch uses, on archives made by the host's own cpio (what supermin's
/// archives are: newc); no launch. `ApplianceSessionTests` checks that a launch boots it.
@Suite struct SlimInitrdTests {
    /// A newc archive made by `cpio -o -H newc` from a tree like supermin's mini-initrd: init, a modules list in
    /// dependency order, the module files.
    static func supermin(in directory: TestDirectory, modules: [String], name: String = "initrd",
                         contents: ((String, Int) -> [UInt8])? = nil) throws -> String {
        let tree = directory.path(name + ".tree")
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        try Data("#!/bin/sh\necho supermin\n".utf8).write(to: URL(fileURLWithPath: tree + "/init"))
        try Data((modules.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: tree + "/modules"))
        for (index, module) in modules.enumerated() {
            let bytes = contents?(module, index) ?? [UInt8](repeating: UInt8(index), count: 1000 + index)
            try Data(bytes).write(to: URL(fileURLWithPath: tree + "/" + module))
        }
        let archive = directory.path(name)
        try runTool("sh", ["-c", "cd \"$1\" && ls | cpio --quiet -o -H newc > \"$2\"", "sh", tree, archive])
        return archive
    }

    static let debian12 = ["crc32-pclmul.ko", "scsi_common.ko", "scsi_mod.ko", "libata.ko", "ata_piix.ko",
                           "virtio_ring.ko", "virtio.ko", "virtio_console.ko", "crypto_engine.ko", "virtio_crypto.ko",
                           "libnvdimm.ko", "nd_pmem.ko", "sd_mod.ko", "virtio_scsi.ko", "virtio_balloon.ko",
                           "virtio_pci.ko", "jbd2.ko", "ext4.ko", "fuse.ko", "virtiofs.ko", "virtio-rng.ko"]

    @Test func theModulesListLosesWhatNoLaunchUsesAndNothingElseChanges() throws {
        let directory = try TestDirectory()
        let archive = try Self.supermin(in: directory, modules: Self.debian12)
        let original = [UInt8](try #require(FileManager.default.contents(atPath: archive)))
        let slim = try SlimInitrd.slimmed(original, path: archive)
        let slimPath = directory.path("slim")
        try Data(slim).write(to: URL(fileURLWithPath: slimPath))

        // The host's cpio reads it: the same members, the list filtered in its order, every other member's bytes equal.
        let listing = { (path: String) in try runTool("sh", ["-c", "cpio --quiet -it < \"$1\"", "sh", path]) }
        #expect(try listing(slimPath) == (try listing(archive)))
        let extract = { (path: String, member: String) in
            try runTool("sh", ["-c", "cpio --quiet -i --to-stdout \"$2\" < \"$1\"", "sh", path, member])
        }
        #expect(try extract(slimPath, "modules") == ["crc32-pclmul.ko", "scsi_common.ko", "scsi_mod.ko",
                                                      "virtio_ring.ko", "virtio.ko", "virtio_console.ko", "sd_mod.ko",
                                                      "virtio_scsi.ko", "virtio_pci.ko", "jbd2.ko", "ext4.ko",
                                                      "fuse.ko", "virtio-rng.ko"].joined(separator: "\n") + "\n")
        for member in ["init", "ata_piix.ko", "ext4.ko"] {
            #expect(try extract(slimPath, member) == (try extract(archive, member)), "\(member)")
        }
    }

    @Test func anArchiveItCannotReadOrWhoseRootWouldNotMountStaysAsItIs() throws {
        let directory = try TestDirectory()
        let withoutExt4 = try Self.supermin(in: directory, modules: Self.debian12.filter { $0 != "ext4.ko" })
        let error = #expect(throws: SlimInitrd.ExtractionError.self) {
            try SlimInitrd.slimmed([UInt8](try #require(FileManager.default.contents(atPath: withoutExt4))),
                                   path: withoutExt4)
        }
        #expect(error?.message.contains("does not load ext4") == true)

        // Cut short anywhere, or not a cpio archive at all: an error, never a trap; and prepare caches nothing.
        let whole = [UInt8](try #require(FileManager.default.contents(atPath: try Self.supermin(
            in: directory, modules: Self.debian12, name: "whole"))))
        for length in stride(from: 0, to: whole.count - 512, by: 509) {
            #expect(throws: SlimInitrd.ExtractionError.self) { try SlimInitrd.slimmed(Array(whole.prefix(length)), path: "cut") }
        }
        let text = directory.path("text")
        try Data("not an initrd\n".utf8).write(to: URL(fileURLWithPath: text))
        let cache = directory.path("kernels")
        let reason = try #require(SlimInitrd.prepare(initrd: text, in: cache, logger: LogRecorder().logger()))
        #expect(reason.contains("not a newc cpio archive"))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []).isEmpty)
    }

    /// A module as the kernel's build makes it: its code with a "vermagic=" string, then a signature of
    /// `signatureLength` bytes, the 12-byte information block ending in that length, and the marker.
    static func signed(_ code: [UInt8], signatureLength: Int, claimedLength: Int? = nil) -> [UInt8] {
        let length = UInt32(claimedLength ?? signatureLength)
        return code + [UInt8](repeating: 0x30, count: signatureLength) + [0, 0, 2, 0, 0, 0, 0, 0]
            + [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
            + Array("~Module signature appended~\n".utf8)
    }

    /// The modules the initrd loads lose their signatures, byte for byte what precedes them, where the kernel their
    /// vermagic names does not enforce signatures; a module it does not load, or one whose lengths do not add up,
    /// stays whole; and where signatures may be enforced, nothing but the list changes.
    @Test func theModulesItLoadsLoseTheirSignaturesWhereTheKernelAllowsIt() throws {
        let directory = try TestDirectory()
        func code(_ index: Int) -> [UInt8] {
            [UInt8](repeating: UInt8(index), count: 500) + Array("vermagic=6.1.0-57-amd64 SMP preempt mod_unload\0".utf8)
        }
        let archive = try Self.supermin(in: directory, modules: Self.debian12) { module, index in
            module == "fuse.ko" ? Self.signed(code(index), signatureLength: 100, claimedLength: 5000)
                : Self.signed(code(index), signatureLength: 400 + index)
        }
        let original = [UInt8](try #require(FileManager.default.contents(atPath: archive)))
        let asked = Mutex<[String]>([])
        let slimPath = directory.path("slim")
        try Data(try SlimInitrd.slimmed(original, path: archive, unsigned: { release in
            asked.withLock { $0.append(release) }
            return true
        })).write(to: URL(fileURLWithPath: slimPath))
        #expect(asked.withLock { $0 } == ["6.1.0-57-amd64"])
        func member(_ path: String, _ name: String) throws -> [UInt8] {
            let text = try runTool("sh", ["-c", "cpio --quiet -i --to-stdout \"$2\" < \"$1\" | od -An -v -tx1", "sh", path, name])
            return text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { UInt8($0, radix: 16) }
        }
        let ext4 = try #require(Self.debian12.firstIndex(of: "ext4.ko"))
        #expect(try member(slimPath, "ext4.ko") == code(ext4))
        #expect(try member(slimPath, "ata_piix.ko") == (try member(archive, "ata_piix.ko")))
        #expect(try member(slimPath, "fuse.ko") == (try member(archive, "fuse.ko")))

        // A kernel that may enforce signatures: only the list changes.
        let kept = try SlimInitrd.slimmed(original, path: archive, unsigned: { _ in false })
        let keptPath = directory.path("kept")
        try Data(kept).write(to: URL(fileURLWithPath: keptPath))
        #expect(try member(keptPath, "ext4.ko") == (try member(archive, "ext4.ko")))

        // What says so: the kernel's configuration in /boot, and nothing else.
        let boot = directory.path("boot")
        try FileManager.default.createDirectory(atPath: boot, withIntermediateDirectories: true)
        try Data("CONFIG_MODULE_SIG=y\n# CONFIG_MODULE_SIG_FORCE is not set\n".utf8)
            .write(to: URL(fileURLWithPath: boot + "/config-6.1.0-57-amd64"))
        try Data("CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_FORCE=y\n".utf8).write(to: URL(fileURLWithPath: boot + "/config-6.9-enforcing"))
        let logger = LogRecorder().logger()
        #expect(SlimInitrd.signaturesOptional(kernelRelease: "6.1.0-57-amd64", configurations: boot, logger: logger))
        #expect(!SlimInitrd.signaturesOptional(kernelRelease: "6.9-enforcing", configurations: boot, logger: logger))
        #expect(!SlimInitrd.signaturesOptional(kernelRelease: "6.2-missing", configurations: boot, logger: logger))
        #expect(!SlimInitrd.signaturesOptional(kernelRelease: "../boot/config-6.1.0-57-amd64", configurations: boot, logger: logger))
        // Short, unmarked or truncated modules come back as they were.
        for module: [UInt8] in [[], Array("~Module signature appended~\n".utf8), [1, 2, 3],
                                Array(Self.signed([7], signatureLength: 3).dropFirst(2))] {
            #expect(ModuleSignature.unsigned(module) == module)
        }
    }

    @Test func turningItOff() {
        #expect(!SlimInitrd.enabled(environment: [SlimInitrd.environmentVariable: "stock"]))
        #expect(SlimInitrd.enabled(environment: [:]))
    }
}
