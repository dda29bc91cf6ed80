import Foundation
import Testing
import TestSupport

/// `--tree` refusals as a user meets them: the exit status, the message naming the path and what to do, the JSON
/// document, and a tree (or host) left as it was.
@Suite struct TreeRefusalTests {
    /// The operation deletes a name nothing has: a run that is not refused changes nothing on the host either.
    @Test func rootSlashIsRefused() throws {
        let result = try imgcustomize(["customize", "--tree", "/", "--json", "--delete",
                                       "/imgcustomize-test-\(UUID().uuidString)"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("/: open tree: this is the host's own root directory, not a guest's tree"),
                "\(result.stderr)")
        let document = try jsonObject(result.stdout)
        #expect((document["error"] as? [String: Any])?["hint"] as? String
                == "--tree takes the directory of an unpacked guest or a chroot; to change the host, use its own tools")
        #expect(document["image-unchanged"] as? Bool == true)
    }

    /// A profile made for another guest is refused on a tree as on an image, and with --force goes on with the
    /// same warning on stderr and in the document (the profile's steps, which this bare tree fails, do not matter).
    @Test func aProfileForcedOntoATreeWarnsAsOnAnImage() throws {
        let directory = try TestDirectory()
        let root = directory.path("guest")
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        let refused = try imgcustomize(["apply", "rhel7-cloud", "--tree", root, "--dry-run", "--json"])
        #expect(refused.status != 0)
        let document = try jsonObject(refused.stdout)
        #expect(document["stage"] as? String == "inspect" && document["image-unchanged"] as? Bool == true, "\(document)")
        #expect((document["error"] as? [String: Any])?["hint"] as? String
                == "use a profile made for this guest, or --force to run it anyway")

        let forced = try imgcustomize(["apply", "rhel7-cloud", "--tree", root, "--dry-run", "--json", "--force"])
        let warning = "\(root): profile rhel7-cloud needs a rhel 7 guest, found unknown distro 0.0; going on because of --force"
        #expect(forced.stderr.contains("imgcustomize: warning: \(warning)\n"), "\(forced.stderr)")
        #expect(try jsonObject(forced.stdout)["warnings"] as? [String] == [warning], "\(forced.stdout)")
    }

    @Test func outputWithRootIsRefused() throws {
        let directory = try TestDirectory()
        let root = directory.path("guest")
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        try "old\n".write(toFile: root + "/etc/motd", atomically: true, encoding: .utf8)
        let result = try imgcustomize(["customize", "--tree", root, "--output", directory.path("out.qcow2"),
                                       "--write", "/etc/motd:new"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(root): --output does not apply to a directory tree, which is changed in place"),
                "\(result.stderr)")
        #expect(result.stderr.contains("hint: leave --output out, or copy the tree (cp -a)"))
        #expect(try String(contentsOfFile: root + "/etc/motd", encoding: .utf8) == "old\n")
        #expect(FileManager.default.fileExists(atPath: directory.path("out.qcow2")) == false)
    }

    /// A 6 GiB /etc/machine-id (holes: no disk space) trapped the run ("failed to allocate", rc 134, nothing on
    /// stdout): now it is emptied, and the JSON document says so.
    @Test func aHugeMachineIDIsEmptied() throws {
        let directory = try TestDirectory()
        let root = directory.path("guest")
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: root + "/etc/machine-id", contents: nil))
        let fd = open(root + "/etc/machine-id", O_WRONLY)
        #expect(fd >= 0 && ftruncate(fd, 6 << 30) == 0)
        close(fd)
        let result = try imgcustomize(["customize", "--tree", root, "--json", "--remove-machine-id"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(steps(try jsonObject(result.stdout)).first?["summary"] as? String == "emptied /etc/machine-id")
        #expect(try FileManager.default.attributesOfItem(atPath: root + "/etc/machine-id")[.size] as? Int == 0)
    }
}
