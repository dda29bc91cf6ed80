import Foundation
import Testing
import TestSupport

/// The image is never half-modified: refusals happen before anything is written, and a run killed at any moment
/// leaves the image byte-identical, its scratch removed by the next run.
@Suite(.fixtures(guestFixtures), .serialized) struct TransactionTests {
    @Test(.tags(.appliance)) func killedAtRandomMomentsTheImageStaysIntact() throws {
        let directory = try TestDirectory()
        let image = directory.path("guest.qcow2")
        try FileManager.default.copyItem(atPath: try fixture("rhel7.qcow2"), toPath: image)
        let before = try sha256(image)
        var original = try inode(image)
        let binary = try imgcustomizeBinary()

        // Moments spread over the whole run: checking, launching, applying, rewriting, just before the rename.
        var generator = SystemRandomNumberGenerator()
        let moments = [0.3, 5, 15, 30, 45, 60].map { $0 * Double.random(in: 0.8...1.2, using: &generator) }
        for moment in moments {
            let finished = try killRun(binary, ["apply", "rhel7-cloud", image, "--quiet"], after: moment)
            // Killed after the rename (while the directory is fsynced, which waits for the journal on a busy disk)
            // or after the run ended, the image was replaced as a whole: a new file, complete. Written in place, it
            // would keep its inode.
            let replaced = try inode(image) != original
            if finished || replaced {
                #expect(replaced, "the run ended but the image is the same file")
                #expect(try runTool("qemu-img", ["check", "-f", "qcow2", image]).contains("No errors"))
                try FileManager.default.removeItem(atPath: image)
                try FileManager.default.copyItem(atPath: try fixture("rhel7.qcow2"), toPath: image)
                original = try inode(image)
                continue
            }
            #expect(try sha256(image) == before, "killed after \(moment) s: the image was changed in place")
        }
        // The next run removes what the killed ones left.
        let next = try imgcustomize(["apply", "sysprep", image, "--dry-run", "--quiet"])
        #expect(next.status == 0, "\(next.stderr)")
        let apply = try imgcustomize(["apply", "sysprep", image, "--quiet"])
        #expect(apply.status == 0, "\(apply.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: directory.url.path)
        #expect(left == ["guest.qcow2"], "\(left)")
    }

    @Test func aRawImageIsNeverTurnedIntoQCOW2InPlace() throws {
        let directory = try TestDirectory()
        let image = directory.path("disk.raw")
        try runTool("qemu-img", ["create", "-q", "-f", "raw", image, "64M"])
        let run = try imgcustomize(["apply", "rhel7-cloud", image])
        #expect(run.status == 1)
        #expect(run.stderr.contains("never turned into qcow2 in place"), "\(run.stderr)")
        #expect(run.stderr.contains("--output"))
    }

    @Test func aSecondRunOnTheSameImageIsRefused() throws {
        let directory = try TestDirectory()
        let image = directory.path("disk.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", image, "64M"])
        let holder = open(image, O_RDONLY)
        defer { close(holder) }
        #expect(flock(holder, LOCK_EX | LOCK_NB) == 0)
        let run = try imgcustomize(["apply", "sysprep", image])
        #expect(run.status == 1)
        #expect(run.stderr.contains("another imgcustomize run is working on this image"), "\(run.stderr)")
    }

    @Test(arguments: ["apply", "customize", "sparsify", "convert"])
    func anImageNamingAHostFileIsRefusedBeforeAnythingRuns(command: String) throws {
        let directory = try TestDirectory()
        let image = directory.path("hostile.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", image, "64M"])
        let arguments: [String] = switch command {
        case "apply": ["apply", "sysprep", image]
        case "customize": ["customize", image, "--lock-root"]
        case "sparsify": ["sparsify", image]
        default: ["convert", image, directory.path("out.qcow2")]
        }
        let run = try imgcustomize(arguments)
        #expect(run.status == 1)
        #expect(run.stderr.contains("/etc/passwd"), "\(run.stderr)")
        #expect(run.stderr.contains("backing"), "\(run.stderr)")
        // Refused at the header check: no overlay, no scratch, no output was made beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["hostile.qcow2"])
    }
}

private func inode(_ path: String) throws -> UInt64 {
    var info = stat()
    guard stat(path, &info) == 0 else {
        throw CocoaError(.fileReadUnknown, userInfo: [NSFilePathErrorKey: path])
    }
    return UInt64(info.st_ino)
}
