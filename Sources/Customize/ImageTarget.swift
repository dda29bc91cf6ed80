import Diagnostics
import Appliance
import Foundation
import Formats
import Host
import Logging
import Operations

/// An image, worked on through one appliance launch: checked before any qemu process sees it, opened through an
/// overlay (the image itself is only read), then rewritten beside the destination and committed over it (see
/// `Transaction`). A dry run's overlay lives in a private directory and is thrown away.
///
/// In a batch (`SharedAppliance`), the image is one drive of a launch it shares with the others: `prepare` runs for
/// every image before the launch, `open` turns the session to the image's drive, and `finish` releases the drive
/// (unmounted, flushed, read-only) instead of shutting the appliance down, then rewrites and commits as alone.
final class ImageTarget: RunTarget {
    let image: String
    let destination: String
    private let policy: OutputPolicy
    private let shared: SharedAppliance?
    private var writeOptions = WriteOptions(format: .raw, compression: .none)
    private var transaction: Transaction?
    private var overlay = ""
    private var session: ApplianceSession?
    /// In a batch, this image's rewrite while it runs beside the appliance's work on the next image.
    private var background: BackgroundRewrite?
    /// The overlay's drive and what the native reader found in the image, once prepared.
    private(set) var prepared: (drive: ApplianceDrive, attached: [ApplianceDrive], facts: GuestFacts?,
                                layout: BlockLayout?, filesystemTypes: [String])?
    /// The image's drive among the batch's, which the native reader's facts name its devices after.
    private var driveIndex = 0

    var hasBlockDevices: Bool { true }
    var relabels: Bool { true }

    init(image: String, destination: String, policy: OutputPolicy, shared: SharedAppliance? = nil) {
        self.image = image
        self.destination = destination
        self.policy = policy
        self.shared = shared
    }

    /// check, prepare, and the overlay: everything before the launch, which a batch does for every image first.
    /// `drive` is the image's drive among the launch's guest drives.
    func prepare(in run: Run, drive: Int) throws {
        let options = run.options
        let sizeBefore = run.report.size.before
        driveIndex = drive
        // check: refuse unsafe images before any qemu process sees them, and remember which file was checked.
        let (checked, attached) = try run.during(.check) {
            (try ImageInspector.check(path: image, policy: SafetyPolicy(allowedFormats: options.allowedFormats,
                                                                        access: options.access)),
             try options.attachments.map { try $0.checked(access: options.access, image: image) })
        }
        run.report.attached = attached.map(\.reported)
        writeOptions = try outputTarget(format: checked.inspection.format, options: options)
        if !options.dryRun { try FileAccess.checkDestination(destination, image: image) }

        // prepare: lock, scratch beside the destination, free space for the overlay and the result. A dry run
        // writes nothing beside the image: its overlay lives in a private temporary directory, thrown away.
        try run.during(.prepare) {
            if options.dryRun {
                overlay = try run.dryRunDirectory(prefix: Transaction.overlayPrefix, for: "overlay")
                    .appending("overlay.qcow2")
                return
            }
            // The overlay holds only what the appliance writes: the edited files, the journal, and the blocks
            // trimming and relabelling touch. A tenth of the image plus 64 MiB covered every fixture with room
            // to spare; a run that needs more fails on a full disk with the image intact, as any write does.
            let transaction = try Transaction(
                image: checked.identity, destination: destination, scratchParent: options.scratchDirectory,
                needs: .init(newImage: sizeBefore, overlay: sizeBefore / 10 + (64 << 20)), logger: run.logger)
            self.transaction = transaction
            overlay = transaction.overlay
        }
        try run.checkCancelled()
        prepared = try run.during(.open) {
            try createOverlay(overlay, backing: checked.inspection.resolvedPath, format: checked.inspection.format)
            let native = nativeFacts(of: checked.inspection.resolvedPath, format: checked.inspection.format,
                                     disk: ApplianceDrive.deviceName(index: drive), options: applianceOptions(of: run),
                                     logger: run.logger)
            // A --root naming another device than the one root the reader found is refused before the launch.
            if let root = native?.facts.root { _ = try options.appliance.root.choose(among: [root], guest: image) }
            return (ApplianceDrive(path: overlay, format: .qcow2, discard: .enable, scratch: true),
                    attached.map(\.drive), native?.facts, native?.layout, native?.filesystemTypes ?? [])
        }
    }

    func prepare(in run: Run) throws {
        if prepared == nil { try prepare(in: run, drive: 0) }
    }

    var guestBeforeOpening: GuestFacts? { prepared?.facts }

