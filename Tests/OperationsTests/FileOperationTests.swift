import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct FileOperationTests {
    static let ifcfg = ["TYPE=Ethernet", "DEVICE=eth0", "ONBOOT=yes", "BOOTPROTO=dhcp", "NM_CONTROLLED=no"]

    @Test func writeLinesReplacesWhateverWasThere() throws {
        let tree = try TemporaryTree()
        let path = "/etc/sysconfig/network-scripts/ifcfg-eth0"
        try tree.file(path, "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\nBOOTPROTO=static\nIPADDR=10.0.0.5\n", mode: 0o600)
        let (first, second) = try tree.applyTwice(WriteLines(path, lines: Self.ifcfg))
        #expect(tree.text(path) == "TYPE=Ethernet\nDEVICE=eth0\nONBOOT=yes\nBOOTPROTO=dhcp\nNM_CONTROLLED=no\n")
        #expect(first.summary == "wrote 5 lines to \(path)")
        #expect(second.summary == "\(path) already has exactly these 5 lines")
        #expect(try tree.hostStatus(path).mode == 0o600)
        #expect(try WriteLines.parse("\(path):TYPE=Ethernet\\nDEVICE=eth0\\nONBOOT=yes\\nBOOTPROTO=dhcp\\nNM_CONTROLLED=no").lines
            == Self.ifcfg)
    }

    @Test func writeLinesCreatesTheFile() throws {
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/etc/udev/rules.d", mode: 0o755, parents: true)
        try tree.applyTwice(WriteLines("/etc/udev/rules.d/75-persistent-net-generator.rules", lines: ["#"]))
        #expect(tree.text("/etc/udev/rules.d/75-persistent-net-generator.rules") == "#\n")
    }

    @Test func writeAndTruncate() throws {
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/etc", mode: 0o755, parents: false)
        try tree.applyTwice(try WriteFile.parse("/etc/motd:Welcome: to the cloud"))
        #expect(tree.text("/etc/motd") == "Welcome: to the cloud")
        let (first, second) = try tree.applyTwice(Truncate("/etc/motd"))
        #expect(tree.text("/etc/motd") == "")
        #expect(first.summary == "emptied /etc/motd (21 bytes)")
        #expect(second.summary == "/etc/motd already empty")
    }

    @Test func appendLineKeepsLineEndingsAndAddsOnce() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/hosts.allow", "# hosts.allow\nALL: LOCAL")
        try tree.applyTwice(try AppendLine.parse("/etc/hosts.allow:sshd: ALL"))
        #expect(tree.text("/etc/hosts.allow") == "# hosts.allow\nALL: LOCAL\nsshd: ALL\n")
        try tree.file("/autoexec.bat", "@echo off\r\n")
        try tree.applyTwice(AppendLine("/autoexec.bat", line: "set X=1"))
        #expect(tree.text("/autoexec.bat") == "@echo off\r\nset X=1\r\n")
        try tree.applyTwice(AppendLine("/new", line: "first"))
        #expect(tree.text("/new") == "first\n")
    }

    @Test func deleteGlobsRecursively() throws {
        let tree = try TemporaryTree()
        try tree.file("/var/log/messages", "x")
        try tree.file("/var/log/boot.log", "x")
        try tree.file("/var/log/audit/audit.log", "x")
        try tree.file("/var/cache/yum/x86_64/7/base/repomd.xml", "x")
        let (first, second) = try tree.applyTwice(try Delete.parse("/var/log/*.log"))
        #expect(try tree.guest.list("/var/log") == ["audit", "messages"])
        #expect(first.summary == "deleted /var/log/boot.log")
        #expect(second.summary == "nothing matches /var/log/*.log")
        try tree.applyTwice(Delete("/var/cache/yum/*"))
        #expect(try tree.guest.list("/var/cache/yum") == [])
    }

    @Test func mkdirChmodChown() throws {
        let tree = try TemporaryTree()
        try tree.applyTwice(MakeDirectory("/home/cloud-user/.ssh"))
        #expect(try tree.guest.stat("/home/cloud-user/.ssh")?.mode == 0o755)
        try tree.applyTwice(try Chmod.parse("0700:/home/cloud-user/.ssh"))
        try tree.applyTwice(try Chown.parse("1000:1000:/home/cloud-user/.ssh"))
        let status = try tree.hostStatus("/home/cloud-user/.ssh")
        #expect(status.mode == 0o700 && status.uid == 1000 && status.gid == 1000)
        #expect(throws: ArgumentError.self) { try Chmod.parse("rw:/x") }
        #expect(throws: ArgumentError.self) { try Chown.parse("root:root:/x") }
    }

    @Test func linkReplacesAnOldLink() throws {
        let tree = try TemporaryTree()
        try tree.symlink("/etc/localtime", to: "../usr/share/zoneinfo/America/New_York")
        let (first, _) = try tree.applyTwice(try Link.parse("/usr/share/zoneinfo/UTC:/etc/localtime"))
        #expect(try tree.guest.readlink("/etc/localtime") == "/usr/share/zoneinfo/UTC")
        #expect(first.diffs == [FileDiff(path: "/etc/localtime", unified:
            "symlink to ../usr/share/zoneinfo/America/New_York -> symlink to /usr/share/zoneinfo/UTC\n")])
    }

    @Test func touchCreatesOnlyWhenMissing() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/exists", "keep\n")
        try tree.applyTwice(Touch("/etc/exists"))
        #expect(tree.text("/etc/exists") == "keep\n")
        let (first, _) = try tree.applyTwice(Touch("/.autorelabel"))
        #expect(tree.text("/.autorelabel") == "")
        #expect(first.diffs == [FileDiff(path: "/.autorelabel", unified: "--- /dev/null\n+++ b/.autorelabel\n")])
    }

    @Test func copyFileAndDirectory() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/skel/.bashrc", "# bashrc\n", mode: 0o640)
        try tree.file("/etc/skel/.ssh/config", "Host *\n", mode: 0o600)
        try tree.symlink("/etc/skel/link", to: ".bashrc")
        try tree.guest.mkdir("/root", mode: 0o550, parents: false)
        try tree.applyTwice(try Copy.parse("/etc/skel/.bashrc:/root"))
        #expect(tree.text("/root/.bashrc") == "# bashrc\n")
        #expect(try tree.hostStatus("/root/.bashrc").mode == 0o640)
        try tree.guest.mkdir("/home", mode: 0o755, parents: false)
        let (first, _) = try tree.applyTwice(Copy("/etc/skel", to: "/home/user"))
        #expect(first.summary == "copied /etc/skel to /home/user (5 entries written)")
        #expect(tree.text("/home/user/.ssh/config") == "Host *\n")
        #expect(try tree.guest.readlink("/home/user/link") == ".bashrc")
        #expect(try tree.hostStatus("/home/user/.ssh/config").mode == 0o600)
    }

    @Test func moveIsDoneOnce() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/yum.repos.d/local.repo", "[local]\n")
        try tree.guest.mkdir("/root", mode: 0o700, parents: false)
        let (first, second) = try tree.applyTwice(try Move.parse("/etc/yum.repos.d/local.repo:/root"))
        #expect(tree.text("/root/local.repo") == "[local]\n")
        #expect(try tree.guest.exists("/etc/yum.repos.d/local.repo") == false)
        #expect(first.summary == "moved /etc/yum.repos.d/local.repo to /root/local.repo")
        #expect(second.summary == "/etc/yum.repos.d/local.repo already moved to /root/local.repo")
    }

    @Test func uploadFromTheHost() throws {
        let tree = try TemporaryTree()
        let local = tree.path + ".upload"
        try Data("key\n".utf8).write(to: URL(fileURLWithPath: local))
        defer { try? FileManager.default.removeItem(atPath: local) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: local)
        try tree.guest.mkdir("/etc/pki", mode: 0o755, parents: true)
        try tree.applyTwice(try Upload.parse("\(local):/etc/pki"))
        let name = String(local.split(separator: "/").last ?? "")
        #expect(tree.text("/etc/pki/\(name)") == "key\n")
        #expect(try tree.hostStatus("/etc/pki/\(name)").mode == 0o600)
        let error = #expect(throws: GuestError.self) {
            try Upload("/nonexistent/file", to: "/x").apply(to: tree.guest, context: OperationContext())
        }
        #expect(error?.description == "\(tree.path): upload: read host file /nonexistent/file: No such file or directory\n"
                + "  hint: give the path of a readable regular file on this host")
    }
}
