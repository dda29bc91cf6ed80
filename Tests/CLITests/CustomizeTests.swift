import Foundation
import Operations
import Testing
import TestSupport

/// `imgcustomize customize` with the design card's seven operations, on an image, read back through the appliance.
@Suite(.fixtures(guestFixtures), .serialized, .tags(.appliance)) struct CustomizeImageTests {
    static let operations = [
        "--set-line", "/etc/sysconfig/network:NOZEROCONF=yes",
        "--append-grub-args", "console=tty0 console=ttyS0,115200n8",
        "--lock-root", "--disable-repos", "--remove-machine-id",
        "--edit-file", "/etc/ssh/sshd_config:s/^PermitRootLogin yes/PermitRootLogin no/",
        "--trim-free-space",
    ]

    @Test func theDesignCardOperationsOnAnImageAndAgainOnTheResult() throws {
        let directory = try TestDirectory()
        let image = directory.path("rhel7.qcow2")
        try FileManager.default.copyItem(atPath: try fixture("rhel7.qcow2"), toPath: image)

        // With its root named as virt-customize's --root names it (the native reader's answer, no launch).
        let inspected = try jsonObject(try imgcustomize(["inspect", "--os", "--json", "--inspection", "native", image]).stdout)
        let root = try #require((inspected["os"] as? [String: Any])?["mountpoints"] as? [String: String])["/"]
        let first = try imgcustomize(["customize", image, "--json", "--root", try #require(root)] + Self.operations)
        #expect(first.status == 0, "\(first.stderr)")
        let firstSteps = steps(try jsonObject(first.stdout))
        // In command-line order, then the relabelling of what they touched, then trimming (always last).
        #expect(firstSteps.map { $0["operation"] as? String ?? "" } == [
            "set-line", "append-grub-args", "lock-root", "disable-repos", "remove-machine-id", "edit-file",
            "selinux-relabel", "trim-free-space",
        ])
        for step in firstSteps { #expect(step["changed"] as? Bool == true, "\(step)") }
        #expect(try runTool("qemu-img", ["check", "-f", "qcow2", image]).contains("No errors"))

        try readBack(image) { guest in
            let checks = CloudGuestChecks(guest: guest)
            #expect(try guest.readText("/etc/sysconfig/network").contains("NOZEROCONF=yes\n"))
            try checks.consoleOnEveryKernelLine("/boot/grub2/grub.cfg", keyword: "linux16")
            try checks.rootLocked()
            #expect(try guest.stat("/etc/machine-id")?.size == 0)
            let sshd = try guest.readText("/etc/ssh/sshd_config").split(separator: "\n")
            #expect(sshd.contains("PermitRootLogin no") && !sshd.contains("PermitRootLogin yes"))
            for repo in try guest.glob("/etc/yum.repos.d/*.repo") {
                #expect(try !guest.readText(repo).contains("enabled=1"), "\(repo)")
            }
        }

        // On its own output every operation but trimming reports no change.
        try expectNoStepChangedButTrimming(try imgcustomize(["customize", image, "--json"] + Self.operations))
    }

    /// virt-customize edits in place and leaves an image about its size; the rewrite keeps a compressed image
    /// compressed, with its own codec (zstd here, which is not the default).
    @Test func aCompressedImageStaysCompressedWithItsCodec() throws {
        let directory = try TestDirectory()
        let image = directory.path("ubuntu.qcow2")
        try runTool("qemu-img", ["convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd",
                                 try fixture("ubuntu2404.qcow2"), image])
        let sizeBefore = try #require(try FileManager.default.attributesOfItem(atPath: image)[.size] as? Int)

        let run = try imgcustomize(["customize", image, "--write", "/etc/motd:kept compressed\n"])
        #expect(run.status == 0, "\(run.stderr)")
        // qemu-img, not our reader, says how the result is stored.
        let info = try runTool("qemu-img", ["info", "--output", "json", image])
        #expect(info.contains("\"compression-type\": \"zstd\""), "\(info)")
        let check = try runTool("qemu-img", ["check", image])
        #expect(check.contains("No errors"), "\(check)")
        let compressed = try #require(check.firstMatch(of: #/([0-9.]+)% compressed clusters/#).flatMap { Double($0.1) },
                                      "\(check)")
        #expect(compressed > 50, "\(check)")
        let sizeAfter = try #require(try FileManager.default.attributesOfItem(atPath: image)[.size] as? Int)
        #expect(sizeAfter < sizeBefore + sizeBefore / 4, "\(sizeBefore) bytes became \(sizeAfter)")
    }

    @Test func dryRunLeavesTheImageByteIdentical() throws {
        let directory = try TestDirectory()
        let image = directory.path("single.raw")
        try FileManager.default.copyItem(atPath: try fixture("rhel7-single.raw"), toPath: image)
        let before = try sha256(image)
        // A step whose effect reaches beyond the image is not tried: the dry run's copy is thrown away, a
        // subscription service's records would not be.
        let run = try imgcustomize(["customize", image, "--dry-run"] + Self.operations + ["--sm-unregister"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("-PermitRootLogin yes"))
        #expect(run.stdout.contains("+PermitRootLogin no"))
        #expect(run.stdout.contains("sm-unregister: skipped in a dry run: it changes the subscription service's "
                                    + "records, which a dry run cannot undo"), "\(run.stdout)")
        #expect(run.stderr.contains("sm-unregister skipped in a dry run"), "\(run.stderr)")
        #expect(try sha256(image) == before)
    }
}
