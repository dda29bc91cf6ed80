import Foundation
import Testing
import TestSupport

extension Tag {
    /// Boots a real guest under qemu: minutes each under software emulation.
    @Tag static var boot: Self
}

/// The Debian 12 guests built from Debian's packages by Fixtures/build-debian.
let debianFixtures = FixtureImages(variable: "IMGCUSTOMIZE_DEBIAN_FIXTURES", script: "Fixtures/build-debian")

func debianFixture(_ name: String) throws -> String { try debianFixtures.path(name) }

/// Every result boots: the real Debian guests, as built and after imgcustomize prepared them, checked by
/// `boot-check` from inside the guest.
@Suite(.serialized, .tags(.appliance, .boot)) struct BootTests {
    /// One boot-check run, its JSON and the checks by name.
    struct Boot {
        var status: Int32
        var report: [String: Any]
        var stderr: String

        var checks: [String: (passed: Bool, detail: String)] {
            var checks: [String: (Bool, String)] = [:]
            for check in report["checks"] as? [[String: Any]] ?? [] {
                checks[check["name"] as? String ?? ""] = (check["passed"] as? Bool ?? false, check["detail"] as? String ?? "")
            }
            return checks
        }

        func detail(_ name: String) -> String { checks[name]?.detail ?? "" }
    }

    func bootCheck(_ image: String, _ extra: [String] = []) throws -> Boot {
        let before = try sha256(image)
        let run = try imgcustomize(["boot-check", image, "--json", "--timeout", "900"] + extra)
        // Booting an overlay never writes the image.
        #expect(try sha256(image) == before)
        return Boot(status: run.status, report: try jsonObject(run.stdout), stderr: run.stderr)
    }

    /// What `apply` and `customize` do to a Debian guest until a Debian cloud profile exists: sysprep, the serial
    /// console, root locked, trimmed, rewritten compressed.
    func prepare(_ fixture: String, in directory: TestDirectory) throws -> String {
        let image = directory.path("prepared.qcow2")
        try FileManager.default.copyItem(atPath: try debianFixture(fixture), toPath: image)
        let sysprep = try imgcustomize(["apply", "sysprep", image, "--quiet"])
        #expect(sysprep.status == 0, "\(sysprep.stderr)")
        let customize = try imgcustomize(["customize", image, "--append-grub-args", "console=tty0 console=ttyS0,115200n8",
                                          "--lock-root", "--trim-free-space", "--quiet"])
        #expect(customize.status == 0, "\(customize.stderr)")
        let compressed = directory.path("prepared-compressed.qcow2")
        try runTool("qemu-img", ["convert", "-c", "-O", "qcow2", image, compressed])
        return compressed
    }

    /// The fixture as built boots and answers over SSH, and the check catches what a used machine carries: the
    /// machine-id it was booted with.
    @Test func theFixtureAsBuiltBootsAndItsCopiedIdentityIsCaught() throws {
        let boot = try bootCheck(try debianFixture("debian12-bios.qcow2"))
        #expect(boot.report["reached"] as? String == "SSH login", "\(boot.report)")
        #expect(boot.checks["hostname from the metadata"]?.passed == true)
        #expect(boot.checks["user-data command ran"]?.passed == true)
        #expect(boot.checks["fresh machine-id"]?.passed == false)
        #expect(boot.detail("fresh machine-id").hasSuffix("is the one the image holds: clones would share it"))
        #expect(boot.status == 1)
    }

    /// Prepared by imgcustomize, each layout passes every check, twice with different identities, and so do its
    /// conversions.
    @Test(arguments: ["debian12-bios.qcow2", "debian12-uefi.qcow2"])
    func aPreparedGuestPassesEveryCheck(fixture: String) throws {
        let directory = try TestDirectory()
        let prepared = try prepare(fixture, in: directory)
        let first = try bootCheck(prepared)
        #expect(first.status == 0, "\(first.report)")
        #expect(first.report["passed"] as? Bool == true)
        #expect(first.report["firmware"] as? String == (fixture.contains("uefi") ? "uefi" : "bios"))
        #expect(first.checks["serial console"]?.passed == true)
        guard fixture.contains("bios") else { return }

        // Two boots of one image: two machines.
        let second = try bootCheck(prepared)
        #expect(second.status == 0, "\(second.report)")
        #expect(first.detail("fresh machine-id") != second.detail("fresh machine-id"))
        #expect(!first.detail("fresh machine-id").isEmpty)

        let zstd = directory.path("zstd.qcow2")
        let converted = try imgcustomize(["convert", "--compress", "zstd", prepared, zstd, "--quiet"])
        #expect(converted.status == 0, "\(converted.stderr)")
        let zstdBoot = try bootCheck(zstd)
        #expect(zstdBoot.status == 0, "\(zstdBoot.report)")
    }

    /// A guest without a kernel fails with the stage it reached, within the timeout, never hangs.
    @Test func aGuestWithoutAKernelFailsWithTheReason() throws {
        let directory = try TestDirectory()
        let image = directory.path("broken.qcow2")
        try FileManager.default.copyItem(atPath: try debianFixture("debian12-bios.qcow2"), toPath: image)
        let deleted = try imgcustomize(["customize", image, "--delete", "/boot/vmlinuz-*", "--quiet"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        let started = Date()
        let run = try imgcustomize(["boot-check", image, "--json", "--timeout", "240"])
        #expect(Date().timeIntervalSince(started) < 420)
        #expect(run.status == 1)
        let report = try jsonObject(run.stdout)
        let failure = report["failure"] as? String ?? ""
        #expect(failure.hasPrefix("no SSH login within 240 s") || failure.hasPrefix("the boot loader failed"),
                "\(failure)")
        #expect(report["reached"] as? String != "SSH login")
        #expect((report["console-log"] as? String).map { FileManager.default.fileExists(atPath: $0) } == true)
    }
}
