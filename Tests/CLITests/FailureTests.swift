import Foundation
import Testing
@testable import CLICommands
@testable import Customize
import Diagnostics
@testable import Formats
@testable import Operations
@testable import Appliance
import TestSupport
@testable import Host
import NativeReader

/// Every error a user can see has one shape (message, hint, image, path), printed one way in text and in JSON.
@Suite struct ErrorShapeTests {
    /// Error types that are never shown as they are: each carries a user-visible error, which is what is printed.
    static let wrappers: Set<String> = ["LaunchFailure", "Failure"]

    /// Every `struct`/`enum` in Sources that conforms to Error conforms to DiagnosticError, so that a new error type
    /// cannot print its hint inside its message again, or print none.
    @Test func everyErrorTypeInSourcesHasTheShape() throws {
        let sources = packageRoot.appendingPathComponent("Sources")
        let enumerator = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        let declaration = #/(?:struct|enum)\s+(\w+)\s*:\s*([^{]*)\{/#
        var found: [String: Bool] = [:]
        for case let url as URL in enumerator where url.pathExtension == "swift" {
            let text = try String(contentsOf: url, encoding: .utf8)
            for match in text.matches(of: declaration) {
                let conformances = match.output.2.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                guard conformances.contains("Error") || conformances.contains("DiagnosticError") else { continue }
                found[String(match.output.1)] = conformances.contains("DiagnosticError")
            }
        }
        #expect(found.count >= 19, "\(found)")
        for (name, conforms) in found where !Self.wrappers.contains(name) {
            #expect(conforms, "\(name) is an Error a user may see but not a DiagnosticError")
        }
        #expect(Set(found.filter { !$0.value }.keys) == Self.wrappers)
        // And the test below has a sample of each.
        #expect(Set(Self.samples.map { String(describing: type(of: $0)) }) == Set(found.filter(\.value).keys))
    }

    static var samples: [any DiagnosticError] { [
        UnsafeImageError(path: "disk.qcow2", violations: [
            Violation(.backingFile, "qcow2 names a backing file '/etc/passwd'", hint: "qemu-img convert it first"),
        ]),
        UnsafeImageError(path: "disk.vmdk", violations: [
            Violation(.vmdkExtentPath, "an extent names /etc/shadow", hint: "convert it"),
            Violation(.backingFile, "a backing file", hint: "convert it"),
        ]),
        InspectionError(path: "disk.qcow2", "it is a FIFO", hint: "give the path of an image file"),
        FormatError(file: "disk.qcow2", offset: 512, "L2 entry past the end"),
        LUKSKeyError.invalidSelector(device: "/dev/sda2"),
        CustomizeError(image: "disk.qcow2", "no space", hint: "free space"),
        GuestError(guest: "disk.qcow2", action: "write", path: "/etc/motd", message: "read-only", hint: "use --output"),
        GuestError(guest: "disk.qcow2", action: "write", message: "read-only"),
        Substitution.Problem(description: "\"x\" is not a substitution"),
        SysprepSelectionError(option: "--enable", problem: "no sysprep operation named \"x\""),
        CommandFileError(file: "cmds", line: 4, problem: "unknown command", hint: "see `imgcustomize operations`"),
        GuestCommandFailure(guest: "disk.qcow2", operation: "run-command",
                            result: GuestCommandResult(command: "false", exitStatus: 1, output: "no\n"), hint: "fix it"),
        TemporaryDirectoryError(parent: "/nonexistent", code: ENOENT),
        ArgumentError(option: "--write", problem: "no ':'", argument: WriteFile.argument),
        SystemCallError(code: EACCES),
        AugeasError(description: "aug_init failed", hint: "install augeas-lenses"),
        OperationFailure(operation: "upload", target: "/etc/motd",
                         underlying: GuestError(guest: "tree", action: "upload: read host file", path: "fifo",
                                                message: "it is a FIFO", hint: "give a regular file")),
        RunCancelled(image: "disk.qcow2", reason: "interrupted by SIGTERM"),
        RunFailure(CustomizeError(image: "disk.qcow2", "refused", hint: "use --force"), stage: .check,
                   report: RunReport(profile: nil, image: "disk.qcow2", output: nil, dryRun: false, guest: nil, steps: [],
                                     timings: [:], size: .init(before: 0, after: nil)),
                   imageUnchanged: true),
        HostError("IMGCUSTOMIZE_ACCEL: unknown acceleration \"hvf\"", hint: "use kvm, tcg or auto"),
        UsageError("--smp 0: give 1 to 255 virtual CPUs"),
        PVHKernel.ExtractionError("/var/tmp/kernel is not a bzImage (no HdrS header)"),
        PrivateAppliance.Unavailable("init.tar.gz has no lines \"udevadm trigger\" (another libguestfs version)"),
        ProcessStartError(program: "xorriso", code: ENOENT),
        ReaderError(.notHandled, device: "/dev/sda2", structure: "btrfs superblock", offset: 65536,
                    "btrfs is not read natively"),
        NativeDryRunDeclined(image: "rhel7.qcow2", reason: "/boot/efi is /dev/sda1, a filesystem the native reader does not read",
                             wouldRun: false),
    ] }

