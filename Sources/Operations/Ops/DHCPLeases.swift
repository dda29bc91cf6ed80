/// The DHCP leases of the clients virt-sysprep's dhcp-client-state (dhclient's /var/lib/dhclient, /var/lib/dhcp)
/// does not know: dhcpcd (cloud-init's DHCP client on Ubuntu 24.04) and NetworkManager's internal client. A clone
/// booting with the build machine's lease asks for its address.
public struct DHCPLeases: CleanupOperation {
    public static let name = "dhcp-leases"
    public static let sourceFile = #filePath
    public static let sysprep = SysprepDefault.cloudImages
    public static let summary = "Remove dhcpcd's and NetworkManager's DHCP leases"
    public static let steps: [CleanupStep] = [
        .removeFiles("/var/lib/dhcpcd/*.lease"), .removeFiles("/var/lib/dhcpcd/*.lease6"),
        .removeFiles("/var/lib/NetworkManager/*.lease"),
    ]
    public init() {}
}
