/// The network configuration cloud-init rendered from the build machine's datasource (netplan on Ubuntu, ifupdown
/// on Debian) names that machine's NIC and often its MAC address: it is removed, and cloud-init renders the
/// instance's at its first boot (DHCP on the first NIC when the cloud says nothing). A netplan file cloud-init did
/// not write is the user's and stays, but one that matches a NIC by MAC address is reported: no instance has that MAC.
public struct CloudInitNetwork: RegisteredOperation {
    public static let name = "cloud-init-network"
    public static let sourceFile = #filePath
    public static let summary = "Remove the network configuration cloud-init rendered on the build machine; warn about netplan MAC matches"
    public static let argument = OperationArgument.none
    public static let sysprep = SysprepDefault.cloudImages

    /// The first line of every file cloud-init renders (cloudinit/net/netplan.py, eni.py).
    static let renderedHeader = "# This file is generated from information provided by the datasource."
    static let locations = ["/etc/netplan/*.yaml", "/etc/network/interfaces.d/*"]

    public var target: String { "" }

    public init() {}

    public static func parse(_ argument: String?) throws -> CloudInitNetwork {
        try noArgument(argument)
        return CloudInitNetwork()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        var removed: [String] = []
        var matchingMAC: [String] = []
        for pattern in Self.locations {
            for path in try guest.glob(pattern) where try guest.lstat(path)?.kind == .regular {
                let text = try guest.readText(path)
                if text.hasPrefix(Self.renderedHeader) {
                    try guest.remove(path, recursive: false)
                    removed.append(path)
                } else if path.hasPrefix("/etc/netplan/"),
                          text.split(separator: "\n").contains(where: { $0.trimmed.hasPrefix("macaddress:") }) {
                    matchingMAC.append(path)
                }
            }
        }
        let warning = matchingMAC.isEmpty ? nil
            : "\(matchingMAC.joined(separator: ", ")) match a NIC by MAC address: no instance has that MAC, so its NIC "
                + "stays unconfigured; match by name (match: {name: \"en*\"}) or remove the file"
        let summary = removed.isEmpty ? "no network configuration rendered by cloud-init"
            : "removed " + removed.joined(separator: ", ")
        return OperationOutcome(changed: removed.isEmpty ? .no : .yes, summary: warning.map { "\(summary); \($0)" } ?? summary,
                                warning: warning)
    }
}
