/// `run-command CMD`: a shell command run inside the guest with the guest's own /bin/sh and programs, as
/// virt-customize's `--run-command`. What it changed is unknown; a non-zero exit fails the run with its output.
public struct RunCommand: RegisteredOperation {
    public static let name = "run-command"
    public static let sourceFile = #filePath
    public static let summary = "Run a shell command inside the guest, with the guest's own programs"
    public static let argument = OperationArgument.required(syntax: "CMD", example: "systemctl enable chronyd")

    public let command: String
    public var target: String { command }

    public init(_ command: String) { self.command = command }

    public static func parse(_ argument: String?) throws -> RunCommand {
        RunCommand(try required(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let result = try guest.runChecked(command, operation: Self.name)
        return .ran(result, "exit status 0")
    }
}
