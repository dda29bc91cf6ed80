import Foundation
import Operations
import Testing
import TestSupport
import Appliance

extension Tag {
    @Tag static var appliance: Self
}

/// What a run of the `imgcustomize` binary printed and how it ended.
typealias CLIResult = ProcessResult

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

/// A guest image built from Fixtures/trees.
func fixture(_ name: String) throws -> String { try guestFixtures.path(name) }

func sha256(_ path: String) throws -> String {
    String(try runTool("sha256sum", [path]).prefix(64))
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

/// Opens `images` read-only as the drives of one appliance launch and hands each one's mounted guest to `body` in
/// turn, with its index: one launch where a read-back per image would cost CI 15-30 s more each. Selecting a drive
/// scopes LVM and inspection to it, so clones of one image (the same volume group, the same UUIDs) read side by side.
func readBack<T>(_ images: [(path: String, format: ApplianceDrive.Format)], options: ApplianceOptions = ApplianceOptions(),
                 _ body: (Int, ApplianceFilesystem) throws -> T) throws -> [T] {
    let session = try ApplianceSession(drives: images.map { ApplianceDrive(path: $0.path, format: $0.format, readonly: true) },
                                       options: options)
    defer { try? session.close() }
    return try images.enumerated().map { index, image in
        try session.select(drive: index, name: image.path, knownFacts: nil)
        return try body(index, try session.mountOperatingSystem())
    }
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

/// What changes the image in every run by design: trimming, and the operations that write a fresh identity (new
/// UUIDs, a new random seed), which no second run can leave alone without handing every clone the same one.
let changedInEveryRun: Set<String> = ["trim-free-space", "lvm-uuids", "fs-uuids", "random-seed"]

/// A second run on a run's own output: it succeeded, and no step but trimming and the fresh identities changed
/// anything.
func expectNoStepChangedButTrimming(_ run: CLIResult, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(run.status == 0, "\(run.stderr)", sourceLocation: sourceLocation)
    expectNoStepChangedButTrimming(steps(try jsonObject(run.stdout)), sourceLocation: sourceLocation)
}

/// The steps of a second run on a run's own output (one image's of a batch): there are some, and none but trimming
/// and the fresh identities changed anything.
func expectNoStepChangedButTrimming(_ steps: [[String: Any]], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(!steps.isEmpty, "the second run reported no steps at all", sourceLocation: sourceLocation)
    for step in steps where !changedInEveryRun.contains(step["operation"] as? String ?? "") {
        #expect(step["changed"] as? Bool == false, "\(step)", sourceLocation: sourceLocation)
    }
}
