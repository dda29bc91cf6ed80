import Foundation
import Appliance
import Operations
import Testing
import TestSupport

/// A disk whose second partition is LUKS1 around an ext4 filesystem holding a minimal RHEL 7.9 guest: release
/// files, a hostname, /bin/bash from the host, and an fstab and crypttab naming the root /dev/mapper/luks-UUID, as
/// anaconda writes them. The container is made by the host's cryptsetup on a file (with few PBKDF iterations, so
/// that it opens in moments under emulation) and copied into the partition; the filesystem and the tree go in
/// through one appliance launch (Perl's Sys::Guestfs, independent of the code under test). Built once per test
/// run, copied by each test.
enum LUKSDisk {
    static let passphrase = "luks-test-passphrase-7f3a"
    static let uuid = "5f2b8a4e-1c3d-4e6f-8a9b-0c1d2e3f4a5b"
    static let mapping = "/dev/mapper/luks-\(uuid)"
    /// What `inspect --os` prints for it.
    static let osText = """
        os:
            type: linux
            distro: rhel
            version: 7.9
            osinfo: rhel7.9
            product: Red Hat Enterprise Linux Server 7.9 (Maipo)
            arch: x86_64
            hostname: luks-guest.example.com
            package format: rpm
            package management: yum
            root: \(mapping)
            mountpoints:
                /: \(mapping)

        """

    private static let built: Result<TestDirectory, any Error> = Result { try build() }

    /// A fresh copy of the disk in `directory`.
    static func copy(in directory: TestDirectory) throws -> String {
        let disk = directory.path("luks.raw")
        try runTool("cp", ["--sparse=always", try built.get().path("luks.raw"), disk])
        return disk
    }

