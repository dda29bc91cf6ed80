/// What one step of a run did, as `--json` prints it.
public struct StepReport: Codable, Sendable, Equatable {
    public var operation: String
    public var target: String
    public var changed: Bool
    public var summary: String
    /// One diff per changed file; nil when the run was not asked for diffs (and then absent from the JSON).
    public var diffs: [FileDiff]?
    /// What the step warned of (see `OperationOutcome.warning`); absent from the JSON when nil.
    public var warning: String?

    public init(operation: String, target: String, changed: Bool, summary: String, diffs: [FileDiff]? = nil,
                warning: String? = nil) {
        self.operation = operation
        self.target = target
        self.changed = changed
        self.summary = summary
        self.diffs = diffs
        self.warning = warning
    }

    enum CodingKeys: String, CodingKey {
        case operation, target, changed, summary, warning
        case diffs = "diff"
    }
}

public struct FileDiff: Codable, Sendable, Equatable {
    public var path: String
    /// `diff -u` text, or a one-line description for what is not a text change ("binary file changed",
    /// "mode 0644 -> 0600", "nothing -> directory").
    public var unified: String

    public init(path: String, unified: String) {
        self.path = path
        self.unified = unified
    }
}

/// An operation that failed, named as the user wrote it.
public struct OperationFailure: Error, CustomStringConvertible {
    public var operation: String
    public var target: String
    public var underlying: Error

    public var description: String {
        "\(operation)\(target.isEmpty ? "" : " \(target)") failed: \(underlying)"
    }
}

/// Applies operations one after another to one guest, recording what each changed.
public final class OperationRunner {
    private let recorder: RecordingFilesystem
    private var context: OperationContext
    private let recordDiffs: Bool

    /// With `recordDiffs`, every report carries the unified diff of each file its step changed.
    public init(guest: GuestFilesystem, context: OperationContext = OperationContext(), recordDiffs: Bool = false) {
        recorder = RecordingFilesystem(guest)
        self.context = context
        self.recordDiffs = recordDiffs
    }

    /// Every path the run has written, created, moved into place or re-owned so far, in first-touched order.
    public var touchedPaths: [String] { recorder.touched }

    public func run(_ operation: any GuestOperation) throws -> StepReport {
        recorder.startStep()
        context.touchedPaths = recorder.touched
        let outcome: OperationOutcome
        do {
            outcome = try operation.apply(to: recorder, context: context)
        } catch {
            throw OperationFailure(operation: operation.name, target: operation.target, underlying: error)
        }
        context.logger.debug("\(operation.name) \(operation.target): \(outcome.summary)")
        return StepReport(operation: operation.name, target: operation.target, changed: outcome.changed,
                          summary: outcome.summary, diffs: recordDiffs ? recorder.diffs() : nil,
                          warning: outcome.warning)
    }
}
