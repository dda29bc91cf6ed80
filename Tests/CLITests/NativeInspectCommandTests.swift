import Foundation
import Testing
import TestSupport

/// `inspect --os` and its `--inspection` choice, through the built binary.
@Suite(.fixtures(guestFixtures)) struct NativeInspectCommandTests {
    /// The native reader answers for an ext4 guest without launching anything: the facts libguestfs gives.
    @Test func nativeInspectionOfAnExt4Guest() throws {
        let started = ContinuousClock.now
        let run = try imgcustomize(["inspect", "--os", "--json", "--inspection", "native", try fixture("ubuntu2404.qcow2")])
        let elapsed = ContinuousClock.now - started
        #expect(run.status == 0, "\(run.stderr)")
        let os = try #require(try jsonObject(run.stdout)["os"] as? [String: Any])
        #expect(os["distro"] as? String == "ubuntu" && os["product-name"] as? String == "Ubuntu 24.04.1 LTS")
        #expect(os["mountpoints"] as? [String: String] == ["/": "/dev/sda1"])
        print("inspect --os --inspection native ubuntu2404.qcow2: \(elapsed)")
        #expect(elapsed < .seconds(5))
    }

    /// Fedora's btrfs root, mounted from its "root" subvolume, and /home from "home": the native reader answers.
    @Test func nativeInspectionOfABtrfsGuest() throws {
        let started = ContinuousClock.now
        let run = try imgcustomize(["inspect", "--os", "--json", "--inspection", "native", try fixture("fedora40.qcow2")])
        let elapsed = ContinuousClock.now - started
        #expect(run.status == 0, "\(run.stderr)")
        let os = try #require(try jsonObject(run.stdout)["os"] as? [String: Any])
        #expect(os["distro"] as? String == "fedora")
        #expect(os["mountpoints"] as? [String: String] == ["/": "btrfsvol:/dev/sda2/root", "/boot": "/dev/sda1",
                                                          "/home": "btrfsvol:/dev/sda2/home"])
        print("inspect --os --inspection native fedora40.qcow2: \(elapsed)")
        #expect(elapsed < .seconds(5))
    }

    /// A guest the native reader does not read (btrfs over two devices): `native` fails saying so rather than
    /// launching the appliance, and so does the environment variable's choice.
    @Test func nativeOnlyRefusesAGuestItDoesNotRead() throws {
        let directory = try TestDirectory()
        let image = directory.path("first.raw"), second = directory.path("second.raw")
        try runTool("truncate", ["-s", "128M", image, second])
        try runTool("mkfs.btrfs", ["-q", "-d", "single", "-m", "single", image, second])
        for (arguments, environment) in [(["--inspection", "native"], [:]),
                                         ([], ["IMGCUSTOMIZE_INSPECTION": "native"])] as [([String], [String: String])] {
            let run = try imgcustomize(["inspect", "--os"] + arguments + [image], environment: environment)
            #expect(run.status == 1)
            #expect(run.stderr.contains("the native reader does not handle this guest"), "\(run.stderr)")
        }
    }
}