    private static func build() throws -> TestDirectory {
        let directory = try TestDirectory()
        let disk = directory.path("luks.raw")
        let container = directory.path("part.luks")
        let keyFile = directory.path("key")
        try Data(passphrase.utf8).write(to: URL(fileURLWithPath: keyFile))
        try runTool("truncate", ["-s", "64M", disk])
        try runTool("sgdisk", ["-n", "1:2048:+16M", "-n", "2:0:0", disk])
        try runTool("truncate", ["-s", "32M", container])
        try runTool("cryptsetup", ["luksFormat", "-q", "--type", "luks1", "--pbkdf-force-iterations", "1000",
                                "--uuid", uuid, "--key-file", keyFile, container])
        try runTool("dd", ["if=\(container)", "of=\(disk)", "bs=1M", "seek=17", "conv=notrunc", "status=none"])
        try FileManager.default.removeItem(atPath: container)

        let tree = directory.path("tree")
        let files = [
            "etc/os-release": """
                NAME="Red Hat Enterprise Linux Server"
                VERSION="7.9 (Maipo)"
                ID="rhel"
                VERSION_ID="7.9"
                PRETTY_NAME="Red Hat Enterprise Linux Server 7.9 (Maipo)"

                """,
            "etc/redhat-release": "Red Hat Enterprise Linux Server release 7.9 (Maipo)\n",
            "etc/hostname": "luks-guest.example.com\n",
            "etc/fstab": "\(mapping) / ext4 defaults 0 0\n",
            "etc/crypttab": "luks-\(uuid) UUID=\(uuid) none\n",
            "etc/motd": "before\n",
        ]
        for (path, text) in files {
            let url = URL(fileURLWithPath: tree).appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        try FileManager.default.createDirectory(atPath: tree + "/usr/bin", withIntermediateDirectories: true)
        try runTool("cp", ["-L", "/usr/bin/bash", tree + "/usr/bin/bash"])
        try FileManager.default.createSymbolicLink(atPath: tree + "/bin", withDestinationPath: "usr/bin")
        let archive = directory.path("tree.tar")
        try runTool("tar", ["-C", tree, "--owner=0", "--group=0", "-cf", archive, "."])

        let script = """
            use strict; use Sys::Guestfs;
            my ($disk, $key, $tar) = @ARGV;
            my $g = Sys::Guestfs->new();
            $g->add_drive($disk, format => "raw");
            $g->launch();
            $g->cryptsetup_open("/dev/sda2", $key, "fill");
            $g->mkfs("ext4", "/dev/mapper/fill");
            $g->mount("/dev/mapper/fill", "/");
            $g->tar_in($tar, "/");
            $g->umount_all();
            $g->cryptsetup_close("/dev/mapper/fill");
            $g->shutdown();
            $g->close();
            """
        // As Fixtures/build-images: qemu aborts under KVM on the machines this project is developed on.
        let settings = ProcessInfo.processInfo.environment["LIBGUESTFS_BACKEND_SETTINGS"] ?? "force_tcg"
        let result = try runProcess("/usr/bin/env", ["perl", "-e", script, disk, passphrase, archive],
                                    environment: ["LIBGUESTFS_BACKEND_SETTINGS": settings])
        guard result.status == 0 else { throw TestFailure("filling the LUKS disk failed: \(result.stderr)") }
        return directory
    }
}

/// The "os:" section of an `inspect --os` report.
private func osSection(_ stdout: String) -> String {
    stdout.range(of: "os:\n").map { String(stdout[$0.lowerBound...]) } ?? stdout
}

private let tcg = ["IMGCUSTOMIZE_ACCEL": "tcg"]

/// LUKS inside a disk, opened as virt-customize does (`--key DEVICE:key:PASSPHRASE`, `--key DEVICE:file:PATH`,
/// `--keys-from-stdin`). One appliance at a time: each test launches one (the customize test two, its read-back
/// included), and emulation shares two cores.
@Suite(.serialized) struct LUKSTests {
    /// A LUKS partition and no key: no operating system found, and the message says which partition is encrypted
    /// and how to give its key, instead of listing filesystems.
    @Test(.tags(.appliance)) func encryptedPartitionIsNamed() throws {
        let directory = try TestDirectory()
        let disk = directory.path("disk.raw")
        let partition = directory.path("part.luks")
        let key = directory.path("key")
        try Data("hunter2".utf8).write(to: URL(fileURLWithPath: key))
        try runTool("truncate", ["-s", "64M", disk])
        try runTool("sgdisk", ["-n", "1:2048:+16M", "-n", "2:0:0", disk])
        try runTool("truncate", ["-s", "32M", partition])
        try runTool("cryptsetup", ["luksFormat", "-q", "--type", "luks1", "--pbkdf-force-iterations", "1000",
                                "--key-file", key, partition])
        try runTool("dd", ["if=\(partition)", "of=\(disk)", "bs=1M", "seek=17", "conv=notrunc", "status=none"])
        let result = try imgcustomize(["inspect", "--os", disk], environment: tcg)
        #expect(result.status != 0)
        #expect(result.stderr.contains("partition 2 (/dev/sda2) is LUKS-encrypted"), "\(result.stderr)")
        #expect(result.stderr.contains("give --key /dev/sda2:key:PASSPHRASE"), "\(result.stderr)")
        #expect(result.stderr.contains("--keys-from-stdin"), "\(result.stderr)")
        #expect(!result.stderr.contains("hunter2"))
    }

    /// With its key, the guest inside is found by the quick inspection, through the mapping its fstab names; at
    /// trace level (libguestfs prints every call's arguments) the passphrase appears nowhere.
    @Test(.tags(.appliance)) func keyOpensTheGuest() throws {
        let directory = try TestDirectory()
        let disk = try LUKSDisk.copy(in: directory)
        let result = try imgcustomize(["inspect", "--os", "-vvv", "--key", "/dev/sda2:key:\(LUKSDisk.passphrase)", disk],
                                      environment: tcg)
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        #expect(osSection(result.stdout) == LUKSDisk.osText)
        #expect(result.stderr.contains("by its release files and fstab"))
        #expect(!result.stderr.contains(LUKSDisk.passphrase))
        #expect(!result.stdout.contains(LUKSDisk.passphrase))
    }

