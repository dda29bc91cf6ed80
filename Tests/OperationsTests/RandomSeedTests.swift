import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct RandomSeedTests {
    private static let linux = OperationContext(guest: GuestFacts(type: "linux", distro: "rhel", majorVersion: 9))

    private func bytes(_ tree: TemporaryTree, _ path: String) throws -> [UInt8] {
        try #require(FileManager.default.contents(atPath: tree.path + path)).map { $0 }
    }

    /// The seed the image was made with is replaced by 512 new bytes, the file's mode kept; a second run writes
    /// other bytes again and says it changed the guest (a seed must never repeat).
    @Test func rewritesAnExistingSeedKeepingItsModeWithNewBytesEveryRun() throws {
        let tree = try TemporaryTree()
        let old = String(repeating: "s", count: 512)
        try tree.file("/var/lib/systemd/random-seed", old, mode: 0o640)
        let runner = OperationRunner(guest: tree.guest, context: Self.linux)

        let first = try runner.run(RandomSeed())
        let once = try bytes(tree, "/var/lib/systemd/random-seed")
        #expect(first.changed == .yes)
        #expect(first.summary == "wrote fresh random bytes to /var/lib/systemd/random-seed (512 bytes)")
        #expect(once.count == 512 && once != Array(old.utf8))
        #expect(try tree.hostStatus("/var/lib/systemd/random-seed").mode == 0o640)
        #expect(runner.touchedPaths.contains("/var/lib/systemd/random-seed"))

        let second = try runner.run(RandomSeed())
        let twice = try bytes(tree, "/var/lib/systemd/random-seed")
        #expect(second.changed == .yes)
        #expect(twice.count == 512 && twice != once)
        #expect(try tree.hostStatus("/var/lib/systemd/random-seed").mode == 0o640)
        #expect(try tree.guest.lstat("/var/lib/random-seed") == nil)
    }

    /// Every seed file there is gets its own bytes, at least 512 and at most 8192 of them; a symlink is left as it
    /// is, and nothing is created beside files that exist.
    @Test func everyDistributionsSeedFileThatIsThere() throws {
        let tree = try TemporaryTree()
        try tree.file("/var/lib/random-seed", "12345678", mode: 0o600)
        try tree.file("/var/lib/urandom/random-seed", String(repeating: "d", count: 4096), mode: 0o600)
        try tree.file("/var/lib/misc/random-seed", String(repeating: "s", count: 20000), mode: 0o600)
        try tree.symlink("/etc/random-seed", to: "/var/lib/random-seed")
        try tree.file("/var/lib/systemd/.keep", "")

        let outcome = try RandomSeed().apply(to: tree.guest, context: Self.linux)
        #expect(outcome == .changed("wrote fresh random bytes to /var/lib/random-seed (512 bytes), "
                                    + "/var/lib/urandom/random-seed (4096 bytes), /var/lib/misc/random-seed (8192 bytes)"))
        #expect(try bytes(tree, "/var/lib/random-seed").count == 512)
        #expect(try bytes(tree, "/var/lib/urandom/random-seed").count == 4096)
        #expect(try bytes(tree, "/var/lib/misc/random-seed").count == 8192)
        #expect(try tree.guest.readlink("/etc/random-seed") == "/var/lib/random-seed")
        #expect(try tree.guest.lstat("/var/lib/systemd/random-seed") == nil)
    }

    /// A guest with no seed gets systemd's, mode 0600; without /var/lib/systemd the classic /var/lib/random-seed;
    /// without /var/lib nothing.
    @Test func createsASeedWhereNoneIs() throws {
        let systemd = try TemporaryTree()
        try systemd.file("/var/lib/systemd/catalog/database", "")
        #expect(try RandomSeed().apply(to: systemd.guest, context: Self.linux)
            == .changed("wrote fresh random bytes to /var/lib/systemd/random-seed (512 bytes)"))
        #expect(try bytes(systemd, "/var/lib/systemd/random-seed").count == 512)
        #expect(try systemd.hostStatus("/var/lib/systemd/random-seed").mode == 0o600)

        let sysvinit = try TemporaryTree()
        try sysvinit.file("/var/lib/rpm/Packages", "")
        _ = try RandomSeed().apply(to: sysvinit.guest, context: Self.linux)
        #expect(try bytes(sysvinit, "/var/lib/random-seed").count == 512)
        #expect(try sysvinit.hostStatus("/var/lib/random-seed").mode == 0o600)

        let bare = try TemporaryTree()
        try bare.file("/etc/hostname", "bare\n")
        #expect(try RandomSeed().apply(to: bare.guest, context: Self.linux)
            == .unchanged("no random seed file and no /var/lib to create one in"))
        #expect(try bare.guest.list("/") == ["etc"])
    }

    /// Not Linux, not touched: the sysprep profile leaves the operation out, and the operation itself refuses.
    @Test func aWindowsGuestIsLeftAlone() throws {
        let tree = try TemporaryTree()
        try tree.file("/var/lib/random-seed", String(repeating: "w", count: 512))
        let windows = OperationContext(guest: GuestFacts(type: "windows", distro: "windows"))
        #expect(!sysprepOperations(for: windows.guest).contains { $0.name == RandomSeed.name })
        #expect(try RandomSeed().apply(to: tree.guest, context: windows)
            == .unchanged("not a Linux guest: windows has no random seed file"))
        #expect(tree.text("/var/lib/random-seed") == String(repeating: "w", count: 512))
    }

    /// On in every sysprep run, last, as virt-sysprep's customize step; a flag of `customize`.
    @Test func sysprepRunsItByDefaultAndCustomizeHasTheFlag() throws {
        let descriptor = try #require(OperationRegistry.named("random-seed"))
        #expect(descriptor.isFlag && descriptor.isSysprepDefault && descriptor.sysprep == .virtSysprepImplicit)
        #expect(sysprepDefaults.last?.name == "random-seed")
        #expect(sysprepOperations(for: Self.linux.guest).last?.name == "random-seed")
        #expect(throws: ArgumentError.self) { try descriptor.parse("/var/lib/random-seed") }
    }
}
