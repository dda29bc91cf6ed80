import Appliance
import Diagnostics
import Dispatch
import Formats
import Foundation
import Host
import Logging
import Operations
import Synchronization

/// One appliance launch that images of a batch share: every one of its images' overlays is a drive of it (libguestfs
/// cannot add a drive to a running appliance), launched once every image is prepared, shut down after its last.
final class SharedAppliance {
    private var launched: Result<ApplianceSession, any Error>?
    /// The image whose rewrite runs in the background, and what ends it (waits, commits) on its launch's thread.
    var pending: (image: String, complete: () -> Result<RunReport, RunFailure>)?
    /// How the images whose rewrite ran in the background ended, by image.
    private(set) var outcomes: [String: Result<RunReport, RunFailure>] = [:]

    /// Waits for the rewrite in the background, if any, and commits it (or records its failure).
    func settle() {
        guard let pending else { return }
        self.pending = nil
        outcomes[pending.image] = pending.complete()
    }

    /// Launches the appliance over `drives`; a failure is every image's, given when each asks for the session.
    func launch(drives: [ApplianceDrive], options: ApplianceOptions) {
        launched = Result { try ApplianceSession(drives: drives, options: options) }
    }

    /// The running session, or the launch's failure.
    func session(for image: String) throws -> ApplianceSession {
        guard let launched else {
            throw CustomizeError(image: image, "the batch's appliance was not launched")
        }
        return try launched.get()
    }

    /// Shuts the appliance down. Every image was released (its writes flushed to its overlay) before it was
    /// rewritten, so a failure here changes no result; it is reported all the same.
    func close() -> (any Error)? {
        guard case .success(let session) = launched else { return nil }
        do {
            try session.close()
            return nil
        } catch {
            return error
        }
    }
}

/// A rewrite of a batch image's overlay into its new image on a thread of its own, while the appliance works on the
/// next image; waited for once, by its launch's thread, which commits it.
final class BackgroundRewrite: Sendable {
    enum Failure: Error {
        case format(FormatError)
        case other(Diagnostic)
    }