    func open(in run: Run) throws {
        if prepared == nil { try prepare(in: run) }
        guard let prepared else { throw CustomizeError(image: image, "the image was not prepared") }
        // open: the appliance writes into an overlay over the image; the image itself is only read.
        try run.checkCancelled()
        let session = try run.during(.open) { () throws -> ApplianceSession in
            if let shared {
                let session = try shared.session(for: image)
                try session.select(drive: driveIndex, name: image, knownFacts: prepared.facts,
                                   knownLayout: prepared.layout)
                return session
            }
            var options = applianceOptions(of: run)
            options.knownFacts = prepared.facts
            options.knownLayout = prepared.layout
            options.filesystemTypes = prepared.filesystemTypes
            return try ApplianceSession(drives: [prepared.drive] + prepared.attached, options: options)
        }
        self.session = session
        for warning in session.warnings { run.warn(warning) }
    }

    func inspect(in run: Run) throws -> (filesystem: any GuestFilesystem, guest: GuestFacts?) {
        guard let session else { throw CustomizeError(image: image, "the appliance is not open") }
        let filesystem = try session.mountOperatingSystem()
        return (filesystem, filesystem.facts)
    }

    func finish(in run: Run) throws {
        // A batch's appliance goes on with the next image: this one's drive is released, its writes in its overlay.
        try run.during(.shutdown) { try shared == nil ? session?.close() : session?.release() }
        guard let transaction else { return }

        // rewrite: merge overlay and image into a new file, then commit it over the destination.
        try run.checkCancelled()
        let newImage = transaction.scratchPath("new")
        if let shared {
            // Beside the appliance's work on the next image, once the previous image's rewrite is done: one at a
            // time. The commit follows it on this thread (`complete`).
            shared.settle()
            let rewrite = BackgroundRewrite(overlay: overlay, newImage: newImage, options: writeOptions, image: image,
                                            cancellation: run.options.cancellation, progress: run.rewriteProgress)
            background = rewrite
            shared.pending = (image, { self.complete(rewrite, in: run, newImage: newImage, transaction: transaction) })
            return
        }
        do {
            try run.during(.rewrite) {
                let source = try openImage(path: overlay, format: .qcow2, allowBacking: true)
                _ = try ImageWriter(writeOptions).write(source, to: newImage) { written in
                    try run.checkCancelled()
                    run.rewriteProgress(Int64(written.bytesDone), Int64(written.bytesTotal))
                }
            }
        } catch let error as FormatError {
            throw rewriteError(error, newImage: newImage, transaction: transaction, expected: run.report.size.before)
        }
        try run.checkCancelled()
        try run.during(.commit) { try transaction.commit(newImage) }
        run.report.size.after = allocatedBytes(destination)
    }

    /// A batch image's end once its rewrite is done: the commit and the report, or the run's failure.
    private func complete(_ rewrite: BackgroundRewrite, in run: Run, newImage: String, transaction: Transaction)
        -> Result<RunReport, RunFailure> {
        do {
            let outcome = rewrite.wait()
            background = nil
            switch outcome {
            case .success(let seconds):
                run.record(.rewrite, seconds: seconds)
            case .failure(.format(let error)):
                run.record(.rewrite, seconds: 0)
                throw rewriteError(error, newImage: newImage, transaction: transaction, expected: run.report.size.before)
            case .failure(.other(let diagnostic)):
                run.record(.rewrite, seconds: 0)
                throw CustomizeError(image: image, "cannot write the new image: \(diagnostic.message)",
                                     hint: diagnostic.hint ?? "\(image) is unchanged")
            }
            try run.checkCancelled()
            try run.during(.commit) { try transaction.commit(newImage) }
            run.report.size.after = allocatedBytes(destination)
            return .success(run.finishedReport())
        } catch {
            return .failure(run.failure(error, on: self))
        }
    }

    /// The image is as it was unless the failure came after the commit replaced it.
    func failureState(of run: Run, after error: any Error) -> (unchanged: Bool, changes: [String]) {
        (!(transaction?.committed == true && destination == image), [])
    }

    func close() {
        // A batch's appliance is the batch's to close; the next image's `select` unmounts what this one left. A
        // rewrite still running in the background writes into the scratch directory: `complete` ends it.
        if shared == nil { try? session?.close() }
        if background == nil { transaction?.abandon() }
    }

