import Appliance
import Foundation
import Operations
import Testing
import TestSupport

/// `apply cloud` and `inspect --os --glance` on the distributions beyond RHEL 6 and 7, read back through the
/// appliance. (Every step of each profile is read back on its tree, in-process: CustomizeTests/DistroProfileTests.)
/// Seven launches: an `apply cloud` per guest, one read-back of the four results, one batch running them again, and
/// the refusal's (libguestfs's inspection); the Glance properties need none (the native reader answers).
@Suite(.fixtures(guestFixtures, debianFixtures), .serialized, .tags(.appliance)) struct CloudProfileTests {
    static let cloudGuests = [("rocky9.qcow2", "rhel9-cloud"), ("ubuntu2404.qcow2", "ubuntu-cloud"),
                              ("debian12-bios.qcow2", "debian-cloud"), ("fedora40.qcow2", "fedora-cloud")]

    /// `apply cloud` on each guest, each its own run; then the four results read back in one launch, and run again
    /// as one batch in one launch (`-j 1`), whose every image changes no file.
    @Test func cloudPicksTheProfileAndASecondRunChangesNoFile() throws {
        let directory = try TestDirectory()
        let outputs = try Self.cloudGuests.map { file, expected in
            try applyCloud(file, expecting: expected, in: directory)
        }

        _ = try readBack(outputs.map { ($0, .qcow2) }) { index, guest in
            try expectCloudGuest(guest, profile: Self.cloudGuests[index].1)
        }

        let again = directory.path("again")
        try FileManager.default.createDirectory(atPath: again, withIntermediateDirectories: false)
        let second = try imgcustomize(["apply", "cloud"] + outputs + ["--output-dir", again, "--json", "-j", "1"])
        #expect(second.status == 0, "\(second.stderr)")
        let entries = try jsonObject(second.stdout)["images"] as? [[String: Any]] ?? []
        #expect(entries.map { $0["image"] as? String } == outputs)
        for (entry, (_, expected)) in zip(entries, Self.cloudGuests) {
            #expect(steps(entry).first?["target"] as? String == expected, "\(entry)")
            expectNoStepChangedButTrimming(steps(entry))
        }
    }

    /// `apply cloud` of the fixture `file` to a qcow2 in `directory`: it chose `expected`; the result's path.
    func applyCloud(_ file: String, expecting expected: String, in directory: TestDirectory) throws -> String {
        var image = expected == "debian-cloud" ? try debianFixture(file) : try fixture(file)
        let output = directory.path("cloud-" + file)
        let run: ProcessResult
        if expected == "ubuntu-cloud" {
            // Run by a user who is not root, on their own copy, with their own appliance (libguestfs supports it).
            try UnprivilegedUser.own(directory.path)
            let copy = directory.path(file)
            try FileManager.default.copyItem(atPath: image, toPath: copy)
            try UnprivilegedUser.own(copy)
            image = copy
            run = try UnprivilegedUser.imgcustomize(["apply", "cloud", image, "--output", output, "--json"])
            var info = stat()
            let uid = try UnprivilegedUser.ids.uid
            #expect(stat(output, &info) == 0 && info.st_uid == uid, "the output is the user's")
        } else {
            run = try imgcustomize(["apply", "cloud", image, "--output", output, "--json"])
        }
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonObject(run.stdout)
        let first = try #require(steps(report).first)
        #expect(first["operation"] as? String == "profile-choice" && first["target"] as? String == expected)
        #expect((first["summary"] as? String)?.hasPrefix("chose \(expected) for ") == true)
        #expect(try runTool("qemu-img", ["info", "--output=json", output]).contains("\"format\": \"qcow2\""))
        return output
    }

    /// What a user checks in a guest the cloud profile `expected` prepared.
    func expectCloudGuest(_ guest: ApplianceFilesystem, profile expected: String) throws {
        #expect(try guest.readText("/etc/machine-id") == "")
        // Root's entry, wherever it is (Debian's shadow starts with systemd-network), locked: "!" before the hash.
        let root = try guest.readText("/etc/shadow").split(separator: "\n").first { $0.hasPrefix("root:") }
        #expect(root?.hasPrefix("root:!") == true, "\(root ?? "no root entry")")
        if expected == "rhel9-cloud" || expected == "fedora-cloud" {
            let keyfile = "/usr/lib/NetworkManager/system-connections/cloud-dhcp.nmconnection"
            #expect(try guest.readText(keyfile).contains("[ipv4]\nmethod=auto\n"))
            #expect(try guest.stat(keyfile)?.mode == 0o600)
            let entries = try guest.glob("/boot/loader/entries/*.conf")
            #expect(entries.count == 3)
            for entry in entries {
                #expect(try guest.readText(entry).contains(" console=tty0 console=ttyS0,115200n8\n"), "\(entry)")
            }
            #expect(try guest.readText("/etc/kernel/cmdline").hasSuffix(" console=tty0 console=ttyS0,115200n8\n"))
            #expect(try guest.readText("/etc/cloud/cloud.cfg").contains(" - resolv-conf\n"))
            // dnf's cache: its files gone, its directories kept (virt-sysprep's package-manager-cache).
            let cached = try guest.glob("/var/cache/dnf/*") + guest.glob("/var/cache/dnf/*/repodata/*")
            #expect(try !cached.isEmpty && cached.allSatisfy { try guest.isDirectory($0) }, "\(cached)")
            if expected == "rhel9-cloud" {
                #expect(try guest.readText("/etc/yum.repos.d/rocky.repo").contains("enabled=1") == false)
            } else {
                // Fedora's public repositories stay enabled; its /home, a subvolume of its own, was cleaned too.
                #expect(try guest.readText("/etc/yum.repos.d/fedora.repo").contains("[fedora]\nname="))
                #expect(try guest.readText("/etc/yum.repos.d/fedora-updates.repo").contains("\nenabled=1\n"))
                #expect(try guest.isFile("/home/fedora/.bashrc") && !guest.exists("/home/fedora/.bash_history"))
                #expect(try guest.glob("/etc/NetworkManager/system-connections/*").isEmpty)
            }
        } else if expected == "debian-cloud" {
            // The real guest: its first boot's lease, its console-less GRUB, cloud-init's rendered ifupdown.
            #expect(try guest.glob("/var/lib/dhcp/*").isEmpty)
            #expect(try guest.readText("/etc/default/grub").contains("console=tty0 console=ttyS0,115200n8\""))
            for line in try guest.readText("/boot/grub/grub.cfg").split(separator: "\n")
            where line.trimmingCharacters(in: .whitespaces).hasPrefix("linux") {
                #expect(line.trimmingCharacters(in: .whitespaces).hasSuffix("console=tty0 console=ttyS0,115200n8"))
            }
            #expect(try guest.readText("/etc/cloud/cloud.cfg.d/91_openstack.cfg").contains("OpenStack"))
        } else {
            #expect(try !guest.exists("/etc/netplan/50-cloud-init.yaml"))
            #expect(try guest.readText("/etc/cloud/cloud.cfg.d/91_openstack.cfg").contains("OpenStack"))
            #expect(try guest.glob("/var/lib/apt/lists/*") == ["/var/lib/apt/lists/lock", "/var/lib/apt/lists/partial"])
        }
    }

    /// A guest no cloud profile is made for (openSUSE, which only libguestfs's inspection reads): refused after
    /// inspection, naming what was found, the image byte for byte as it was.
    @Test func cloudRefusesAGuestItHasNoProfileFor() throws {
        let directory = try TestDirectory()
        let root = directory.path("root")
        for path in ["etc", "usr/bin", "root", "tmp"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(path)", withIntermediateDirectories: true)
        }
        try FileManager.default.createSymbolicLink(atPath: "\(root)/bin", withDestinationPath: "usr/bin")
        _ = try runTool("cp", ["/bin/bash", "\(root)/usr/bin/bash"])
        try """
            NAME="openSUSE Leap"
            VERSION="15.5"
            ID="opensuse-leap"
            ID_LIKE="suse opensuse"
            VERSION_ID="15.5"
            PRETTY_NAME="openSUSE Leap 15.5"

            """.write(toFile: "\(root)/etc/os-release", atomically: true, encoding: .utf8)
        try "/dev/sda / ext4 defaults 0 1\n".write(toFile: "\(root)/etc/fstab", atomically: true, encoding: .utf8)
        try "suse-build\n".write(toFile: "\(root)/etc/hostname", atomically: true, encoding: .utf8)
        let image = directory.path("opensuse.raw")
        _ = try runTool("truncate", ["-s", "64M", image])
        _ = try runTool("mkfs.ext4", ["-q", "-d", root, image])
        let before = try sha256(image)

        let run = try imgcustomize(["apply", "cloud", image, "--output", directory.path("cloud.qcow2"), "--json"])
        #expect(run.status != 0)
        let report = try jsonObject(run.stdout)
        let error = try #require(report["error"] as? [String: Any])
        let message = try #require(error["message"] as? String)
        #expect(message.contains("profile cloud needs a rhel, centos, rocky, redhat-based or oraclelinux 9; rhel, centos, rocky, redhat-based or oraclelinux 8; rhel 7; rhel 6; fedora; "))
        #expect(message.hasSuffix("guest, found opensuse 15.5 (openSUSE Leap 15.5)"))
        #expect((error["hint"] as? String)?.contains("no cloud profile for this guest") == true)
        #expect(report["image-unchanged"] as? Bool == true)
        #expect(try sha256(image) == before)
        #expect(!FileManager.default.fileExists(atPath: directory.path("cloud.qcow2")))
    }

    /// The properties `openstack image create` wants, per family: os_distro and os_version as Glance's documentation
    /// recommends, os_name the libosinfo id, hw_* from the guest's files.
    @Test(arguments: [
        ("ubuntu2404.qcow2", false, ["os_distro": "ubuntu", "os_version": "24.04", "os_name": "ubuntu24.04",
                                     "hw_qemu_guest_agent": "yes"]),
        ("rocky9.qcow2", false, ["os_distro": "rocky", "os_version": "9.4", "os_name": "rocky9"]),
        ("fedora40.qcow2", false, ["os_distro": "fedora", "os_version": "40", "os_name": "fedora40"]),
        ("debian12-uefi.qcow2", true, ["os_distro": "debian", "os_version": "12", "os_name": "debian12",
                                       "hw_firmware_type": "uefi", "hw_qemu_guest_agent": "yes"]),
    ])
    func glancePropertiesFollowFromTheGuest(file: String, debian: Bool, expected: [String: String]) throws {
        let image = debian ? try debianFixture(file) : try fixture(file)
        let run = try imgcustomize(["inspect", "--os", "--glance", "--json", image])
        #expect(run.status == 0, "\(run.stderr)")
        let glance = try #require(try jsonObject(run.stdout)["glance"] as? [String: Any])
        for key in ["os_distro", "os_version", "os_name", "hw_firmware_type", "hw_qemu_guest_agent"] {
            #expect(glance[key] as? String == expected[key], "\(key)")
        }
        #expect(glance["architecture"] as? String == "x86_64" && glance["os_type"] as? String == "linux")
    }
}
