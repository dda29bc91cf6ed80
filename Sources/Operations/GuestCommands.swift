import Diagnostics
/// Running the guest's own programs against its mounted filesystems, as virt-customize's `--run-command` does:
/// chrooted into the guest, with the guest's /bin/sh. Only an image in the appliance offers it
/// (`GuestFilesystem.commands`); a directory tree on the host does not, since running its programs would run them
/// on the host. The appliance can also run a host script with its own programs against the mounted guest
/// (`runInAppliance`), as virt-sysprep's `--script` does on a guest mounted on the host.
public protocol GuestCommands: AnyObject {
    /// Whether the guest's programs reach the network (the appliance's user-mode network, off unless asked for).
    var network: Bool { get }
    /// Runs `command` with the guest's /bin/sh, stdout and stderr together. A non-zero exit is a result, not an
    /// error; an error means the command could not be run at all (another architecture, no /bin/sh). `operation`
    /// names what asked for it in errors ("run-command").
    func run(_ command: String, operation: String) throws -> GuestCommandResult
    /// `run`, with `display` standing for the command in its result and in every error: for a command that holds a
    /// secret (a password given to subscription-manager), which must reach no report, log or error message.
    func run(_ command: String, shownAs display: String, operation: String) throws -> GuestCommandResult
    /// Runs the host script at `hostScript` with the appliance's own programs (the host's, which supermin built the
    /// appliance from), not chrooted, its current directory the root of the mounted guest, stdout and stderr
    /// together: virt-sysprep's `--script`, without mounting the guest on the host. The copy it runs lives in the
    /// appliance's /tmp, never in the guest. A non-zero exit is a result, not an error, as for `run`.
    func runInAppliance(hostScript: String, operation: String) throws -> GuestCommandResult
}

/// How a guest command (or an appliance script) ended and what it printed.
public struct GuestCommandResult: Sendable, Equatable {
    /// The command as given to the guest's shell.
    public var command: String
    public var exitStatus: Int32
    /// stdout and stderr interleaved as written (the last MiB of it when it printed more).
    public var output: String

    public init(command: String, exitStatus: Int32, output: String) {
        self.command = command
        self.exitStatus = exitStatus
        self.output = output
    }

    /// The last `count` lines of the output, without trailing blank lines.
    public func lastLines(_ count: Int) -> [String] {
        var lines = output.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        while lines.last?.allSatisfy(\.isWhitespace) == true { lines.removeLast() }
        return Array(lines.suffix(count))
    }
}

/// A guest command that exited non-zero: the run fails with its exit status and its last lines of output.
public struct GuestCommandFailure: DiagnosticError, Sendable {
    public var guest: String
    /// What ran it: "run-command", "install".
    public var operation: String
    public var result: GuestCommandResult
    public var hint: String?

    public init(guest: String, operation: String, result: GuestCommandResult, hint: String? = nil) {
        self.guest = guest
        self.operation = operation
        self.result = result
        self.hint = hint
    }

    /// What failed, with the output's last lines, without the hint.
    public var summary: String {
        let lines = result.lastLines(StepReport.outputLines)
        let output = lines.isEmpty ? "; it printed nothing"
            : ", its last lines:\n    " + lines.joined(separator: "\n    ")
        return "\(guest): \(operation): \(result.command.debugDescription) exited with status \(result.exitStatus)"
            + output
    }

    public var diagnostic: Diagnostic { Diagnostic(summary, hint: hint, image: guest) }
}

extension GuestFilesystem {
    /// The guest's programs, or an error saying that `operation` needs the appliance.
    public func commands(for operation: String) throws -> any GuestCommands {
        guard let commands else {
            throw GuestError(guest: guestDescription, action: operation,
                             message: "a directory tree cannot run the guest's programs: guest commands need the "
                                + "appliance",
                             hint: "run \(operation) on an image, where it runs inside the appliance")
        }
        return commands
    }

    /// Runs `command` in the guest, failing with its output when it exits non-zero.
    func runChecked(_ command: String, operation: String, hint: String? = nil) throws -> GuestCommandResult {
        try succeeded(try commands(for: operation).run(command, operation: operation), operation: operation, hint: hint)
    }

    /// `result`, or a failure with its output when the command exited non-zero.
    func succeeded(_ result: GuestCommandResult, operation: String, hint: String? = nil) throws -> GuestCommandResult {
        guard result.exitStatus == 0 else {
            throw GuestCommandFailure(guest: guestDescription, operation: operation, result: result, hint: hint)
        }
        return result
    }
}
