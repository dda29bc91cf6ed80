import Foundation
import Testing
import TestSupport

/// What a user sees when the image is not something imgcustomize should read: every command refuses before any
/// appliance or qemu process starts, says what the file is and what to do, and writes nothing.
@Suite struct FormatRefusalTests {
    static let commands: [[String]] = [
        ["inspect"], ["convert"], ["apply", "sysprep"], ["customize"], ["sparsify"],
    ]

    /// The command line for `command` on `image`: convert gets an output, customize an operation.
    static func arguments(_ command: [String], _ image: String, output: String) -> [String] {
        switch command[0] {
        case "convert": command + [image, output]
        case "customize": command + [image, "--hostname", "x"]
        case "inspect": command + [image]
        default: command + [image, "--output", output]
        }
    }

    @Test(arguments: commands)
    func parallelsImageIsRefusedWithHowToConvertIt(_ command: [String]) throws {
        let directory = try TestDirectory()
        let image = directory.path("disk.hdd")
        try runTool("qemu-img", ["create", "-q", "-f", "parallels", image, "64M"])
        let before = try sha256(image)
        let output = directory.path("out.qcow2")
        let result = try imgcustomize(Self.arguments(command, image, output: output))
        #expect(result.status != 0)
        let said = result.stdout + result.stderr
        #expect(said.contains("qemu opens as 'parallels'"), "\(said)")
        #expect(said.contains("qemu-img convert -f parallels -O qcow2"), "\(said)")
        #expect(!FileManager.default.fileExists(atPath: output))
        #expect(try sha256(image) == before)
    }

    /// A disk to attach is checked as the image is, before any appliance starts: one with a backing file (a host
    /// file qemu would open) is refused, and so is an --attach-format the file is not; the image is untouched.
    @Test func anUnsafeOrMisnamedAttachedDiskIsRefusedBeforeAnyLaunch() throws {
        let directory = try TestDirectory()
        let image = directory.path("guest.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", image, "64M"])
        let before = try sha256(image)
        let hostile = directory.path("hostile.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/shadow", hostile, "64M"])
        let refused = try imgcustomize(["customize", image, "--attach", hostile, "--lock-root", "--json"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("\(image): the disk to attach, \(hostile), cannot be used:"), "\(refused.stderr)")
        #expect(refused.stderr.contains("/etc/shadow"), "\(refused.stderr)")
        let report = try jsonObject(refused.stdout)
        #expect(report["stage"] as? String == "check" && report["image-unchanged"] as? Bool == true, "\(report)")

        let raw = directory.path("data.img")
        try runTool("qemu-img", ["create", "-q", "-f", "raw", raw, "16M"])
        let misnamed = try imgcustomize(["customize", image, "--attach-format", "qcow2", "--attach", raw, "--lock-root"])
        #expect(misnamed.status != 0)
        #expect(misnamed.stderr.contains("--attach-format qcow2 for \(raw), which is a raw image"), "\(misnamed.stderr)")
        #expect(misnamed.stderr.contains("give --attach-format raw, or leave it out"), "\(misnamed.stderr)")
        #expect(try sha256(image) == before)
    }

    @Test(arguments: commands)
    func symlinkIsRefusedInEveryCommand(_ command: [String]) throws {
        let directory = try TestDirectory()
        let link = directory.path("disk.raw")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc/shadow")
        let result = try imgcustomize(Self.arguments(command, link, output: directory.path("out.qcow2")))
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(link): it is a symbolic link to '/etc/shadow'"), "\(result.stderr)")
        #expect(result.stderr.contains("--follow-symlinks"))
        #expect(!FileManager.default.fileExists(atPath: directory.path("out.qcow2")))
    }

    @Test func followedSymlinkSaysWhereItLeads() throws {
        let directory = try TestDirectory()
        let target = directory.path("real.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", target, "16M"])
        let link = directory.path("link.qcow2")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "real.qcow2")
        let result = try imgcustomize(["inspect", "--follow-symlinks", link])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("symbolic link to: \(URL(fileURLWithPath: target).resolvingSymlinksInPath().path)"))
        let converted = try imgcustomize(["convert", "--follow-symlinks", "-O", "raw", link, directory.path("out.raw")])
        #expect(converted.status == 0, "\(converted.stderr)")
    }

    @Test func convertNeverWritesThroughALink() throws {
        let directory = try TestDirectory()
        let image = directory.path("in.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", image, "16M"])
        let victim = directory.path("victim")
        try Data("precious\n".utf8).write(to: URL(fileURLWithPath: victim))
        let link = directory.path("out.qcow2")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: victim)
        let result = try imgcustomize(["convert", image, link])
        #expect(result.status != 0)
        #expect(result.stderr.contains("never writes through a link"), "\(result.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
    }

    /// In place on a followed link would replace the link: refused, --output is the way.
    @Test func applyInPlaceOnAFollowedLinkIsRefused() throws {
        let directory = try TestDirectory()
        let target = directory.path("real.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", target, "16M"])
        let link = directory.path("link.qcow2")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let result = try imgcustomize(["sparsify", "--follow-symlinks", link])
        #expect(result.status != 0)
        #expect(result.stderr.contains("the destination \(link) is a symbolic link"), "\(result.stderr)")
    }
}

