import Foundation
import Operations
import Testing
import TestSupport

/// `imgcustomize apply` end to end on the fixture guests, read back through the appliance.
@Suite(.fixtures(guestFixtures), .serialized, .tags(.appliance)) struct ApplyTests {
    /// rhel7-cloud, then again on its own result, and rhel6-cloud; the three results read back in one launch.
    @Test func rhel7CloudDoesEveryStepAndASecondRunChangesNothingAndSoDoesRHEL6Cloud() throws {
        let directory = try TestDirectory()
        let image = try fixture("rhel7.qcow2")
        let before = try sha256(image)
        let output = directory.path("rhel7-cloud.qcow2")

        let run = try imgcustomize(["apply", "rhel7-cloud", image, "--output", output, "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonObject(run.stdout)
        #expect(report["profile"] as? String == "rhel7-cloud")
        #expect(report["output"] as? String == output)
        let size = report["size"] as? [String: Any]
        #expect((size?["after"] as? Int ?? .max) < (size?["before"] as? Int ?? 0))
        #expect(steps(report).contains { $0["operation"] as? String == "trim-free-space" && $0["changed"] as? Bool == true })
        #expect(try sha256(image) == before, "--output leaves the image untouched")
        #expect(try runTool("qemu-img", ["check", "-f", "qcow2", output]).contains("No errors"))
        #expect(try runProcess("/usr/bin/env", ["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", image, output]).status == 1,
                "the guest changed")

        // Again, on its own result: no file step changes anything (but the fresh identities every run writes), and
        // the guest's files stay the same.
        let again = directory.path("again.qcow2")
        try expectNoStepChangedButTrimming(try imgcustomize(["apply", "rhel7-cloud", output, "--output", again, "--json"]))

        let rhel6 = directory.path("rhel6-cloud.qcow2")
        let rhel6Run = try imgcustomize(["apply", "rhel6-cloud", try fixture("rhel6.qcow2"), "--output", rhel6])
        #expect(rhel6Run.status == 0, "\(rhel6Run.stderr)")

        let files = ["/etc/sysconfig/network-scripts/ifcfg-eth0", "/etc/cloud/cloud.cfg", "/etc/sysconfig/network",
                     "/etc/default/grub", "/boot/grub2/grub.cfg", "/etc/shadow", "/etc/machine-id"]
        let read = try readBack([(output, .qcow2), (again, .qcow2), (rhel6, .qcow2)]) { index, guest -> [[UInt8]] in
            let checks = CloudGuestChecks(guest: guest)
            switch index {
            case 0:
                try checks.cloudProfile()
                let grub = try guest.readText("/etc/default/grub").split(separator: "\n")
                #expect(grub.filter { $0.hasPrefix("GRUB_CMDLINE_LINUX_DEFAULT=") }
                        == ["GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty0 console=ttyS0,115200n8\""])
                try checks.consoleOnEveryKernelLine("/boot/grub2/grub.cfg", keyword: "linux16")
                return try files.map { try guest.read($0) }
            case 1:
                return try files.map { try guest.read($0) }
            default:
                try checks.cloudProfile()
                #expect(try guest.readText("/etc/udev/rules.d/75-persistent-net-generator.rules") == "#\n")
                try checks.consoleOnEveryKernelLine("/boot/grub/grub.conf", keyword: "kernel")
                return []
            }
        }
        #expect(read.count == 3 && read[0] == read[1], "the second run changed the guest's files")
    }

    /// Refused from what the native reader found, before any launch.
    @Test func aProfileForAnotherReleaseIsRefusedBeforeAnyChange() throws {
        let directory = try TestDirectory()
        let image = directory.path("rhel6.qcow2")
        try FileManager.default.copyItem(atPath: try fixture("rhel6.qcow2"), toPath: image)
        let before = try sha256(image)
        let run = try imgcustomize(["apply", "rhel7-cloud", image, "-v"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("needs a rhel 7 guest, found rhel 6"), "\(run.stderr)")
        #expect(run.stderr.contains("--force"))
        #expect(!run.stderr.contains("appliance kernel:"), "\(run.stderr)")
        #expect(try sha256(image) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["rhel6.qcow2"])
    }

    @Test func dryRunShowsTheDiffsAndLeavesTheImageByteIdentical() throws {
        let directory = try TestDirectory()
        let image = directory.path("rhel7.qcow2")
        try FileManager.default.copyItem(atPath: try fixture("rhel7.qcow2"), toPath: image)
        let before = try sha256(image)
        let run = try imgcustomize(["apply", "rhel7-cloud", image, "--dry-run", "-vv"])
        #expect(run.status == 0, "\(run.stderr)")
        // The native reader read the guest and the dry run kept its writes in memory: no appliance was launched.
        #expect(run.stderr.contains("the dry run read the image natively, with no appliance"), "\(run.stderr)")
        #expect(!run.stderr.contains("appliance kernel:"), "\(run.stderr)")
        #expect(run.stdout.contains("+NOZEROCONF=yes"))
        #expect(run.stdout.contains("+++ b/etc/sysconfig/network-scripts/ifcfg-eth0"))
        #expect(run.stdout.contains("[would change] set-line /etc/sysconfig/network"))
        #expect(try sha256(image) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["rhel7.qcow2"])
    }
}
