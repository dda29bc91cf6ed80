import Diagnostics
import Operations

/// A run that failed: the error, the stage it failed at, what the run had done until then, and whether the image is
/// as it was. Its diagnostic is the error's, so a person reads the same message; `json()` is what --json prints.
public struct RunFailure: DiagnosticError, Encodable {
    public var error: any Error
    /// The stage running when the run failed.
    public var stage: Stage
    /// The steps done before the failure, the guest when it was inspected, the timings so far.
    public var report: RunReport
    /// imgcustomize did not replace the image (false only when the failure came after the commit's rename, or
    /// on a directory tree, which is changed in place, after a step had changed it: see `treeChanges`).
    public var imageUnchanged: Bool
    /// On a directory tree, which is changed in place: what the run had changed before it failed (steps, and the
    /// paths the failing step had changed), so that the user knows what state the tree is in.
    public var treeChanges: [String] = []

    public init(_ error: any Error, stage: Stage, report: RunReport, imageUnchanged: Bool) {
        self.error = error
        self.stage = stage
        self.report = report
        self.imageUnchanged = imageUnchanged
    }

    /// The error's own: a failed step's names the step, then says what its error says; on a directory tree, what
    /// the run had changed before it failed follows the message.
    public var diagnostic: Diagnostic {
        var diagnostic = Diagnostic(of: error)
        if !treeChanges.isEmpty {
            diagnostic.message += "; already changed in the tree before the failure: \(treeChanges.joined(separator: ", "))"
        }
        return diagnostic
    }

    /// The guest command whose non-zero exit failed the run, if that is what failed it.
    public var command: GuestCommandFailure? {
        (error as? GuestCommandFailure) ?? ((error as? OperationFailure)?.underlying as? GuestCommandFailure)
    }

    enum CodingKeys: String, CodingKey {
        case error, stage, imageUnchanged = "image-unchanged"
    }

    /// The diagnostic's keys, as every failure prints them.
    struct ErrorDocument: Encodable {
        var diagnostic: Diagnostic
        /// For a guest command that exited non-zero: its exit status and last lines of output.
        var exitStatus: Int32?
        var output: [String]?

        func encode(to encoder: any Encoder) throws {
            try diagnostic.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(exitStatus, forKey: .exitStatus)
            try container.encodeIfPresent(output, forKey: .output)
        }

        enum CodingKeys: String, CodingKey {
            case output
            case exitStatus = "exit-status"
        }
    }

    /// The report's keys (steps so far, image, output...) and `error`, `stage` and `image-unchanged`.
    public func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ErrorDocument(diagnostic: diagnostic, exitStatus: command?.result.exitStatus,
                                           output: command?.result.lastLines(StepReport.outputLines)),
                             forKey: .error)
        try container.encode(stage, forKey: .stage)
        try container.encode(imageUnchanged, forKey: .imageUnchanged)
    }
}
