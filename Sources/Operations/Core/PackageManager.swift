import Host

/// The guest's package manager, as inspection names it (`GuestFacts.packageManagement`), and the commands the
/// package operations run with it inside the guest. Without a network, dnf and yum are told to use no repository
/// (local package files still install) and zypper not to refresh its metadata, rather than time out on each one.
enum PackageManager: String, CaseIterable {
    case dnf, yum, apt, zypper

    /// The package manager of the inspected guest, or an error saying which one it has.
    static func of(_ guest: GuestFacts, in description: String, operation: String) throws -> PackageManager {
        guard let name = guest.packageManagement, let manager = PackageManager(rawValue: name) else {
            throw GuestError(guest: description, action: operation,
                             message: "the guest's package manager is \(guest.packageManagement ?? "unknown"); "
                                + "\(operation) works with " + allCases.map(\.rawValue).joined(separator: ", "),
                             hint: "run the guest's own tool with run-command")
        }
        return manager
    }

    /// The extension of the package files it installs.
    var fileExtension: String { self == .apt ? ".deb" : ".rpm" }

    /// Installs `packages`: names from its repositories, or paths of package files already in the guest.
    func install(_ packages: [String], network: Bool) -> String {
        switch self {
        case .apt:
            (network ? "\(Self.aptGet) update && " : "") + "\(Self.aptGet) -o Dpkg::Options::=--force-confnew install "
                + quoted(packages)
        case .dnf, .yum: "\(rawValue) -y\(network ? "" : " --disablerepo='*'") install " + quoted(packages)
        case .zypper: "zypper -n\(network ? "" : " --no-refresh") install " + quoted(packages)
        }
    }

    func uninstall(_ packages: [String], network: Bool) -> String {
        switch self {
        case .apt: "\(Self.aptGet) remove " + quoted(packages)
        case .dnf, .yum: "\(rawValue) -y\(network ? "" : " --disablerepo='*'") remove " + quoted(packages)
        case .zypper: "zypper -n\(network ? "" : " --no-refresh") remove " + quoted(packages)
        }
    }

    /// Updates every installed package (which needs the network).
    var update: String {
        switch self {
        case .apt: "\(Self.aptGet) update && \(Self.aptGet) -o Dpkg::Options::=--force-confnew upgrade"
        case .dnf: "dnf -y --best upgrade"
        case .yum: "yum -y update"
        case .zypper: "zypper -n update"
        }
    }

    /// apt-get with no question asked.
    private static let aptGet = "DEBIAN_FRONTEND=noninteractive apt-get -q -y"

    private func quoted(_ words: [String]) -> String {
        words.map(shellQuoted).joined(separator: " ")
    }
}
