import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

extension Tag {
    /// Boots a real guest under qemu: minutes each under software emulation.
    @Tag static var boot: Self
}

func debianFixture(_ name: String) throws -> String { try debianFixtures.path(name) }

/// Every result boots: the real Debian guests, as built and after imgcustomize prepared them, checked by
/// `boot-check` from inside the guest. Not serialized: each test boots one guest at a time, and the tests run in
/// parallel, so that the minutes a guest spends booting under software emulation overlap with other tests' work.
@Suite(.fixtures(debianFixtures), .tags(.appliance, .boot)) struct BootTests {
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

        var machineID: String { (report["identity"] as? [String: Any])?["machine-id"] as? String ?? "" }
        var hostKeys: Set<String> { Set((report["identity"] as? [String: Any])?["ssh-host-keys"] as? [String] ?? []) }

        /// What a user reads when it fails: the verdict, every check and the console's last lines.
        var summary: String { "\(report["failure"] as? String ?? "") \(report["checks"] ?? "") \(stderr.suffix(2000))" }
    }

    /// `boot-check` of `image`, as root or, `unprivileged`, as UnprivilegedUser's user.
    func bootCheck(_ image: String, timeout: Int = 900, boots: Int = 1, unprivileged: Bool = false) throws -> Boot {
        let before = try sha256(image)
        let arguments = ["boot-check", image, "--json", "--timeout", String(timeout), "--boots", String(boots)]
        let run = unprivileged ? try UnprivilegedUser.imgcustomize(arguments) : try imgcustomize(arguments)
        // Booting an overlay never writes the image.
        #expect(try sha256(image) == before)
        return Boot(status: run.status, report: try jsonObject(run.stdout), stderr: run.stderr)
    }

    /// Every check passed, on the firmware the layout needs, with the serial console the preparation asked for.
    func expectPassed(_ boot: Boot, firmware: String) {
        #expect(boot.status == 0, "\(boot.summary)")
        #expect(boot.report["passed"] as? Bool == true)
        #expect(boot.report["reached"] as? String == "SSH login")
        #expect(boot.report["firmware"] as? String == firmware)
        for name in ["hostname from the metadata", "user-data command ran", "fresh machine-id", "fresh SSH host keys",
                     "serial console", "root filesystem read-write", "no failed systemd units",
                     "cloud-init without errors"] {
            #expect(boot.checks[name]?.passed == true, "\(name): \(boot.detail(name))")
        }
        #expect(boot.machineID.count == 32)
        #expect(!boot.hostKeys.isEmpty)
    }

    /// What a user does to a Debian guest: `apply debian-cloud` (sysprep, the serial console, root locked, the
    /// OpenStack datasources, free space trimmed, a compressed qcow2), with `operations` after the profile's steps in
    /// the same launch, whose result each test then rewrites its own way. `renewing` is what its lvm-uuids step must
    /// have given new UUIDs, when the guest has LVM. Returns the image and the run's JSON report.
    func prepare(_ fixture: String, in directory: TestDirectory, renewing lvm: String? = nil,
                 then operations: [String] = []) throws -> (image: String, report: [String: Any]) {
        let image = directory.path("prepared.qcow2")
        let apply = try imgcustomize(["apply", "debian-cloud", try debianFixture(fixture), "--output", image, "--json"]
                                     + operations)
        #expect(apply.status == 0, "\(apply.stderr)")
        let report = try jsonObject(apply.stdout)
        let step = steps(report).first { $0["operation"] as? String == "lvm-uuids" }
        #expect(step?["summary"] as? String == lvm.map { "new UUIDs for " + $0 } ?? "no LVM physical volume")
        return (image, report)
    }

    /// The `--fs-uuids` step of `report` gave every filesystem in `expecting` ("/boot (/dev/sda1)") a new UUID and
    /// rewrote the files `rewritten` names to match.
    func expectNewFilesystemUUIDs(_ report: [String: Any], expecting filesystems: [String], rewritten: [String]) {
        let summary = steps(report).first { $0["operation"] as? String == "fs-uuids" }?["summary"] as? String ?? ""
        for filesystem in filesystems { #expect(summary.contains(filesystem + " "), "\(summary)") }
        let references = summary.components(separatedBy: "references rewritten in ").last?
            .components(separatedBy: ";").first?.components(separatedBy: ", ") ?? []
        for file in rewritten { #expect(references.contains(file), "\(summary)") }
    }

    func convert(_ arguments: [String], _ input: String, _ output: String) throws {
        let converted = try imgcustomize(["convert"] + arguments + [input, output, "--quiet"])
        #expect(converted.status == 0, "\(converted.stderr)")
    }

    /// The fixture as built boots and answers over SSH, and the check catches what a used machine carries: the
    /// machine-id and SSH host keys it was booted with. Checked by a user who is not root and can only read the
    /// image, as boot-check runs where images are built (its qemu, overlay, seed ISO, SSH key and console log are
    /// that user's).
    @Test func theFixtureAsBuiltBootsAndItsCopiedIdentityIsCaughtByAUserWhoIsNotRoot() throws {
        let directory = try TestDirectory()
        try UnprivilegedUser.own(directory.path)
        // A link, not a copy (the fixture's directory under /root is not the user's to enter): the file is
        // readable by all, and the user gets no write permission to it.
        let image = directory.path("debian12-bios.qcow2")
        let fixture = try debianFixture("debian12-bios.qcow2")
        if link(fixture, image) != 0 { try FileManager.default.copyItem(atPath: fixture, toPath: image) }
        let boot = try bootCheck(image, unprivileged: true)
        #expect(boot.report["reached"] as? String == "SSH login", "\(boot.summary)")
        #expect(boot.checks["hostname from the metadata"]?.passed == true)
        #expect(boot.checks["user-data command ran"]?.passed == true)
        #expect(boot.checks["root filesystem read-write"]?.passed == true)
        #expect(boot.checks["fresh machine-id"]?.passed == false)
        #expect(boot.detail("fresh machine-id").hasSuffix("is the one the image holds: clones would share it"))
        #expect(boot.status == 1)
    }

    /// The BIOS layout (MBR, /boot, root and swap on LVM) prepared by imgcustomize (whose sysprep gives the PV and
    /// the VG new UUIDs) and given new filesystem UUIDs, then written raw and sparsified: both boot and pass every
    /// check, as two machines with their own machine-id and SSH host keys. GRUB found /boot by its new UUID, the
    /// initramfs the root LV, systemd every fstab entry.
    @Test func aPreparedBIOSGuestWithNewUUIDsBootsRawAndSparsifiedAsTwoMachines() throws {
        let directory = try TestDirectory()
        let (prepared, report) = try prepare("debian12-bios.qcow2", in: directory,
                                             renewing: "PV /dev/sda5, VG deb12-bios-vg", then: ["--fs-uuids"])
        expectNewFilesystemUUIDs(report, expecting: ["/boot (/dev/sda1)", "/ (/dev/deb12-bios-vg/root)"],
                                 rewritten: ["/etc/fstab", "/boot/grub/grub.cfg"])
        let raw = directory.path("prepared.raw")
        try convert(["-O", "raw"], prepared, raw)
        let sparsified = directory.path("sparsified.qcow2")
        let sparsify = try imgcustomize(["sparsify", prepared, "--output", sparsified, "--quiet"])
        #expect(sparsify.status == 0, "\(sparsify.stderr)")
        try FileManager.default.removeItem(atPath: prepared)

        let first = try bootCheck(raw)
        expectPassed(first, firmware: "bios")
        let second = try bootCheck(sparsified)
        expectPassed(second, firmware: "bios")
        #expect(first.machineID != second.machineID)
        #expect(first.hostKeys.isDisjoint(with: second.hostKeys), "\(first.hostKeys) \(second.hostKeys)")
    }

    /// The UEFI layout (GPT, ESP) prepared by imgcustomize, given first-boot steps and a new root filesystem UUID and
    /// rewritten zstd-compressed, boots twice as one machine and passes every check both times: the first-boot steps ran at the first boot, in
    /// order, and not at the second.
    @Test func aPreparedUEFIGuestWithFirstBootStepsBootsTwiceFromZstdClusters() throws {
        let directory = try TestDirectory()
        let script = directory.path("first-boot.sh")
        try "#!/bin/sh\necho script >> /var/tmp/first-boot\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        // The first-boot steps and the new UUIDs in the profile's launch: operations after `apply debian-cloud`.
        let (prepared, report) = try prepare("debian12-uefi.qcow2", in: directory, then: [
            "--firstboot-command", "echo command >> /var/tmp/first-boot", "--firstboot", script, "--fs-uuids",
        ])
        let named: Set = ["firstboot-command", "firstboot", "lvm-uuids", "fs-uuids", "trim-free-space"]
        #expect(steps(report).compactMap { $0["operation"] as? String }.filter(named.contains)
                == ["firstboot-command", "firstboot", "trim-free-space", "lvm-uuids", "fs-uuids"], "\(steps(report))")
        // grub-install found the root by partition here (its EFI images name no UUID); the ESP's vfat ID stays.
        expectNewFilesystemUUIDs(report, expecting: ["/ (/dev/sda2)"], rewritten: ["/etc/fstab", "/boot/grub/grub.cfg"])
        let zstd = directory.path("zstd.qcow2")
        try convert(["--compress", "zstd"], prepared, zstd)
        try FileManager.default.removeItem(atPath: prepared)

        let boot = try bootCheck(zstd, boots: 2)
        expectPassed(boot, firmware: "uefi")
        for name in ["first-boot scripts ran once", "second boot: first-boot scripts ran once",
                     "second boot: the same machine", "second boot: no failed systemd units",
                     "second boot: root filesystem read-write"] {
            #expect(boot.checks[name]?.passed == true, "\(name): \(boot.detail(name))")
        }
        #expect(boot.detail("first-boot scripts ran once")
                == "0001-command, 0002-first-boot.sh: exit status 0, logged in /var/log/imgcustomize-firstboot.log")
    }

    /// A guest whose kernel was deleted fails at once with the boot loader's own words, well within the timeout.
    @Test func aGuestWithoutAKernelFailsWithTheReason() throws {
        let directory = try TestDirectory()
        let image = directory.path("broken.qcow2")
        try FileManager.default.copyItem(atPath: try debianFixture("debian12-uefi.qcow2"), toPath: image)
        let deleted = try imgcustomize(["customize", image, "--delete", "/boot/vmlinuz-*", "--quiet"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        let started = Date()
        let boot = try bootCheck(image, timeout: 600)
        #expect(Date().timeIntervalSince(started) < 600)
        #expect(boot.status == 1)
        let failure = boot.report["failure"] as? String ?? ""
        #expect(failure.hasPrefix("the boot loader failed: error: file `/boot/vmlinuz-"), "\(failure)")
        #expect(boot.report["reached"] as? String == "firmware")
        #expect(boot.report["identity"] is NSNull)
        #expect((boot.report["console-log"] as? String).map { FileManager.default.fileExists(atPath: $0) } == true)
    }
}
