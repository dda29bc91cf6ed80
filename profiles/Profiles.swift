import Customize
import Operations

/// The profiles `imgcustomize apply` knows by name.
public enum BuiltinProfiles {
    public static let all: [Profile] = [cloud, rhel9Cloud, rhel8Cloud, rhel7Cloud, rhel6Cloud, fedoraCloud, debianCloud,
                                        ubuntuCloud, windowsCloud, sysprep]

    public static func named(_ name: String) -> Profile? { all.first { $0.name == name } }

    /// Every virt-sysprep default operation that applies to the guest, plus what cloud images need on top:
    /// cloud-init instance state, UUID= and HWADDR= in ifcfg files, and /etc/machine-id emptied (nothing later in
    /// the run refills it).
    public static let sysprep = sysprep(selecting: .defaults)

    /// The `sysprep` profile running the operations `selection` chose (`apply sysprep --operations`, `--enable`).
    public static func sysprep(selecting selection: SysprepSelection) -> Profile {
        Profile("sysprep", summary: "Reset a guest so clones do not share identity, logs, keys or caches (virt-sysprep's defaults and more)"
        ) { guest in
            for operation in sysprepOperations(for: guest, selection: selection) { operation }
        }
    }

    /// Section 1.2.1.2.1 of Red Hat OpenStack Platform's Image Service guide, offline.
    public static let rhel7Cloud = Profile(
        "rhel7-cloud", summary: "Prepare a RHEL 7 guest as an OpenStack cloud image (Image Service guide, 1.2.1.2.1)",
        requires: .distro("rhel", major: 7), output: .compressedQCOW2
    ) { _ in
        cloudCommon
        Group("serial console (step 11)") {
            AppendGrubArgs(consoleArguments)
        }
        cloudCleanup
    }

    /// Section 1.2.1.2.2 of the same guide: RHEL 6, legacy GRUB, and the udev rule that keeps eth0 eth0.
    public static let rhel6Cloud = Profile(
        "rhel6-cloud", summary: "Prepare a RHEL 6 guest as an OpenStack cloud image (Image Service guide, 1.2.1.2.2)",
        requires: .distro("rhel", major: 6), output: .compressedQCOW2
    ) { _ in
        cloudCommon
        Group("persistent network names (step 10)") {
            WriteFile("/etc/udev/rules.d/75-persistent-net-generator.rules", text: "#\n")
        }
        Group("serial console (step 12)") {
            AppendGrubArgs(consoleArguments)
        }
        cloudCleanup
    }

    static let consoleArguments = ["console=tty0", "console=ttyS0,115200n8"]

    /// The steps the RHEL 6 and 7 profiles share, up to the console arguments.
    static let cloudCommon = redHatCloud(network: Group("network (step 4)") {
        WriteLines("/etc/sysconfig/network-scripts/ifcfg-eth0",
                   lines: ["TYPE=Ethernet", "DEVICE=eth0", "ONBOOT=yes", "BOOTPROTO=dhcp", "NM_CONTROLLED=no"])
    }, installer: "yum")

    /// Steps 4 to 9 of the guide and NOZEROCONF, for a release whose network stack is `network` and whose package
    /// manager is `installer`; `subscribed`: whether the guest registers with Red Hat's CDN first (not Fedora).
    static func redHatCloud(network: Group, installer: String, subscribed: Bool = true) -> Group {
        Group("cloud image") {
            network
            if subscribed {
                cloudInitInstalled("register, update, install cloud-init (steps 6-8)",
                                   offline: "subscription-manager register and \(installer) -y update",
                                   install: "\(installer) install -y", growpart: "cloud-utils-growpart")
            } else {
                cloudInitInstalled("update, install cloud-init (steps 7-8)", offline: "\(installer) -y upgrade",
                                   install: "\(installer) install -y", growpart: "cloud-utils-growpart")
            }
            Group("cloud-init resolv.conf (step 9)") {
                YAMLListAdd("/etc/cloud/cloud.cfg", key: "cloud_init_modules", item: "resolv-conf")
            }
            Group("EC2 metadata service (NOZEROCONF)") {
                SetLine("/etc/sysconfig/network", key: "NOZEROCONF", value: "yes")
            }
        }
    }

    /// Steps 6-8: what needs a running guest with network is noted; cloud-init and growpart are checked.
    static func cloudInitInstalled(_ heading: String, offline: String, install: String, growpart: String) -> Group {
        Group(heading) {
            Note("\(offline) need a running guest with network: update the image before customizing it")
            CheckInstalled("cloud-init", paths: ["/usr/bin/cloud-init"],
                           hint: "instances will not get their SSH keys; install it (\(install) \(growpart) cloud-init) before customizing")
            CheckInstalled(growpart, paths: ["/usr/bin/growpart"],
                           hint: "the root partition will not grow to the flavor's disk; install it (\(install) \(growpart))")
        }
    }

    /// Unregistering, locking root, sysprep and trimming: the end of the RHEL procedures.
    static let cloudCleanup = cleanup(
        Group("subscription clean-up (subscription-manager repos --disable=*, unregister, yum clean all)") {
            DisableRepos()
            Delete("/etc/pki/consumer/*")
            Delete("/etc/pki/entitlement/*")
            PackageManagerCache()
        })

    /// `packages` (what becomes of the repositories and the package cache), then locking root, sysprep, trimming.
    static func cleanup(_ packages: Group) -> Group {
        Group("clean-up") {
            packages
            Group("root account (1.2.1.1: !! in /etc/shadow)") {
                LockRoot()
            }
            sysprep
            Group("virt-sparsify --compress") {
                TrimFreeSpace()
            }
        }
    }
}
