import DirectoryTree
import Foundation
import Formats
import NativeReader
import Testing
@testable import Appliance
@testable import Operations
import TestSupport

/// The native dry run's filesystem (an ext4 image mkfs made from a tree, read natively, writes kept in memory)
/// against the tree backend on a copy of the same tree, the host's own filesystem as the oracle: the same calls,
/// then the whole of both trees compared. No appliance.
@Suite struct NativeOverlayTests {
    let directory: TestDirectory
    let tree: String

    init() throws {
        directory = try TestDirectory()
        tree = directory.path("tree")
        let fm = FileManager.default
        for path in ["etc/sysconfig", "etc/ssh", "var/log/old", "var/cache/yum/x86_64", "usr/bin", "home/user/.ssh", "boot/efi"] {
            try fm.createDirectory(atPath: tree + "/" + path, withIntermediateDirectories: true)
        }
        try "host\n".write(toFile: tree + "/etc/hostname", atomically: false, encoding: .utf8)
        try "NETWORKING=yes\nHOSTNAME=old\n".write(toFile: tree + "/etc/sysconfig/network", atomically: false,
                                                  encoding: .utf8)
        try "key\n".write(toFile: tree + "/etc/ssh/ssh_host_rsa_key", atomically: false, encoding: .utf8)
        try "a\nb\n".write(toFile: tree + "/var/log/messages", atomically: false, encoding: .utf8)
        try "old\n".write(toFile: tree + "/var/log/old/boot.log", atomically: false, encoding: .utf8)
        try "rpm\n".write(toFile: tree + "/var/cache/yum/x86_64/a.rpm", atomically: false, encoding: .utf8)
        try "secret\n".write(toFile: tree + "/home/user/.ssh/id_rsa", atomically: false, encoding: .utf8)
        try fm.createSymbolicLink(atPath: tree + "/etc/localtime", withDestinationPath: "/usr/share/zoneinfo/UTC")
        try fm.createSymbolicLink(atPath: tree + "/etc/sysconfig/link", withDestinationPath: "../hostname")
        try fm.createSymbolicLink(atPath: tree + "/bin", withDestinationPath: "usr/bin")
        try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tree + "/etc/ssh/ssh_host_rsa_key")
    }

    /// An ext4 image of the tree, read natively as the guest's root.
    func native(memoryLimit: Int64 = NativeOverlayFilesystem.defaultMemoryLimit) throws -> NativeOverlayFilesystem {
        let image = directory.path("root.img")
        try runTool("truncate", ["-s", "32M", image])
        try runTool("mkfs.ext4", ["-q", "-F", "-d", tree, image])
        let root = try Ext4Filesystem(device: ImageDevice(source: RawReader(path: image), name: "/dev/sda"))
        let guest = NativeGuest(facts: GuestFacts(), tree: GuestFS(root: root), root: root, mounts: [:],
                                unreadable: ["/boot/efi": "/dev/sda2"])
        return NativeOverlayFilesystem(guest, image: image, memoryLimit: memoryLimit)
    }

    /// The same changes on `guest`, in the order an operation might make them.
    func change(_ guest: GuestFilesystem) throws {
        try guest.write("/etc/hostname", Array("web1\n".utf8), mode: 0o600)  // keeps 0644
        try guest.write("/etc/sysconfig/link", Array("through the link\n".utf8), mode: 0o644)
        try guest.write("/etc/ssh/ssh_host_rsa_key", Array("new\n".utf8), mode: 0o644)  // keeps 0600
        try guest.write("/etc/motd", Array("welcome\n".utf8), mode: 0o640)
        try guest.mkdir("/etc/cloud/cloud.cfg.d", mode: 0o755, parents: true)
        try guest.write("/etc/cloud/cloud.cfg.d/99.cfg", Array("x: 1\n".utf8), mode: 0o644)
        try guest.remove("/var/log/old", recursive: true)
        try guest.mkdir("/var/log/old", mode: 0o700, parents: false)
        try guest.rename("/var/cache/yum", to: "/var/cache/dnf")
        try guest.chmod("/var/log/messages", mode: 0o640)
        try guest.chown("/home/user", uid: 1000, gid: 1000)
        try guest.symlink(target: "/dev/null", at: "/etc/udev-rule")
        try guest.truncate("/var/log/messages", size: 0)
        try guest.touch("/.autorelabel")
        try guest.touch("/etc/hostname")
        try guest.scrub("/home/user/.ssh/id_rsa")
        try guest.remove("/etc/localtime", recursive: false)
        try guest.symlink(target: "../usr/share/zoneinfo/Europe/Paris", at: "/etc/localtime")
        try guest.withAugeas(lens: "Shellvars.lns", path: "/etc/sysconfig/network") { edit in
            try edit.set(edit.root + "/HOSTNAME", "web1")
            try edit.set(edit.root + "/NOZEROCONF", "yes")
        }
        #expect(try guest.glob("/var/cache/*/*/*.rpm") == ["/var/cache/dnf/x86_64/a.rpm"])
        #expect(try guest.glob("/var/log/old/*") == [])
        #expect(try guest.readText("/bin/../../etc/hostname") == "through the link\n")
        #expect(try guest.lstat("/var/cache/yum") == nil)
        #expect(throws: GuestError.self) { try guest.remove("/var/log", recursive: false) }
        #expect(throws: GuestError.self) { try guest.write("/nowhere/file", [], mode: 0o644) }
    }

    /// Every path under `directory`: kind, mode, owner, and content or link target.
    func snapshot(_ guest: GuestFilesystem, _ directory: String = "/") throws -> [String: String] {
        var result: [String: String] = [:]
        // The native side cannot look into an ESP (vfat); the tree's is empty.
        guard directory != "/boot/efi" else { return [:] }
        for name in try guest.list(directory) where name != "lost+found" {
            let path = directory == "/" ? "/" + name : directory + "/" + name
            guard let status = try guest.lstat(path) else { continue }
            var line = "\(status.kind) \(String(status.mode, radix: 8)) \(status.uid):\(status.gid)"
            switch status.kind {
            case .regular: line += " " + (try guest.readText(path))
            case .symlink: line += " -> " + (try guest.readlink(path))
            case .directory: result.merge(try snapshot(guest, path)) { $1 }
            case .other: break
            }
            result[path] = line
        }
        return result
    }

    @Test func sameTreeAsTheTreeBackend() throws {
        let native = try native()
        let copy = directory.path("copy")
        try runTool("cp", ["-a", tree, copy])
        let reference = try TreeFilesystem(root: copy)
        let imageBefore = try runTool("sha256sum", [directory.path("root.img")])
        try change(reference)
        try change(native)
        let expected = try snapshot(reference), got = try snapshot(native)
        #expect(got == expected)
        for path in Set(expected.keys).union(got.keys) where expected[path] != got[path] {
            Issue.record("\(path): tree \(expected[path] ?? "nothing"), native \(got[path] ?? "nothing")")
        }
        #expect(try runTool("sha256sum", [directory.path("root.img")]) == imageBefore, "the image is only read")
    }

    /// Past its memory limit, and for what the reader does not read, the overlay declines (the run then goes to
    /// the appliance); a step's writes are undone when it turns out to need the guest's programs.
    @Test func declinesPastItsLimitAndUndoesAStep() throws {
        let native = try native(memoryLimit: 1 << 20)
        try native.write("/small", [UInt8](repeating: 1, count: 512 << 10), mode: 0o644)
        #expect {
            try native.write("/big", [UInt8](repeating: 2, count: 600 << 10), mode: 0o644)
        } throws: { error in
            let declined = error as? NativeDryRunDeclined
            return declined?.wouldRun == false && declined?.reason.contains("/big") == true
        }
        #expect(try native.lstat("/big") == nil)
        #expect(throws: NativeDryRunDeclined.self) { try native.stat("/boot/efi/EFI") }
        #expect(throws: NativeDryRunDeclined.self) { try native.getxattr("/etc/hostname", name: "security.selinux") }

        let saved = native.snapshot
        try native.write("/etc/yum.repos.d.repo", Array("[x]\n".utf8), mode: 0o644)
        #expect {
            _ = try native.commands(for: "install").run("yum -y install x", operation: "install")
        } throws: { error in (error as? NativeDryRunDeclined)?.wouldRun == true }
        native.restore(saved)
        #expect(try native.lstat("/etc/yum.repos.d.repo") == nil)
        #expect(try native.readText("/small").count == 512 << 10)
    }
}
