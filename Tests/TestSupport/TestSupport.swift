import Foundation
import Synchronization
import Testing

/// The package's root, from this file's place in it.
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A failure of the test's own machinery (a tool that failed, a fixture that is missing), with what to do.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A private temporary directory, removed when the value goes away.
public final class TestDirectory: Sendable {
    public let url: URL

    public init(_ prefix: String = "imgcustomize-test") throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public var path: String { url.path }

    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// What a process printed and how it ended.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    /// Empty when the process ran with `mergingErrors` (its stderr is then in `stdout`, interleaved as written).
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Runs `executable` with the test's environment plus `environment`, `input` as its stdin (closed without one); its
/// output goes through files, which never fill up the way pipes do.
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                       input: String? = nil, mergingErrors: Bool = false) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardInput = FileHandle.nullDevice
    let directory = try TestDirectory("imgcustomize-process")
    let outPath = directory.path("out")
    let errPath = directory.path("err")
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    process.standardOutput = out
    process.standardError = mergingErrors ? out : try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    if let input {
        let inPath = directory.path("in")
        _ = FileManager.default.createFile(atPath: inPath, contents: Data(input.utf8))
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inPath))
    }
    try process.run()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}

/// Runs a host tool found on PATH (qemu-img, mkfs.ext4, sha256sum) that must succeed, and returns its stdout; a
/// failure throws with its stderr.
@discardableResult
public func runTool(_ tool: String, _ arguments: [String]) throws -> String {
    let result = try runProcess("/usr/bin/env", [tool] + arguments)
    guard result.status == 0 else {
        throw TestFailure("\(tool) \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
    }
    return result.stdout
}

/// Images the tests use, built from committed sources by a script under Fixtures/ and cached: the directory
/// `variable` names (scripts/test exports it), or else the one the script prints once it has built the images or
/// found them in its cache.
///
/// A cold build takes minutes (the Debian guests over twenty at load), and a test blocked on it holds a thread of
/// the cooperative pool, of which a two-core machine has two: two such tests stopped the whole run until the build
/// was done. Suites that need images say so with the `.fixtures(...)` trait, which waits for them with `ready()`,
/// holding no thread, before the suite starts.
public final class FixtureImages: Sendable {
    let script: String
    private let variable: String
    private let built = Mutex<String?>(nil)

    public init(variable: String, script: String) {
        self.variable = variable
        self.script = script
    }

    /// The images' directory: runs the script, waiting for it, the first time it is asked for (unless `ready()`
    /// was awaited); empty when the build failed (its errors went to the test run's stderr).
    public var directory: String {
        if let directory = built.withLock({ $0 }) { return directory }
        let (process, output) = start()
        var printed = Data()
        if let process, (try? process.run()) != nil {
            printed = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
        }
        return record(process, printed)
    }

    /// Waits for the images without holding a thread while the script runs.
    public func ready() async {
        if built.withLock({ $0 }) != nil { return }
        let (process, output) = start()
        guard let process else { _ = record(nil, Data()); return }
        let started: Bool = await withCheckedContinuation { continuation in
            process.terminationHandler = { _ in continuation.resume(returning: true) }
            if (try? process.run()) == nil { continuation.resume(returning: false) }
        }
        // The script prints one line, the directory: it is in the pipe's buffer when the script has ended.
        _ = record(started ? process : nil, started ? output.fileHandleForReading.readDataToEndOfFile() : Data())
    }

    /// The script, ready to run, and its standard output; nil when the variable names the directory.
    private func start() -> (Process?, Pipe) {
        let output = Pipe()
        if let directory = ProcessInfo.processInfo.environment[variable], !directory.isEmpty {
            built.withLock { $0 = directory }
            return (nil, output)
        }
        // Its progress and errors go to the test run's stderr: a build can take minutes, and can fail.
        let process = Process()
        process.executableURL = packageRoot.appendingPathComponent(script)
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        process.standardInput = FileHandle.nullDevice
        return (process, output)
    }

    private func record(_ process: Process?, _ printed: Data) -> String {
        built.withLock { built in
            if let built { return built }
            guard let process, process.terminationReason == .exit, process.terminationStatus == 0 else { return "" }
            let directory = String(decoding: printed, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            built = directory
            return directory
        }
    }

    public func path(_ name: String) throws -> String {
        let directory = directory
        let path = directory + "/" + name
        guard FileManager.default.fileExists(atPath: path) else {
            throw TestFailure("fixture \(name) is missing in '\(directory)'; run \(script)")
        }
        return path
    }
}

/// A suite that needs fixture images waits for them before it starts, holding no thread (see `FixtureImages`).
public struct NeedsFixtures: SuiteTrait, TestScoping {
    let images: [FixtureImages]

    public func provideScope(for test: Test, testCase: Test.Case?,
                             performing function: @Sendable () async throws -> Void) async throws {
        for images in self.images { await images.ready() }
        try await function()
    }
}

extension Trait where Self == NeedsFixtures {
    /// The suite runs once `images` are built (or found in their cache).
    public static func fixtures(_ images: FixtureImages...) -> Self { NeedsFixtures(images: images) }
}

/// The RHEL-like guest images Fixtures/build-images builds from Fixtures/trees.
public let guestFixtures = FixtureImages(variable: "IMGCUSTOMIZE_FIXTURES", script: "Fixtures/build-images")

/// The Windows guest images Fixtures/build-windows builds without Windows media (hives from .reg text on NTFS).
public let windowsFixtures = FixtureImages(variable: "IMGCUSTOMIZE_WINDOWS_FIXTURES", script: "Fixtures/build-windows")

/// The Debian 12 guests Fixtures/build-debian installs from Debian's packages (booted once at build).
public let debianFixtures = FixtureImages(variable: "IMGCUSTOMIZE_DEBIAN_FIXTURES", script: "Fixtures/build-debian")

/// A driver tree in virtio-win's ISO layout (DRIVER/RELEASE/ARCH/FILE) made of small files, for `releases` (virtio-win's
/// names: w10, 2k19, ...), with what inject-virtio-win must not copy: debugging files, the sriov driver that
/// conflicts with netkvm, the guest agent's installer. Each file holds its own path.
public func virtioWinTree(releases: [String]) throws -> TestDirectory {
    let directory = try TestDirectory("virtio-win")
    var files: [String] = ["guest-agent/qemu-ga-x86_64.msi", "sriov/w10/amd64/vioprot.inf"]
    for release in releases {
        for (driver, name) in [("viostor", "viostor"), ("vioscsi", "vioscsi"), ("NetKVM", "netkvm"), ("Balloon", "balloon")] {
            for suffix in ["sys", "inf", "cat", "pdb"] { files.append("\(driver)/\(release)/amd64/\(name).\(suffix)") }
            files.append("\(driver)/\(release)/x86/\(name).sys")
        }
    }
    for file in files {
        let path = directory.path(file)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data("\(file) driver bytes\n".utf8).write(to: URL(fileURLWithPath: path))
    }
    return directory
}

/// Runs `body`, and stops the whole test run with a message naming `test` if it has not returned `seconds` after it
/// started. Swift Testing's `.timeLimit` is no substitute here: it also counts the time a test waits for a thread of
/// the cooperative pool, which appliance tests hold for minutes on a two-core machine (a CI run failed every
/// HostCommandTests test that way, none of them slow). A hang this catches would otherwise be seen only at CI's own
/// limit, with no name on it.
public func finishing<T>(within seconds: Int, _ test: String = #function, _ body: () throws -> T) rethrows -> T {
    let watchdog = DispatchWorkItem {
        FileHandle.standardError.write(Data("\(test) did not finish within \(seconds) s of starting: it hangs; stopping the test run\n".utf8))
        abort()
    }
    DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(seconds), execute: watchdog)
    defer { watchdog.cancel() }
    return try body()
}