    /// The text is `imgcustomize: error: MESSAGE` and the hint on its own line, never a trailing ": "; the JSON has
    /// the same message and hint; the hint is said once, never inside the message.
    @Test(arguments: 0..<26)
    func textAndJSONSayTheSameOnce(index: Int) throws {
        let samples = Self.samples
        try #require(index < samples.count)
        let error = samples[index]
        let diagnostic = error.diagnostic
        let text = diagnostic.text(program: "imgcustomize")
        #expect(text == "imgcustomize: error: \(diagnostic.message)" + (diagnostic.hint.map { "\n  hint: \($0)" } ?? ""))
        #expect(!text.hasSuffix(": ") && !text.hasSuffix(":"), "\(text)")
        #expect(error.description == diagnostic.description)
        if let hint = diagnostic.hint {
            #expect(!diagnostic.message.contains(hint), "\(type(of: error)): the hint is in the message too")
            #expect(text.components(separatedBy: hint).count == 2, "\(text)")
        }
        #expect(!diagnostic.message.contains("hint:"), "\(diagnostic.message)")
        let document = try jsonObject(jsonDocument(Output.FailureDocument(diagnostic: diagnostic,
                                                                          run: error as? RunFailure, exitCode: 1)))
        let printed = try #require(document["error"] as? [String: Any], "\(document)")
        #expect(printed["message"] as? String == diagnostic.message)
        #expect(printed["hint"] as? String == diagnostic.hint)
        #expect(Set(printed.keys).isSuperset(of: ["message", "hint", "image", "path"]), "\(printed)")
        #expect(printed["image"] as? String == diagnostic.image && printed["path"] as? String == diagnostic.path)
        #expect(document["exit-code"] as? Int == 1)
    }

    /// The most common refusal, an unsafe image, gives its hint as the hint, not inside the message.
    @Test func anUnsafeImagesHintIsTheHint() {
        let diagnostic = (Self.samples[0] as? UnsafeImageError)?.diagnostic
        #expect(diagnostic?.message == "refusing disk.qcow2: qcow2 names a backing file '/etc/passwd' [backing-file]")
        #expect(diagnostic?.hint == "qemu-img convert it first")
        #expect(diagnostic?.image == "disk.qcow2")
    }

    /// `--write=--write:`: the option was named twice ("--write: --write: ..."); it is named once, and the usage is
    /// the hint.
    @Test func anOperationsBadArgumentNamesTheOptionOnce() throws {
        let command = try #require(try IMGCustomize.parseAsRoot(["customize", "img.qcow2", "--write=--write:"])
            as? IMGCustomize.CustomizeCommand)
        let error = try #require(throws: UsageError.self) { try command.operationArguments.parse() }
        #expect(error.diagnostic.message == "--write: \"--write\" is not an absolute guest path")
        #expect(error.diagnostic.hint == "expected --write PATH:CONTENT (e.g. --write '/etc/motd:Welcome')")
    }
}

