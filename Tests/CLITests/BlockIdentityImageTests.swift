import Foundation
import Testing
import TestSupport
import Appliance

/// lvm-uuids and fs-uuids on the real Debian 12 guest (MBR, /boot on a partition, root and swap on LVM), read back
/// with guestfish (the input and the result in one launch): new UUIDs on the devices, the same new UUIDs in the files
/// that name them. The boot tests boot such images (BootTests).
@Suite(.fixtures(debianFixtures), .serialized, .tags(.appliance)) struct BlockIdentityImageTests {
    static let group = "deb12-bios-vg"

    /// What guestfish reads of an image: the PV's and VG's UUIDs, /boot's and the root LV's filesystem UUIDs, and
    /// the fstab and grub.cfg that name them.
    struct Identities {
        var pv, vg, boot, root: String
        var fstab, grub: String
    }

    /// The identities of each of `images`, all read by one guestfish (one launch): for each drive in turn, LVM
    /// limited to it (the images are clones: one volume group name), then its devices' UUIDs and its files.
    func identities(_ images: [String]) throws -> [Identities] {
        let marker = "=== imgcustomize-test ==="
        var script = ["--ro", "--format=qcow2"] + images.flatMap { ["-a", $0] } + ["run"]
        for index in images.indices {
            let disk = ApplianceDrive.deviceName(index: index)
            script += [":", "lvm-set-filter", disk, ":", "pvuuid", disk + "5", ":", "vguuid", Self.group, ":",
                       "vfs-uuid", disk + "1", ":", "vfs-uuid", "/dev/\(Self.group)/root", ":", "echo", marker, ":",
                       "mount-ro", "/dev/\(Self.group)/root", "/", ":", "mount-ro", disk + "1", "/boot", ":",
                       "cat", "/etc/fstab", ":", "echo", marker, ":", "cat", "/boot/grub/grub.cfg", ":", "echo", marker,
                       ":", "umount-all"]
        }
        // Software emulation, as everywhere in these tests: KVM hangs or aborts on the machines this runs on.
        let printed = try runTool("env", ["LIBGUESTFS_BACKEND_SETTINGS=force_tcg", "guestfish"] + script)
        let parts = printed.components(separatedBy: marker + "\n")
        guard parts.count == 3 * images.count + 1 else { throw TestFailure("guestfish printed: \(printed.prefix(500))") }
        return try images.indices.map { index in
            let lines = parts[3 * index].split(separator: "\n").map(String.init)
            guard lines.count == 4 else { throw TestFailure("guestfish printed: \(printed.prefix(500))") }
            return Identities(pv: lines[0], vg: lines[1], boot: lines[2], root: lines[3],
                              fstab: parts[3 * index + 1], grub: parts[3 * index + 2])
        }
    }

    @Test func newUUIDsOnTheDevicesAndInEveryFileThatNamesThem() throws {
        let directory = try TestDirectory()
        let fixture = try debianFixture("debian12-bios.qcow2")
        let image = directory.path("debian12.qcow2")
        try FileManager.default.copyItem(atPath: fixture, toPath: image)
        let output = directory.path("renewed.qcow2")
        // Trimming, wherever it is asked, runs before the identities; fs-uuids rewrites fstab and grub.cfg after its
        // change, so the filesystems are mounted again and trimmed again before the appliance closes.
        let run = try imgcustomize(["customize", image, "--output", output, "--json", "-vv", "--lvm-uuids",
                                    "--fs-uuids", "--trim-free-space"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonObject(run.stdout)
        #expect(steps(report).map { $0["operation"] as? String } == ["trim-free-space", "lvm-uuids", "fs-uuids"])
        #expect(run.stderr.contains("trimmed /, /boot again: files were rewritten there after an identity change"),
                "\(run.stderr.suffix(3000))")
        let lvm = steps(report).first { $0["operation"] as? String == "lvm-uuids" }
        #expect(lvm?["summary"] as? String == "new UUIDs for PV /dev/sda5, VG \(Self.group)", "\(String(describing: lvm))")
        let fs = try #require(steps(report).first { $0["operation"] as? String == "fs-uuids" })
        #expect(fs["changed"] as? Bool == true)

        // The input (only read, with --output) and the result side by side.
        let read = try identities([image, output])
        try #require(read.count == 2)
        let (before, after) = (read[0], read[1])
        #expect(before.fstab.contains("UUID=\(before.root) /"))
        #expect(before.grub.contains(before.boot))
        for (old, new) in [(before.pv, after.pv), (before.vg, after.vg), (before.boot, after.boot),
                           (before.root, after.root)] {
            #expect(!new.isEmpty && new != old, "\(old) -> \(new)")
        }
        let summary = fs["summary"] as? String ?? ""
        #expect(summary.hasPrefix("new UUIDs for / (/dev/\(Self.group)/root) \(after.root), /boot (/dev/sda1) "
                                  + "\(after.boot); references rewritten in /etc/fstab, /boot/grub/grub.cfg"), "\(summary)")
        // Every reference now names the new UUIDs, none the old.
        #expect(after.fstab == before.fstab.replacingOccurrences(of: before.root, with: after.root)
            .replacingOccurrences(of: before.boot, with: after.boot))
        #expect(after.grub.contains(after.boot) && !after.grub.contains(before.boot))
    }
}
