import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree
import TestSupport

@Suite struct ScrubTruncateLinkTests {
    /// The old blocks are overwritten, not just unlinked: a descriptor held open on the file (as a disk reader
    /// would see the blocks) reads zeros afterwards. (A hard link cannot be the witness: scrub refuses a file with
    /// other names, see TreeHardLinkTests.)
    @Test func scrubOverwritesInPlaceThenRemoves() throws {
        let tree = try TemporaryTree()
        try tree.file("/root/bootstrap.key", "-----BEGIN PRIVATE KEY-----\nsecret\n")
        let witness = try FileHandle(forReadingFrom: URL(fileURLWithPath: tree.path + "/root/bootstrap.key"))
        defer { try? witness.close() }
        let (first, second) = try tree.applyTwice(try Scrub.parse("/root/bootstrap.key"))
        #expect(first.summary == "scrubbed and removed /root/bootstrap.key (35 bytes)")
        #expect(second.summary == "/root/bootstrap.key is not there")
        #expect(try tree.guest.lstat("/root/bootstrap.key") == nil)
        #expect(try witness.readToEnd() == Data(count: 35))

        try FileManager.default.createDirectory(atPath: tree.path + "/root/dir", withIntermediateDirectories: true)
        #expect(throws: OperationFailure.self) { try OperationRunner(guest: tree.guest).run(Scrub("/root/dir")) }
        #expect(throws: ArgumentError.self) { try Scrub.parse("root/key") }
    }

    @Test func truncateRecursiveEmptiesEveryFileAndKeepsThem() throws {
        let tree = try TemporaryTree()
        try tree.file("/var/log/messages", "boot\n", mode: 0o600)
        try tree.file("/var/log/audit/audit.log", "type=DAEMON_START\n")
        try tree.file("/var/log/empty.log", "")
        try tree.file("/etc/motd", "hello\n")
        try tree.symlink("/var/log/motd", to: "/etc/motd")
        let (first, second) = try tree.applyTwice(try TruncateRecursive.parse("/var/log"))
        #expect(first.summary == "emptied /var/log/audit/audit.log, /var/log/messages")
        #expect(second.summary == "every file below /var/log already empty")
        #expect(tree.text("/var/log/messages") == "" && tree.text("/var/log/audit/audit.log") == "")
        #expect(try tree.hostStatus("/var/log/messages").mode == 0o600)
        #expect(tree.text("/etc/motd") == "hello\n")
        #expect(throws: OperationFailure.self) {
            try OperationRunner(guest: tree.guest).run(TruncateRecursive("/var/nothing"))
        }
    }

    @Test func linkMakesEveryNamedLink() throws {
        let tree = try TemporaryTree()
        try tree.file("/usr/bin/python3.11", "#!\n")
        try tree.file("/usr/bin/python", "old\n")
        let link = try Link.parse("python3.11:/usr/bin/python3:/usr/bin/python")
        #expect(link.linkTarget == "python3.11" && link.paths == ["/usr/bin/python3", "/usr/bin/python"])
        let (first, second) = try tree.applyTwice(link)
        #expect(first.summary == "linked /usr/bin/python3, /usr/bin/python to python3.11")
        #expect(second.summary == "/usr/bin/python3, /usr/bin/python already link to python3.11")
        #expect(try tree.guest.readlink("/usr/bin/python3") == "python3.11")
        #expect(try tree.guest.readlink("/usr/bin/python") == "python3.11")
        #expect(throws: ArgumentError.self) { try Link.parse("python3.11:/usr/bin/python3:bin/python") }
        #expect(throws: ArgumentError.self) { try Link.parse("python3.11") }
    }

    /// `ssh-inject USER` takes the host user's newest ~/.ssh/id*.pub, never a certificate, as virt-customize does.
    @Test func sshInjectWithoutAKeyTakesTheNewestHostKey() throws {
        let home = try TestDirectory("imgcustomize-home")
        let ssh = home.path(".ssh")
        try FileManager.default.createDirectory(atPath: ssh, withIntermediateDirectories: true)
        let old = "ssh-rsa AAAAB3NzaC1yc2E old@host", new = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 new@host"
        try (old + "\n").write(toFile: ssh + "/id_rsa.pub", atomically: true, encoding: .utf8)
        try (new + "\n").write(toFile: ssh + "/id_ed25519.pub", atomically: true, encoding: .utf8)
        try "ssh-ed25519-cert-v01@openssh.com AAAA cert\n".write(toFile: ssh + "/id_ed25519-cert.pub", atomically: true,
                                                                  encoding: .utf8)
        try "not a key\n".write(toFile: ssh + "/authorized_keys", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)],
                                              ofItemAtPath: ssh + "/id_rsa.pub")
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 3600)],
                                              ofItemAtPath: ssh + "/id_ed25519-cert.pub")
        #expect(try SSHInject.defaultKeyFile(in: ssh) == ssh + "/id_ed25519.pub")

        let parsed = try SSHInject.parse("root", home: home.path)
        #expect(parsed.user == "root" && parsed.key == new)

        try FileManager.default.removeItem(atPath: ssh + "/id_rsa.pub")
        try FileManager.default.removeItem(atPath: ssh + "/id_ed25519.pub")
        let error = try #require(throws: ArgumentError.self) { try SSHInject.parse("root", home: home.path) }
        #expect(error.description.contains("no public key (id*.pub) in \(ssh)"))
        #expect(throws: ArgumentError.self) { try SSHInject.parse("root", home: nil) }
    }
}
