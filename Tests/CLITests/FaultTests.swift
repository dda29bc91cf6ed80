import Foundation
import Testing
import TestSupport

/// Faults a pipeline meets: each is caused for real, and the test checks what a user would: the image is intact
/// (same sha256, or exactly as the other program left it), nothing is left behind, the message says what happened
/// and what to do, and with --json stdout still carries one document saying so.
@Suite(.fixtures(guestFixtures), .serialized) struct FaultTests {
    static let write = ["--write", "/etc/motd:faults\n"]

    @Test(arguments: ["apply", "customize", "sparsify"])
    func aFailedRunStillPrintsOneJSONDocument(command: String) throws {
        let directory = try TestDirectory()
        let image = directory.path("hostile.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", image, "64M"])
        let arguments: [String] = switch command {
        case "apply": ["apply", "sysprep", image, "--json"]
        case "customize": ["customize", image, "--json"] + Self.write
        default: ["sparsify", image, "--json"]
        }
        let run = try imgcustomize(arguments)
        let document = try failureDocument(run, stage: "check")
        #expect(errorMessage(document).contains("/etc/passwd"), "\(document)")
        #expect(document["image"] as? String == image)
        #expect(steps(document).isEmpty)
        #expect(run.stderr.contains("/etc/passwd"), "the error is on stderr too: \(run.stderr)")
    }

    @Test func aReadOnlyDestinationIsRefusedBeforeAnythingRuns() throws {
        let mount = try TmpfsMount(megabytes: 64)
        let image = mount.file("disk.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", image, "16M"])
        let before = try sha256(image)
        try mount.remountReadOnly()

        let run = try imgcustomize(["customize", image, "--json"] + Self.write)
        let document = try failureDocument(run, stage: "prepare")
        #expect(errorMessage(document).contains("cannot write beside the destination \(image)"), "\(document)")
        #expect(errorMessage(document).contains("Read-only file system"), "\(document)")
        #expect(errorHint(document).contains("--output"), "\(document)")
        #expect(try sha256(image) == before)
        #expect(try mount.entries() == ["disk.qcow2"])
    }

    @Test func convertingOntoAFullFilesystemFailsCleanly() throws {
        let directory = try TestDirectory()
        let image = directory.path("disk.raw")
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        #expect(FileManager.default.createFile(atPath: image, contents: try random.read(upToCount: 24 << 20)))
        let mount = try TmpfsMount(megabytes: 8)
        let output = mount.file("disk.qcow2")

        let run = try imgcustomize(["convert", "--compress", "none", image, output])
        #expect(run.status == 1, "an error, not a crash: \(run.stderr)")
        #expect(run.stderr.contains("ran out of space writing \(output)"), "\(run.stderr)")
        #expect(run.stderr.contains("No space left on device"), "\(run.stderr)")
        #expect(run.stderr.contains("partial output was removed"), "\(run.stderr)")
        #expect(try mount.entries().isEmpty)
    }

    /// As process 1 of a new pid namespace, the old dry run of a tree copied it to TMPDIR/imgcustomize-dry-run-1:
    /// a directory planted there got the copy inside it, and was then removed with whatever it held.
    @Test func aTreeDryRunNeverWritesToAPredictablePath() throws {
        let directory = try TestDirectory()
        let temporary = directory.path("tmp")
        let root = directory.path("guest")
        try FileManager.default.createDirectory(atPath: root + "/etc/sysconfig", withIntermediateDirectories: true)
        try "NETWORKING=yes\n".write(toFile: root + "/etc/sysconfig/network", atomically: true, encoding: .utf8)
        let planted = temporary + "/imgcustomize-dry-run-1"
        try FileManager.default.createDirectory(atPath: planted, withIntermediateDirectories: true)
        try "mine\n".write(toFile: planted + "/keep", atomically: true, encoding: .utf8)

        let run = try runProcess("/usr/bin/unshare", [
            "--pid", "--fork", "--mount-proc", try imgcustomizeBinary(),
            "customize", "--tree", root, "--dry-run", "--json", "--set-line", "/etc/sysconfig/network:NOZEROCONF=yes",
        ], environment: ["TMPDIR": temporary])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(steps(try jsonObject(run.stdout)).first?["changed"] as? Bool == true, "\(run.stdout)")
        #expect(try String(contentsOfFile: root + "/etc/sysconfig/network", encoding: .utf8) == "NETWORKING=yes\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: planted) == ["keep"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary) == ["imgcustomize-dry-run-1"])
    }

    /// The live run is a process numbered near 999991 in its own pid namespace (a container, say): no process has
    /// that id here, so only the lock it holds on its directory tells another run that it is not the leftover of a
    /// dead one.
    @Test func anotherRunNeverRemovesTheDirectoryOfALiveOne() throws {
        let directory = try TestDirectory()
        let temporary = directory.path("tmp")
        let root = directory.path("guest")
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        let motd = directory.path("motd")
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: motd))

        // Its upload's open of the host file is held for 15 s by strace, after the dry run's copy is made (a FIFO
        // no longer blocks it: host inputs are opened without waiting and refused unless regular). strace is
        // process 1 of the namespace and forks a helper or two first, so the run is one of 999991...999999.
        let live = Process()
        live.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        live.arguments = ["--pid", "--fork", "--mount-proc", "sh", "-c",
                          "echo 999990 > /proc/sys/kernel/ns_last_pid; exec strace -f -qq -o /dev/null -P \"$0\" "
                            + "-e trace=openat -e inject=openat:delay_enter=15000000 \"$@\"",
                          motd, try imgcustomizeBinary(), "customize", "--tree", root, "--dry-run",
                          "--upload", motd + ":/etc/motd"]
        live.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": temporary]) { $1 }
        live.standardOutput = FileHandle.nullDevice
        live.standardError = FileHandle.nullDevice
        try live.run()
        defer {
            if live.isRunning { kill(live.processIdentifier, SIGKILL) }
            live.waitUntilExit()
        }
        var waited = 0.0
        func liveDirectories() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: temporary).filter { $0.hasPrefix("imgcustomize-dry-run.99999") }
        }
        while try liveDirectories().isEmpty, waited < 30 {
            Thread.sleep(forTimeInterval: 0.1)
            waited += 0.1
        }
        let before = try liveDirectories()
        #expect(before.count == 1, "no directory of the live run in \(temporary)")
        // Seen from here, the process id in its name is nobody's: only the lock says the run is alive.
        if let name = before.first, let pid = pid_t(name.split(separator: ".")[1]) {
            #expect(kill(pid, 0) == -1 && errno == ESRCH, "process \(pid) exists here too")
        }

        let other = try imgcustomize(["customize", "--tree", root, "--dry-run", "--write", "/etc/motd:x"],
                                     environment: ["TMPDIR": temporary])
        #expect(other.status == 0, "\(other.stderr)")
        #expect(!other.stderr.contains("removing"), "\(other.stderr)")
        #expect(try liveDirectories() == before, "the live run's directory is still there")

        // Once strace lets its open go, the live run uploads and removes its own directory on the way out.
        live.waitUntilExit()
        #expect(live.terminationStatus == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty)
    }

    @Test(.tags(.appliance)) func theDestinationFillingUpDuringTheRewriteLeavesTheImageIntact() throws {
        let source = try fixture("rhel6.qcow2")
        let megabytes = Int(try fileSize(source) >> 20)
        // Room for the image and for what the up-front check asks (the image's size for the new image, a tenth
        // of it and 64 MiB for the overlay), and some: the check passes, and the filesystem fills only when
        // another program fills it, here during the rewrite.
        let mount = try TmpfsMount(megabytes: 2 * megabytes + megabytes / 10 + 64 + 64)
        let image = mount.file("rhel6.qcow2")
        try FileManager.default.copyItem(atPath: source, toPath: image)
        let before = try sha256(image)

        let run = try BackgroundRun(["customize", image, "--json", "-v"] + Self.write)
        try run.waitForLine(containing: "rewriting: 0%")
        try run.whilePaused {
            try runTool("fallocate", ["-l", "\(mount.freeBytes - (1 << 20))", mount.file("filler")])
        }
        let result = run.finish()

        let document = try failureDocument(result, stage: "rewrite")
        let message = errorMessage(document)
        #expect(message.contains("ran out of space in \(mount.path) after writing"), "\(message)")
        #expect(message.contains("No space left on device"), "\(message)")
        #expect(message.contains("was expected"), "\(message)")
        #expect(errorHint(document).contains("--output"), "\(document)")
        #expect(steps(document).map { $0["operation"] as? String ?? "" } == ["write", "selinux-relabel"])
        #expect(result.stderr.contains("ran out of space"), "\(result.stderr)")
        #expect(try sha256(image) == before)
        #expect(try mount.entries() == ["filler", "rhel6.qcow2"])
    }

    /// (The sandbox's kernel has no device-mapper, so the read error comes from a file cut short while read.)
    @Test(.tags(.appliance)) func anImageCutShortWhileTheRewriteReadsItIsNotCommitted() throws {
        let directory = try TestDirectory()
        let image = directory.path("guest.qcow2")
        try FileManager.default.copyItem(atPath: try fixture("rhel6.qcow2"), toPath: image)
        let cut = try fileSize(image) / 4

        let run = try BackgroundRun(["customize", image, "--json", "-v"] + Self.write)
        try run.waitForLine(containing: "rewriting: 0%")
        try run.whilePaused { #expect(truncate(image, off_t(cut)) == 0) }
        let left = try sha256(image)
        let result = run.finish()

        let document = try failureDocument(result, stage: "rewrite")
        let message = errorMessage(document)
        #expect(message.contains("cannot read \(image) at byte "), "\(message)")
        #expect(message.contains("cut short while being read"), "\(message)")
        #expect(message.contains("changed while this run was working on it"), "\(message)")
        #expect(errorHint(document).contains("make sure nothing else uses it"), "\(document)")
        #expect(try sha256(image) == left, "the image is as the other program left it")
        #expect(try fileSize(image) == cut)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["guest.qcow2"])
    }

    @Test(.tags(.appliance), arguments: ["modified", "replaced"])
    func anImageChangedByAnotherProgramDuringTheRunIsNotCommitted(change: String) throws {
        let directory = try TestDirectory()
        let image = directory.path("guest.qcow2")
        try FileManager.default.copyItem(atPath: try fixture("rhel6.qcow2"), toPath: image)

        let run = try BackgroundRun(["customize", image, "--json", "-v"] + Self.write)
        try run.waitForLine(containing: "imgcustomize: inspect")
        if change == "modified" {
            let handle = try #require(FileHandle(forWritingAtPath: image))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(count: 4096))
            try handle.close()
        } else {
            try FileManager.default.copyItem(atPath: image, toPath: image + ".new")
            #expect(rename(image + ".new", image) == 0)
        }
        let left = try sha256(image)
        let result = run.finish()

        let document = try failureDocument(result, stage: "commit")
        let message = errorMessage(document)
        #expect(message.contains("\(image): changed while this run was working on it"), "\(message)")
        #expect(message.contains(change == "modified" ? "its size went from" : "another file was put in its place"),
                "\(message)")
        #expect(message.contains("nothing was committed"), "\(message)")
        #expect(errorHint(document).contains("make sure nothing else uses it"), "\(document)")
        #expect(steps(document).contains { $0["operation"] as? String == "write" && $0["changed"] as? Bool == true })
        #expect(try sha256(image) == left, "the image is as the other program left it")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["guest.qcow2"])
    }

    @Test(.tags(.appliance)) func theOverlayCanLiveOnAnotherFilesystem() throws {
        let directory = try TestDirectory()
        let image = directory.path("guest.qcow2")
        try FileManager.default.copyItem(atPath: try fixture("rhel6.qcow2"), toPath: image)
        let before = try sha256(image)
        let scratch = try TmpfsMount(megabytes: 256)

        let run = try BackgroundRun(["customize", image, "--scratch", scratch.path, "--json", "-v"] + Self.write)
        try run.waitForLine(containing: "imgcustomize: inspect")
        // While the appliance works: the overlay in the scratch directory, the new image's place beside the image.
        let during = try scratch.entries()
        let overlays = during.filter { $0.hasPrefix("imgcustomize-overlay.") }
        #expect(overlays.count == 1, "\(during)")
        for overlay in overlays {
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.file(overlay)) == ["overlay.qcow2"])
        }
        #expect(try scratchLeft(in: directory.url.path).count == 1)
        let result = run.finish()

        #expect(result.status == 0, "\(result.stderr)")
        #expect(steps(try jsonObject(result.stdout)).first?["changed"] as? Bool == true, "\(result.stdout)")
        #expect(try scratch.entries().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path) == ["guest.qcow2"])
        #expect(try sha256(image) != before)
        #expect(try runTool("qemu-img", ["check", "-f", "qcow2", image]).contains("No errors"))
    }

    @Test(.tags(.appliance)) func twoRunsOnOneImageAreRefusedAndTwoRunsOnTwoImagesBothSucceed() throws {
        let directory = try TestDirectory()
        let first = directory.path("first.qcow2"), second = directory.path("second.qcow2")
        for image in [first, second] {
            try FileManager.default.copyItem(atPath: try fixture("rhel6.qcow2"), toPath: image)
        }
        let before = try sha256(first)

        let one = try BackgroundRun(["customize", first, "--json", "-v", "--write", "/etc/motd:one\n"])
        let two = try BackgroundRun(["customize", second, "--json", "--write", "/etc/motd:two\n"])
        try one.waitForLine(containing: "imgcustomize: open")
        let again = try imgcustomize(["customize", first, "--json", "--write", "/etc/motd:again\n"])
        let document = try failureDocument(again, stage: "prepare")
        #expect(errorMessage(document).contains("another imgcustomize run is working on this image"), "\(document)")
        #expect(errorHint(document).contains("wait for it to finish"), "\(document)")

        for (run, image) in [(one.finish(), first), (two.finish(), second)] {
            #expect(run.status == 0, "\(image): \(run.stderr)")
            #expect(steps(try jsonObject(run.stdout)).first?["changed"] as? Bool == true, "\(run.stdout)")
            #expect(try sha256(image) != before, "\(image)")
            #expect(try runTool("qemu-img", ["check", "-f", "qcow2", image]).contains("No errors"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.url.path).sorted()
                == ["first.qcow2", "second.qcow2"])
    }
}

func fileSize(_ path: String) throws -> Int64 {
    try (FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
        ?? { throw TestFailure("no size for \(path)") }()
}
