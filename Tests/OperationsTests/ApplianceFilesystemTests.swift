import Foundation
import Testing
@testable import Operations
@testable import Appliance
import TestSupport

extension ApplianceTests {
    /// Every GuestFilesystem method through one appliance, on a writable overlay over a small RHEL 7-like guest.
    @Suite struct FilesystemTests {
        static let shared = SharedGuest {
            let directory = try TestDirectory()
            let base = try ScratchGuest.build(in: directory)
            let overlay = try makeOverlay(over: base, format: .raw, in: directory)
            let logs = LogRecorder()
            let session = try ApplianceSession(
                drives: [ApplianceDrive(path: overlay, format: .qcow2, discard: .besteffort, scratch: true)],
                options: ApplianceOptions(logger: logs.logger()))
            print("appliance for FilesystemTests: \(session.launchReport)")
            return .init(directory: directory, image: overlay, session: session,
                         filesystem: try session.mountOperatingSystem(), logs: logs)
        }

        @Test func inspectionSeesTheGuest() throws {
            try Self.shared.use { guest throws in
                let facts = guest.filesystem.facts
                #expect(facts.type == "linux")
                #expect(facts.distro == "rhel")
                #expect(facts.majorVersion == 7)
                #expect(facts.minorVersion == 9)
                #expect(facts.osinfo == "rhel7.9")
                #expect(facts.hostname == ScratchGuest.hostname)
                #expect(facts.packageFormat == "rpm")
                #expect(facts.mountpoints == ["/": "/dev/sda"])
            }
        }

