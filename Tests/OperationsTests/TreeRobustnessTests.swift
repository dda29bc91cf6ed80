import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree
import TestSupport

/// Host-side helpers for names that are not UTF-8: Foundation's path APIs cannot make them.
extension TemporaryTree {
    /// Creates a file (or, with `directory`, a directory) whose last name is `name`'s bytes, below `guestDirectory`.
    /// `guestDirectory` may hold escaped bytes (`guestName(decoding:)`); only a plain one is created when missing.
    func make(_ guestDirectory: String, _ name: [UInt8], directory: Bool = false) throws {
        if guestDirectory.utf8.allSatisfy({ $0 < 0x80 }) {
            try FileManager.default.createDirectory(atPath: path + guestDirectory, withIntermediateDirectories: true)
        }
        let full = cString(guestPathBytes(path + guestDirectory + "/") + name)
        if directory {
            guard Glibc.mkdir(full, 0o755) == 0 else { throw POSIXError(.EIO) }
        } else {
            let fd = open(full, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            guard fd >= 0 else { throw POSIXError(.EIO) }
            _ = Glibc.write(fd, "x", 1)
            close(fd)
        }
    }

    /// The names in a host directory of the tree, as bytes.
    func rawNames(_ guestDirectory: String) throws -> [[UInt8]] {
        let fd = open(path + guestDirectory, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw POSIXError(.ENOENT) }
        return try TreeFilesystem.entries(ofDirectory: fd).sorted { $0.lexicographicallyPrecedes($1) }
    }
}

@Suite struct GuestNameTests {
    /// Byte strings a guest's names may hold: Latin-1, a lone continuation byte, a truncated sequence, an overlong
    /// NUL, a surrogate's encoding, and a name that really holds the escape range's first character.
    @Test(arguments: [
        Array("plain.log".utf8), Array("café".utf8), [0x63, 0x61, 0x66, 0xE9], [0xFF], [0x80, 0x41],
        [0xE2, 0x82], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xEE, 0xBE, 0x80], [0xF4, 0x90, 0x80, 0x80],
    ] as [[UInt8]])
    func namesRoundTrip(_ bytes: [UInt8]) {
        let name = guestName(decoding: bytes)
        #expect(guestPathBytes(name) == bytes)
        #expect(!name.contains("\u{FFFD}"))
    }

    @Test func listedNamesAreRemovedExactly() throws {
        let tree = try TemporaryTree()
        let latin1: [UInt8] = Array("caf".utf8) + [0xE9] + Array(".log".utf8)
        let invalid: [UInt8] = [0xFF, 0xFE] + Array(".log".utf8)
        try tree.make("/var/log", latin1)
        try tree.make("/var/log", invalid)
        try tree.make("/var/log", Array("kept".utf8))
        let outcome = try LogFiles().apply(to: tree.guest, context: OperationContext())
        #expect(outcome.changed == .yes)
        #expect(try tree.rawNames("/var/log") == [Array("kept".utf8)])
    }

    @Test func deleteRemovesTheNamesItReports() throws {
        let tree = try TemporaryTree()
        try tree.make("/srv", [0xE9, 0x74, 0xE9])
        try tree.make("/srv", [0xE9, 0x74, 0xE9, 0x32], directory: true)
        try tree.make("/srv/" + guestName(decoding: [0xE9, 0x74, 0xE9, 0x32]), [0x80])
        let outcome = try Delete("/srv/*").apply(to: tree.guest, context: OperationContext())
        #expect(outcome.summary == "deleted 2 paths")
        #expect(try tree.rawNames("/srv") == [])
    }

    @Test func tmpFilesEmptiesDirectoriesWithNonUTF8Names() throws {
        let tree = try TemporaryTree()
        try tree.make("/tmp", [0xFF], directory: true)
        try tree.make("/tmp/" + guestName(decoding: [0xFF]), [0xFE, 0x41])
        try tree.make("/var/tmp", [0xC3])
        let outcome = try TmpFiles().apply(to: tree.guest, context: OperationContext())
        #expect(outcome.changed == .yes)
        #expect(try tree.rawNames("/tmp") == [])
        #expect(try tree.rawNames("/var/tmp") == [])
    }

