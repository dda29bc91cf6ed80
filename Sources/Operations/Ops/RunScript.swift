import Host
/// `run SCRIPT`: a host script copied into the guest's /tmp (mode 0700), executed there, then removed, as
/// virt-customize's `--run`: its `#!` line names the guest's interpreter, and one without is run by /bin/sh.
/// What it changed is unknown; a non-zero exit fails the run with its output.
public struct RunScript: RegisteredOperation {
    public static let name = "run"
    public static let sourceFile = #filePath
    public static let summary = "Copy a host script into the guest's /tmp and execute it there (its #! line, else /bin/sh)"
    public static let argumentIsHostFile = true
    public static let argument = OperationArgument.required(syntax: "SCRIPT", example: "./setup.sh")

    /// The script's path on the host.
    public let script: String
    public var target: String { script }

    public init(_ script: String) { self.script = script }

    public static func parse(_ argument: String?) throws -> RunScript {
        RunScript(try required(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        // A tree is refused before anything is written into it.
        let commands = try guest.commands(for: Self.name)
        let content = try hostScript(script, for: Self.name, guest: guest)
        let copy = try guestTemporaryPath(guest, prefix: "imgcustomize-run")
        try guest.write(copy, content, mode: 0o700)
        let ran = Result { try commands.run(copy, operation: Self.name) }
        try guest.remove(copy, recursive: false)
        var result = try ran.get()
        result.command = script
        guard result.exitStatus == 0 else {
            throw GuestCommandFailure(guest: guest.guestDescription, operation: Self.name, result: result)
        }
        return .ran(result, "exit status 0")
    }
}

/// The content of a host script an operation copies into the guest, or an error naming it.
func hostScript(_ path: String, for operation: String, guest: GuestFilesystem) throws -> [UInt8] {
    do {
        return try HostFiles.read(path).content
    } catch let error as SystemCallError {
        throw GuestError(guest: guest.guestDescription, action: "\(operation): read the host script", path: path,
                         message: error.message, hint: "give the path of a readable file on this host")
    }
}

/// A path in the guest's /tmp that nothing uses, for a file a step copies in and removes again; /tmp is created
/// (mode 1777) when the guest has none.
func guestTemporaryPath(_ guest: GuestFilesystem, prefix: String, suffix: String = "") throws -> String {
    if try !guest.isDirectory("/tmp") { try guest.mkdir("/tmp", mode: 0o1777, parents: false) }
    while true {
        let path = "/tmp/\(prefix)-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))\(suffix)"
        if try !guest.exists(path) { return path }
    }
}