    /// A key file on the host (its first line), chosen by the LUKS UUID; libguestfs's own inspection finds the same
    /// guest on the mapping.
    @Test(.tags(.appliance)) func keyFileByUUIDWithLibguestfsInspection() throws {
        let directory = try TestDirectory()
        let disk = try LUKSDisk.copy(in: directory)
        let keyFile = directory.path("passphrase")
        try Data("\(LUKSDisk.passphrase)\nnot part of the key\n".utf8).write(to: URL(fileURLWithPath: keyFile))
        let result = try imgcustomize(["inspect", "--os", "-vv", "--key", "\(LUKSDisk.uuid):file:\(keyFile)", disk],
                                      environment: tcg.merging(["IMGCUSTOMIZE_INSPECTION": "libguestfs"]) { $1 })
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        #expect(osSection(result.stdout) == LUKSDisk.osText)
        #expect(!result.stderr.contains(LUKSDisk.passphrase))
    }

    /// A wrong key: the error names the image and the device and says the key did not open it, without the key.
    @Test(.tags(.appliance)) func wrongKeyIsRefused() throws {
        let directory = try TestDirectory()
        let disk = try LUKSDisk.copy(in: directory)
        let wrong = "not-the-passphrase-91c2"
        let result = try imgcustomize(["inspect", "--os", "-vv", "--key", "/dev/sda2:key:\(wrong)", disk],
                                      environment: tcg)
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(disk): open the LUKS device /dev/sda2: the key given for /dev/sda2 did not open it"),
                "\(result.stderr.suffix(3000))")
        #expect(!result.stderr.contains(wrong))
    }

    /// stdin running out before every LUKS device has a key is an error naming the device.
    @Test(.tags(.appliance)) func stdinWithoutAKeyIsRefused() throws {
        let directory = try TestDirectory()
        let disk = try LUKSDisk.copy(in: directory)
        let result = try imgcustomize(["inspect", "--os", "--keys-from-stdin", disk], environment: tcg, input: "")
        #expect(result.status != 0)
        #expect(result.stderr.contains("open the LUKS device /dev/sda2: no key for it"), "\(result.stderr.suffix(3000))")
    }

    /// A customize run writes through the open mapping and commits: afterwards the partition is still LUKS, and
    /// the file reads back once it is opened with the key. Its key comes from --keys-from-stdin (one line for the one
    /// LUKS device no --key is for), and its JSON report names the guest on the mapping and carries no key.
    @Test(.tags(.appliance)) func customizeWithAKeyFromStdinWritesThroughTheMapping() throws {
        let directory = try TestDirectory()
        let disk = try LUKSDisk.copy(in: directory)
        let result = try imgcustomize(["customize", disk, "--write", "/etc/motd:hello", "--json", "-vv",
                                       "--keys-from-stdin"], environment: tcg, input: LUKSDisk.passphrase + "\n")
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        let os = try jsonObject(result.stdout)["os"] as? [String: Any]
        #expect(os?["hostname"] as? String == "luks-guest.example.com")
        #expect(os?["root"] as? String == LUKSDisk.mapping)
        #expect(!result.stdout.contains(LUKSDisk.passphrase))
        #expect(!result.stderr.contains(LUKSDisk.passphrase))
        var options = ApplianceOptions(acceleration: .tcg)
        options.keys = LUKSKeys([LUKSKeys.Key(device: "/dev/sda2", source: .passphrase(LUKSDisk.passphrase))])
        let motd = try readBack(disk, format: .raw, options: options) { try $0.readText("/etc/motd") }
        #expect(motd == "hello")
        #expect(try runTool("blkid", ["-p", "-o", "value", "-s", "TYPE", "--offset", "\(17 << 20)", disk])
                    .trimmingCharacters(in: .whitespacesAndNewlines) == "crypto_LUKS")
    }

    /// sparsify opens the guest with the key too; a filesystem inside LUKS takes no discards (libguestfs cannot open
    /// a mapping with --allow-discards), which the report says instead of failing.
    @Test(.tags(.appliance)) func sparsifySaysTheLUKSFilesystemIsNotTrimmed() throws {
        let directory = try TestDirectory()
        let disk = try LUKSDisk.copy(in: directory)
        let result = try imgcustomize(["sparsify", disk, "--compress", "none",
                                       "--key", "/dev/sda2:key:\(LUKSDisk.passphrase)"], environment: tcg)
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("not trimmed: / (the device takes no discards, as a LUKS mapping)"),
                "\(result.stdout)")
    }
}