    private let outcome = Mutex<Result<Double, Failure>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    /// Starts the rewrite; `progress` is called on its thread, and the cancellation stops it.
    init(overlay: String, newImage: String, options: WriteOptions, image: String, cancellation: Cancellation?,
         progress: @escaping @Sendable (Int64, Int64) -> Void) {
        DispatchQueue.global().async { [self] in
            let start = DispatchTime.now().uptimeNanoseconds
            let result: Result<Double, Failure>
            do {
                let source = try openImage(path: overlay, format: .qcow2, allowBacking: true)
                _ = try ImageWriter(options).write(source, to: newImage) { written in
                    try cancellation?.check(image: image)
                    progress(Int64(written.bytesDone), Int64(written.bytesTotal))
                }
                result = .success(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            } catch let error as FormatError {
                result = .failure(.format(error))
            } catch {
                result = .failure(.other(Diagnostic(of: error)))
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
    }

    /// Waits for the rewrite to end: its seconds, or why it failed.
    func wait() -> Result<Double, Failure> {
        done.wait()
        done.signal()
        return outcome.withLock { $0 } ?? .failure(.other(Diagnostic("the rewrite ended without an outcome")))
    }
}

/// What a batch did: one entry per image, in the order given, each a run's report or its failure.
public struct BatchReport: Encodable {
    public var results: [Result<RunReport, RunFailure>]
    /// What the user should know about the batch as a whole (an appliance whose shutdown failed after its images).
    public var warnings: [String] = []
    /// How many appliances the batch launched (at once, each over its share of the images).
    public var launches = 1

    public var failures: [RunFailure] {
        results.compactMap { if case .failure(let failure) = $0 { failure } else { nil } }
    }

    enum CodingKeys: String, CodingKey {
        case images, failed, launches, warnings
    }

    private struct Entry: Encodable {
        let result: Result<RunReport, RunFailure>

        func encode(to encoder: any Encoder) throws {
            switch result {
            case .success(let report): try report.encode(to: encoder)
            case .failure(let failure): try failure.encode(to: encoder)
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(results.map(Entry.init), forKey: .images)
        try container.encode(failures.count, forKey: .failed)
        try container.encode(launches, forKey: .launches)
        try container.encode(warnings, forKey: .warnings)
    }

    public func json() -> String { jsonDocument(self) }
}

/// Where each image of a batch goes: `directory`/its base name. Refuses, before anything is opened or launched, two
/// images with the same base name (one result would replace the other) and one image given twice under two names
/// (same device and inode: the two runs would lock each other out).
public func batchDestinations(_ images: [String], in directory: String) throws -> [String] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw CustomizeError(image: directory, "the output directory does not exist or is not a directory",
                             hint: "create it first, or give another --output-dir")
    }
    var byName: [String: String] = [:]
    var byFile: [String: String] = [:]
    var destinations: [String] = []
    for image in images {
        let name = (image as NSString).lastPathComponent
        if let other = byName[name] {
            throw CustomizeError(image: image, "has the same name as \(other): both results would be \(directory)/\(name)",
                                 hint: "rename or link one of them under another name, or run them in two batches")
        }
        byName[name] = image
        var info = stat()
        if stat(image, &info) == 0 {
            let key = "\(info.st_dev):\(info.st_ino)"
            if let other = byFile[key] {
                throw CustomizeError(image: image, "is the same file as \(other)",
                                     hint: "give each image once")
            }
            byFile[key] = image
        }
        destinations.append((directory as NSString).appendingPathComponent(name))
    }
    return destinations
}

extension Pipeline {
    /// Runs `profile` on each of `images`, writing each result to `outputDirectory` under the image's base name, with
    /// `options.batchLaunches` appliance launches at once (by default one per host core), each working on its share
    /// of the images in turn. An image that fails is left as it was and reported; the others go on and commit.
    /// `progress` may be called from any launch's thread.
    public func apply(_ profile: Profile, to images: [String], outputDirectory: String,
                      progress: @escaping @Sendable (String, RunProgress) -> Void = { _, _ in }) throws -> BatchReport {
        try batch(images, outputDirectory: outputDirectory, policy: profile.output, progress: progress, Job(profile))
    }

    /// `customize` on several images, a launch working on each share of them (see `apply(_:to:outputDirectory:progress:)`).
    public func customize(_ operations: [any GuestOperation], on images: [String], outputDirectory: String,
                          progress: @escaping @Sendable (String, RunProgress) -> Void = { _, _ in }) throws
        -> BatchReport {
        try batch(images, outputDirectory: outputDirectory, policy: .sameFormat, progress: progress,
                  Job { _ in operations })
    }

    /// `sparsify` on several images, a launch working on each share of them (see `apply(_:to:outputDirectory:progress:)`).
    public func sparsify(_ images: [String], outputDirectory: String,
                         progress: @escaping @Sendable (String, RunProgress) -> Void = { _, _ in }) throws
        -> BatchReport {
        try batch(images, outputDirectory: outputDirectory, policy: .compressedQCOW2, progress: progress,
                  Job { _ in OperationRegistry.flags(in: .devices) })
    }

    /// Every image prepared first (checked, locked, its overlay made, its facts read natively as the drive it will
    /// be), then the launches over the prepared ones, each on its own thread, then each image's run in turn on its own
    /// drive of its launch. The images are dealt to the launches in turn, so each launch gets a share of them.
    private func batch(_ images: [String], outputDirectory: String, policy: OutputPolicy,
                       progress: @escaping @Sendable (String, RunProgress) -> Void, _ job: Job) throws -> BatchReport {
        guard options.appliance.keys.isEmpty else {
            throw CustomizeError(image: images.first ?? outputDirectory,
                                 "LUKS keys (--key, --keys-from-stdin) name the devices of one image, not of a batch",
                                 hint: "run encrypted images one at a time")
        }
        let destinations = try batchDestinations(images, in: outputDirectory)
        let launches = BatchLaunches.count(images: images.count, asked: options.batchLaunches,
                                           applianceMiB: options.appliance.memoryMiB)
        let shared = (0..<launches).map { _ in SharedAppliance() }
        var results: [Result<RunReport, RunFailure>?] = Array(repeating: nil, count: images.count)
        var groups = Array(repeating: [BatchImage](), count: launches)
        var preparedCount = 0
        for (index, (image, destination)) in zip(images, destinations).enumerated() {
            var options = options
            options.output = destination
            let run = Run(image, options: options, logger: logger, output: destination,
                          sizeBefore: allocatedBytes(image), progress: { progress(image, $0) })
            let launch = preparedCount % launches
            let target = ImageTarget(image: image, destination: destination, policy: policy, shared: shared[launch])
            do {
                try target.prepare(in: run, drive: groups[launch].count)
                groups[launch].append(BatchImage(index: index, run: run, target: target))
                preparedCount += 1
            } catch {
                results[index] = .failure(run.failure(error, on: target, profile: job.profile))
            }
        }
        let used = groups.filter { !$0.isEmpty }.count
        // The host's cores shared among the appliances, where the user chose no number of virtual CPUs.
        let cpus = options.appliance.virtualCPUs
            ?? (used > 1 ? max(1, ProcessInfo.processInfo.activeProcessorCount / used) : nil)
        let ended = Mutex<(outcomes: [Int: Result<RunReport, RunFailure>], warnings: [String])>(([:], []))
        let work = Handed((groups, shared, job))
        let workers = DispatchGroup()
        for launch in groups.indices where !groups[launch].isEmpty {
            workers.enter()
            // Where launches run at once, each appliance's log lines say which launch they are from.
            let tag = used > 1 ? "\(launch + 1)/\(used)" : nil
            let thread = Thread {
                let (groups, shared, job) = work.value
                let (outcomes, warning) = Self.work(groups[launch], on: shared[launch], cpus: cpus, tag: tag, job)
                ended.withLock {
                    $0.outcomes.merge(outcomes) { _, new in new }
                    if let warning { $0.warnings.append(warning) }
                }
                workers.leave()
            }
            thread.stackSize = 8 << 20  // the main thread's, which a run had to itself before batches had threads
            thread.start()
        }
        workers.wait()
        let (outcomes, warnings) = ended.withLock { $0 }
        for (index, outcome) in outcomes { results[index] = outcome }
        return BatchReport(results: results.compactMap { $0 }, warnings: warnings, launches: used)
    }

    /// One launch's share of a batch: the launch over its images' drives, each image's run in turn, the last
    /// rewrite waited for, and the appliance shut down. How each image ended, by its index in the batch, and a
    /// warning if the shutdown failed.
    private static func work(_ images: [BatchImage], on shared: SharedAppliance, cpus: Int?, tag: String?,
                             _ job: Job) -> (outcomes: [Int: Result<RunReport, RunFailure>], warning: String?) {
        guard let first = images.first else { return ([:], nil) }
        var appliance = first.target.applianceOptions(of: first.run)
        if let tag { appliance.logger[metadataKey: "launch"] = "\(tag)" }
        appliance.guestName = images.count == 1 ? first.run.name
            : "\(first.run.name) (and \(images.count - 1) more images)"
        appliance.virtualCPUs = cpus
        let drives = images.compactMap { $0.target.prepared?.drive } + (first.target.prepared?.attached ?? [])
        appliance.filesystemTypes = Set(images.flatMap { $0.target.prepared?.filesystemTypes ?? [] }).sorted()
        first.run.during(.open) { shared.launch(drives: drives, options: appliance) }
        var results: [Int: Result<RunReport, RunFailure>] = [:]
        for image in images {
            do {
                results[image.index] = .success(try image.run.perform(job, on: image.target))
            } catch let failure as RunFailure {
                results[image.index] = .failure(failure)
            } catch {
                results[image.index] = .failure(image.run.failure(error, on: image.target, profile: job.profile))
            }
        }
        shared.settle()
        for image in images {
            if let outcome = shared.outcomes[image.run.name] { results[image.index] = outcome }
        }
        let warning = shared.close().map {
            "the appliance of \(appliance.guestName ?? first.run.name) did not shut down cleanly (every result was "
                + "written before): \(Diagnostic(of: $0).message)"
        }
        return (results, warning)
    }
}

/// An image of a batch, prepared: its place in the batch, its run and its target.
private struct BatchImage {
    let index: Int
    let run: Run
    let target: ImageTarget
}

/// What the batch's thread hands to the thread of one launch: that launch's images, which no other thread touches
/// until it ends (the batch's thread waits for it).
private struct Handed<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// How many appliances a batch launches at once.
public enum BatchLaunches {
    /// What libguestfs gives an appliance when no memory is asked for (`DEFAULT_MEMSIZE`), in MiB.
    static let defaultApplianceMiB = 1280
    /// What qemu needs besides the guest's memory, in MiB.
    static let overheadMiB = 256

    /// `asked` where the user gave a number; otherwise one per host core, as many as half the available memory
    /// holds (the rule of libguestfs's own parallel tools), and never more than the images.
    public static func count(images: Int, asked: Int?, applianceMiB: Int?,
                             cores: Int = ProcessInfo.processInfo.activeProcessorCount,
                             availableMiB: Int? = availableMemoryMiB()) -> Int {
        let wanted: Int
        if let asked {
            wanted = asked
        } else {
            let each = (applianceMiB ?? defaultApplianceMiB) + overheadMiB
            let byMemory = availableMiB.map { $0 / 2 / each } ?? cores
            wanted = min(cores, byMemory)
        }
        return max(1, min(wanted, images))
    }

    /// MemAvailable of /proc/meminfo, in MiB; nil where it cannot be read.
    public static func availableMemoryMiB(meminfo: String = "/proc/meminfo") -> Int? {
        guard let text = try? String(contentsOfFile: meminfo, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let kib = Int(fields[1]) else { return nil }
            return kib / 1024
        }
        return nil
    }
}