/// With --json, every failure of every command prints exactly one JSON document on stdout: the error (message,
/// hint, image, path) and the exit code, which is the process's.
@Suite struct FailureDocumentTests {
    static let cases: [[String]] = [
        ["apply", "no-such-profile", "x.qcow2"],
        ["apply", "sysprep", "x.qcow2", "--no-such-option"],
        ["apply", "sysprep", "x.qcow2", "--formats", "raw,nonsense"],
        ["apply", "sysprep", "x.qcow2", "--compress", "lz4"],
        ["apply", "sysprep", "x.qcow2", "--accel", "hvf"],
        ["apply"],
        ["customize", "x.qcow2"],
        ["customize", "x.qcow2", "--hostname"],
        ["customize", "x.qcow2", "--write=--write:"],
        ["customize", "--tree", "/nonexistent-tree", "--touch", "/x"],
        ["customize", "x.qcow2", "--root", "bogus", "--touch", "/x"],
        ["sparsify", "/nonexistent.qcow2"],
        ["sparsify", "x.qcow2", "--smp", "0"],
        ["inspect", "/nonexistent.qcow2"],
        ["inspect", "/"],
        ["inspect"],
        ["convert", "/nonexistent.qcow2", "out.qcow2"],
        ["convert", "only-input.qcow2"],
        ["convert", "-O", "vdi", "in.qcow2", "out.vdi"],
        ["boot-check", "/nonexistent.qcow2"],
        ["boot-check", "x.qcow2", "--boots", "3"],
        ["profiles", "show", "no-such-profile"],
        ["profiles", "no-such-profile"],
        ["operations", "--no-such-option"],
        ["no-such-command"],
    ]

    @Test(arguments: cases)
    func oneDocumentOnEveryFailure(arguments: [String]) throws {
        let run = try imgcustomize(arguments + ["--json"])
        #expect(run.status != 0)
        let document = try jsonObject(run.stdout)
        let error = try #require(document["error"] as? [String: Any], "\(run.stdout)")
        #expect((error["message"] as? String)?.isEmpty == false, "\(error)")
        #expect(error.keys.contains("hint"), "\(error)")
        #expect(document["exit-code"] as? Int == Int(run.status), "\(document)")
        // The text says the same on stderr.
        #expect(run.stderr.contains(error["message"] as? String ?? "\u{0}"), "\(run.stderr)")
    }