    @Test func aSymlinkWithANonUTF8TargetIsFollowed() throws {
        let tree = try TemporaryTree()
        try tree.make("/etc", [0xE9])
        let target = guestName(decoding: [0xE9])
        try tree.guest.symlink(target: target, at: "/etc/link")
        #expect(try tree.guest.readlink("/etc/link") == target)
        #expect(try tree.guest.readText("/etc/link") == "x")
    }
}

@Suite struct TreeRobustnessTests {
    /// NAME_MAX is 255: the temporary name of an atomic write is short and random, not the name plus a suffix.
    @Test(arguments: [231, 240, 255])
    func longNamesAreWritten(_ length: Int) throws {
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/etc", mode: 0o755, parents: false)
        let path = "/etc/" + String(repeating: "n", count: length)
        _ = try WriteFile(path, text: "content\n").apply(to: tree.guest, context: OperationContext())
        #expect(tree.text(path) == "content\n")
        _ = try WriteFile(path, text: "replaced\n").apply(to: tree.guest, context: OperationContext())
        #expect(tree.text(path) == "replaced\n")
        #expect(try tree.guest.list("/etc") == [String(repeating: "n", count: length)])
    }

    @Test func machineIDBehindASymlinkIsEmptied() throws {
        let tree = try TemporaryTree()
        try tree.file("/var/lib/machine-id.real", "0123456789abcdef0123456789abcdef\n")
        try tree.symlink("/etc/machine-id", to: "/var/lib/machine-id.real")
        let outcome = try RemoveMachineID().apply(to: tree.guest, context: OperationContext())
        #expect(outcome.changed == .yes)
        #expect(outcome.summary == "emptied /etc/machine-id")
        #expect(tree.text("/var/lib/machine-id.real") == "")
        #expect(try tree.guest.lstat("/etc/machine-id")?.kind == .symlink)
    }

    /// 6 GiB of holes: no disk space, but a whole-file read would need 6 GiB of memory.
    @Test func hugeMachineIDIsEmptiedWithoutReadingIt() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/machine-id", "")
        let fd = open(tree.path + "/etc/machine-id", O_WRONLY)
        #expect(fd >= 0)
        #expect(ftruncate(fd, 6 << 30) == 0)
        close(fd)
        let error = #expect(throws: GuestError.self) { try tree.guest.read("/etc/machine-id") }
        #expect(error?.path == "/etc/machine-id")
        #expect(error?.message == "file of 6.0 GiB, over the 256.0 MiB imgcustomize reads whole")

