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
        let directory = try TemporaryDirectory()
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

    @Test(arguments: commands)
    func symlinkIsRefusedInEveryCommand(_ command: [String]) throws {
        let directory = try TemporaryDirectory()
        let link = directory.path("disk.raw")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc/shadow")
        let result = try imgcustomize(Self.arguments(command, link, output: directory.path("out.qcow2")))
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(link): it is a symbolic link to '/etc/shadow'"), "\(result.stderr)")
        #expect(result.stderr.contains("--follow-symlinks"))
        #expect(!FileManager.default.fileExists(atPath: directory.path("out.qcow2")))
    }

    @Test func followedSymlinkSaysWhereItLeads() throws {
        let directory = try TemporaryDirectory()
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
        let directory = try TemporaryDirectory()
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
        let directory = try TemporaryDirectory()
        let target = directory.path("real.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", target, "16M"])
        let link = directory.path("link.qcow2")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let result = try imgcustomize(["sparsify", "--follow-symlinks", link])
        #expect(result.status != 0)
        #expect(result.stderr.contains("the destination \(link) is a symbolic link"), "\(result.stderr)")
    }
}

/// A disk whose second partition is LUKS: the appliance finds no operating system and says which partition is
/// encrypted instead of listing filesystems.
@Suite struct LUKSPartitionTests {
    @Test(.tags(.appliance)) func encryptedPartitionIsNamed() throws {
        let directory = try TemporaryDirectory()
        let disk = directory.path("disk.raw")
        let partition = directory.path("part.luks")
        let key = directory.path("key")
        try Data("hunter2".utf8).write(to: URL(fileURLWithPath: key))
        try runTool("truncate", ["-s", "64M", disk])
        try runTool("sgdisk", ["-n", "1:2048:+16M", "-n", "2:0:0", disk])
        try runTool("truncate", ["-s", "32M", partition])
        try runTool("cryptsetup", ["luksFormat", "-q", "--type", "luks1", "--pbkdf-force-iterations", "1000",
                                "--key-file", key, partition])
        try runTool("dd", ["if=\(partition)", "of=\(disk)", "bs=1M", "seek=17", "conv=notrunc", "status=none"])
        let result = try imgcustomize(["inspect", "--os", disk], environment: ["IMGCUSTOMIZE_ACCEL": "tcg"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("partition 2 (/dev/sda2) is LUKS-encrypted"), "\(result.stderr)")
        #expect(!result.stderr.contains("hunter2"))
    }
}