        @Test func statusDistinguishesLinksFromTheirTargets() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                #expect(try fs.lstat("/etc/system-release")?.kind == .symlink)
                let target = try #require(try fs.stat("/etc/system-release"))
                #expect(target.kind == .regular)
                #expect(target.size == Int64("Red Hat Enterprise Linux Server release 7.9 (Maipo)\n".utf8.count))
                #expect(try fs.stat("/etc/shadow") == FileStatus(kind: .regular, mode: 0, uid: 0, gid: 0,
                                                                    size: Int64(ScratchGuest.shadow.utf8.count)))
                #expect(try fs.lstat("/etc/no-such-file") == nil)
                #expect(try fs.lstat("/etc/hostname/below-a-file") == nil)
                #expect(try fs.isDirectory("/etc/sysconfig"))
                #expect(try fs.readlink("/etc/system-release") == "redhat-release")
            }
        }

        @Test(arguments: ["etc/hostname", "", "/etc/host\u{0}name"])
        func refusesPathsThatAreNotAbsolute(path: String) throws {
            try Self.shared.use { guest throws in
                let error = #expect(throws: GuestError.self) { try guest.filesystem.read(path) }
                #expect(error?.message == "not an absolute guest path")
            }
        }

        @Test func listsAndGlobs() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                #expect(try fs.list("/etc/sysconfig/network-scripts") == ["ifcfg-eth0"])
                #expect(try fs.glob("/etc/*-release") == ["/etc/os-release", "/etc/redhat-release", "/etc/system-release"])
                #expect(try fs.glob("/etc/sysconfig/network-scripts/ifcfg-*")
                        == ["/etc/sysconfig/network-scripts/ifcfg-eth0"])
                #expect(try fs.glob("/nowhere/*").isEmpty)
            }
        }

        @Test func readsSmallAndLargeFiles() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                #expect(try fs.readText("/etc/hostname") == ScratchGuest.hostname + "\n")
                let big = try fs.read("/var/lib/big.bin")
                let original = try Data(contentsOf: guest.directory.url.appendingPathComponent("tree/var/lib/big.bin"))
                #expect(big.count == ScratchGuest.bigFileSize)
                #expect(big == [UInt8](original))
            }
        }

        @Test func readingAMissingFileNamesImagePathAndLibguestfsMessage() throws {
            try Self.shared.use { guest throws in
                let error = #expect(throws: GuestError.self) { try guest.filesystem.read("/etc/missing.conf") }
                let text = error?.description ?? ""
                #expect(text.hasPrefix(guest.image + ": read /etc/missing.conf: "))
                #expect(text.contains("No such file or directory"))
            }
        }

        @Test func writeKeepsAnExistingFilesInodeModeAndOwner() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                try fs.chown("/etc/hostname", uid: 42, gid: 43)
                try fs.chmod("/etc/hostname", mode: 0o640)
                let inode = try fs.inode("/etc/hostname")
                try fs.writeText("/etc/hostname", "renamed.example.com\n", mode: 0o600)
                #expect(try fs.readText("/etc/hostname") == "renamed.example.com\n")
                #expect(try fs.inode("/etc/hostname") == inode)
                #expect(try fs.stat("/etc/hostname").map { [$0.mode, UInt32($0.uid), UInt32($0.gid)] } == [0o640, 42, 43])

                let big = try [UInt8](ScratchGuest.randomBytes(3 << 20))
                let bigInode = try fs.inode("/var/lib/big.bin")
                try fs.write("/var/lib/big.bin", big, mode: 0o600)
                #expect(try fs.read("/var/lib/big.bin") == big)
                #expect(try fs.inode("/var/lib/big.bin") == bigInode)
            }
        }

        @Test func writeCreatesNewFilesWithTheModeAndRootOwner() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                try fs.writeText("/etc/new.conf", "a=1\n", mode: 0o600)
                #expect(try fs.stat("/etc/new.conf") == FileStatus(kind: .regular, mode: 0o600, uid: 0, gid: 0, size: 4))
                try fs.write("/etc/empty.conf", [], mode: 0o644)
                #expect(try fs.stat("/etc/empty.conf")?.size == 0)
            }
        }

        @Test func directoriesLinksAndMetadata() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                try fs.mkdir("/opt/a/b/c", mode: 0o700, parents: true)
                #expect(try fs.stat("/opt/a/b/c")?.mode == 0o700)
                try fs.mkdir("/opt/a/b/c", mode: 0o700, parents: true)  // already there: fine, like mkdir -p
                try fs.mkdir("/opt/d", mode: 0o751, parents: false)
                #expect(try fs.stat("/opt/d") == FileStatus(kind: .directory, mode: 0o751, uid: 0, gid: 0,
                                                               size: try #require(try fs.stat("/opt/d")).size))
                #expect(throws: GuestError.self) { try fs.mkdir("/opt/d", mode: 0o755, parents: false) }

                try fs.symlink(target: "../etc/redhat-release", at: "/opt/release")
                #expect(try fs.readlink("/opt/release") == "../etc/redhat-release")
                try fs.chown("/opt/release", uid: 7, gid: 8)
                #expect(try fs.lstat("/opt/release")?.uid == 7)
                #expect(try fs.stat("/opt/release")?.uid == 0)  // the target kept its owner

                try fs.writeText("/opt/d/file", "0123456789", mode: 0o644)
                try fs.truncate("/opt/d/file", size: 4)
                #expect(try fs.readText("/opt/d/file") == "0123")
                try fs.rename("/opt/d/file", to: "/opt/d/moved")
                #expect(try fs.exists("/opt/d/file") == false)
                #expect(try fs.readText("/opt/d/moved") == "0123")

                try fs.touch("/opt/d/touched")
                #expect(try fs.stat("/opt/d/touched") == FileStatus(kind: .regular, mode: 0o644, uid: 0, gid: 0, size: 0))

                try fs.remove("/opt/not-there", recursive: false)
                #expect(throws: GuestError.self) { try fs.remove("/opt/d", recursive: false) }
                try fs.remove("/opt/release", recursive: false)
                #expect(try fs.lstat("/opt/release") == nil)
                #expect(try fs.exists("/etc/redhat-release"))
                try fs.remove("/opt/a", recursive: true)
                #expect(try fs.exists("/opt/a") == false)
            }
        }

        @Test func extendedAttributes() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                #expect(try fs.getxattr("/etc/os-release", name: "user.imgcustomize") == nil)
                try fs.setxattr("/etc/os-release", name: "user.imgcustomize", value: Array("tested\u{0}".utf8))
                #expect(try fs.getxattr("/etc/os-release", name: "user.imgcustomize") == Array("tested\u{0}".utf8))
            }
        }

        @Test func augeasEditsShadow() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                let password = try fs.withAugeas(lens: "Shadow.lns", path: "/etc/shadow") { edit throws in
                    #expect(edit.root == "/files/etc/shadow")
                    #expect(try edit.match("\(edit.root)/*").count == 3)
                    #expect(try edit.label("\(edit.root)/*[1]") == "root")
                    let password = try edit.get("\(edit.root)/root/password")
                    try edit.set("\(edit.root)/root/password", "!" + (password ?? ""))
                    return password
                }
                #expect(password == "$6$saltsalt$0123456789abcdef")
                let text = try fs.readText("/etc/shadow")
                #expect(text.hasPrefix("root:!$6$saltsalt$0123456789abcdef:19000:0:99999:7:::\nbin:*:"))
                #expect(try fs.stat("/etc/shadow")?.mode == 0)
            }
        }

        @Test func augeasEditsShellVariables() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                let path = "/etc/sysconfig/network-scripts/ifcfg-eth0"
                try fs.withAugeas(lens: "Shellvars.lns", path: path) { edit throws in
                    #expect(try edit.get("\(edit.root)/BOOTPROTO") == "dhcp")
                    #expect(try edit.get("\(edit.root)/NM_CONTROLLED") == nil)
                    try edit.set("\(edit.root)/NM_CONTROLLED", "no")
                    #expect(try edit.remove("\(edit.root)/HWADDR") == 1)
                    try edit.insert("\(edit.root)/DEVICE", label: "NAME", before: true)
                    try edit.set("\(edit.root)/NAME", "eth0")
                }
                #expect(try fs.readText(path) == """
                    TYPE=Ethernet
                    NAME=eth0
                    DEVICE=eth0
                    ONBOOT=yes
                    BOOTPROTO=dhcp
                    NM_CONTROLLED=no

                    """)
                #expect(try fs.exists(path + ".augsave") == false)
                // The next call starts clean: only the file it names is loaded.
                try fs.withAugeas(lens: "Shellvars.lns", path: "/etc/os-release") { edit throws in
                    #expect(try edit.match("/files/etc/sysconfig//*").isEmpty)
                    #expect(try edit.get("\(edit.root)/VERSION_ID") == "\"7.9\"")
                }
            }
        }

        @Test func augeasParseErrorNamesTheFileAndAugeasMessage() throws {
            try Self.shared.use { guest throws in
                let fs = guest.filesystem
                let error = #expect(throws: GuestError.self) {
                    try fs.withAugeas(lens: "Shadow.lns", path: "/etc/broken/shadow") { _ in }
                }
                #expect(error?.path == "/etc/broken/shadow")
                #expect(error?.action == "parse with Augeas lens Shadow.lns")
                #expect(error?.message.contains("line 1") == true)
                // Augeas stays usable afterwards.
                let value = try fs.withAugeas(lens: "Shadow.lns", path: "/etc/shadow") { edit throws in
                    try edit.get("\(edit.root)/bin/password")
                }
                #expect(value == "*")
            }
        }
    }
}
