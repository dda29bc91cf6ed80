import Foundation
import Testing
import TestSupport

/// `convert` keeps `apply`'s promise, tried as a hostile user would: whatever was at the output's path is either
/// untouched (same sha256) or replaced by a complete image equal to the input; the input is never written; holes
/// cost nothing. Every case runs the built binary, as a user would.
@Suite(.serialized) struct ConvertSafetyTests {
    /// A directory with an input image holding data (qcow2, 8 MiB, patterns and zeros) and an existing output that
    /// a user cares about.
    final class Setup {
        let directory: TestDirectory
        let input: String
        let output: String
        let outputHash: String

        init(inputMegabytes: Int = 8, random: Bool = false) throws {
            directory = try TestDirectory()
            input = directory.path("in.qcow2")
            let raw = directory.path("in.raw")
            if random {
                try runTool("dd", ["if=/dev/urandom", "of=\(raw)", "bs=1M", "count=\(inputMegabytes)", "status=none"])
            } else {
                try runTool("qemu-img", ["create", "-q", "-f", "raw", raw, "\(inputMegabytes)M"])
                try runTool("qemu-io", ["-f", "raw", "-c", "write -P 0x5a 0 1M", "-c", "write -P 0x33 3M 1536k", raw])
            }
            try runTool("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, input])
            try FileManager.default.removeItem(atPath: raw)
            output = directory.path("out.qcow2")
            try runTool("qemu-img", ["create", "-q", "-f", "qcow2", output, "4M"])
            try runTool("qemu-io", ["-f", "qcow2", "-c", "write -P 0x77 0 64k", output])
            outputHash = try sha256(output)
        }

        /// What is in the directory, scratch of any run included.
        func entries() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        }
    }

    // MARK: The same file under another name

