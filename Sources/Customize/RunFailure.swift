import Operations

/// A run that failed: the error, the stage it failed at, what the run had done until then, and whether the image is
/// as it was. Its description is the error's, so a person reads the same message; `json()` is what --json prints.
public struct RunFailure: Error, CustomStringConvertible, Encodable {
    public var error: any Error
    /// check, prepare, open, inspect, apply, relabel, trim, shutdown, rewrite or commit.
    public var stage: String
    /// The steps done before the failure, the guest when it was inspected, the timings so far.
    public var report: RunReport
    /// imgcustomize did not replace the image (false only when the failure came after the commit's rename, or
    /// on a directory tree, which is changed in place, after a step had changed it: see `treeChanges`).
    public var imageUnchanged: Bool
    /// On a directory tree, which is changed in place: what the run had changed before it failed (steps, and the
    /// paths the failing step had changed), so that the user knows what state the tree is in.
    public var treeChanges: [String] = []

    public init(_ error: any Error, stage: String, report: RunReport, imageUnchanged: Bool) {
        self.error = error
        self.stage = stage
        self.report = report
        self.imageUnchanged = imageUnchanged
    }

    public var description: String {
        if let command { return String(describing: command) }
        guard !treeChanges.isEmpty else { return String(describing: error) }
        return withHint(message, hint)
    }

    /// What failed, without the hint.
    public var message: String {
        let message = Self.explain(error).message
        guard !treeChanges.isEmpty else { return message }
        return "\(message); already changed in the tree before the failure: \(treeChanges.joined(separator: ", "))"
    }

    /// What to do about it, when the error says.
    public var hint: String? { Self.explain(error).hint }

    /// The message and the hint of an error; a failed step's come from the step's own error, after the step's name
    /// (a guest command's non-zero exit says which operation ran it already).
    private static func explain(_ error: any Error) -> (message: String, hint: String?) {
        switch error {
        case let error as CustomizeError: return ("\(error.image): \(error.message)", error.hint)
        case let error as GuestError: return (error.summary, error.hint)
        case let error as GuestCommandFailure: return (error.summary, error.hint)
        case let failure as OperationFailure:
            let inner = explain(failure.underlying)
            if failure.underlying is GuestCommandFailure { return inner }
            let target = failure.target.isEmpty ? "" : " \(failure.target)"
            return ("\(failure.operation)\(target) failed: \(inner.message)", inner.hint)
        default: return (String(describing: error), nil)
        }
    }

    /// The guest command whose non-zero exit failed the run, if that is what failed it.
    public var command: GuestCommandFailure? {
        (error as? GuestCommandFailure) ?? ((error as? OperationFailure)?.underlying as? GuestCommandFailure)
    }

    enum CodingKeys: String, CodingKey {
        case error, stage, imageUnchanged = "image-unchanged"
    }

    struct ErrorDocument: Encodable {
        var message: String
        var hint: String?
        /// For a guest command that exited non-zero: its exit status and last lines of output.
        var exitStatus: Int32?
        var output: [String]?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(message, forKey: .message)
            try container.encode(hint, forKey: .hint)
            try container.encodeIfPresent(exitStatus, forKey: .exitStatus)
            try container.encodeIfPresent(output, forKey: .output)
        }

        enum CodingKeys: String, CodingKey {
            case message, hint, output
            case exitStatus = "exit-status"
        }
    }

    /// The report's keys (steps so far, image, output...) and `error`, `stage` and `image-unchanged`.
    public func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ErrorDocument(message: message, hint: hint, exitStatus: command?.result.exitStatus,
                                           output: command?.result.lastLines(StepReport.outputLines)),
                             forKey: .error)
        try container.encode(stage, forKey: .stage)
        try container.encode(imageUnchanged, forKey: .imageUnchanged)
    }

    public func json() -> String { jsonDocument(self) }
}
