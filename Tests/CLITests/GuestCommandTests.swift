import Foundation
import Testing
import TestSupport

/// Guest commands on the real Debian 12 guest: the guest's own programs, run inside the appliance, their output in
/// the report, what they wrote read back.
@Suite(.fixtures(debianFixtures), .serialized, .tags(.appliance)) struct GuestCommandImageTests {
    func step(_ report: [String: Any], _ operation: String) -> [String: Any]? {
        steps(report).first { $0["operation"] as? String == operation }
    }

    /// The Debian guest, copied: a run locks its image even with --output, and other tests (and other test runs)
    /// read the fixture at the same time.
    func debianGuest(in directory: TestDirectory) throws -> String {
        let image = directory.path("debian12.qcow2")
        try FileManager.default.copyItem(atPath: try debianFixture("debian12-bios.qcow2"), toPath: image)
        return image
    }

    /// run-command, run and commands-from-file in one run: each a step with an unknown change, exit status 0 and
    /// its output, and what each wrote is in the result. In the same run a local .deb installs offline (the
    /// appliance has no network by default): dpkg knows it afterwards, and its file is in the result. The guest has
    /// apt's sandbox user _apt, as a debootstrap guest has, and apt fetches the copied package as _apt: a directory
    /// _apt cannot enter failed here with "Permission denied" (issue 25).
    @Test func commandsAndALocalPackageRunInTheGuestAndWhatTheyWroteReadsBack() throws {
        let directory = try TestDirectory()
        let output = directory.path("out.qcow2")
        let deb = try testPackage(in: directory)
        let guestImage = try debianGuest(in: directory)
        // A script in another language than sh: its #! line picks the guest's interpreter, as with virt-customize.
        let script = directory.path("setup.pl")
        try """
            #!/usr/bin/perl
            open(my $f, '>', '/root/from-script') or die "open: $!";
            print $f "from-script\\n";
            close($f);
            print "script ran by perl as $<\\n";

            """.write(toFile: script, atomically: true, encoding: .utf8)
        let commands = directory.path("customize.commands")
        try """
            # virt-customize's syntax: option argument, option:argument, continuations
            run-command echo from-file \\
              > /root/from-file
            write:/root/written:by the command file
            edit /root/written:s/command file$/virt-customize file/ if $. == 1

            """.write(toFile: commands, atomically: true, encoding: .utf8)
        // Host trees for copy-in and tar-in, with a mode and an owner that must arrive as they are; a secret to scrub.
        let tree = directory.path("skel")
        try FileManager.default.createDirectory(atPath: tree + "/conf.d", withIntermediateDirectories: true)
        try "copied\n".write(toFile: tree + "/conf.d/app.conf", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o640, .ownerAccountID: 1000, .groupOwnerAccountID: 1000],
                                              ofItemAtPath: tree + "/conf.d/app.conf")
        let tarball = directory.path("overlay.tar.gz")
        try runTool("tar", ["-C", tree, "--owner=0", "--group=4", "-czf", tarball, "conf.d"])
        let run = try imgcustomize(["customize", guestImage, "--output", output, "--json",
                                    // The appliance as --smp and --memsize (virt-customize's) make it.
                                    "--smp", "1", "--memsize", "900",
                                    "--run-command", "echo inside > /root/marker; uname -m; nproc; "
                                        + "grep MemTotal /proc/meminfo; cat /etc/debian_version",
                                    "--run", script, "--commands-from-file", commands, "--inject-qemu-ga",
                                    // SELinux on, with a policy's file contexts but no setfiles to apply them.
                                    "--write", "/etc/selinux/config:SELINUX=permissive\nSELINUXTYPE=targeted\n",
                                    "--mkdir", "/etc/selinux/targeted/contexts/files", "--write", Self.fileContexts,
                                    "--copy-in", tree + ":/srv", "--tar-in", tarball + ":/opt",
                                    "--write", "/root/bootstrap.key:secret", "--scrub", "/root/bootstrap.key",
                                    "--install", deb, "--run-command", "dpkg -s imgcustomize-test"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonObject(run.stdout)
        // In command-line order, the file's lines in its place; then the labels phase.
        #expect(steps(report).map { $0["operation"] as? String ?? "" }
                == ["run-command", "run", "run-command", "write", "edit", "inject-qemu-ga", "write", "mkdir", "write",
                    "copy-in", "tar-in", "write", "scrub", "install", "run-command", "selinux-relabel"])
        // The fixture has the agent: nothing to install, offline.
        #expect(step(report, "inject-qemu-ga")?["summary"] as? String
                == "qemu-guest-agent was installed already; enabled at boot", "\(report)")
        // What the commands wrote is unknown, so every file needs its label; the guest has no setfiles.
        let relabel = try #require(step(report, "selinux-relabel"))
        #expect(relabel["summary"] as? String == "guest commands ran and the guest has no setfiles: created "
                + "/.autorelabel for a relabel of every file at first boot (one extra reboot)", "\(relabel)")
        #expect((report["warnings"] as? [String] ?? []).contains { $0.hasSuffix("created /.autorelabel for a relabel "
                                                                   + "of every file at first boot (one extra reboot)") })
        let command = try #require(step(report, "run-command"))
        #expect(command["changed"] as? String == "unknown")
        #expect(command["exit-status"] as? Int == 0)
        let lines = command["output"] as? [String] ?? []
        #expect(lines.first == (try runTool("uname", ["-m"])).trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(lines.last?.hasPrefix("12.") == true, "\(lines)")
        #expect(lines.dropFirst().first == "1", "\(lines)")
        let memory = lines.dropFirst(2).first?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        #expect((700 * 1024..<900 * 1024).contains(memory), "\(lines)")
        #expect(step(report, "run")?["output"] as? [String] == ["script ran by perl as 0"])
        #expect(step(report, "write")?["changed"] as? Bool == true)
        let install = try #require(step(report, "install"))
        // apt falls back to root, and says so, when _apt cannot read what it fetches.
        #expect(!(install["output"] as? [String] ?? []).contains { $0.contains("unsandboxed") || $0.contains("_apt") },
                "\(install)")
        #expect(install["changed"] as? String == "unknown")
        #expect(install["exit-status"] as? Int == 0)
        #expect((install["output"] as? [String] ?? []).contains { $0.contains("Setting up imgcustomize-test (1.0)") },
                "\(install)")
        let dpkgStatus = steps(report).last { $0["operation"] as? String == "run-command" }?["output"] as? [String] ?? []
        #expect(dpkgStatus.contains("Status: install ok installed"), "\(dpkgStatus)")

        // The input (only read, with --output), which has apt's user, and the result, in one launch.
        _ = try readBack([(guestImage, .qcow2), (output, .qcow2)]) { index, guest throws in
            guard index == 1 else {
                #expect(try guest.readText("/etc/passwd").contains("\n_apt:"), "the Debian fixture has no _apt user")
                return
            }
            #expect(try guest.readText("/root/marker") == "inside\n")
            #expect(try guest.readText("/root/from-script") == "from-script\n")
            #expect(try guest.readText("/root/from-file") == "from-file\n")
            #expect(try guest.readText("/root/written") == "by the virt-customize file")
            // copy-in and tar-in: content, mode and owner as on the host and in the tarball; the scrubbed file gone.
            #expect(try guest.readText("/srv/skel/conf.d/app.conf") == "copied\n")
            let copied = try #require(try guest.stat("/srv/skel/conf.d/app.conf"))
            #expect((copied.mode, copied.uid, copied.gid) == (0o640, 1000, 1000))
            #expect(try guest.readText("/opt/conf.d/app.conf") == "copied\n")
            let unpacked = try #require(try guest.stat("/opt/conf.d/app.conf"))
            #expect((unpacked.mode, unpacked.uid, unpacked.gid) == (0o640, 0, 4))
            #expect(try guest.lstat("/root/bootstrap.key") == nil)
            // The script's copy in /tmp is gone again.
            #expect(try guest.glob("/tmp/imgcustomize-*").isEmpty)
            #expect(try guest.isFile("/.autorelabel"))
            #expect(try guest.readText("/usr/share/imgcustomize-test/hello") == "installed\n")
            let status = try guest.readText("/var/lib/dpkg/status")
            #expect(status.contains("Package: imgcustomize-test\nStatus: install ok installed\n"))
        }
    }

    /// A policy's file contexts, small: /root's files and setfiles itself have their own types, the rest default_t.
    static let fileContexts = """
        /etc/selinux/targeted/contexts/files/file_contexts:/.*\tsystem_u:object_r:default_t:s0
        /root(/.*)?\tsystem_u:object_r:admin_home_t:s0
        /usr/sbin/setfiles\t--\tsystem_u:object_r:setfiles_exec_t:s0

        """

    /// A command that exits non-zero fails the run with its exit status and output; the image is byte for byte as
    /// it was, the earlier steps' work included.
    @Test func aFailingCommandFailsTheRunAndLeavesTheImageAsItWas() throws {
        let directory = try TestDirectory()
        let image = try debianGuest(in: directory)
        let before = try sha256(image)
        let run = try imgcustomize(["customize", image, "--json", "--write", "/root/first:written first",
                                    "--run-command", "echo partial > /root/partial; echo 'something broke' >&2; exit 3",
                                    "--run-command", "touch /root/never"])
        #expect(run.status != 0)
        let report = try jsonObject(run.stdout)
        let error = try #require(report["error"] as? [String: Any])
        #expect(error["exit-status"] as? Int == 3)
        #expect(error["output"] as? [String] == ["something broke"])
        #expect((error["message"] as? String)?.contains("exited with status 3, its last lines:\n    something broke")
                == true, "\(error)")
        #expect(report["image-unchanged"] as? Bool == true)
        #expect(report["stage"] as? String == "apply")
        #expect(steps(report).map { $0["operation"] as? String ?? "" } == ["write"])
        #expect(run.stderr.contains("something broke"))
        #expect(try sha256(image) == before)
        // Nothing is left beside the image: no overlay, no partial result.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["debian12.qcow2"])
    }

    /// virt-customize's --attach: an ISO of packages, mounted by its label by the guest's own commands, installs
    /// offline; and a clone of the guest's own disk attached beside it (same partitions, same volume group, same
    /// UUIDs: what confuses LVM and inspection most) is seen by nothing but those commands: one guest is found,
    /// lvm-uuids and trimming work on the guest's disk alone, and neither attached file changes by a byte.
    @Test func attachedDisksServeGuestCommandsAndNothingElseSeesThem() throws {
        let directory = try TestDirectory()
        let repository = directory.path("repository")
        try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true)
        _ = try testPackage(in: directory, into: repository)
        let iso = directory.path("extra.iso")
        try runTool("xorriso", ["-as", "mkisofs", "-quiet", "-V", "EXTRA", "-R", "-o", iso, repository])
        let clone = directory.path("clone.qcow2")
        try FileManager.default.copyItem(atPath: try debianFixture("debian12-bios.qcow2"), toPath: clone)
        let untouched = try [iso, clone].map { try sha256($0) }

        let output = directory.path("out.qcow2")
        let run = try imgcustomize([
            "customize", "--attach", iso, try debianGuest(in: directory), "--output", output, "--json",
            "--attach-format", "qcow2", "--attach", clone,
            "--run-command", "mkdir -p /tmp/extra && mount -o ro LABEL=EXTRA /tmp/extra && dpkg -i /tmp/extra/*.deb; "
                + "status=$?; umount /tmp/extra; rmdir /tmp/extra; exit $status",
            "--lvm-uuids", "--trim-free-space",
        ])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonObject(run.stdout)
        let attached = report["attached"] as? [[String: Any]] ?? []
        #expect(attached.map { "\($0["path"] ?? "") \($0["format"] ?? "")" } == ["\(iso) iso", "\(clone) qcow2"])
        #expect((report["os"] as? [String: Any])?["hostname"] as? String == "deb12-bios")
        let command = try #require(step(report, "run-command"))
        #expect(command["exit-status"] as? Int == 0)
        #expect((command["output"] as? [String] ?? []).contains { $0.contains("Setting up imgcustomize-test (1.0)") },
                "\(command)")
        // The guest's PV, on the guest's disk; the clone's is /dev/sdc5, which LVM never saw.
        #expect(step(report, "lvm-uuids")?["summary"] as? String
                == "new UUIDs for PV /dev/sda5, VG \(BlockIdentityImageTests.group)", "\(report)")
        let trimmed = step(report, "trim-free-space")?["summary"] as? String ?? ""
        #expect(trimmed.contains("swap \(BlockIdentityImageTests.group)/swap_1") && !trimmed.contains("sdc")
                && !trimmed.contains("sdb"), "\(trimmed)")
        #expect(try [iso, clone].map { try sha256($0) } == untouched)

        try readBack(output) { guest throws in
            #expect(try guest.readText("/usr/share/imgcustomize-test/hello") == "installed\n")
            #expect(try guest.lstat("/tmp/extra") == nil)
        }
    }

    /// A package the tests install: imgcustomize-test 1.0, which installs /usr/share/imgcustomize-test/hello.
    func testPackage(in directory: TestDirectory, into destination: String? = nil) throws -> String {
        let root = directory.path("package")
        try FileManager.default.createDirectory(atPath: root + "/DEBIAN", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/usr/share/imgcustomize-test",
                                                withIntermediateDirectories: true)
        try """
            Package: imgcustomize-test
            Version: 1.0
            Architecture: all
            Maintainer: imgcustomize tests <tests@example.com>
            Description: a package the guest-command tests install

            """.write(toFile: root + "/DEBIAN/control", atomically: true, encoding: .utf8)
        try "installed\n".write(toFile: root + "/usr/share/imgcustomize-test/hello", atomically: true, encoding: .utf8)
        let name = "imgcustomize-test_1.0_all.deb"
        let deb = destination.map { $0 + "/" + name } ?? directory.path(name)
        try runTool("dpkg-deb", ["--build", "--root-owner-group", root, deb])
        return deb
    }

    /// The appliance has a network only with --network: without it the guest's commands see only the loopback
    /// interface and `update` is refused, saying what to do; with it they see the appliance's NIC, and update and
    /// install packages from the guest's repositories (Debian's archive).
    /// The subscription-manager steps on a guest that has no client (Debian): the run fails naming what is missing
    /// and how to get it, before anything reaches the network; the image is as it was and the password is in no
    /// output. (Registering for real needs Red Hat's subscription service, which no test here can reach.)
    @Test func subscriptionStepsRefuseAGuestWithoutTheClientAndShowNoPassword() throws {
        let directory = try TestDirectory()
        let image = try debianGuest(in: directory)
        let before = try sha256(image)
        let run = try imgcustomize(["customize", image, "--json", "--network",
                                    "--sm-credentials", "builder@example.com:password:pw-8c41e2",
                                    "--write", "/root/first:written first", "--sm-register", "--sm-unregister"])
        #expect(run.status != 0)
        let report = try jsonObject(run.stdout)
        let error = try #require(report["error"] as? [String: Any])
        #expect((error["message"] as? String)?.hasSuffix("sm-register: the guest has no subscription-manager "
                                                         + "(neither /usr/sbin/subscription-manager nor "
                                                         + "/usr/bin/subscription-manager): it is Red Hat's "
                                                         + "subscription client, the subscription-manager package of "
                                                         + "RHEL and its clones") == true, "\(error)")
        #expect((error["hint"] as? String)?.hasPrefix("install it first (--network --install subscription-manager)")
                == true)
        #expect(report["image-unchanged"] as? Bool == true)
        #expect(steps(report).map { $0["operation"] as? String ?? "" } == ["write"])
        #expect(!run.stdout.contains("pw-8c41e2") && !run.stderr.contains("pw-8c41e2"))
        #expect(try sha256(image) == before)
    }

    @Test func theNetworkIsOffUnlessAskedFor() throws {
        let directory = try TestDirectory()
        let image = try debianGuest(in: directory)
        let offline = try imgcustomize(["customize", image, "--output", directory.path("offline.qcow2"), "--json",
                                        "--run-command", "ls /sys/class/net", "--update"])
        #expect(offline.status != 0)
        let failed = try jsonObject(offline.stdout)
        #expect(step(failed, "run-command")?["output"] as? [String] == ["lo"])
        let error = try #require(failed["error"] as? [String: Any])
        #expect((error["message"] as? String)?.hasSuffix("update: updating packages needs the guest's repositories, "
                                                         + "and the appliance has no network (the default)") == true,
                "\(error)")
        #expect(error["hint"] as? String == "give --network")
        #expect(!FileManager.default.fileExists(atPath: directory.path("offline.qcow2")))

        // With the network: the guest's packages updated and one installed from Debian's archive (setfiles, which
        // then relabels every file after the guest's commands, SELinux being on).
        let online = try imgcustomize(["customize", image, "--output", directory.path("online.qcow2"), "--json",
                                       "--network", "--run-command", "ls /sys/class/net", "--update",
                                       "--install", "policycoreutils",
                                       // The fixture has the agent: removed, then back from the archive.
                                       "--uninstall", "qemu-guest-agent", "--inject-qemu-ga",
                                       "--write", "/etc/selinux/config:SELINUX=enforcing\nSELINUXTYPE=targeted\n",
                                       "--mkdir", "/etc/selinux/targeted/contexts/files", "--write", Self.fileContexts,
                                       "--run-command", "echo made > /root/made-by-a-command"])
        #expect(online.status == 0, "\(online.stderr)")
        let report = try jsonObject(online.stdout)
        let interfaces = step(report, "run-command")?["output"] as? [String] ?? []
        #expect(interfaces.contains("lo") && interfaces.count > 1, "\(interfaces)")
        for name in ["update", "install", "uninstall", "inject-qemu-ga"] {
            #expect(step(report, name)?["exit-status"] as? Int == 0, "\(step(report, name) ?? [:])")
        }
        #expect(step(report, "inject-qemu-ga")?["summary"] as? String
                == "installed qemu-guest-agent with apt; enabled at boot")
        let relabel = try #require(step(report, "selinux-relabel"))
        #expect(relabel["changed"] as? String == "unknown")
        #expect(relabel["summary"] as? String == "guest commands ran: relabelled every file with the guest's "
                + "/usr/sbin/setfiles (policy targeted)", "\(relabel)")

        try readBack(directory.path("online.qcow2")) { guest throws in
            let status = try guest.readText("/var/lib/dpkg/status")
            #expect(status.contains("Package: policycoreutils\nStatus: install ok installed\n"))
            #expect(status.contains("Package: qemu-guest-agent\nStatus: install ok installed\n"))
            func label(_ path: String) throws -> String? {
                try guest.getxattr(path, name: "security.selinux").map { String(decoding: $0.filter { $0 != 0 }, as: UTF8.self) }
            }
            #expect(try label("/root/made-by-a-command") == "system_u:object_r:admin_home_t:s0")
            #expect(try label("/etc/hostname") == "system_u:object_r:default_t:s0")
            #expect(try label("/usr/sbin/setfiles") == "system_u:object_r:setfiles_exec_t:s0")
            #expect(try !guest.exists("/.autorelabel"))
        }
    }
}
