import Foundation
import Testing
@testable import Operations
import TestSupport

/// copy-in and tar-in: host files into a guest tree, modes, owners and symlinks kept.
@Suite struct HostCopyTests {
    /// skel/ 0755, skel/private/ 0700 and skel/private/key 0600 owned 1000:1000, skel/bin/run.sh 0755,
    /// skel/link -> bin/run.sh.
    static func makeSkeleton(in directory: String) throws -> String {
        let skel = directory + "/skel"
        let files = FileManager.default
        try files.createDirectory(atPath: skel + "/private", withIntermediateDirectories: true)
        try files.createDirectory(atPath: skel + "/bin", withIntermediateDirectories: true)
        try Data("secret\n".utf8).write(to: URL(fileURLWithPath: skel + "/private/key"))
        try Data("#!/bin/sh\necho hi\n".utf8).write(to: URL(fileURLWithPath: skel + "/bin/run.sh"))
        try files.createSymbolicLink(atPath: skel + "/link", withDestinationPath: "bin/run.sh")
        for (path, mode) in [("", 0o755), ("/private", 0o700), ("/private/key", 0o600), ("/bin", 0o755),
                             ("/bin/run.sh", 0o755)] {
            try files.setAttributes([.posixPermissions: mode, .ownerAccountID: 0, .groupOwnerAccountID: 0],
                                    ofItemAtPath: skel + path)
        }
        for path in ["/private", "/private/key"] {
            try files.setAttributes([.ownerAccountID: 1000, .groupOwnerAccountID: 1000], ofItemAtPath: skel + path)
        }
        return skel
    }

    /// What makeSkeleton made, as found at `root` in the guest.
    static func expectSkeleton(_ tree: TemporaryTree, at root: String,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try tree.hostStatus(root + "/private") == (0o700, 1000, 1000), sourceLocation: sourceLocation)
        #expect(try tree.hostStatus(root + "/private/key") == (0o600, 1000, 1000), sourceLocation: sourceLocation)
        #expect(tree.text(root + "/private/key") == "secret\n", sourceLocation: sourceLocation)
        #expect(try tree.hostStatus(root + "/bin/run.sh") == (0o755, 0, 0), sourceLocation: sourceLocation)
        #expect(tree.text(root + "/bin/run.sh") == "#!/bin/sh\necho hi\n", sourceLocation: sourceLocation)
        #expect(try tree.guest.lstat(root + "/link")?.kind == .symlink, sourceLocation: sourceLocation)
        #expect(try tree.guest.readlink(root + "/link") == "bin/run.sh", sourceLocation: sourceLocation)
    }

    static func tar(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["tar"] + arguments
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "tar \(arguments)")
    }

    static func refusal(_ operation: any GuestOperation, _ tree: TemporaryTree) -> String? {
        #expect(throws: GuestError.self) { try operation.apply(to: tree.guest, context: OperationContext()) }?
            .description
    }

    @Test func copyInKeepsModesOwnersAndSymlinks() throws {
        let host = try TestDirectory("imgcustomize-copy-in")
        let skel = try Self.makeSkeleton(in: host.path)
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/etc", mode: 0o755, parents: false)
        let (first, second) = try tree.applyTwice(try CopyIn.parse("\(skel):/etc"))
        #expect(first.summary == "copied \(skel) to /etc/skel (2 files, 3 directories, 1 symlink written)")
        #expect(second.summary == "/etc/skel already a copy of \(skel) (6 entries)")
        try Self.expectSkeleton(tree, at: "/etc/skel")

        try tree.guest.chmod("/etc/skel/private/key", mode: 0o644)
        try tree.guest.writeText("/etc/skel/bin/run.sh", "changed\n")
        let (again, _) = try tree.applyTwice(CopyIn(skel, into: "/etc"))
        #expect(again.summary == "copied \(skel) to /etc/skel (1 file, 0 directories, 0 symlinks written; 1 mode or owner set)")
        try Self.expectSkeleton(tree, at: "/etc/skel")
    }

    @Test func copyInRefuses() throws {
        let host = try TestDirectory("imgcustomize-copy-in")
        let skel = try Self.makeSkeleton(in: host.path)
        let tree = try TemporaryTree()
        try tree.file("/srv/skel", "a file\n")
        #expect(Self.refusal(CopyIn(skel, into: "/missing"), tree)
            == "\(tree.path): copy-in /missing: no such directory\n  hint: create it first (--mkdir /missing)")
        #expect(Self.refusal(CopyIn(skel, into: "/srv/skel"), tree)
            == "\(tree.path): copy-in /srv/skel: not a directory\n  hint: name a directory of the guest to copy into")
        #expect(Self.refusal(CopyIn(host.path + "/nothing", into: "/srv"), tree)
            == "\(tree.path): copy-in: read host file \(host.path)/nothing: No such file or directory")
        #expect(Self.refusal(CopyIn(skel, into: "/srv"), tree)
            == "\(tree.path): copy-in /srv/skel: a non-directory is in the way of a directory\n"
                + "  hint: delete it first (--delete /srv/skel), or copy into another directory")
        #expect(tree.text("/srv/skel") == "a file\n")
    }

    @Test(arguments: [("-z", "tar.gz"), ("--zstd", "tar.zst"), ("-J", "tar.xz")])
    func tarInUnpacksWithModesAndOwners(compression: String, suffix: String) throws {
        let host = try TestDirectory("imgcustomize-tar-in")
        let skel = try Self.makeSkeleton(in: host.path)
        let tarball = host.path + "/skel." + suffix
        try Self.tar([compression, "-cf", tarball, "-C", skel, "."])
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/srv", mode: 0o755, parents: false)
        let (first, second) = try tree.applyTwice(try TarIn.parse("\(tarball):/srv"))
        #expect(first.summary == "unpacked \(tarball) into /srv (2 files, 2 directories, 1 symlink written)")
        #expect(second.summary == "/srv already holds what \(tarball) has (5 entries)")
        try Self.expectSkeleton(tree, at: "/srv")
    }

    @Test func tarInRefuses() throws {
        let host = try TestDirectory("imgcustomize-tar-in")
        let skel = try Self.makeSkeleton(in: host.path)
        let escape = host.path + "/escape.tar"
        try Self.tar(["-P", "--transform", "s,^bin,../escape,", "-cf", escape, "-C", skel, "bin"])
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/srv", mode: 0o755, parents: false)
        #expect(Self.refusal(TarIn(escape, into: "/srv"), tree)
            == "\(tree.path): tar-in \(escape): member \"../escape/\" is absolute or goes up with .. (and 1 more)\n"
                + "  hint: make the tarball with relative paths inside it (tar -C DIR -cf TARBALL .)")
        #expect(try tree.guest.list("/srv") == [])
        #expect(try tree.guest.list("/").sorted() == ["srv"])
        #expect(Self.refusal(TarIn(host.path + "/missing.tar.gz", into: "/srv"), tree)
            == "\(tree.path): tar-in \(host.path)/missing.tar.gz: cannot read the tarball: No such file or directory\n"
                + "  hint: check the path on the host")
        #expect(Self.refusal(TarIn(escape, into: "/missing"), tree)
            == "\(tree.path): tar-in /missing: no such directory\n  hint: create it first (--mkdir /missing)")
    }
}
