import Foundation
import Logging
import Testing
@testable import Appliance
import TestSupport

/// The PVH entry of the appliance kernel, extracted from the host's own kernel (what supermin copies into the
/// appliance); no launch.
@Suite struct PVHKernelTests {
    /// The newest /boot/vmlinuz-*, as supermin picks it.
    static func hostKernel() throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: "/boot").filter { $0.hasPrefix("vmlinuz-") }
        let newest = try #require(names.sorted { $0.compare($1, options: .numeric) == .orderedAscending }.last,
                                  "no /boot/vmlinuz-*: scripts/install-deps installs linux-image-amd64")
        return "/boot/" + newest
    }

    @Test func theHostKernelsPVHEntryIsExtractedOnceAndKept() throws {
        let directory = try TestDirectory()
        let kernels = directory.path("kernels")
        let kernel = try Self.hostKernel()
        let logs = LogRecorder()

        #expect(PVHKernel.prepare(kernel: kernel, in: kernels, logger: logs.logger()) == nil)
        let name = try #require(PVHKernel.cachedName(of: kernel))
        let elf = (kernels as NSString).appendingPathComponent(name)
        let handle = try #require(FileHandle(forReadingAtPath: elf))
        defer { try? handle.close() }
        #expect(try PVHKernel.hasPVHEntry(handle))
        // readelf, not our parser, confirms the note qemu looks for: Xen's PHYS32_ENTRY (0x12).
        let notes = try runTool("readelf", ["-n", elf])
        #expect(notes.contains("Xen") && notes.contains("0x00000012"))
        #expect(logs.messages.contains { $0.1.contains("extracted the appliance kernel's PVH entry") })

        // A second run finds it by the kernel's SHA-256 and does not extract again.
        let before = try FileManager.default.attributesOfItem(atPath: elf)[.modificationDate] as? Date
        let again = LogRecorder()
        #expect(PVHKernel.prepare(kernel: kernel, in: kernels, logger: again.logger()) == nil)
        #expect(try FileManager.default.attributesOfItem(atPath: elf)[.modificationDate] as? Date == before)
        #expect(again.messages.isEmpty)
        // Nothing half-written is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: kernels) == [name])
    }

    @Test func whatIsNotAPVHKernelLeavesTheStockKernelInUse() throws {
        let directory = try TestDirectory()
        let kernels = directory.path("kernels")
        let kernel = try Self.hostKernel()
        let image = try #require(FileManager.default.contents(atPath: kernel))

        // An ELF without the note (a program), a bzImage cut short, and something else altogether.
        let cut = directory.path("vmlinuz-cut")
        try image.prefix(64 << 10).write(to: URL(fileURLWithPath: cut))
        let text = directory.path("vmlinuz-text")
        try Data("not a kernel\n".utf8).write(to: URL(fileURLWithPath: text))
        let sh = try #require(FileHandle(forReadingAtPath: "/bin/sh"))
        defer { try? sh.close() }
        #expect(try PVHKernel.hasPVHEntry(sh) == false)

        let cutReason = try #require(PVHKernel.prepare(kernel: cut, in: kernels, logger: LogRecorder().logger()))
        #expect(cutReason.contains("lies outside the file"))
        let textReason = try #require(PVHKernel.prepare(kernel: text, in: kernels, logger: LogRecorder().logger()))
        #expect(textReason.contains("not a bzImage"))
        let missing = try #require(PVHKernel.prepare(kernel: directory.path("absent"), in: kernels,
                                                     logger: LogRecorder().logger()))
        #expect(missing.contains("not a readable kernel file"))
        let left = (try? FileManager.default.contentsOfDirectory(atPath: kernels)) ?? []
        #expect(left.isEmpty)
    }

    @Test func turningItOffGivesNoCache() {
        #expect(PVHKernel.cacheDirectory(environment: [PVHKernel.environmentVariable: "stock"]) == nil)
        #expect(PVHKernel.cacheDirectory(environment: ["XDG_CACHE_HOME": "/srv/cache"]) == "/srv/cache/imgcustomize/kernels")
    }
}
