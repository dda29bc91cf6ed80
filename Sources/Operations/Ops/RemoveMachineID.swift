/// `remove-machine-id`: /etc/machine-id emptied to zero bytes, systemd's signal to generate a new id at first boot,
/// so that clones of the image do not share one; /var/lib/dbus/machine-id too when it is a file of its own (a
/// symlink to /etc/machine-id is left as it is).
public struct RemoveMachineID: RegisteredOperation {
    public static let name = "remove-machine-id"
    public static let summary = "Empty /etc/machine-id so each clone generates its own at first boot"
    public static let argument = OperationArgument.none
    public static let sysprep = SysprepDefault.virtSysprep(as: "machine-id")
    static let paths = ["/etc/machine-id", "/var/lib/dbus/machine-id"]

    public init() {}

    public var target: String { "/etc/machine-id" }

    public static func parse(_ argument: String?) throws -> RemoveMachineID {
        try noArgument(argument)
        return RemoveMachineID()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        var emptied: [String] = []
        for path in Self.paths {
            guard let status = try guest.lstat(path), status.kind == .regular, status.size > 0 else { continue }
            try guest.truncate(path, size: 0)
            emptied.append(path)
        }
        if emptied.isEmpty { return .unchanged("machine-id already empty") }
        return .changed("emptied " + emptied.joined(separator: ", "))
    }
}
