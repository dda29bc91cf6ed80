/// `remove-machine-id[=empty|uninitialized]`: virt-sysprep's machine-id, so that clones of the image do not share
/// one. /etc/machine-id is left either empty (the default, virt-sysprep's) or holding `uninitialized`; both make
/// systemd generate a fresh id at first boot. Only `uninitialized` (or a missing file) also makes that boot a
/// "first boot" that runs ConditionFirstBoot= units (systemd issue 8268; systemd 247 and later): on it systemd
/// applies its presets to every unit (re-enabling or disabling what the customization chose) and starts
/// systemd-firstboot, and systemd before 247 (RHEL 7 and 8) takes the word for a corrupt id. Cloud images get their
/// first-boot work from cloud-init, which keys on the instance id instead, so the empty file is the default.
/// /var/lib/dbus/machine-id is emptied either way when it is a file of its own (a symlink to /etc/machine-id is
/// left as it is); dbus regenerates an empty one.
public struct RemoveMachineID: RegisteredOperation, Equatable {
    public static let name = "remove-machine-id"
    public static let sourceFile = #filePath
    public static let summary = "Reset /etc/machine-id so each clone generates its own at first boot: empty (the default, works on every systemd, no first-boot presets) or =uninitialized (also runs ConditionFirstBoot= units, systemd 247+)"
    public static let argument = OperationArgument.optional(syntax: "empty|uninitialized", example: "uninitialized")
    public static let sysprep = SysprepDefault.virtSysprep(as: "machine-id")
    static let path = "/etc/machine-id"
    static let dbusPath = "/var/lib/dbus/machine-id"

    public enum Mode: String, Sendable, CaseIterable {
        case empty, uninitialized

        var content: String { self == .empty ? "" : "uninitialized\n" }
    }

    public var mode: Mode

    public init(_ mode: Mode = .empty) { self.mode = mode }

    public var target: String { Self.path }

    public static func parse(_ argument: String?) throws -> RemoveMachineID {
        guard let argument else { return RemoveMachineID() }
        guard let mode = Mode(rawValue: argument) else {
            throw invalid("unknown value \"\(argument)\": use empty or uninitialized")
        }
        return RemoveMachineID(mode)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        var done: [String] = []
        // stat, not lstat: a machine-id that is a symlink (to a file the guest keeps elsewhere) is judged by the
        // file it leads to, inside the guest, and that file is what truncate and write change.
        if try guest.stat(Self.path)?.kind == .regular, try !guest.holds(Self.path, exactly: Array(mode.content.utf8)) {
            if mode == .empty {
                try guest.truncate(Self.path, size: 0)
            } else {
                try guest.write(Self.path, Array(mode.content.utf8), mode: 0o444)
            }
            done.append(mode == .empty ? "emptied \(Self.path)" : "wrote uninitialized to \(Self.path)")
        }
        if let status = try guest.lstat(Self.dbusPath), status.kind == .regular, status.size > 0 {
            try guest.truncate(Self.dbusPath, size: 0)
            done.append("emptied \(Self.dbusPath)")
        }
        if done.isEmpty { return .unchanged("machine-id already \(mode.rawValue)") }
        return .changed(done.joined(separator: ", "))
    }
}

extension RemoveMachineID: CommandLineRepresentable {
    public func commandLines() throws -> [String] { [mode == .empty ? Self.name : "\(Self.name):\(mode.rawValue)"] }
}
