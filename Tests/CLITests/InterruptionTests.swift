import Foundation
import Testing
import TestSupport

/// Ctrl-C, SIGTERM or SIGHUP at any moment: the run stops, qemu is killed, everything the run made is removed
/// (libguestfs's own temporary directories included), the image is byte-identical, and the process ends by the
/// signal, as a shell expects.
@Suite(.fixtures(guestFixtures), .serialized, .tags(.appliance)) struct InterruptionTests {
    /// A run of the binary whose temporary and runtime directories are private, so that what it leaves is visible.
    final class InterruptedRun {
        let directory: TestDirectory
        let temporary: String
        let runtime: String
        let process = Process()
        let stderrPath: String

        init(_ arguments: [String], in directory: TestDirectory) throws {
            self.directory = directory
            temporary = directory.path("tmp")
            runtime = directory.path("run")
            stderrPath = directory.path("stderr")
            for made in [temporary, runtime] {
                try FileManager.default.createDirectory(atPath: made, withIntermediateDirectories: true)
            }
            _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
            process.executableURL = URL(fileURLWithPath: try imgcustomizeBinary())
            process.arguments = arguments
            // libguestfs keeps its appliance cache in /var/tmp, not under TMPDIR: only per-run files go there.
            process.environment = ProcessInfo.processInfo.environment.merging(
                ["TMPDIR": temporary, "XDG_RUNTIME_DIR": runtime, "LIBGUESTFS_CACHEDIR": "/var/tmp"]) { $1 }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
            try process.run()
        }

        var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

        /// Waits until stderr shows `marker` (the run reached that point), at most `seconds`.
        func wait(for marker: String, seconds: Double = 300) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while !stderr.contains(marker) {
                guard process.isRunning, Date() < deadline else {
                    throw TestFailure("the run never printed '\(marker)': \(stderr)")
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }

        func interrupt(_ sig: Int32) {
            kill(process.processIdentifier, sig)
            process.waitUntilExit()
        }

        /// Files under TMPDIR and XDG_RUNTIME_DIR, which the run must have removed.
        func leftovers() throws -> [String] {
            try [temporary, runtime].flatMap { dir in
                try FileManager.default.contentsOfDirectory(atPath: dir).map { "\(dir)/\($0)" }
            }
        }
    }

    /// No qemu still runs on anything in `directory`.
    func noQemu(on directory: TestDirectory) throws -> Bool {
        let result = try runProcess("/usr/bin/pgrep", ["-f", "qemu-system.*\(directory.url.path)"])
        return result.status == 1
    }

    @Test(arguments: [
        (SIGINT, "imgcustomize: open", 3.0),       // while the appliance boots
        (SIGTERM, "[1/", 0.0),                     // while the profile's steps run
        (SIGHUP, "imgcustomize: rewrite", 0.0),    // while the new image is written
    ])
    func anApplyInterruptedLeavesNothing(sig: Int32, marker: String, delay: Double) throws {
        let directory = try TestDirectory()
        let image = directory.path("guest.qcow2")
        try FileManager.default.copyItem(atPath: try fixture("rhel7.qcow2"), toPath: image)
        let before = try sha256(image)

        let run = try InterruptedRun(["apply", "rhel7-cloud", image, "-v"], in: directory)
        try run.wait(for: marker)
        Thread.sleep(forTimeInterval: delay)
        run.interrupt(sig)

        #expect(run.process.terminationReason == .uncaughtSignal, "\(run.stderr)")
        #expect(run.process.terminationStatus == sig)
        #expect(run.stderr.contains("\(image): interrupted by "), "\(run.stderr)")
        #expect(try sha256(image) == before)
        let beside = try FileManager.default.contentsOfDirectory(atPath: directory.url.path)
            .filter { !["tmp", "run", "stderr"].contains($0) }
        #expect(beside == ["guest.qcow2"])
        #expect(try run.leftovers() == [])
        #expect(try noQemu(on: directory))
    }

    /// A batch over two launches at once, interrupted while its first image's steps run: both appliances stop, no
    /// input changes, and the output directory holds no scratch (only whole results, were any committed before).
    @Test func anInterruptedBatchStopsEveryLaunch() throws {
        let directory = try TestDirectory()
        let fixture = try fixture("rhel7.qcow2")
        let images = try ["a.qcow2", "b.qcow2", "c.qcow2"].map { name in
            let image = directory.path(name)
            try FileManager.default.copyItem(atPath: fixture, toPath: image)
            return image
        }
        let before = try images.map(sha256)
        let outputs = directory.path("out")
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: false)

        let run = try InterruptedRun(["apply", "rhel7-cloud"] + images + ["--output-dir", outputs, "-j", "2", "-v"],
                                     in: directory)
        try run.wait(for: "[1/")
        run.interrupt(SIGINT)

        #expect(run.process.terminationReason == .uncaughtSignal, "\(run.stderr)")
        #expect(run.process.terminationStatus == SIGINT)
        #expect(run.stderr.contains("interrupted by SIGINT"), "\(run.stderr)")
        // Both appliances were up, and their -v lines say which launch each is from.
        #expect(run.stderr.contains("imgcustomize: [launch 1/2] appliance kernel: "), "\(run.stderr)")
        #expect(run.stderr.contains("imgcustomize: [launch 2/2] appliance kernel: "), "\(run.stderr)")
        #expect(try images.map(sha256) == before)
        for name in try FileManager.default.contentsOfDirectory(atPath: outputs) {
            #expect(["a.qcow2", "b.qcow2", "c.qcow2"].contains(name), "scratch left in the output directory: \(name)")
            #expect(try runTool("qemu-img", ["check", "-f", "qcow2", outputs + "/" + name]).contains("No errors"))
        }
        #expect(try run.leftovers() == [])
        #expect(try noQemu(on: directory))
    }

    @Test func anInterruptedInspectionLeavesNoLibguestfsDirectories() throws {
        let directory = try TestDirectory()
        let image = try fixture("rhel6.qcow2")
        let before = try sha256(image)
        // libguestfs's inspection: the native reader answers for this guest before any interruption could come.
        let run = try InterruptedRun(["inspect", "--os", "--inspection", "libguestfs", image], in: directory)
        Thread.sleep(forTimeInterval: 6)
        run.interrupt(SIGINT)
        #expect(run.process.terminationReason == .uncaughtSignal, "\(run.stderr)")
        #expect(run.process.terminationStatus == SIGINT)
        #expect(try run.leftovers() == [])
        #expect(try sha256(image) == before)
    }
}
