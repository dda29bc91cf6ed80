import Appliance
import Diagnostics
import Foundation
import Operations
import Testing
import TestSupport

/// `--root` as virt-customize means it (which operating system of an image), `--tree` for directory trees, and the
/// old `--root DIR` still read as a tree with a warning. None of these launches the appliance.
@Suite(.fixtures(guestFixtures)) struct RootSelectionTests {
    /// Among several roots, as guestfs-tools' test-virt-customize-root.sh chooses: first, or a device; all and
    /// single refuse, naming the roots, as does a device that is not one.
    @Test func choosingAmongSeveralRoots() throws {
        let roots = ["/dev/sda2", "/dev/VG/Root"]
        #expect(try RootSelection.first.choose(among: roots, guest: "g.qcow2") == "/dev/sda2")
        #expect(try RootSelection.device("/dev/VG/Root").choose(among: roots, guest: "g.qcow2") == "/dev/VG/Root")
        for selection in [RootSelection.all, .single, .device("/dev/sda99")] {
            let error = #expect(throws: GuestError.self) { try selection.choose(among: roots, guest: "g.qcow2") }
            #expect(error?.message.contains("/dev/sda2, /dev/VG/Root") == true, "\(String(describing: error))")
            #expect(error?.hint?.contains("--root") == true)
        }
        for selection in [RootSelection.all, .single, .first, .device("/dev/sda2")] {
            #expect(try selection.choose(among: ["/dev/sda2"], guest: "g.qcow2") == "/dev/sda2")
        }
        #expect(RootSelection(argument: "bogus") == nil && RootSelection(argument: "/dev/") == nil)
    }

    @Test func anUnknownSelectionIsAUsageError() throws {
        let run = try imgcustomize(["customize", "x.qcow2", "--root", "bogus", "--touch", "/x"])
        #expect(run.status == 64)
        #expect(run.stderr.contains("unknown --root option: bogus"), "\(run.stderr)")
        #expect(run.stderr.contains("--tree DIR"), "\(run.stderr)")
        let both = try imgcustomize(["customize", "--tree", "/srv/none", "--root", "first", "--touch", "/x"])
        #expect(both.status == 64 && both.stderr.contains("leave --root out with --tree"), "\(both.stderr)")
    }

    /// `--root DIR`, the old spelling, still runs on the tree, and says to write --tree.
    @Test func theOldTreeSpellingWorksWithAWarning() throws {
        let directory = try TestDirectory()
        let tree = directory.path("guest")
        try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        let run = try imgcustomize(["customize", "--root", tree, "--json", "--write", "/etc/motd:hello"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("deprecated, use --tree \(tree)"), "\(run.stderr)")
        #expect(try String(contentsOfFile: tree + "/etc/motd", encoding: .utf8) == "hello")
    }

    /// A device that is not the image's root is refused before the launch (the native reader found the root),
    /// naming the root there is.
    @Test func aDeviceThatIsNotARootIsRefusedNamingTheRoot() throws {
        let image = try fixture("ubuntu2404.qcow2")
        let before = try sha256(image)
        let run = try imgcustomize(["customize", image, "--dry-run", "--json", "--root", "/dev/sda9",
                                    "--write", "/etc/motd:x"])
        #expect(run.status == 1)
        let error = try #require(try jsonObject(run.stdout)["error"] as? [String: Any], "\(run.stdout)")
        #expect(error["message"] as? String
                == "\(image): inspect: root device /dev/sda9 not found: the operating system is on /dev/sda1")
        #expect((error["hint"] as? String)?.contains("--root one of /dev/sda1") == true, "\(error)")
        #expect(try sha256(image) == before)
    }
}