        let outcome = try TemporaryTree.runner(tree).run(RemoveMachineID(.uninitialized))
        #expect(outcome.changed == .yes)
        #expect(tree.text("/etc/machine-id") == "uninitialized\n")
        #expect(outcome.diffs?.first?.unified.contains("file of 6442450944 bytes") == true)
    }

    /// write and the sysprep resets compare by size before content: a 6 GiB file is replaced, never read.
    @Test func hugeFilesAreReplacedWithoutBeingRead() throws {
        let tree = try TemporaryTree()
        for path in ["/etc/motd", "/var/spool/at/.SEQ"] {
            try tree.file(path, "")
            let fd = open(tree.path + path, O_WRONLY)
            #expect(fd >= 0)
            #expect(ftruncate(fd, 6 << 30) == 0)
            close(fd)
        }
        #expect(try WriteFile("/etc/motd", text: "welcome\n").apply(to: tree.guest, context: OperationContext())
            .changed == .yes)
        #expect(tree.text("/etc/motd") == "welcome\n")
        #expect(try CronSpool().apply(to: tree.guest, context: OperationContext()).changed == .yes)
        #expect(tree.text("/var/spool/at/.SEQ") == "00000\n")
    }

    @Test func augeasRefusesAFileWithANUL() throws {
        let tree = try TemporaryTree()
        let shadow = Data("root:*:19000:0:99999:7:::\n\0bin:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n".utf8)
        try tree.file("/etc/shadow", "", mode: 0o600)
        try shadow.write(to: URL(fileURLWithPath: tree.path + "/etc/shadow"))
        let error = #expect(throws: GuestError.self) {
            try RootPassword(.plain("secret")).apply(to: tree.guest, context: OperationContext())
        }
        #expect(error?.path == "/etc/shadow")
        #expect(error?.guest == tree.path)
        #expect(error?.message == "the file holds a NUL byte (at offset 26), which is not text")
        #expect(FileManager.default.contents(atPath: tree.path + "/etc/shadow") == shadow)
    }

    /// A symlink loop in /home matches nothing, as in a shell's glob: every other home is still cleaned.
    @Test func aSymlinkLoopInHomeIsSkipped() throws {
        let tree = try TemporaryTree()
        try tree.symlink("/home/loop", to: "loop")
        try tree.symlink("/home/ping", to: "/home/pong")
        try tree.symlink("/home/pong", to: "/home/ping")
        try tree.file("/home/alice/.bash_history", "ls\n")
        try tree.file("/home/alice/.ssh/authorized_keys", "ssh-ed25519 AAAA\n")
        try tree.file("/root/.bash_history", "id\n")
        for operation in [BashHistory(), SSHUserDir(), ZshHistory()] as [any GuestOperation] {
            _ = try operation.apply(to: tree.guest, context: OperationContext())
        }
        #expect(tree.text("/home/alice/.bash_history") == nil)
        #expect(tree.text("/root/.bash_history") == nil)
        #expect(try tree.guest.exists("/home/alice/.ssh") == false)
        #expect(try tree.guest.readlink("/home/loop") == "loop")
    }

    /// A racing process swaps the directory mkdir has just made for a symlink to a host file (renameat2's
    /// RENAME_EXCHANGE, one atomic call, over and over): the mode must never land on the host file. It did, when
    /// the mode was set by name, since chmod follows a symlink.
    @Test func mkdirNeverChmodsThroughASwappedSymlink() throws {
        typealias Rename2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        let renameat2 = unsafeBitCast(try #require(dlsym(nil, "renameat2")), to: Rename2.self)
        let exchange: UInt32 = 2  // RENAME_EXCHANGE
        let outside = try TestDirectory("imgcustomize-outside")
        let victim = outside.path("victim")
        try Data("host file\n".utf8).write(to: URL(fileURLWithPath: victim))
        #expect(Glibc.chmod(victim, 0o600) == 0)
        let tree = try TemporaryTree()
        let racing = tree.path + "/race", swap = tree.path + "/swap"
        let deadline = Date().addingTimeInterval(1)
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            while Date() < deadline { _ = renameat2(AT_FDCWD, swap, AT_FDCWD, racing, exchange) }
        }
        var made = 0
        while Date() < deadline {
            for path in [racing, swap] where unlink(path) != 0 { rmdir(path) }
            Glibc.symlink(victim, swap)
            if (try? tree.guest.mkdir("/race", mode: 0o7777, parents: false)) != nil { made += 1 }
        }
        group.wait()
        var status = stat()
        #expect(lstat(victim, &status) == 0)
        #expect(status.st_mode & 0o7777 == 0o600)
        #expect(made > 0)
    }
}

extension TemporaryTree {
    static func runner(_ tree: TemporaryTree) -> OperationRunner { OperationRunner(guest: tree.guest, recordDiffs: true) }
}

/// A glob over symlinked directories that loop multiplies at every wildcard level: the scripts/fuzz `tree` target
/// found a 58-byte pattern of `*` levels that never ended. Past `GuestGlob.limit` paths or listings it is refused,
/// quickly, with a message that says why; a real pattern still matches.
@Suite struct GlobBoundTests {
    @Test func aPatternThroughLoopingLinksIsRefusedQuickly() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
        // Ten links back to their own directory: each `*` level below /d matches ten times as much.
        for index in 0..<10 { try tree.symlink("/d/l\(index)", to: ".") }
        #expect(try tree.guest.glob("/etc/pass*") == ["/etc/passwd"])
        #expect(try tree.guest.glob("/d/*/*").count == 100)
        let started = ContinuousClock.now
        let error = #expect(throws: GuestError.self) { try tree.guest.glob("/d/*/*/*/*/*/*") }
        #expect(error?.message.contains("more than \(GuestGlob.limit)") == true, "\(String(describing: error))")
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
