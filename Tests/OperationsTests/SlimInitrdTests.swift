import Foundation
import Testing
@testable import Appliance
import TestSupport

/// The appliance's initrd without the modules no launch uses, on archives made by the host's own cpio (what supermin's
/// archives are: newc); no launch. `ApplianceSessionTests` checks that a launch boots it.
@Suite struct SlimInitrdTests {
    /// A newc archive made by `cpio -o -H newc` from a tree like supermin's mini-initrd: init, a modules list in
    /// dependency order, the module files.
    static func supermin(in directory: TestDirectory, modules: [String], name: String = "initrd") throws -> String {
        let tree = directory.path(name + ".tree")
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        try Data("#!/bin/sh\necho supermin\n".utf8).write(to: URL(fileURLWithPath: tree + "/init"))
        try Data((modules.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: tree + "/modules"))
        for (index, module) in modules.enumerated() {
            try Data(repeating: UInt8(index), count: 1000 + index).write(to: URL(fileURLWithPath: tree + "/" + module))
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

    @Test func turningItOff() {
        #expect(!SlimInitrd.enabled(environment: [SlimInitrd.environmentVariable: "stock"]))
        #expect(SlimInitrd.enabled(environment: [:]))
    }
}
