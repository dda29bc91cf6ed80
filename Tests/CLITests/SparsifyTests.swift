import Foundation
import Operations
import Testing
import TestSupport

/// `imgcustomize sparsify`: trim through the appliance, rewrite compressed, the guest intact.
@Suite(.fixtures(guestFixtures), .serialized, .tags(.appliance)) struct SparsifyTests {
    @Test func aRawGuestBecomesASmallerCompressedQCOW2WithTheSameFiles() throws {
        let directory = try TestDirectory()
        let image = try fixture("rhel7-single.raw")
        let before = try sha256(image)
        let output = directory.path("small.qcow2")

        let run = try imgcustomize(["sparsify", image, "--output", output, "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonObject(run.stdout)
        #expect(steps(report).map { $0["operation"] as? String } == ["trim-free-space"])
        #expect(try sha256(image) == before)
        #expect(try runTool("qemu-img", ["check", "-f", "qcow2", output]).contains("No errors"))
        let info = try jsonObject(try runTool("qemu-img", ["info", "--output=json", "-f", "qcow2", output]))
        #expect((info["actual-size"] as? Int ?? .max) < (report["size"] as? [String: Any])?["before"] as? Int ?? 0)

        // The original and the result side by side, in one launch.
        let files = ["/etc/redhat-release", "/etc/shadow", "/boot/grub2/grub.cfg"]
        let read = try readBack([(image, .raw), (output, .qcow2)]) { _, guest in try files.map { try guest.read($0) } }
        #expect(read.count == 2 && read[0] == read[1])
    }
}