    /// The guest's facts read from the image file by the native reader, in a fraction of a second: the appliance then
    /// mounts by them instead of inspecting (seconds under software emulation). Nil where the reader does not handle
    /// the guest, where LUKS keys are given, or where the user asked for another inspection; the appliance
    /// inspects then, as before.
    private func nativeFacts(of path: String, format: ImageFormat, disk: String, options: ApplianceOptions,
                             logger: Logger) -> (facts: GuestFacts, layout: BlockLayout?, filesystemTypes: [String])? {
        guard options.keys.isEmpty, (try? InspectionMethod.resolve(options.inspection)) == .automatic else { return nil }
        do {
            guard let native = try NativeInspection.inspect(image: path, format: format, disk: disk) else {
                logger.debug("the native reader does not handle this guest: the appliance inspects it")
                return nil
            }
            if native.layout == nil { logger.debug("the appliance lists the block devices: the reader cannot") }
            return (native.facts, native.layout, native.filesystemTypes)
        } catch {
            logger.debug("native inspection failed (\(error)): the appliance inspects the guest")
            return nil
        }
    }

    /// The appliance's options as the user gave them, with the run's logger and cancellation, naming the image
    /// (the first drive is an overlay of it).
    func applianceOptions(of run: Run) -> ApplianceOptions {
        var options = run.options.appliance
        options.logger = run.logger
        options.guestName = image
        options.cancellation = run.options.cancellation
        return options
    }

    /// What went wrong in the rewrite, for the user; another program changing the image explains an error reading
    /// it, and is what to fix.
    private func rewriteError(_ error: FormatError, newImage: String, transaction: Transaction, expected: Int64)
        -> CustomizeError {
        var failure = rewriteError(error, newImage: newImage, expected: expected)
        if let change = transaction.imageChange() {
            failure.message += "; the image \(change.message)"
            failure.hint = change.hint
        }
        return failure
    }

    /// What went wrong in the rewrite, for the user: the destination filling up, a write error, a read error.
    private func rewriteError(_ error: FormatError, newImage: String, expected: Int64) -> CustomizeError {
        let directory = (destination as NSString).deletingLastPathComponent.isEmpty
            ? "." : (destination as NSString).deletingLastPathComponent
        if error.file == newImage {
            if error.systemError == ENOSPC || error.systemError == EDQUOT {
                let written = formatBytes(error.offset ?? 0)
                let free = Transaction.freeBytes(directory).map { ", \(formatBytes($0)) is free now" } ?? ""
                return CustomizeError(image: image,
                    "ran out of space in \(directory) after writing \(written) of the new image "
                        + "(about \(formatBytes(expected)) was expected\(free)): \(error.message)",
                    hint: "free space in \(directory) (the new image may need as much as the image itself), or write "
                        + "elsewhere with --output; \(image) is unchanged and the partial new image was removed")
            }
            return CustomizeError(image: image, "cannot write the new image in \(directory): \(error)",
                                  hint: "check that filesystem (dmesg says more); \(image) is unchanged")
        }
        let what = error.file == overlay ? "the overlay \(overlay)" : error.file
        let at = error.offset.map { " at byte \($0)" } ?? ""
        return CustomizeError(image: image, "cannot read \(what)\(at) while rewriting the image: \(error.message)",
            hint: "the file or the disk under it gave a read error, or the file was cut short while the run read it; "
                + "check the disk (dmesg says more) or copy the image again from its source. imgcustomize wrote "
                + "nothing to \(image)")
    }

    /// The format of the result, refusing to turn a raw image into qcow2 in place. A qcow2 image kept in its format
    /// keeps its compression: compressed clusters in the input make a result compressed the same way (virt-customize,
    /// editing in place, leaves an image about its size; a rewrite that dropped the compression tripled one).
    func checkOutput(format: ImageFormat, options: RunOptions) throws {
        _ = try outputTarget(format: format, options: options)
    }

    private func outputTarget(format: ImageFormat, options: RunOptions) throws -> WriteOptions {
        var kept = ClusterCompression.none
        if policy == .sameFormat, format == .qcow2, options.compression == nil,
           let reader = try openImage(path: image, format: .qcow2, allowBacking: false) as? QCOW2Reader {
            kept = try reader.compressedClusters() ?? .none
        }
        let compression = options.compression ?? (policy == .compressedQCOW2 ? .zlib : kept)
        if format != .qcow2, policy == .sameFormat || options.compression == ClusterCompression.none {
            return WriteOptions(format: .raw, compression: .none)
        }
        if format != .qcow2, options.output == nil {
            throw CustomizeError(image: image, "is \(format.rawValue); this run writes qcow2, and a \(format.rawValue) image is never turned into qcow2 in place",
                                 hint: "give --output PATH.qcow2, or --compress none to keep it \(format.rawValue)")
        }
        return WriteOptions(format: .qcow2, compression: compression)
    }
}
