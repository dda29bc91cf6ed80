import Foundation
import Testing
@testable import Operations
@testable import Appliance
import TestSupport

extension ApplianceTestsOnFixtures {
    /// The sysprep clean-ups, the user-facing customizations and SELinux relabelling through one appliance, on an
    /// image (not a tree): glob expansion, Augeas and extended attributes as libguestfs does them.
    @Suite struct SysprepApplianceTests {
        static let shared = SharedGuest {
            let directory = try TestDirectory()
            let base = try usedGuest(in: directory)
            let overlay = try makeOverlay(over: base, format: .raw, in: directory)
            let logs = LogRecorder()
            let session = try ApplianceSession(drives: [ApplianceDrive(path: overlay, format: .qcow2, scratch: true)],
                                               options: ApplianceOptions(logger: logs.logger()))
            print("appliance for SysprepApplianceTests: \(session.launchReport)")
            return .init(directory: directory, image: overlay, session: session,
                         filesystem: try session.mountOperatingSystem(), logs: logs)
        }

        /// A RHEL 7-like guest with what a build leaves behind and an enforcing targeted policy.
        static func usedGuest(in directory: TestDirectory) throws -> String {
            let tree = directory.url.appendingPathComponent("tree", isDirectory: true)
            func file(_ path: String, _ text: String) throws {
                let url = tree.appendingPathComponent(String(path.dropFirst()))
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                        withIntermediateDirectories: true)
                try Data(text.utf8).write(to: url)
            }
            try file("/etc/redhat-release", "Red Hat Enterprise Linux Server release 7.9 (Maipo)\n")
            try file("/etc/os-release", "NAME=\"Red Hat Enterprise Linux Server\"\nID=\"rhel\"\nVERSION_ID=\"7.9\"\n")
            try file("/etc/fstab", "LABEL=sysprep / ext4 defaults 0 0\n")
            try file("/etc/hostname", "build.example.com\n")
            try file("/etc/passwd",
                     "root:x:0:0:root:/root:/bin/bash\ncloud-user:x:1000:1000::/home/cloud-user:/bin/bash\n")
            try file("/etc/shadow", "root:$6$old$hash:19000:0:99999:7:::\ncloud-user:!!:19000:0:99999:7:::\n")
            try file("/etc/shadow-", "root:$6$older$hash:18000:0:99999:7:::\n")
            try file("/etc/machine-id", "4f1a9c2e6b0d4e3f8a7b6c5d4e3f2a1b\n")
            try file("/etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
            try file("/etc/sysconfig/network-scripts/ifcfg-eth0",
                     "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\nUUID=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03\nONBOOT=yes\n")
            try file("/etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=targeted\n")
            try file("/etc/selinux/targeted/contexts/files/file_contexts", """
                /.*\tsystem_u:object_r:default_t:s0
                /etc/.*\tsystem_u:object_r:etc_t:s0
                /etc/hostname\t--\tsystem_u:object_r:hostname_etc_t:s0
                /etc/localtime\tsystem_u:object_r:locale_t:s0
                /etc/shadow.*\t--\tsystem_u:object_r:shadow_t:s0
                /etc/sysconfig/network-scripts(/.*)?\tsystem_u:object_r:net_conf_t:s0
                /home/[^/]+/\\.ssh(/.*)?\tunconfined_u:object_r:ssh_home_t:s0

                """)
            try file("/usr/share/zoneinfo/Europe/Paris", "TZif2")
            try file("/usr/bin/true", "#!/bin/sh\n")
            try file("/home/cloud-user/.bash_history", "sudo -i\n")
            try file("/var/log/messages", "boot\n")
            try file("/var/log/audit/audit.log", "type=DAEMON_START\n")
            try file("/var/cache/yum/x86_64/7/base/repomd.xml", "<repomd/>\n")
            try file("/var/lib/cloud/instances/i-0123/boot-finished", "done\n")
            try file("/tmp/.hidden", "x")
            try FileManager.default.createSymbolicLink(atPath: tree.appendingPathComponent("bin").path,
                                                       withDestinationPath: "usr/bin")
            let image = directory.path("sysprep.raw")
            try runTool("mkfs.ext4", ["-q", "-F", "-L", "sysprep", "-d", tree.path, image, "64M"])
            return image
        }

