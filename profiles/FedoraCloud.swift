import Customize
import Operations

extension BuiltinProfiles {
    /// The guide's RHEL 7 procedure (1.2.1.2.1) in Fedora's files, which RHEL 9's follow: the same NetworkManager
    /// keyfile, cloud-init and console steps as rhel9-cloud (BLS entries with their own options, /etc/kernel/cmdline).
    /// Fedora has no subscription: nothing to unregister, and its repositories stay enabled (they are the public
    /// mirrors, which instances install from); only dnf's cache goes.
    public static let fedoraCloud = Profile(
        "fedora-cloud",
        summary: "Prepare a Fedora guest as an OpenStack cloud image (the guide's steps in Fedora's files)",
        requires: .distro("fedora"), output: .compressedQCOW2
    ) { _ in
        redHatCloud(network: Group("network (step 4): DHCP on the first NIC, a NetworkManager keyfile") {
            MakeDirectory(networkManagerProfiles)
            WriteFile(cloudDHCPKeyfile.path, text: cloudDHCPKeyfile.text, mode: 0o600)
        }, installer: "dnf", subscribed: false)
        Group("serial console (step 11): every BLS entry, /etc/kernel/cmdline, /etc/default/grub") {
            AppendGrubArgs(consoleArguments)
        }
        cleanup(Group("package cache (dnf clean all; the repositories stay enabled)") {
            PackageManagerCache()
        })
    }
}
