/// `script SCRIPT`: virt-sysprep's `--script`: a host script run against the guest with its current directory at
/// the guest's root, so that relative paths (`rm etc/resolv.conf`) are the guest's. virt-sysprep mounts the guest on
/// the host through FUSE; this tool never does, so the script runs inside the appliance, not chrooted, from the
/// mounted guest's root, with the appliance's programs: supermin builds the appliance from this host's packages, so
/// they are the host's sh, sed, awk and coreutils, whatever the guest has (or lacks). An absolute path is the
/// appliance's, not the host's or the guest's. Its `#!` line names the appliance's interpreter; one without is run
/// by /bin/sh. What it changed is unknown; a non-zero exit fails the run with its output.
public struct Script: RegisteredOperation {
    public static let name = "script"
    public static let sourceFile = #filePath
    public static let summary = "Run a host script inside the appliance with the appliance's (host's) programs, its current directory the guest's root"
    public static let argumentIsHostFile = true
    public static let argument = OperationArgument.required(syntax: "SCRIPT", example: "./clean-guest.sh")
    public static let sysprep = SysprepDefault.virtSysprepOnRequest(as: name)

    /// The script's path on the host.
    public let script: String
    public var target: String { script }

    public init(_ script: String) { self.script = script }

    public static func parse(_ argument: String?) throws -> Script {
        Script(try required(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard let commands = guest.commands else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: script,
                             message: "a directory tree has no appliance to run the script in",
                             hint: "run script on an image; on a tree, run the script yourself from the tree's root "
                                + "directory")
        }
        // Refused with the path's own problem before anything is uploaded.
        _ = try hostScript(script, for: Self.name, guest: guest)
        let result = try guest.succeeded(try commands.runInAppliance(hostScript: script, operation: Self.name),
                                         operation: Self.name)
        return .ran(result, "exit status 0")
    }
}
