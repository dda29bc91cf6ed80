/// `inject-qemu-ga`: the QEMU guest agent (qemu-guest-agent), which lets the host freeze filesystems for snapshots,
/// read the guest's addresses and shut it down cleanly, installed with the guest's own package manager when it is
/// not installed already, and enabled at boot. virt-customize's `--inject-qemu-ga METHOD` does this for Windows
/// guests from the virtio-win drivers; on Linux the distribution's own package is the agent, so there is no
/// method to give. A guest that lacks it needs `--network`, or its repositories mirrored in the guest. What the
/// package manager changed is unknown; a non-zero exit fails the run with its output.
public struct InjectQemuGA: RegisteredOperation {
    public static let name = "inject-qemu-ga"
    public static let sourceFile = #filePath
    public static let summary = "Install the QEMU guest agent from the guest's repositories unless it is there, and enable it at boot"
    public static let argument = OperationArgument.none
    static let package = "qemu-guest-agent"

    public var target: String { Self.package }

    public init() {}

    public static func parse(_ argument: String?) throws -> InjectQemuGA {
        try noArgument(argument)
        return InjectQemuGA()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let commands = try guest.commands(for: Self.name)
        let manager = try PackageManager.of(context.guest, in: guest.guestDescription, operation: Self.name)
        let installed = manager == .apt
            ? "dpkg-query -W -f='${Status}' \(Self.package) 2>/dev/null | grep -q 'install ok installed'"
            : "rpm -q \(Self.package) >/dev/null 2>&1"
        // systemd guests start the agent from a udev rule for its virtio port (the unit has no [Install] on some
        // distributions, and `enable` then only says so); RHEL 6 from its init script.
        let enable = """
            if command -v systemctl >/dev/null 2>&1; then systemctl enable \(Self.package).service; \
            elif command -v chkconfig >/dev/null 2>&1; then chkconfig qemu-ga on; fi
            """
        let script = "if \(installed); then echo '\(Self.package) is installed already'; else "
            + manager.install([Self.package], network: commands.network) + "; fi && " + enable
        let result = try guest.runChecked(
            script, operation: Self.name,
            hint: commands.network ? nil : "the guest lacks \(Self.package): give --network so that its package "
                + "manager can reach the guest's repositories")
        let already = result.output.contains("\(Self.package) is installed already")
        return .ran(result, already ? "\(Self.package) was installed already; enabled at boot"
                        : "installed \(Self.package) with \(manager.rawValue); enabled at boot")
    }
}
