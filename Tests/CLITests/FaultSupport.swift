import Foundation
import Testing
import TestSupport

/// A tmpfs of a fixed size, mounted on a private directory: a filesystem a test can fill, make read-only, or use
/// as "another filesystem". Unmounted (lazily, so a process still holding a file cannot keep it) and removed when
/// the value goes away, whatever the test did.
final class TmpfsMount {
    let path: String

    init(megabytes: Int) throws {
        var template = Array((NSTemporaryDirectory() + "imgcustomize-cli-mount-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp: \(String(cString: strerror(errno)))") }
        path = String(cString: made)
        do {
            try runTool("mount", ["-t", "tmpfs", "-o", "size=\(megabytes)M,mode=0755", "tmpfs", path])
        } catch {
            rmdir(path)
            throw error
        }
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    func remountReadOnly() throws { try runTool("mount", ["-o", "remount,ro", path]) }

    /// Bytes still free for an unprivileged writer.
    var freeBytes: Int64 {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return 0 }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// What the mount holds.
    func entries() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }

    deinit {
        _ = try? runProcess("/usr/bin/env", ["umount", "-l", path])
        rmdir(path)
    }
}

/// An `imgcustomize` run going on in the background, so a test can act at a given moment of it: stderr is read line
/// by line (`-v` logs each stage: "imgcustomize: rewrite", and the rewrite's progress: "rewriting: 0%").
final class BackgroundRun {
    private let process = Process()
    private let errors = Pipe()
    private let output: TestDirectory
    private var stderrText = ""

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        output = try TestDirectory()
        _ = FileManager.default.createFile(atPath: output.path("out"), contents: nil)
        process.executableURL = URL(fileURLWithPath: try imgcustomizeBinary())
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output.path("out")))
        process.standardError = errors
        try process.run()
    }

    /// Reads stderr until a line contains `text`; fails when the run ends first.
    func waitForLine(containing text: String) throws {
        var pending = ""
        while true {
            let chunk = errors.fileHandleForReading.availableData
            guard !chunk.isEmpty else {
                throw TestFailure("the run ended before printing '\(text)'; stderr:\n\(stderrText)")
            }
            let piece = String(decoding: chunk, as: UTF8.self)
            stderrText += piece
            pending += piece
            let lines = pending.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.dropLast().contains(where: { $0.contains(text) }) { return }
            pending = String(lines.last ?? "")
        }
    }

    /// Stops the run where it is (SIGSTOP), runs `body`, and lets it go on (SIGCONT) whatever `body` did.
    func whilePaused(_ body: () throws -> Void) throws {
        kill(process.processIdentifier, SIGSTOP)
        defer { kill(process.processIdentifier, SIGCONT) }
        try body()
    }

    /// Sends `sig` to the run.
    func signal(_ sig: Int32) throws {
        guard kill(process.processIdentifier, sig) == 0 else { throw TestFailure("kill: \(String(cString: strerror(errno)))") }
    }

    /// The signal that ended the run, once `finish` returned; nil when it exited.
    var endedBySignal: Int32? {
        process.terminationReason == .uncaughtSignal ? process.terminationStatus : nil
    }

    /// Waits for the run to end.
    func finish() -> CLIResult {
        stderrText += String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return CLIResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOfFile: output.path("out"), encoding: .utf8)) ?? "",
                         stderr: stderrText)
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// The JSON document a failed --json run printed, with the keys every failure has checked.
func failureDocument(_ run: CLIResult, stage: String,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    #expect(run.status != 0, "the run did not fail", sourceLocation: sourceLocation)
    let document: [String: Any]
    do {
        document = try jsonObject(run.stdout)
    } catch {
        throw TestFailure("no JSON document on stdout (exit \(run.status)): '\(run.stdout)'; stderr:\n\(run.stderr)")
    }
    #expect(document["stage"] as? String == stage, "\(document)", sourceLocation: sourceLocation)
    #expect(document["image-unchanged"] as? Bool == true, "\(document)", sourceLocation: sourceLocation)
    #expect(document["error"] is [String: Any], "\(document)", sourceLocation: sourceLocation)
    return document
}

func errorMessage(_ document: [String: Any]) -> String {
    (document["error"] as? [String: Any])?["message"] as? String ?? ""
}

func errorHint(_ document: [String: Any]) -> String {
    (document["error"] as? [String: Any])?["hint"] as? String ?? ""
}

/// Scratch of imgcustomize runs (`.imgcustomize-*` beside a destination, `imgcustomize-*` in a scratch directory).
func scratchLeft(in directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(".imgcustomize-") || $0.hasPrefix("imgcustomize-") }
}

/// Runs the built binary with `arguments`, kills it with SIGKILL after `seconds`, and says whether it had already
/// finished by then.
func killRun(_ binary: String, _ arguments: [String], after seconds: Double) throws -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    Thread.sleep(forTimeInterval: seconds)
    let finished = !process.isRunning
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    return finished
}
