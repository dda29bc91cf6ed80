import Customize
import Operations

extension BuiltinProfiles {
    public static let debianCloud = debianFamilyCloud(
        "debian-cloud", distro: "debian",
        summary: "Prepare a Debian guest as an OpenStack cloud image (the guide's steps in Debian's files)")

    public static let ubuntuCloud = debianFamilyCloud(
        "ubuntu-cloud", distro: "ubuntu",
        summary: "Prepare an Ubuntu guest as an OpenStack cloud image (the guide's steps in Ubuntu's files)")

    /// cloud-init's datasources for OpenStack: the config drive, then the metadata service, after a local NoCloud
    /// seed (a `cidata` volume, as Debian's own cloud images keep first; `boot-check` boots with one, and where
    /// there is none ds-identify passes over it at once). Sorted after the distributions' own cloud.cfg.d files
    /// (90_dpkg.cfg, 90_image.cfg), so this list is the one cloud-init uses; one line, as ds-identify reads it.
    static let openStackDatasources = """
        # A local NoCloud seed, else OpenStack: the config drive, then the metadata service (imgcustomize's
        # debian-cloud and ubuntu-cloud).
        datasource_list: [ NoCloud, ConfigDrive, OpenStack, None ]

        """

    /// The guide's intent where Debian's and Ubuntu's files differ from RHEL's: no ifcfg (cloud-init renders DHCP on
    /// the first NIC at first boot, once the build machine's rendering is gone), no resolv-conf module or NOZEROCONF
    /// (cloud-init does not support resolv_conf on either, and neither adds a zeroconf route), and
    /// update-grub's files for the console. Sysprep then removes apt's lists, DHCP leases and the rest.
    static func debianFamilyCloud(_ name: String, distro: String, summary: String) -> Profile {
        Profile(name, summary: summary, requires: .distro(distro), output: .compressedQCOW2) { _ in
            Group("cloud image") {
                cloudInitInstalled("update, install cloud-init (steps 6-8)",
                                   offline: "apt-get update && apt-get -y upgrade", install: "apt-get install -y",
                                   growpart: "cloud-guest-utils")
                Group("network (step 4): DHCP on the first NIC, rendered by cloud-init at first boot") {
                    CloudInitNetwork()
                }
                Group("cloud-init datasources: OpenStack's config drive and metadata service") {
                    WriteFile("/etc/cloud/cloud.cfg.d/91_openstack.cfg", text: openStackDatasources)
                }
                Group("serial console (step 11): /etc/default/grub and the generated grub.cfg") {
                    AppendGrubArgs(consoleArguments)
                }
            }
            Group("clean-up") {
                Group("root account (1.2.1.1: a locked password in /etc/shadow)") {
                    LockRoot()
                }
                sysprep
                Group("virt-sparsify --compress") {
                    TrimFreeSpace()
                }
            }
        }
    }
}
