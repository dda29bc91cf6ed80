import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree
import TestSupport

@Suite struct TreeContainmentTests {
    /// A host directory beside the tree, holding what a hostile guest would like to read or overwrite.
    final class Outside {
        let path: String
        init() throws {
            var template = Array((NSTemporaryDirectory() + "imgcustomize-host-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
            path = String(cString: made)
            try Data("host secret\n".utf8).write(to: URL(fileURLWithPath: path + "/secret"))
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func list() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }
        var secret: String? {
            FileManager.default.contents(atPath: path + "/secret").map { String(decoding: $0, as: UTF8.self) }
        }
    }

    @Test func absoluteSymlinkResolvesInsideTheTree() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/shadow", "root:!!:19000:0:99999:7:::\n")
        try tree.symlink("/etc/passwd", to: "/etc/shadow")
        #expect(try tree.guest.readText("/etc/passwd") == "root:!!:19000:0:99999:7:::\n")
        #expect(try tree.guest.lstat("/etc/passwd")?.kind == .symlink)
        #expect(try tree.guest.stat("/etc/passwd")?.kind == .regular)
    }

    @Test func dotDotSymlinksStopAtTheRoot() throws {
        let outside = try Outside()
        let tree = try TemporaryTree()
        try tree.file("/secret", "tree's own file\n")
        // From the host's point of view these point at the outside directory.
        try tree.symlink("/etc/escape", to: "../../../../../../../../.." + outside.path)
        try tree.symlink("/etc/up", to: "../../../../../../../../../")
        try tree.symlink("/etc/absolute", to: outside.path + "/secret")
        #expect(throws: GuestError.self) { try tree.guest.read("/etc/escape/secret") }
        #expect(try tree.guest.readText("/etc/up/secret") == "tree's own file\n")
        #expect(try tree.guest.readText("/../../../../secret") == "tree's own file\n")
        #expect(try tree.guest.stat("/etc/absolute") == nil)

        // Writing through them creates files inside the tree, never on the host.
        try tree.guest.mkdir(outside.path, mode: 0o755, parents: true)
        try tree.guest.writeText("/etc/absolute", "written\n")
        #expect(outside.secret == "host secret\n")
        #expect(tree.text(outside.path + "/secret") == "written\n")
        try tree.guest.writeText("/etc/up/secret", "replaced\n")
        #expect(tree.text("/secret") == "replaced\n")
        try tree.guest.remove("/etc/escape", recursive: true)
        #expect(outside.secret == "host secret\n")
    }

    @Test func removingALinkToAHostDirectoryKeepsTheHostDirectory() throws {
        let outside = try Outside()
        let tree = try TemporaryTree()
        try tree.file("/tmp/keep", "x")
        try FileManager.default.createSymbolicLink(atPath: tree.path + "/tmp/host", withDestinationPath: outside.path)
        try tree.guest.remove("/tmp", recursive: true)
        #expect(try tree.guest.lstat("/tmp") == nil)
        #expect(outside.secret == "host secret\n")
    }

    @Test func operationsNeverReachTheHostThroughGuestSymlinks() throws {
        let outside = try Outside()
        try Data("[host-repo]\nenabled=1\n".utf8).write(to: URL(fileURLWithPath: outside.path + "/host.repo"))
        try Data("root:$6$x:1:0:99999:7:::\n".utf8).write(to: URL(fileURLWithPath: outside.path + "/shadow"))
        let tree = try TemporaryTree()
        try tree.symlink("/etc/yum.repos.d", to: "../../../../../../../.." + outside.path)
        try tree.symlink("/etc/shadow", to: outside.path + "/shadow")
        try tree.symlink("/etc/machine-id", to: "../../../../../../../.." + outside.path + "/secret")

        #expect(try DisableRepos().apply(to: tree.guest, context: OperationContext()).changed == .no)
        #expect(throws: GuestError.self) { try LockRoot().apply(to: tree.guest, context: OperationContext()) }
        #expect(try RemoveMachineID().apply(to: tree.guest, context: OperationContext()).changed == .no)
        #expect(try Delete("/etc/yum.repos.d/*").apply(to: tree.guest, context: OperationContext()).changed == .no)
        #expect(try outside.list() == ["host.repo", "secret", "shadow"])
        #expect(outside.secret == "host secret\n")
        #expect(FileManager.default.contents(atPath: outside.path + "/shadow") == Data("root:$6$x:1:0:99999:7:::\n".utf8))
        #expect(FileManager.default.contents(atPath: outside.path + "/host.repo") == Data("[host-repo]\nenabled=1\n".utf8))
    }

    @Test func symlinkLoopsFailWithAClearError() throws {
        let tree = try TemporaryTree()
        try tree.symlink("/a", to: "/b")
        try tree.symlink("/b", to: "a")
        let error = #expect(throws: GuestError.self) { try tree.guest.read("/a") }
        #expect(error?.description == "\(tree.path): read /a: Too many levels of symbolic links")
    }