        @Test func sysprepCustomizeAndRelabelAnImage() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                #expect(fs.facts.distro == "rhel" && fs.facts.majorVersion == 7)
                let runner = OperationRunner(guest: fs, context: OperationContext(guest: fs.facts))
                let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop"
                // Without ssh-userdir, which removes what ssh-inject adds: a profile with both flips them each run.
                let operations: [any GuestOperation] = sysprepOperations(for: fs.facts)
                    .filter { $0.name != SSHUserDir.name } + [
                    Hostname("web1.example.com"), Timezone("Europe/Paris"),
                    Password(user: "root", selector: .plain("correct horse")),
                    SSHInject(user: "cloud-user", key: key), SELinuxRelabel(),
                ]
                for operation in operations { _ = try runner.run(operation) }

                for gone in ["/etc/shadow-", "/etc/ssh/ssh_host_ed25519_key", "/home/cloud-user/.bash_history",
                             "/var/log/messages", "/var/log/audit/audit.log", "/var/cache/yum/x86_64/7/base/repomd.xml",
                             "/var/lib/cloud/instances", "/tmp/.hidden"] {
                    #expect(try fs.lstat(gone) == nil, "\(gone)")
                }
                for kept in ["/var/log/audit", "/var/cache/yum/x86_64/7/base", "/var/lib/cloud", "/tmp"] {
                    #expect(try fs.isDirectory(kept), "\(kept)")
                }
                #expect(try fs.readText("/etc/sysconfig/network-scripts/ifcfg-eth0") == "DEVICE=eth0\nONBOOT=yes\n")
                #expect(try fs.stat("/etc/machine-id")?.size == 0)
                #expect(try fs.readText("/etc/hostname") == "web1.example.com\n")
                #expect(try fs.readlink("/etc/localtime") == "../usr/share/zoneinfo/Europe/Paris")
                let rootHash = try #require(try fs.readText("/etc/shadow").split(separator: "\n").first?
                    .split(separator: ":", omittingEmptySubsequences: false)[1])
                #expect(try PasswordHash.hash("correct horse", setting: String(rootHash)) == String(rootHash))
                #expect(try fs.readText("/home/cloud-user/.ssh/authorized_keys") == key + "\n")
                #expect(try fs.stat("/home/cloud-user/.ssh/authorized_keys")?.uid == 1000)

                func label(_ path: String) throws -> String? {
                    try fs.getxattr(path, name: "security.selinux").map {
                        String(decoding: $0.filter { $0 != 0 }, as: UTF8.self)
                    }
                }
                #expect(try label("/etc/shadow") == "system_u:object_r:shadow_t:s0")
                #expect(try label("/etc/sysconfig/network-scripts/ifcfg-eth0") == "system_u:object_r:net_conf_t:s0")
                #expect(try label("/etc/hostname") == "system_u:object_r:hostname_etc_t:s0")
                #expect(try label("/etc/localtime") == "system_u:object_r:locale_t:s0")
                #expect(try label("/home/cloud-user/.ssh/authorized_keys") == "unconfined_u:object_r:ssh_home_t:s0")

                // The same run again changes nothing (a fresh salt would, so the password step verifies first) but
                // the random seed, which gets new bytes every run.
                let again = OperationRunner(guest: fs, context: OperationContext(guest: fs.facts))
                for operation in operations.dropLast() + [SELinuxRelabel(paths: runner.touchedPaths)] {
                    let report = try again.run(operation)
                    #expect(report.changed == (operation is RandomSeed ? .yes : .no),
                            "\(report.operation): \(report.summary)")
                }
            }
        }
    }
}
