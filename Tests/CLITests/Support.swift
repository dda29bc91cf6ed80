import Foundation
import Operations
import Testing

extension Tag {
    @Tag static var appliance: Self
}

/// The package's root, from this file's place in it.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// What a run of the `imgcustomize` binary printed and how it ended.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the built `imgcustomize` as a user would, with the same environment; `input` is its stdin.
@discardableResult
func imgcustomize(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) throws -> CLIResult {
    try runProcess(try imgcustomizeBinary(), arguments, environment: environment, input: input)
}

/// The `imgcustomize` built beside the test bundle.
func imgcustomizeBinary() throws -> String {
    let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent(),
                      packageRoot.appendingPathComponent(".build/debug")]
        .map { $0.appendingPathComponent("imgcustomize").path }
    guard let executable = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestFailure("imgcustomize is not built; run `swift build` first")
    }
    return executable
}

func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                input: String? = nil) throws -> CLIResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let directory = try TemporaryDirectory()
    let outPath = directory.path("out")
    let errPath = directory.path("err")
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    if let input {
        let inPath = directory.path("in")
        _ = FileManager.default.createFile(atPath: inPath, contents: Data(input.utf8))
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inPath))
    }
    try process.run()
    process.waitUntilExit()
    return CLIResult(status: process.terminationStatus,
                     stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                     stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}

/// Runs a host tool and returns its stdout, failing the test on a non-zero exit.
@discardableResult
func tool(_ name: String, _ arguments: [String]) throws -> String {
    let result = try runProcess("/usr/bin/env", [name] + arguments)
    guard result.status == 0 else {
        throw TestFailure("\(name) \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
    }
    return result.stdout
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The guest images built from Fixtures/trees: scripts/test exports IMGCUSTOMIZE_FIXTURES; otherwise build (or
/// find in the cache) with Fixtures/build-images.
let fixturesDirectory: String = {
    if let directory = ProcessInfo.processInfo.environment["IMGCUSTOMIZE_FIXTURES"], !directory.isEmpty {
        return directory
    }
    let script = packageRoot.appendingPathComponent("Fixtures/build-images").path
    let result = try? runProcess(script, [])
    return result?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
}()

func fixture(_ name: String) throws -> String {
    let path = fixturesDirectory + "/" + name
    guard FileManager.default.fileExists(atPath: path) else {
        throw TestFailure("fixture \(name) is missing in '\(fixturesDirectory)'; run Fixtures/build-images")
    }
    return path
}

func sha256(_ path: String) throws -> String {
    String(try tool("sha256sum", [path]).prefix(64))
}

/// A private temporary directory, removed when the value goes away.
final class TemporaryDirectory: Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("imgcustomize-cli-test-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Opens an image read-only through the appliance and hands its mounted guest to `body`: how tests read back
/// what a run did, as a user would with guestfish.
func readBack<T>(_ image: String, format: ApplianceDrive.Format = .qcow2, options: ApplianceOptions = ApplianceOptions(),
                 _ body: (ApplianceFilesystem) throws -> T) throws -> T {
    let session = try ApplianceSession(drives: [ApplianceDrive(path: image, format: format, readonly: true)],
                                       options: options)
    defer { try? session.close() }
    return try body(try session.mountOperatingSystem())
}

/// The JSON document a --json run printed.
func jsonObject(_ text: String) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(text.prefix(200))")
    }
    return object
}

func steps(_ report: [String: Any]) -> [[String: Any]] {
    report["steps"] as? [[String: Any]] ?? []
}
