import Foundation
import Testing
import TestSupport

/// Several images per appliance launch (`--output-dir`): clones of one image (the same volume group name, PV, VG and
/// filesystem UUIDs) each prepared on its own drive, over two launches at once, and a batch in one launch where one
/// image fails while the others commit.
@Suite(.fixtures(guestFixtures), .serialized, .tags(.appliance)) struct BatchTests {
    /// Copies of the rhel7 fixture under `names`: byte-identical clones of one golden image.
    func clones(_ names: [String], in directory: TestDirectory) throws -> [String] {
        let fixture = try fixture("rhel7.qcow2")
        return try names.map { name in
            let clone = directory.path(name)
            try FileManager.default.copyItem(atPath: fixture, toPath: clone)
            return clone
        }
    }

    /// What guestfish reads of each image, all in one launch as the batch had them: for each drive in turn, LVM
    /// limited to it, its VG's UUID and the files the run wrote.
    /// `files` are read from every image but the first when `golden` (the input, which has none of them).
    func readBack(_ images: [String], files: [String], golden: Bool) throws -> [(vg: String, files: [String])] {
        let marker = "=== imgcustomize-test ==="
        var script: [String] = ["--ro", "--format=qcow2"] + images.flatMap { ["-a", $0] } + ["run"]
        for index in images.indices {
            let files = golden && index == 0 ? [] : files
            let disk = "/dev/sd" + String(UnicodeScalar(UInt8(97 + index)))
            script += [":", "lvm-set-filter", disk, ":", "vguuid", "rhel", ":", "mount-ro", "/dev/rhel/root", "/",
                       ":", "mount-ro", disk + "1", "/boot"]
            for file in files { script += [":", "echo", marker, ":", "cat", file] }
            script += [":", "echo", marker, ":", "umount-all"]
        }
        // Software emulation, as everywhere in these tests: KVM hangs or aborts on the machines this runs on.
        let printed = try runTool("env", ["LIBGUESTFS_BACKEND_SETTINGS=force_tcg", "guestfish"] + script)
        // Each image's VG UUID, then each file, each followed by a marker.
        var parts = printed.components(separatedBy: marker + "\n")[...]
        var read: [(vg: String, files: [String])] = []
        for index in images.indices {
            let count = golden && index == 0 ? 0 : files.count
            guard parts.count > count else { throw TestFailure("guestfish printed: \(printed.prefix(800))") }
            read.append((parts.first?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "",
                         Array(parts.dropFirst().prefix(count))))
            parts = parts.dropFirst(count + 1)
        }
        return read
    }

    @Test func threeClonesOfOneImageAreEachPreparedOnTheirOwnDrive() throws {
        let directory = try TestDirectory()
        let images = try clones(["web1.qcow2", "web2.qcow2", "web3.qcow2"], in: directory)
        let before = try images.map(sha256)
        let outputs = directory.path("out")
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: false)

        let run = try imgcustomize(["apply", "rhel7-cloud"] + images
                                   + ["--output-dir", outputs, "--write", "/etc/batch-note:prepared in a batch", "--json",
                                      "--jobs", "2"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonObject(run.stdout)
        #expect(report["failed"] as? Int == 0)
        // Two appliances at once: web1 and web3 on the first one's two drives, web2 alone on the other's.
        #expect(report["launches"] as? Int == 2)
        let entries = report["images"] as? [[String: Any]] ?? []
        let results = images.map { (outputs as NSString).appendingPathComponent(($0 as NSString).lastPathComponent) }
        #expect(entries.map { $0["image"] as? String } == images)
        #expect(entries.map { $0["output"] as? String } == results)
        for entry in entries {
            let done = steps(entry)
            #expect(done.contains { $0["operation"] as? String == "trim-free-space" && $0["changed"] as? Bool == true })
            #expect(done.contains { $0["operation"] as? String == "lvm-uuids" && $0["changed"] as? Bool == true },
                    "\(done.map { $0["operation"] ?? "" })")
        }
        #expect(try images.map(sha256) == before, "the inputs are only read")
        for result in results {
            #expect(try runTool("qemu-img", ["check", "-f", "qcow2", result]).contains("No errors"))
        }

        let files = ["/etc/batch-note", "/etc/sysconfig/network-scripts/ifcfg-eth0", "/etc/default/grub", "/etc/shadow"]
        // The input first, in the same launch: the golden image's VG UUID, which every clone had.
        let both = try readBack([images[0]] + results, files: files, golden: true)
        let golden = both[0].vg
        let read = both.dropFirst()
        // Each clone got its own new LVM identity once, on its own drive: none kept the golden image's, none shares
        // another's.
        #expect(Set(read.map(\.vg)).count == results.count, "\(read.map(\.vg))")
        #expect(!read.map(\.vg).contains(golden) && !golden.isEmpty)
        for (vg, contents) in read {
            #expect(!vg.isEmpty)
            #expect(contents[0].trimmingCharacters(in: .newlines) == "prepared in a batch")
            #expect(contents[1].contains("BOOTPROTO=dhcp"), "\(contents[1])")
            #expect(contents[2].contains("console=ttyS0,115200n8"), "\(contents[2])")
            let root = contents[3].split(separator: "\n").first { $0.hasPrefix("root:") } ?? ""
            #expect(root.hasPrefix("root:!"), "root is locked: \(root.prefix(12))")
        }
    }

    /// A batch of four in one launch (`-j 1`): an image that fails its checks (before the launch), one that fails a
    /// step after it was mounted and written to (rhel6 has no /etc/default/grub to edit), and two that go on and commit.
    @Test func anImageThatFailsIsLeftAsItWasAndTheOthersCommit() throws {
        let directory = try TestDirectory()
        let images = try clones(["first.qcow2", "last.qcow2"], in: directory)
        let rhel6 = directory.path("rhel6.qcow2")
        try FileManager.default.copyItem(atPath: try fixture("rhel6.qcow2"), toPath: rhel6)
        let corrupt = directory.path("corrupt.qcow2")
        // A qcow2 header whose L1 table lies 1 TiB into a file of a few hundred KiB.
        _ = try runTool("qemu-img", ["create", "-q", "-f", "qcow2", corrupt, "64M"])
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: corrupt))
        try handle.seek(toOffset: 40)
        try handle.write(contentsOf: Data([0, 0, 1, 0, 0, 0, 0, 0]))
        try handle.close()
        let order = [images[0], rhel6, corrupt, images[1]]
        let before = try order.map(sha256)
        let outputs = directory.path("out")
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: false)

        let run = try imgcustomize(["customize"] + order + [
            "--output-dir", outputs, "--write", "/etc/batch-note:written",
            "--edit-file", "/etc/default/grub:s/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/", "--json", "-j", "1"])
        #expect(run.status == 1, "\(run.stderr)")
        let report = try jsonObject(run.stdout)
        #expect(report["failed"] as? Int == 2)
        #expect(report["launches"] as? Int == 1, "one appliance, for the three images that passed their checks")
        let entries = report["images"] as? [[String: Any]] ?? []
        try #require(entries.count == 4)
        #expect(entries.map { $0["image"] as? String } == order)

        let failedEdit = entries[1]
        #expect(failedEdit["stage"] as? String == "apply")
        #expect(failedEdit["image-unchanged"] as? Bool == true)
        let editMessage = (failedEdit["error"] as? [String: Any])?["message"] as? String ?? ""
        #expect(editMessage.contains("no such regular file"), "\(editMessage)")
        #expect(steps(failedEdit).map { $0["operation"] as? String } == ["write"], "the write before it was done")

        let failedCheck = entries[2]
        #expect(failedCheck["stage"] as? String == "check")
        #expect(failedCheck["image-unchanged"] as? Bool == true)

        #expect(try order.map(sha256) == before, "every input is as it was, the failed ones included")
        let written = try FileManager.default.contentsOfDirectory(atPath: outputs).sorted()
        #expect(written == ["first.qcow2", "last.qcow2"], "only the images that succeeded have a result, and no scratch is left")
        for (entry, image) in [(entries[0], images[0]), (entries[3], images[1])] {
            #expect(entry["error"] == nil)
            // The two operations, then the SELinux labels of what they wrote.
            #expect(steps(entry).prefix(2).map { $0["operation"] as? String } == ["write", "edit-file"])
            #expect(steps(entry).allSatisfy { $0["changed"] as? Bool == true }, "\(steps(entry))")
            let result = (outputs as NSString).appendingPathComponent((image as NSString).lastPathComponent)
            #expect(try runTool("qemu-img", ["check", "-f", "qcow2", result]).contains("No errors"))
            #expect(try runProcess("/usr/bin/env", ["qemu-img", "compare", "-q", "-f", "qcow2", "-F", "qcow2", image,
                                                    result]).status == 1, "the guest changed")
        }
        #expect(run.stderr.contains("2 of 4 images failed; 2 done"), "\(run.stderr)")
    }
}
