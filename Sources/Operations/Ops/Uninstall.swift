/// `uninstall PKG,...`: packages removed with the guest's own package manager, as virt-customize's `--uninstall`.
/// What it changed is unknown; a non-zero exit fails the run with the package manager's output.
public struct Uninstall: RegisteredOperation {
    public static let name = "uninstall"
    public static let sourceFile = #filePath
    public static let summary = "Remove packages with the guest's package manager (dnf, yum, apt, zypper)"
    public static let argument = OperationArgument.required(syntax: "PKG,...", example: "NetworkManager,firewalld")

    public let packages: [String]
    public var target: String { packages.joined(separator: ",") }

    public init(_ packages: [String]) { self.packages = packages }

    public static func parse(_ argument: String?) throws -> Uninstall {
        Uninstall(try packageList(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let commands = try guest.commands(for: Self.name)
        let manager = try PackageManager.of(context.guest, in: guest.guestDescription, operation: Self.name)
        let result = try guest.runChecked(manager.uninstall(packages, network: commands.network), operation: Self.name)
        return .ran(result, "removed \(target) with \(manager.rawValue)")
    }
}