    @Test(arguments: ["same name", "dot-dot", "hard link"], ["raw", "qcow2"])
    func anInputThatIsTheOutputIsRefusedBeforeAnythingIsWritten(naming: String, format: String) throws {
        let setup = try Setup()
        try FileManager.default.createDirectory(atPath: setup.directory.path("d"), withIntermediateDirectories: false)
        let input = setup.directory.path("d/x.qcow2")
        try FileManager.default.moveItem(atPath: setup.input, toPath: input)
        let before = try sha256(input)
        let output: String = switch naming {
        case "same name": input
        case "dot-dot": setup.directory.path("d/../d/x.qcow2")
        default: setup.directory.path("d/link.qcow2")
        }
        if naming == "hard link" { #expect(link(input, output) == 0) }
        let listing = try FileManager.default.contentsOfDirectory(atPath: setup.directory.path("d")).sorted()

        let run = try imgcustomize(["convert", "-O", format, input, output])
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.stderr.contains("the input \(input) and the output \(output) are the same file"), "\(run.stderr)")
        #expect(try sha256(input) == before, "the input is intact")
        #expect(try runTool("qemu-img", ["check", input]).contains("No errors"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.directory.path("d")).sorted() == listing,
                "nothing was written beside it")
    }

    // MARK: Failures leave the existing output as it was

    @Test func anL2EntryPastTheEndOfTheInputLeavesTheExistingOutputIntact() throws {
        let setup = try Setup()
        // The last data cluster's L2 entry points far past the end of the file.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: setup.input)))
        func bigEndian(_ offset: Int) -> UInt64 { bytes[offset..<offset + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        let l1 = Int(bigEndian(40))
        let l2 = Int(bigEndian(l1) & 0x00FF_FFFF_FFFF_FE00)
        let last = try #require((0..<8192).last { bigEndian(l2 + $0 * 8) != 0 })
        let handle = try #require(FileHandle(forWritingAtPath: setup.input))
        try handle.seek(toOffset: UInt64(l2 + last * 8))
        try handle.write(contentsOf: Data(withUnsafeBytes(of: (UInt64(1) << 63 | 0x00FF_FFFF_0000_0000).bigEndian) { Array($0) }))
        try handle.close()

        let run = try imgcustomize(["convert", setup.input, setup.output])
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.stderr.contains("beyond the end of the file"), "\(run.stderr)")
        #expect(try sha256(setup.output) == setup.outputHash)
        #expect(try setup.entries() == ["in.qcow2", "out.qcow2"])
    }

    @Test(arguments: [["--level", "99"], ["--compress", "zstd", "--level", "99"], ["--cluster-size", "3000"],
                      ["-O", "raw", "--level", "3"]])
    func aBadOptionLeavesTheExistingOutputIntact(options: [String]) throws {
        let setup = try Setup()
        let run = try imgcustomize(["convert"] + options + [setup.input, setup.output])
        #expect(run.status != 0, "\(run.stderr)")
        #expect(run.stderr.contains(options[options.count - 1]), "the message names the value: \(run.stderr)")
        #expect(try sha256(setup.output) == setup.outputHash)
        #expect(try setup.entries() == ["in.qcow2", "out.qcow2"])
    }

    @Test func aConvertEndedBySIGTERMLeavesTheExistingOutputIntactAndEndsAtOnce() throws {
        let setup = try Setup(inputMegabytes: 192, random: true)
        let run = try BackgroundRun(["convert", "--compress", "zlib", setup.input, setup.output])
        try run.waitForLine(containing: "converting: 0%")
        // Sent while the run is stopped mid-write, delivered as it goes on: however fast the machine, it is midway.
        let signalled = Date()
        try run.whilePaused {
            try #require(try scratch(in: setup.directory.path).count == 1, "mid-write")
            try run.signal(SIGTERM)
        }
        let result = run.finish()
        let took = Date().timeIntervalSince(signalled)

        #expect(run.endedBySignal == SIGTERM, "\(result.stderr)")
        #expect(result.stderr.contains("interrupted by SIGTERM"), "\(result.stderr)")
        #expect(took < 10, "ended \(took) s after the signal")
        #expect(try sha256(setup.output) == setup.outputHash)
        #expect(try setup.entries() == ["in.qcow2", "out.qcow2"], "the scratch is removed")
    }

    // MARK: Kill -9 at any moment

    @Test func killedAtSeveralMomentsTheOutputIsTheOldFileOrACompleteNewOne() throws {
        let setup = try Setup(inputMegabytes: 96, random: true)
        let binary = try imgcustomizeBinary()
        var original = try inodeNumber(setup.output)
        var outcomes: [String] = []
        for moment in [0.02, 0.1, 0.3, 0.6, 1.0, 1.5, 2.5, 4.0] {
            let finished = try killRun(binary, ["convert", "--quiet", setup.input, setup.output], after: moment)
            // Replaced by a rename: a new inode, a complete image equal to the input. Written in place, the output
            // would keep its inode.
            if try inodeNumber(setup.output) != original {
                outcomes.append("replaced")
                #expect(try runTool("qemu-img", ["check", setup.output]).contains("No errors"), "after \(moment) s")
                try runTool("qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", setup.input, setup.output])
                // Back to the old output for the next moment.
                try FileManager.default.removeItem(atPath: setup.output)
                try runTool("qemu-img", ["create", "-q", "-f", "qcow2", setup.output, "4M"])
                try runTool("qemu-io", ["-f", "qcow2", "-c", "write -P 0x77 0 64k", setup.output])
                original = try inodeNumber(setup.output)
                continue
            }
            #expect(!finished, "the run ended after \(moment) s but the output is the same file")
            outcomes.append("intact")
            #expect(try sha256(setup.output) == setup.outputHash, "killed after \(moment) s: the output changed in place")
        }
        #expect(outcomes.contains("intact"), "\(outcomes)")
        // The next run removes what the killed ones left, and completes.
        let next = try imgcustomize(["convert", setup.input, setup.output])
        #expect(next.status == 0, "\(next.stderr)")
        try runTool("qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", setup.input, setup.output])
        #expect(try setup.entries() == ["in.qcow2", "out.qcow2"])
    }

    /// Without the fsyncs the output is still replaced by a rename, never rewritten in place.
    @Test func aNoFsyncRunStillReplacesTheOutputByARename() throws {
        let setup = try Setup()
        let before = try inodeNumber(setup.output)
        let run = try imgcustomize(["convert", "--no-fsync", setup.input, setup.output])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try inodeNumber(setup.output) != before, "a new file took the output's name")
        try runTool("qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", setup.input, setup.output])
        #expect(try setup.entries() == ["in.qcow2", "out.qcow2"])
    }

    // MARK: Two writers

    @Test func aSecondConvertToTheSameOutputIsRefused() throws {
        let setup = try Setup(inputMegabytes: 192, random: true)
        let other = setup.directory.path("other.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", other, "16M"])
        try runTool("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 4M", other])
        let fresh = setup.directory.path("new.qcow2")

        let first = try BackgroundRun(["convert", setup.input, fresh])
        try first.waitForLine(containing: "converting: 0%")
        // The first is stopped mid-write while the second tries, however fast the machine.
        var second: CLIResult?
        try first.whilePaused { second = try imgcustomize(["convert", other, fresh]) }
        let result = first.finish()
        let refused = try #require(second)

        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("another imgcustomize run is writing \(fresh)"), "\(refused.stderr)")
        #expect(result.status == 0, "\(result.stderr)")
        try runTool("qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", setup.input, fresh])
        #expect(try runTool("qemu-img", ["check", fresh]).contains("No errors"))
        #expect(try setup.entries() == ["in.qcow2", "new.qcow2", "other.qcow2", "out.qcow2"])
    }

    // MARK: qemu's locks

    @Test func anImageARunningQemuWritesIsRefusedUnlessForceShared() throws {
        let setup = try Setup()
        // qemu-io opens the image read-write and holds it, with qemu's locks, until its stdin closes.
        let qemu = Process()
        qemu.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        qemu.arguments = ["qemu-io", "-f", "qcow2", setup.input]
        let stdin = Pipe()
        qemu.standardInput = stdin
        qemu.standardOutput = FileHandle.nullDevice
        qemu.standardError = FileHandle.nullDevice
        try qemu.run()
        defer {
            try? stdin.fileHandleForWriting.close()
            kill(qemu.processIdentifier, SIGKILL)
            qemu.waitUntilExit()
        }
        // Held once qemu-img itself is refused.
        var waited = 0.0
        while try runProcess("/usr/bin/env", ["qemu-img", "info", setup.input]).status == 0, waited < 20 {
            Thread.sleep(forTimeInterval: 0.1)
            waited += 0.1
        }
        let qemuImg = try runProcess("/usr/bin/env", ["qemu-img", "convert", "-O", "qcow2", setup.input,
                                                      setup.directory.path("qemu.qcow2")])
        #expect(qemuImg.stderr.contains("Failed to get shared \"write\" lock"), "qemu-img refuses: \(qemuImg.stderr)")

        let refused = try imgcustomize(["convert", setup.input, setup.output])
        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("Failed to get shared \"write\" lock"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--force-share"), "\(refused.stderr)")
        #expect(try sha256(setup.output) == setup.outputHash)

        // customize's check goes through the same test: refused before any appliance is launched.
        let customize = try imgcustomize(["customize", setup.input, "--write", "/etc/motd:x"])
        #expect(customize.status == 1, "\(customize.stderr)")
        #expect(customize.stderr.contains("Failed to get shared \"write\" lock"), "\(customize.stderr)")

        let forced = try imgcustomize(["convert", "-U", setup.input, setup.output])
        #expect(forced.status == 0, "\(forced.stderr)")
        try runTool("qemu-img", ["compare", "-U", "-f", "qcow2", "-F", "qcow2", setup.input, setup.output])
    }

    // MARK: An input that changes while read

    @Test func aRawInputCutShortWhileReadFailsTheRun() throws {
        let setup = try Setup()
        let raw = setup.directory.path("in.raw")
        try runTool("dd", ["if=/dev/urandom", "of=\(raw)", "bs=1M", "count=160", "status=none"])
        let run = try BackgroundRun(["convert", "--compress", "zlib", raw, setup.output])
        try run.waitForLine(containing: "converting: 0%")
        try run.whilePaused { #expect(truncate(raw, 16 << 20) == 0) }
        let result = run.finish()

        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains(raw), "\(result.stderr)")
        #expect(result.stderr.contains("cut short while being read") || result.stderr.contains("its size went from"),
                "\(result.stderr)")
        #expect(try sha256(setup.output) == setup.outputHash)
        #expect(try setup.entries() == ["in.qcow2", "in.raw", "out.qcow2"])
    }

    @Test(arguments: ["qcow2", "raw"])
    func aRawInputOfAnySizeConvertsToAnEqualImage(format: String) throws {
        let directory = try TestDirectory()
        let raw = directory.path("odd.raw")
        try runTool("dd", ["if=/dev/urandom", "of=\(raw)", "bs=1000", "count=1", "status=none"])
        let output = directory.path("out.\(format)")
        let run = try imgcustomize(["convert", "-O", format, raw, output])
        #expect(run.status == 0, "\(run.stderr)")
        try runTool("qemu-img", ["compare", "-f", "raw", "-F", format, raw, output])
        if format == "qcow2" { #expect(try runTool("qemu-img", ["check", output]).contains("No errors")) }
    }

    // MARK: What is at the input's path

    @Test func aFIFOAtTheInputIsRefusedWithoutHanging() throws {
        let directory = try TestDirectory()
        let fifo = directory.path("in.qcow2")
        #expect(mkfifo(fifo, 0o600) == 0)
        let run = try runBounded(["convert", fifo, directory.path("out.qcow2")], seconds: 20)
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.stderr.contains("FIFO"), "\(run.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["in.qcow2"])
    }

    @Test func aSymlinkAtTheInputIsRefusedUnlessFollowed() throws {
        let setup = try Setup()
        let link = setup.directory.path("link.qcow2")
        #expect(symlink(setup.input, link) == 0)
        let refused = try imgcustomize(["convert", link, setup.output])
        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("symbolic link"), "\(refused.stderr)")
        #expect(try sha256(setup.output) == setup.outputHash)
        let followed = try imgcustomize(["convert", "--follow-symlinks", link, setup.output])
        #expect(followed.status == 0, "\(followed.stderr)")
        try runTool("qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", setup.input, setup.output])
    }

    // MARK: Holes cost nothing

    @Test func aSixteenTebibyteSparseRawConvertsInSeconds() throws {
        // On tmpfs: ext4 stops a file 4 KiB short of 16 TiB.
        let mount = try TmpfsMount(megabytes: 64)
        let raw = mount.file("sparse.raw")
        try runTool("truncate", ["-s", "16T", raw])
        try runTool("qemu-io", ["-f", "raw", "-c", "write -P 0x42 8T 1M", "-c", "write -P 0x43 16383G 64k", raw])
        let output = mount.file("sparse.qcow2")
        let began = Date()
        let run = try runBounded(["convert", raw, output], seconds: 60)
        let took = Date().timeIntervalSince(began)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(took < 20, "took \(took) s")
        #expect(try runTool("qemu-img", ["check", output]).contains("No errors"))
        try runTool("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", raw, output])
    }

    @Test func aSixtyFourPebibyteQCOW2ConvertsInSeconds() throws {
        let directory = try TestDirectory()
        let image = directory.path("huge.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "cluster_size=2097152", image, "64P"])
        try runTool("qemu-io", ["-f", "qcow2", "-c", "write -P 0x42 40P 4M", image])
        let output = directory.path("out.qcow2")
        let began = Date()
        let run = try runBounded(["convert", "--cluster-size", "2097152", image, output], seconds: 60)
        let took = Date().timeIntervalSince(began)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(took < 20, "took \(took) s")
        #expect(try runTool("qemu-img", ["check", output]).contains("No errors"))
        // The same size, the input's two data clusters and nothing else (compare would read 64 PiB of zeros).
        let info = try jsonObject(try runTool("qemu-img", ["info", "--output=json", output]))
        #expect(info["virtual-size"] as? Int == 64 << 50)
        #expect(try runTool("qemu-img", ["check", output]).contains("2/34359738368 = 0.00% allocated"))
        let read = try runTool("qemu-io", ["-f", "qcow2", "-r", "-c", "read -P 0x42 40P 4M", "-c", "read -P 0 0 2M",
                                           "-c", "read -P 0 \((40 << 50) - (2 << 20)) 2M", output])
        #expect(!read.contains("Pattern verification failed"), "\(read)")
    }
}

/// The scratch directories runs made in `directory`.
private func scratch(in directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(".imgcustomize-") }
}

private func inodeNumber(_ path: String) throws -> UInt64 {
    var info = stat()
    guard stat(path, &info) == 0 else { throw TestFailure("cannot stat \(path): \(String(cString: strerror(errno)))") }
    return UInt64(info.st_ino)
}

/// Runs the binary, killing it (and failing) when it takes more than `seconds`: a hang fails the test instead of
/// hanging the suite.
private func runBounded(_ arguments: [String], seconds: Double) throws -> CLIResult {
    let directory = try TestDirectory("imgcustomize-bounded")
    let errors = directory.path("err")
    _ = FileManager.default.createFile(atPath: errors, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try imgcustomizeBinary())
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = FileHandle.nullDevice
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
    try process.run()
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw TestFailure("imgcustomize \(arguments.joined(separator: " ")) still ran after \(seconds) s")
    }
    return CLIResult(status: process.terminationStatus, stdout: "",
                     stderr: (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")
}
