import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree
import TestSupport

/// One operation that changes a file in place, run on a tree whose file is a hard link to a file outside it.
struct InPlaceCase: Sendable, CustomTestStringConvertible {
    var name: String
    /// Where in the tree the hard link is.
    var path: String
    var content = "outside data\n"
    var operation: @Sendable () throws -> any GuestOperation
    /// The operation refuses rather than breaking the link (scrub).
    var refuses = false
    /// What the operation did to the tree's own name: the test must see the change, or it proves nothing.
    var changedInTree: @Sendable (TemporaryTree, String) throws -> Bool

    var testDescription: String { name }

    static let all: [InPlaceCase] = [
        InPlaceCase(name: "remove-machine-id", path: "/etc/machine-id", content: "0123456789abcdef0123456789abcdef\n",
                    operation: { RemoveMachineID() }, changedInTree: { tree, path in tree.text(path) == "" }),
        InPlaceCase(name: "remove-machine-id=uninitialized", path: "/etc/machine-id",
                    content: "0123456789abcdef0123456789abcdef\n", operation: { RemoveMachineID(.uninitialized) },
                    changedInTree: { tree, path in tree.text(path) == "uninitialized\n" }),
        InPlaceCase(name: "truncate", path: "/var/log/messages", operation: { Truncate("/var/log/messages") },
                    changedInTree: { tree, path in tree.text(path) == "" }),
        InPlaceCase(name: "truncate-recursive", path: "/var/log/app/app.log", operation: { TruncateRecursive("/var/log") },
                    changedInTree: { tree, path in tree.text(path) == "" }),
        InPlaceCase(name: "pacct-log", path: "/var/account/pacct", operation: { PacctLog() },
                    changedInTree: { tree, path in tree.text(path) == "" }),
        InPlaceCase(name: "scrub", path: "/var/lib/secret", operation: { Scrub("/var/lib/secret") }, refuses: true,
                    changedInTree: { tree, path in tree.text(path) == "outside data\n" }),
        InPlaceCase(name: "chmod", path: "/usr/bin/tool", operation: { Chmod(0o4755, "/usr/bin/tool") },
                    changedInTree: { tree, path in try tree.hostStatus(path).mode == 0o4755 }),
        InPlaceCase(name: "chown", path: "/home/user/file", operation: { Chown(uid: 1000, gid: 1000, "/home/user/file") },
                    changedInTree: { tree, path in try tree.hostStatus(path).uid == 1000 && tree.text(path) == "outside data\n" }),
        InPlaceCase(name: "write", path: "/etc/motd", operation: { WriteFile("/etc/motd", text: "welcome\n") },
                    changedInTree: { tree, path in tree.text(path) == "welcome\n" }),
        InPlaceCase(name: "set-line", path: "/etc/default/app", content: "KEY=old\n",
                    operation: { SetLine("/etc/default/app", key: "KEY", value: "new") },
                    changedInTree: { tree, path in tree.text(path) == "KEY=new\n" }),
        InPlaceCase(name: "append-line", path: "/etc/hosts.allow", operation: { AppendLine("/etc/hosts.allow", line: "sshd: ALL") },
                    changedInTree: { tree, path in tree.text(path) == "outside data\nsshd: ALL\n" }),
        InPlaceCase(name: "root-password", path: "/etc/shadow", content: "root:*:19000:0:99999:7:::\n",
                    operation: { RootPassword(.plain("secret")) },
                    changedInTree: { tree, path in tree.text(path)?.hasPrefix("root:$6$") == true }),
        InPlaceCase(name: "cron-spool (reset .SEQ)", path: "/var/spool/at/.SEQ", content: "00042\n",
                    operation: { CronSpool() }, changedInTree: { tree, path in tree.text(path) == "00000\n" }),
    ]
}

/// Seconds of the file's modification time, not following a symlink.
func modificationTime(_ hostPath: String) throws -> Int {
    var status = stat()
    guard lstat(hostPath, &status) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    return status.st_mtim.tv_sec
}

