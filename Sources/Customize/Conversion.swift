import Foundation
import Formats
import Logging
import Operations
import Host

/// Rewrites an image as qcow2 or raw (the `convert` command) with the promise `apply` keeps: whatever happens
/// (a bad option, an unreadable or changing input, a full disk, a signal, kill -9), whatever was at the output's
/// path is still there, byte for byte, unless a complete, checked new image replaced it.
///
/// The options are checked before anything is opened for writing. The input is opened once and read through that
/// descriptor (`InputImage`), with qemu's locks honoured; an input that is the output under another name is
/// refused. The new image is written in a scratch directory beside the output and committed by `Transaction`:
/// the output locked (a second writer is refused), the new image checked, fsynced and renamed over the output.
public struct Conversion: Sendable {
    public var options: WriteOptions
    public var policy: SafetyPolicy
    public var cancellation: Cancellation?
    public var logger: Logger

    public init(options: WriteOptions = WriteOptions(), policy: SafetyPolicy = SafetyPolicy(),
                cancellation: Cancellation? = nil, logger: Logger = Logger(label: "imgcustomize")) {
        self.options = options
        self.policy = policy
        self.cancellation = cancellation
        self.logger = logger
    }

    /// Converts `input` to `output` and returns what the writer did. `progress` is called on the calling thread.
    @discardableResult
    public func run(_ input: String, to output: String,
                    progress: (WriteProgress) -> Void = { _ in }) throws -> WriteStats {
        do {
            try options.validate(output: output)
        } catch let error as FormatError {
            throw CustomizeError(image: input, error.message, hint: "see imgcustomize convert --help; nothing was written")
        }
        try FileAccess.checkDestination(output, image: input)
        let image = try InputImage(path: input, policy: policy)
        if image.isSameFile(as: output) {
            throw CustomizeError(image: input, "the input \(input) and the output \(output) are the same file",
                hint: "write the result to another path (the input is read while the output is written); "
                    + "nothing was written")
        }
        // No free-space estimate: a compressed result's size is unknown until written, and running out of space
        // costs nothing but the scratch.
        let transaction = try image.withDescriptor {
            try Transaction(image: image.checked.identity, destination: output, needs: .init(newImage: 0, overlay: 0),
                            imageDescriptor: $0, logger: logger)
        }
        defer { transaction.abandon() }
        let newImage = transaction.scratchPath("new")
        let stats: WriteStats
        do {
            stats = try ImageWriter(options).write(image.source, to: newImage) { done in
                try cancellation?.check(image: input)
                progress(done)
            }
        } catch let error as FormatError where error.file == newImage {
            let directory = (output as NSString).deletingLastPathComponent.isEmpty
                ? "." : (output as NSString).deletingLastPathComponent
            if [ENOSPC, EDQUOT].contains(error.systemError) {
                throw CustomizeError(image: input, "ran out of space writing \(output) after \(formatBytes(error.offset ?? 0)): \(error.message)",
                                     hint: "free space in \(directory) or write the output elsewhere; the partial output was removed"
                                        + " and \(output) is as it was")
            }
            throw CustomizeError(image: input, "cannot write \(output): \(error.message)",
                                 hint: "check the filesystem of \(directory) (dmesg says more); \(output) is as it was")
        } catch let error as FormatError {
            // A read that failed on an input that changed meanwhile: the change is the cause to report.
            try image.requireUnchanged()
            throw error
        }
        try cancellation?.check(image: input)
        try image.requireUnchanged()
        try verify(newImage, output: output, input: input, virtualSize: image.source.virtualSize)
        try transaction.commit(newImage, durable: options.durable)
        return stats
    }

    /// Reads the new image back as its reader would before it replaces anything: the header and the tables parse
    /// and the disk has the input's size.
    private func verify(_ newImage: String, output: String, input: String, virtualSize: UInt64) throws {
        let size: UInt64
        do {
            let reader: any ImageSource = options.format == .qcow2
                ? try QCOW2Reader(path: newImage) : try RawReader(path: newImage)
            size = reader.virtualSize
        } catch {
            throw CustomizeError(image: input, "the new image for \(output) does not read back: \(error)",
                                 hint: "this is a bug in imgcustomize; \(output) is as it was")
        }
        guard size == virtualSize else {
            throw CustomizeError(image: input, "the new image for \(output) reads back as \(size) bytes, not \(virtualSize)",
                                 hint: "this is a bug in imgcustomize; \(output) is as it was")
        }
    }
}
