/// `update`: every installed package updated with the guest's own package manager from its repositories, as
/// virt-customize's `--update`; it needs `--network`. What it changed is unknown; a non-zero exit fails the run with
/// the package manager's output.
public struct Update: RegisteredOperation {
    public static let name = "update"
    public static let sourceFile = #filePath
    public static let summary = "Update every package from the guest's repositories (needs --network)"
    public static let argument = OperationArgument.none

    public var target: String { "" }

    public init() {}

    public static func parse(_ argument: String?) throws -> Update {
        try noArgument(argument)
        return Update()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let commands = try guest.commands(for: Self.name)
        let manager = try PackageManager.of(context.guest, in: guest.guestDescription, operation: Self.name)
        guard commands.network else {
            throw GuestError(guest: guest.guestDescription, action: Self.name,
                             message: "updating packages needs the guest's repositories, and the appliance has no "
                                + "network (the default)",
                             hint: "give --network")
        }
        let result = try guest.runChecked(manager.update, operation: Self.name)
        return .ran(result, "updated every package with \(manager.rawValue)")
    }
}