    /// The most common refusal, an image with a backing file, through the binary: the run's document (stage,
    /// steps, image unchanged) with the hint as the hint, and the same on stderr, each said once.
    @Test func anUnsafeImageRefusedByApplyGivesItsHintApart() throws {
        let directory = try TestDirectory()
        let image = directory.path("backed.qcow2")
        _ = try runTool("qemu-img", ["create", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F", "raw", image, "1M"])
        let run = try imgcustomize(["apply", "sysprep", image, "--json"])
        #expect(run.status == 1)
        let document = try jsonObject(run.stdout)
        #expect(document["stage"] as? String == "check" && document["image-unchanged"] as? Bool == true, "\(document)")
        #expect(document["exit-code"] as? Int == 1 && document["steps"] is [Any])
        let error = try #require(document["error"] as? [String: Any])
        let message = try #require(error["message"] as? String)
        let hint = try #require(error["hint"] as? String, "\(error)")
        #expect(message.hasPrefix("refusing \(image): ") && !message.contains(hint) && !message.contains("hint:"))
        #expect(error["image"] as? String == image)
        #expect(run.stderr.contains("imgcustomize: error: \(message)\n  hint: \(hint)\n"), "\(run.stderr)")
    }

    @Test func aSymlinkGivenToInspectPrintsTheRefusal() throws {
        let directory = try TestDirectory()
        let link = directory.path("disk.qcow2")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc/hostname")
        let run = try imgcustomize(["inspect", "--json", link])
        #expect(run.status == 1)
        let error = try #require(try jsonObject(run.stdout)["error"] as? [String: Any])
        #expect(error["message"] as? String == "cannot inspect \(link): it is a symbolic link to '/etc/hostname'")
        #expect(error["hint"] as? String == "give the image's own path, or --follow-symlinks to read what it points to")
        #expect(error["image"] as? String == link)
    }

    /// The commands that had no --json have it: convert's result, the profiles and the operations as data.
    @Test func convertProfilesAndOperationsPrintJSON() throws {
        let directory = try TestDirectory()
        let input = directory.path("in.raw"), output = directory.path("out.qcow2")
        #expect(FileManager.default.createFile(atPath: input, contents: Data(repeating: 7, count: 1 << 20)))
        let converted = try imgcustomize(["convert", input, output, "--json"])
        #expect(converted.status == 0, "\(converted.stderr)")
        let document = try jsonObject(converted.stdout)
        #expect(document["input"] as? String == input && document["output"] as? String == output)
        #expect(document["format"] as? String == "qcow2" && document["virtual-size"] as? Int == 1 << 20)
        #expect(document["bytes-read"] as? Int == 1 << 20)
        #expect((document["bytes-written"] as? Int ?? 0) > 0 && document["seconds"] is Double)

        let profiles = try jsonObject(try imgcustomize(["profiles", "--json"]).stdout)["profiles"] as? [[String: Any]]
        #expect(profiles?.contains { $0["name"] as? String == "rhel7-cloud" } == true)
        let shown = try jsonObject(try imgcustomize(["profiles", "show", "sysprep", "--json"]).stdout)
        #expect(shown["name"] as? String == "sysprep" && !(shown["steps"] as? [Any] ?? []).isEmpty)
        let operations = try jsonObject(try imgcustomize(["operations", "--json"]).stdout)["operations"] as? [[String: Any]]
        #expect(operations?.first { $0["name"] as? String == "write" }?["usage"] as? String == "--write PATH:CONTENT")
    }
}

/// A host file given as an input is opened without waiting and checked to be a regular file: a FIFO fails the run
/// at once, naming it, where it used to hang forever.
@Suite struct HostInputTests {
    /// Runs the binary; a run still going after `seconds` is killed and reported as such. A refused FIFO takes a
    /// few milliseconds, a hang forever: 10 s tells them apart even while the whole suite loads two cores (2 s did
    /// not, for a debug binary that merely started late).
    func run(_ arguments: [String], seconds: Double = 10) throws -> (result: CLIResult, hung: Bool) {
        let directory = try TestDirectory("imgcustomize-deadline")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try imgcustomizeBinary())
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let outPath = directory.path("out"), errPath = directory.path("err")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        let hung = process.isRunning
        if hung { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return (CLIResult(status: process.terminationStatus,
                          stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""), hung)
    }

    static let options: [(String, @Sendable (String) -> [String])] = [
        ("upload", { ["--upload", "\($0):/etc/motd"] }),
        ("root-password", { ["--root-password", "file:\($0)"] }),
        ("ssh-inject", { ["--ssh-inject", "root:\($0)"] }),
        ("commands-from-file", { ["--commands-from-file", $0] }),
        ("tar-in", { ["--tar-in", "\($0):/etc"] }),
        ("firstboot", { ["--firstboot", $0] }),
        ("password", { ["--password", "root:file:\($0)"] }),
        ("sm-credentials", { ["--sm-credentials", "me:file:\($0)", "--sm-register"] }),
        ("copy-in", { ["--copy-in", "\($0):/etc"] }),
    ]

    @Test(arguments: options.map(\.0))
    func aFIFOIsRefusedAtOnceNamingIt(option: String) throws {
        let directory = try TestDirectory()
        let tree = directory.path("tree")
        try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: tree + "/etc/passwd", atomically: true, encoding: .utf8)
        try "root:*:19000:0:99999:7:::\n".write(toFile: tree + "/etc/shadow", atomically: true, encoding: .utf8)
        let fifo = directory.path("input-fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let arguments = try #require(Self.options.first { $0.0 == option }).1(fifo)
        let (result, hung) = try run(["customize", "--tree", tree, "--json"] + arguments)
        #expect(!hung, "--\(option) with a FIFO still ran after 10 s")
        #expect(result.status != 0)
        #expect(result.stderr.contains(fifo), "\(result.stderr)")
        let error = try jsonObject(result.stdout)["error"] as? [String: Any]
        #expect((error?["message"] as? String)?.contains("FIFO") == true, "\(result.stdout)")
    }

    /// SIGTERM during a convert (no appliance): the run stops within a few seconds, ends by the signal, prints its
    /// failure document with the exit code a shell sees, and leaves no output behind.
    @Test func aConvertStoppedBySIGTERMEndsAtOnceWithItsDocument() throws {
        let directory = try TestDirectory()
        let input = directory.path("in.raw"), output = directory.path("out.qcow2")
        // Data that compresses, slowly at the highest level: the conversion takes far longer than the test waits.
        var block = [UInt8](repeating: 0, count: 1 << 20)
        var state: UInt32 = 12345
        for index in block.indices {
            state = state &* 1_103_515_245 &+ 12345
            block[index] = UInt8(truncatingIfNeeded: state >> 24) & 0x0F
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: {
            _ = FileManager.default.createFile(atPath: input, contents: nil)
            return input
        }()))
        for _ in 0..<256 { handle.write(Data(block)) }
        try handle.close()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: try imgcustomizeBinary())
        process.arguments = ["convert", "--level", "12", "--json", input, output]
        let outPath = directory.path("stdout"), errPath = directory.path("stderr")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        try process.run()
        let started = Date().addingTimeInterval(30)
        while !((try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "").contains("converting") {
            guard process.isRunning, Date() < started else { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(process.isRunning, "the conversion ended before it could be interrupted")
        let sent = Date()
        kill(process.processIdentifier, SIGTERM)
        // Well under the 30 s after which Interruption ends a run that does not stop by itself.
        let deadline = sent.addingTimeInterval(10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        let stopped = !process.isRunning
        if !stopped { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        #expect(stopped, "still running 10 s after SIGTERM: \(stderr)")
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGTERM, "\(stderr)")
        let document = try jsonObject((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "")
        #expect(document["exit-code"] as? Int == Int(128 + SIGTERM), "\(document)")
        let message = (document["error"] as? [String: Any])?["message"] as? String
        #expect(message?.contains("interrupted by SIGTERM") == true, "\(document)")
        #expect(!FileManager.default.fileExists(atPath: output))
    }
}

/// `inspect`'s text prints names taken from an image with their control characters escaped: a backing file name
/// with a NUL and a newline cannot end a line and add one of its own.
@Suite struct InspectTextTests {
    @Test func aBackingFileNameCannotInjectALine() throws {
        let directory = try TestDirectory()
        let image = directory.path("hostile.qcow2")
        let name = "AAAA\nsafety: safe"
        _ = try runTool("qemu-img", ["create", "-f", "qcow2", "-u", "-b", name, "-F", "raw", image, "1M"])
        // qemu-img cannot be given a NUL: it goes in over the first byte of the name.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let at = try #require(bytes.indices.first { bytes[$0...].starts(with: Array("AAAA\n".utf8)) })
        bytes[at + 1] = 0
        try Data(bytes).write(to: URL(fileURLWithPath: image))

        let run = try imgcustomize(["inspect", image])
        #expect(run.status == 1)
        let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.filter { $0.hasPrefix("safety:") } == ["safety: UNSAFE"], "\(run.stdout)")
        #expect(!run.stdout.contains("\u{0}"))
        #expect(run.stdout.contains("A\\x00AA\\x0asafety: safe"), "\(run.stdout)")
    }
}

extension InspectTextTests {
    /// `inspect --os`'s text: what inspection read from the guest's files (its hostname here) is escaped too.
    @Test func aGuestsNamesCannotInjectALine() {
        var facts = GuestFacts(type: "linux")
        facts.hostname = "web1\n    root: /dev/evil\u{1b}[2J"
        let text = IMGCustomize.Inspect.osText(facts)
        #expect(!text.contains("\n    root: /dev/evil"), "\(text)")
        #expect(text.contains("    hostname: web1\\x0a    root: /dev/evil\\x1b[2J\n"), "\(text)")
    }
}