    @Test func rootCannotBeRemoved() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/hostname", "x\n")
        #expect(throws: GuestError.self) { try tree.guest.remove("/etc/..", recursive: true) }
        #expect(tree.text("/etc/hostname") == "x\n")
    }
}

@Suite struct TreeFilesystemTests {
    @Test func writeKeepsModeOwnerAndLabel() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/shadow", "root:*:1::::::\n", mode: 0o600)
        try tree.guest.chown("/etc/shadow", uid: 0, gid: 42)
        try tree.guest.setxattr("/etc/shadow", name: "user.label", value: Array("shadow_t".utf8))
        try tree.guest.writeText("/etc/shadow", "root:!*:1::::::\n")
        #expect(tree.text("/etc/shadow") == "root:!*:1::::::\n")
        #expect(try tree.guest.lstat("/etc/shadow") == FileStatus(kind: .regular, mode: 0o600, uid: 0, gid: 42,
                                                                   size: 16))
        #expect(try tree.guest.getxattr("/etc/shadow", name: "user.label") == Array("shadow_t".utf8))
        #expect(try tree.guest.list("/etc") == ["shadow"])
    }

    @Test func newFileGetsTheGivenMode() throws {
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/root/.ssh", mode: 0o700, parents: true)
        try tree.guest.writeText("/root/.ssh/authorized_keys", "ssh-ed25519 AAAA\n", mode: 0o600)
        #expect(try tree.hostStatus("/root/.ssh").mode == 0o700)
        #expect(try tree.hostStatus("/root/.ssh/authorized_keys").mode == 0o600)
    }

    @Test func globMatchesLikeTheShell() throws {
        let tree = try TemporaryTree()
        for name in ["a.repo", "b.repo", ".hidden.repo", "c.conf"] { try tree.file("/etc/yum.repos.d/\(name)", "") }
        try tree.file("/boot/efi/EFI/redhat/grub.cfg", "")
        try tree.file("/boot/efi/EFI/centos/grub.cfg", "")
        #expect(try tree.guest.glob("/etc/yum.repos.d/*.repo") == ["/etc/yum.repos.d/a.repo",
                                                                   "/etc/yum.repos.d/b.repo"])
        #expect(try tree.guest.glob("/boot/efi/EFI/*/grub.cfg") == ["/boot/efi/EFI/centos/grub.cfg",
                                                                    "/boot/efi/EFI/redhat/grub.cfg"])
        #expect(try tree.guest.glob("/nowhere/*") == [])
        #expect(try tree.guest.glob("/etc/yum.repos.d/c.conf") == ["/etc/yum.repos.d/c.conf"])
    }

    @Test func touchTruncateRenameSymlink() throws {
        let tree = try TemporaryTree()
        try tree.guest.touch("/empty")
        #expect(try tree.guest.stat("/empty")?.size == 0)
        try tree.file("/log", "lines\n")
        try tree.guest.truncate("/log", size: 0)
        #expect(tree.text("/log") == "")
        try tree.guest.rename("/log", to: "/log.old")
        #expect(try tree.guest.exists("/log") == false)
        try tree.guest.symlink(target: "../usr/share/zoneinfo/UTC", at: "/localtime")
        #expect(try tree.guest.readlink("/localtime") == "../usr/share/zoneinfo/UTC")
    }

    @Test func augeasEditsTextThroughTheTree() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/sysconfig/network", "NETWORKING=yes\n# keep\n", mode: 0o640)
        try tree.guest.withAugeas(lens: "Shellvars.lns", path: "/etc/sysconfig/network") { edit in
            #expect(try edit.get(edit.root + "/NETWORKING") == "yes")
            try edit.set(edit.root + "/NOZEROCONF", "yes")
        }
        #expect(tree.text("/etc/sysconfig/network") == "NETWORKING=yes\n# keep\nNOZEROCONF=yes\n")
        #expect(try tree.hostStatus("/etc/sysconfig/network").mode == 0o640)
    }

    @Test func augeasParseErrorNamesTreeFileAndPosition() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/sysconfig/network", "NETWORKING=yes\nNAME=\"unterminated\n")
        let error = #expect(throws: GuestError.self) {
            try tree.guest.withAugeas(lens: "Shellvars.lns", path: "/etc/sysconfig/network") { _ in }
        }
        #expect(error?.guest == tree.path)
        #expect(error?.path == "/etc/sysconfig/network")
        #expect(error?.message == "line 2, char 4: Syntax error")
    }

    @Test func augeasLeavesAnUnchangedFileAlone() throws {
        let tree = try TemporaryTree()
        #expect(try tree.guest.withAugeas(lens: "Shellvars.lns", path: "/etc/missing") { _ in 7 } == 7)
        #expect(try tree.guest.exists("/etc/missing") == false)
    }
}
