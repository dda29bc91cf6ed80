import Customize
import Operations

extension BuiltinProfiles {
    /// RHEL 8 and 9 and the distributions rebuilt from them, as libguestfs names them (AlmaLinux is "redhat-based").
    static let enterpriseLinux = ["rhel", "centos", "rocky", "redhat-based", "oraclelinux"]

    static let networkManagerProfiles = "/usr/lib/NetworkManager/system-connections"

    /// A NetworkManager keyfile taking the first Ethernet NIC by DHCP (RHEL 9, Fedora), for NetworkManager's read-only
    /// directory for profiles the image ships: sysprep's net-nmconn empties /etc/NetworkManager/system-connections (the
    /// build machine's profiles), and a profile cloud-init writes there at first boot overrides this one. No
    /// interface-name: it takes the first Ethernet NIC that appears, whatever the cloud names it.
    static let cloudDHCPKeyfile = (path: "\(networkManagerProfiles)/cloud-dhcp.nmconnection", text: """
        [connection]
        id=cloud-dhcp
        type=ethernet
        autoconnect=true

        [ipv4]
        method=auto

        [ipv6]
        method=auto

        """)

    /// The guide's RHEL 7 procedure (1.2.1.2.1) in RHEL 9's files: NetworkManager keyfiles instead of ifcfg, dnf,
    /// and kernel arguments kept per BLS entry and in /etc/kernel/cmdline (for kernels installed later).
    public static let rhel9Cloud = enterpriseLinuxCloud(
        major: 9, rebuilds: "CentOS Stream, Rocky, AlmaLinux, Oracle Linux 9",
        network: Group("network (step 4): DHCP on the first NIC, a NetworkManager keyfile") {
            MakeDirectory(networkManagerProfiles)
            WriteFile(cloudDHCPKeyfile.path, text: cloudDHCPKeyfile.text, mode: 0o600)
        },
        console: "every BLS entry, /etc/kernel/cmdline, /etc/default/grub")

    /// The same procedure in RHEL 8's files: ifcfg still (read by NetworkManager's ifcfg-rh plugin, so not
    /// NM_CONTROLLED=no: RHEL 8 has no network-scripts by default), and the kernel arguments in grubenv's
    /// kernelopts, which RHEL 8's BLS entries refer to.
    public static let rhel8Cloud = enterpriseLinuxCloud(
        major: 8, rebuilds: "CentOS, Rocky, AlmaLinux, Oracle Linux 8",
        network: Group("network (step 4): DHCP on eth0, an ifcfg file NetworkManager reads") {
            WriteLines("/etc/sysconfig/network-scripts/ifcfg-eth0",
                       lines: ["TYPE=Ethernet", "DEVICE=eth0", "ONBOOT=yes", "BOOTPROTO=dhcp"])
        },
        console: "kernelopts in grubenv, every BLS entry, /etc/default/grub")

    /// A dnf release's cloud profile: its network stack's step 4, the shared steps, the console where `console`
    /// says, the clean-up.
    static func enterpriseLinuxCloud(major: Int, rebuilds: String, network: Group, console: String) -> Profile {
        Profile("rhel\(major)-cloud",
                summary: "Prepare a RHEL \(major) guest (or \(rebuilds)) as an OpenStack cloud image (the guide's steps in RHEL \(major)'s files)",
                requires: .distros(enterpriseLinux, major: major), output: .compressedQCOW2) { _ in
            redHatCloud(network: network, installer: "dnf")
            Group("serial console (step 11): \(console)") {
                AppendGrubArgs(consoleArguments)
            }
            cloudCleanup
        }
    }
}