@Suite struct TreeHardLinkTests {
    /// The file outside the tree keeps its content, mode, owner and times whatever the operation does through the
    /// tree's hard link to it; the tree's own name shows the change (or, for scrub, the refusal names the path).
    @Test(arguments: InPlaceCase.all)
    func fileOutsideTheTreeIsUnchanged(_ testCase: InPlaceCase) throws {
        let outside = try TestDirectory("imgcustomize-outside")
        let victim = outside.path("victim")
        try Data(testCase.content.utf8).write(to: URL(fileURLWithPath: victim))
        #expect(Glibc.chmod(victim, 0o640) == 0)
        #expect(Glibc.chown(victim, 4321, 4321) == 0)
        let old = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, victim, old, 0) == 0)

        let tree = try TemporaryTree()
        let host = tree.path + testCase.path
        try FileManager.default.createDirectory(atPath: (host as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        #expect(link(victim, host) == 0)

        let operation = try testCase.operation()
        if testCase.refuses {
            let error = #expect(throws: GuestError.self) {
                try operation.apply(to: tree.guest, context: OperationContext())
            }
            #expect(error?.path == testCase.path)
            #expect(error?.guest == tree.path)
            #expect(error?.hint != nil)
        } else {
            _ = try operation.apply(to: tree.guest, context: OperationContext())
        }

        #expect(FileManager.default.contents(atPath: victim) == Data(testCase.content.utf8))
        var status = stat()
        #expect(lstat(victim, &status) == 0)
        #expect(status.st_mode & 0o7777 == 0o640)
        #expect(status.st_uid == 4321 && status.st_gid == 4321)
        #expect(status.st_mtim.tv_sec == 1_000_000_000)
        #expect(try testCase.changedInTree(tree, testCase.path))
    }

    /// The touch operation leaves an existing file alone; the filesystem's touch (what the other operations use)
    /// sets the times of the tree's own copy only.
    @Test func touchLeavesTheTimesOfAFileOutside() throws {
        let outside = try TestDirectory("imgcustomize-outside")
        let victim = outside.path("victim")
        try Data("outside\n".utf8).write(to: URL(fileURLWithPath: victim))
        let old = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, victim, old, 0) == 0)
        let tree = try TemporaryTree()
        try tree.file("/etc/placeholder", "")
        #expect(link(victim, tree.path + "/etc/stamp") == 0)
        try tree.guest.touch("/etc/stamp")
        #expect(try modificationTime(victim) == 1_000_000_000)
        #expect(try modificationTime(tree.path + "/etc/stamp") > 1_000_000_000)
        #expect(tree.text("/etc/stamp") == "outside\n")
    }

    /// Breaking the link of a sparse file copies its data, not its holes: 6 GiB of holes cost no disk.
    @Test func aSparseLinkedFileIsCopiedSparse() throws {
        let tree = try TemporaryTree()
        try tree.file("/var/lib/sparse", "")
        let fd = open(tree.path + "/var/lib/sparse", O_WRONLY)
        #expect(fd >= 0)
        #expect(pwrite(fd, "tail", 4, (6 << 30) - 4) == 4)
        close(fd)
        #expect(link(tree.path + "/var/lib/sparse", tree.path + "/var/lib/other") == 0)
        try tree.guest.chmod("/var/lib/sparse", mode: 0o600)
        var status = stat()
        #expect(lstat(tree.path + "/var/lib/sparse", &status) == 0)
        #expect(status.st_size == 6 << 30)
        #expect(status.st_nlink == 1)
        #expect(status.st_blocks < 1024)
        let copy = open(tree.path + "/var/lib/sparse", O_RDONLY)
        var tail = [UInt8](repeating: 0, count: 4)
        #expect(pread(copy, &tail, 4, (6 << 30) - 4) == 4)
        close(copy)
        #expect(tail == Array("tail".utf8))
    }

    @Test func aLinkToAFileInTheTreeIsBrokenKeepingTheFile() throws {
        let tree = try TemporaryTree()
        try tree.file("/usr/bin/gzip", "#!/bin/sh\n", mode: 0o755)
        try tree.guest.setxattr("/usr/bin/gzip", name: "user.label", value: Array("bin_t".utf8))
        #expect(link(tree.path + "/usr/bin/gzip", tree.path + "/usr/bin/gunzip") == 0)
        try tree.guest.chmod("/usr/bin/gunzip", mode: 0o700)
        #expect(try tree.hostStatus("/usr/bin/gunzip").mode == 0o700)
        #expect(try tree.hostStatus("/usr/bin/gzip").mode == 0o755)
        #expect(tree.text("/usr/bin/gunzip") == "#!/bin/sh\n")
        #expect(try tree.guest.getxattr("/usr/bin/gunzip", name: "user.label") == Array("bin_t".utf8))
        // setxattr breaks the link too: gzip's label stays.
        #expect(link(tree.path + "/usr/bin/gzip", tree.path + "/usr/bin/zcat") == 0)
        try tree.guest.setxattr("/usr/bin/zcat", name: "user.label", value: Array("other_t".utf8))
        #expect(try tree.guest.getxattr("/usr/bin/gzip", name: "user.label") == Array("bin_t".utf8))
        #expect(try tree.guest.getxattr("/usr/bin/zcat", name: "user.label") == Array("other_t".utf8))
    }
}
