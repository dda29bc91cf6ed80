import Foundation
import Testing
import TestSupport

/// `inspect --os` and its `--inspection` choice, through the built binary.
@Suite struct NativeInspectCommandTests {
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

    /// A guest the native reader does not read (a btrfs root): `native` fails saying so rather than launching the
    /// appliance, and so does the environment variable's choice.
    @Test func nativeOnlyRefusesAGuestItDoesNotRead() throws {
        let image = try fixture("fedora40.qcow2")
        for (arguments, environment) in [(["--inspection", "native"], [:]),
                                         ([], ["IMGCUSTOMIZE_INSPECTION": "native"])] as [([String], [String: String])] {
            let run = try imgcustomize(["inspect", "--os"] + arguments + [image], environment: environment)
            #expect(run.status == 1)
            #expect(run.stderr.contains("the native reader does not handle this guest"), "\(run.stderr)")
        }
    }
}
