import Diagnostics
/// What one step of a run did, as `--json` prints it.
public struct StepReport: Codable, Sendable, Equatable {
    public var operation: String
    public var target: String
    /// In the JSON: true, false, or "unknown" for a step that ran guest commands.
    public var changed: Change
    public var summary: String
    /// One diff per changed file; nil when the run was not asked for diffs (and then absent from the JSON).
    public var diffs: [FileDiff]?
    /// What the step warned of (see `OperationOutcome.warning`); absent from the JSON when nil.
    public var warning: String?
    /// For a step that ran a guest command: its exit status and the last lines of its output (absent otherwise).
    public var exitStatus: Int32?
    public var output: [String]?

    /// How many of a guest command's last output lines a report keeps.
    public static let outputLines = 20

    public init(operation: String, target: String, changed: Change, summary: String, diffs: [FileDiff]? = nil,
                warning: String? = nil, command: GuestCommandResult? = nil) {
        self.operation = operation
        self.target = target
        self.changed = changed
        self.summary = summary
        self.diffs = diffs
        self.warning = warning
        self.exitStatus = command?.exitStatus
        self.output = command?.lastLines(Self.outputLines)
    }

    /// A step a dry run did not apply because its effect reaches beyond the image (`effectBeyondTheImage`): the
    /// report says so, and warns, since the plan is then not all tried.
    public static func skippedInDryRun(_ operation: any GuestOperation, _ reason: String) -> StepReport {
        let summary = "skipped in a dry run: \(reason)"
        return StepReport(operation: operation.name, target: operation.target, changed: .no, summary: summary,
                          warning: "\(operation.name) \(summary)")
    }

    enum CodingKeys: String, CodingKey {
        case operation, target, changed, summary, warning, output
        case diffs = "diff"
        case exitStatus = "exit-status"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        operation = try container.decode(String.self, forKey: .operation)
        target = try container.decode(String.self, forKey: .target)
        if let known = try? container.decode(Bool.self, forKey: .changed) {
            changed = known ? .yes : .no
        } else if try container.decode(String.self, forKey: .changed) == "unknown" {
            changed = .unknown
        } else {
            throw DecodingError.dataCorruptedError(forKey: .changed, in: container,
                                                   debugDescription: "changed is true, false or \"unknown\"")
        }
        summary = try container.decode(String.self, forKey: .summary)
        diffs = try container.decodeIfPresent([FileDiff].self, forKey: .diffs)
        warning = try container.decodeIfPresent(String.self, forKey: .warning)
        exitStatus = try container.decodeIfPresent(Int32.self, forKey: .exitStatus)
        output = try container.decodeIfPresent([String].self, forKey: .output)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(operation, forKey: .operation)
        try container.encode(target, forKey: .target)
        switch changed {
        case .yes: try container.encode(true, forKey: .changed)
        case .no: try container.encode(false, forKey: .changed)
        case .unknown: try container.encode("unknown", forKey: .changed)
        }
        try container.encode(summary, forKey: .summary)
        try container.encodeIfPresent(diffs, forKey: .diffs)
        try container.encodeIfPresent(warning, forKey: .warning)
        try container.encodeIfPresent(exitStatus, forKey: .exitStatus)
        try container.encodeIfPresent(output, forKey: .output)
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
public struct OperationFailure: DiagnosticError {
    public var operation: String
    public var target: String
    public var underlying: Error
    /// The guest paths the operation had already changed when it failed (on a directory tree these stay changed).
    public var changedPaths: [String] = []

    /// The step's name, then the underlying error's message; its hint, image and path are the underlying error's.
    /// A guest command's non-zero exit says which operation ran it already.
    public var diagnostic: Diagnostic {
        var inner = (underlying as? any DiagnosticError)?.diagnostic ?? Diagnostic(String(describing: underlying))
        if underlying is GuestCommandFailure { return inner }
        inner.message = "\(operation)\(target.isEmpty ? "" : " \(target)") failed: \(inner.message)"
        return inner
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
    /// An earlier step ran the guest's own programs, which may have written anything anywhere.
    public var ranGuestCommands: Bool { context.guestCommandsRan }

    public func run(_ operation: any GuestOperation) throws -> StepReport {
        recorder.startStep()
        context.touchedPaths = recorder.touched
        let outcome: OperationOutcome
        do {
            outcome = try operation.apply(to: recorder, context: context)
        } catch {
            throw OperationFailure(operation: operation.name, target: operation.target, underlying: error,
                                   changedPaths: recorder.changes.map(\.path))
        }
        if outcome.command != nil { context.guestCommandsRan = true }
        context.logger.debug("\(operation.name) \(operation.target): \(outcome.summary)")
        return StepReport(operation: operation.name, target: operation.target, changed: outcome.changed,
                          summary: outcome.summary, diffs: recordDiffs ? diffs(outcome) : nil,
                          warning: outcome.warning, command: outcome.command)
    }

    /// The recorded diffs, those of the paths the operation described itself replaced by its own.
    private func diffs(_ outcome: OperationOutcome) -> [FileDiff] {
        guard let own = outcome.diffs else { return recorder.diffs() }
        let described = Set(own.map(\.path))
        return recorder.diffs().filter { !described.contains($0.path) } + own
    }
}
