import Foundation
import Testing
import TestSupport
@testable import Customize
import Operations
import Profiles

/// A copy of the fixture trees the images are built from (Fixtures/trees), layered as Fixtures/build-images layers
/// them, with what the build adds that the profiles read (subscription certificates).
func fixtureTree(_ layers: [String]) throws -> TestDirectory {
    let directory = try TestDirectory("distro-tree")
    for layer in layers {
        _ = try runTool("cp", ["-a", packageRoot.appendingPathComponent("Fixtures/trees/\(layer)").path + "/.",
                               directory.path])
    }
    return directory
}

private extension TestDirectory {
    func text(_ path: String) throws -> String { try String(contentsOfFile: self.path(path), encoding: .utf8) }
    func exists(_ path: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: self.path(path))) != nil
    }
    func files(under path: String) -> [String] {
        (FileManager.default.enumerator(atPath: self.path(path))?.compactMap { $0 as? String } ?? [])
            .filter { name in
                var isDirectory: ObjCBool = false
                return FileManager.default.fileExists(atPath: self.path("\(path)/\(name)"), isDirectory: &isDirectory)
                    && !isDirectory.boolValue
            }.sorted()
    }
    func write(_ path: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: (self.path(path) as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: self.path(path), atomically: true, encoding: .utf8)
    }
    /// Network (step 4) on RHEL 9 and Fedora: a keyfile NetworkManager loads (root-only) taking the first Ethernet NIC
    /// by DHCP.
    func expectCloudDHCPKeyfile(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let keyfile = "usr/lib/NetworkManager/system-connections/cloud-dhcp.nmconnection"
        let connection = try text(keyfile)
        #expect(connection.contains("[connection]\nid=cloud-dhcp\ntype=ethernet\nautoconnect=true\n"),
                sourceLocation: sourceLocation)
        #expect(connection.contains("[ipv4]\nmethod=auto\n") && !connection.contains("interface-name"),
                sourceLocation: sourceLocation)
        let mode = try FileManager.default.attributesOfItem(atPath: path(keyfile))[.posixPermissions] as? Int
        #expect(mode == 0o600, sourceLocation: sourceLocation)
    }

    /// Every path below the tree with its content, for "unchanged" checks.
    func snapshot() throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in files(under: "") { result[name] = FileManager.default.contents(atPath: self.path(name)) ?? Data() }
        return result
    }
}

private let console = "console=tty0 console=ttyS0,115200n8"

/// What quick inspection and libguestfs report for the fixtures (Fixtures/lib.sh's expectations).
enum DistroGuests {
    static let rhel9 = GuestFacts(type: "linux", distro: "rhel", majorVersion: 9, minorVersion: 4, osinfo: "rhel9.4",
                                  productName: "Red Hat Enterprise Linux 9.4 (Plow)", packageFormat: "rpm",
                                  packageManagement: "dnf")
    static let rocky9 = GuestFacts(type: "linux", distro: "rocky", majorVersion: 9, minorVersion: 4, osinfo: "rocky9",
                                   productName: "Rocky Linux 9.4 (Blue Onyx)", packageFormat: "rpm",
                                   packageManagement: "dnf")
    static let rhel8 = GuestFacts(type: "linux", distro: "rhel", majorVersion: 8, minorVersion: 10, osinfo: "rhel8.10",
                                  productName: "Red Hat Enterprise Linux 8.10 (Ootpa)", packageFormat: "rpm",
                                  packageManagement: "dnf")
    static let fedora40 = GuestFacts(type: "linux", distro: "fedora", majorVersion: 40, minorVersion: 0,
                                     osinfo: "fedora40", productName: "Fedora Linux 40 (Cloud Edition)",
                                     packageFormat: "rpm", packageManagement: "dnf")
    static let debian12 = GuestFacts(type: "linux", distro: "debian", majorVersion: 12, minorVersion: 7,
                                     osinfo: "debian12", productName: "12.7", packageFormat: "deb",
                                     packageManagement: "apt")
    static let ubuntu2404 = GuestFacts(type: "linux", distro: "ubuntu", majorVersion: 24, minorVersion: 4,
                                       osinfo: "ubuntu24.04", productName: "Ubuntu 24.04.1 LTS", packageFormat: "deb",
                                       packageManagement: "apt")
}

/// A second run of a profile: no step changes anything but the random seed, which gets new bytes every run.
private func expectNothingChangedButTheSeed(_ report: RunReport, sourceLocation: SourceLocation = #_sourceLocation) {
    for step in report.steps {
        #expect(step.changed == (step.operation == "random-seed" ? .yes : .no),
                "\(step.operation) \(step.target): \(step.summary)", sourceLocation: sourceLocation)
    }
}

@Suite struct DistroProfileTests {
    struct EL9: Sendable, CustomTestStringConvertible {
        var layers: [String]
        var guest: GuestFacts
        var repoFile: String
        var testDescription: String { layers.last ?? "" }
    }

    static let el9 = [EL9(layers: ["common", "el9", "rhel9"], guest: DistroGuests.rhel9,
                          repoFile: "etc/yum.repos.d/redhat.repo"),
                      EL9(layers: ["common", "el9", "rocky9"], guest: DistroGuests.rocky9,
                          repoFile: "etc/yum.repos.d/rocky.repo")]

    /// Every step of rhel9-cloud read back from the guest's files, then a second run that changes nothing.
    @Test(arguments: el9)
    func rhel9CloudOnTheEL9Trees(_ fixture: EL9) throws {
        let tree = try fixtureTree(fixture.layers)
        try tree.write("etc/pki/consumer/cert.pem", "consumer\n")
        try tree.write("etc/pki/entitlement/4873289562218912345.pem", "entitlement\n")
        let report = try Pipeline().apply(BuiltinProfiles.rhel9Cloud, onTree: tree.path, guest: fixture.guest)
        #expect(report.warnings.isEmpty, "\(report.warnings)")

        try tree.expectCloudDHCPKeyfile()
        // cloud-init, NOZEROCONF.
        #expect(try tree.text("etc/cloud/cloud.cfg").contains(" - ssh\n - resolv-conf\n\ncloud_config_modules:"))
        #expect(try tree.text("etc/sysconfig/network") == "# Created by anaconda\nNOZEROCONF=yes\n")
        // The console on every BLS entry, in /etc/kernel/cmdline and /etc/default/grub; grub.cfg has no kernel line.
        let entries = tree.files(under: "boot/loader/entries")
        #expect(entries.count == 3)
        for entry in entries {
            let options = try tree.text("boot/loader/entries/\(entry)").split(separator: "\n")
                .filter { $0.hasPrefix("options ") }
            #expect(options.count == 1 && options.allSatisfy { $0.hasSuffix(" \(console)") }, "\(entry)")
        }
        #expect(try tree.text("etc/kernel/cmdline").hasSuffix("rhgb quiet \(console)\n"))
        #expect(try tree.text("etc/default/grub").contains("GRUB_CMDLINE_LINUX_DEFAULT=\"\(console)\""))
        // Repositories disabled, caches and subscription data gone, root locked.
        let repos = try tree.text(fixture.repoFile)
        let sections = repos.split(separator: "\n").filter { $0.hasPrefix("[") }.count
        let disabled = repos.split(separator: "\n").filter { $0.replacingOccurrences(of: " ", with: "") == "enabled=0" }
        #expect(sections >= 3 && disabled.count == sections)
        #expect(tree.files(under: "var/cache/dnf").isEmpty)
        #expect(tree.files(under: "etc/pki/consumer").isEmpty && tree.files(under: "etc/pki/entitlement").isEmpty)
        #expect(try tree.text("etc/shadow").hasPrefix("root:!$6$"))
        // Sysprep: identity, leases, logs, cloud-init's instance.
        #expect(try tree.text("etc/machine-id") == "")
        for gone in ["var/lib/NetworkManager/internal-6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d-eth0.lease",
                     "var/log/dnf.log", "var/log/messages", "var/log/cloud-init.log", "root/anaconda-ks.cfg",
                     "root/.bash_history", "var/lib/cloud/instances", "etc/sysconfig/rhn/systemid"] {
            #expect(!tree.exists(gone), "\(gone)")
        }

        let again = try Pipeline().apply(BuiltinProfiles.rhel9Cloud, onTree: tree.path, guest: fixture.guest)
        expectNothingChangedButTheSeed(again)
    }

    /// RHEL 8: ifcfg for NetworkManager, the console in grubenv's kernelopts (which the BLS entries name, so the
    /// entries stay as they are), the rest as on RHEL 9.
    @Test func rhel8CloudOnTheEL8Tree() throws {
        let tree = try fixtureTree(["common", "el8"])
        let entries = try tree.files(under: "boot/loader/entries").map { try tree.text("boot/loader/entries/\($0)") }
        let report = try Pipeline().apply(BuiltinProfiles.rhel8Cloud, onTree: tree.path, guest: DistroGuests.rhel8)
        #expect(report.warnings.isEmpty, "\(report.warnings)")

        #expect(try tree.text("etc/sysconfig/network-scripts/ifcfg-eth0")
            == "TYPE=Ethernet\nDEVICE=eth0\nONBOOT=yes\nBOOTPROTO=dhcp\n")
        let grubenv = try #require(FileManager.default.contents(atPath: tree.path("boot/grub2/grubenv")))
        #expect(grubenv.count == 1024)
        let kernelopts = String(decoding: grubenv, as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix("kernelopts=") }
        #expect(kernelopts == ["kernelopts=root=UUID=5b2c7a91-0d3e-4f6a-8b1c-2d3e4f5a6b7c ro crashkernel=auto "
                               + "resume=UUID=0c4a1d2e-3f5b-4a6c-8d7e-9f0a1b2c3d4e rhgb quiet \(console)"])
        #expect(try tree.files(under: "boot/loader/entries").map { try tree.text("boot/loader/entries/\($0)") } == entries)
        #expect(try tree.text("etc/default/grub").contains("GRUB_CMDLINE_LINUX_DEFAULT=\"\(console)\""))
        #expect(try tree.text("etc/sysconfig/network").hasSuffix("NOZEROCONF=yes\n"))
        #expect(try tree.text("etc/cloud/cloud.cfg").contains(" - resolv-conf\n"))
        #expect(try !tree.text("etc/yum.repos.d/redhat.repo").contains("enabled = 1"))
        #expect(tree.files(under: "var/cache/dnf").isEmpty && !tree.exists("var/log/dnf.log"))
        #expect(try tree.text("etc/shadow").hasPrefix("root:!$6$"))

        let again = try Pipeline().apply(BuiltinProfiles.rhel8Cloud, onTree: tree.path, guest: DistroGuests.rhel8)
        expectNothingChangedButTheSeed(again)
    }

    /// fedora-cloud: rhel9-cloud's network, cloud-init and console steps in Fedora's files; its public repositories
    /// stay enabled, and nothing of a subscription is asked for.
    @Test func fedoraCloudOnTheFedoraTree() throws {
        let tree = try fixtureTree(["fedora40"])
        try tree.write("etc/ssh/ssh_host_ed25519_key", "build machine's key\n")
        let repos = try ["fedora.repo", "fedora-updates.repo"].map { try tree.text("etc/yum.repos.d/\($0)") }
        let report = try Pipeline().apply(BuiltinProfiles.fedoraCloud, onTree: tree.path, guest: DistroGuests.fedora40)
        #expect(report.warnings.isEmpty, "\(report.warnings)")
        #expect(!report.steps.contains { ["disable-repos", "delete"].contains($0.operation) || $0.summary.contains("subscription") })

        try tree.expectCloudDHCPKeyfile()
        // The build machine's keyfile (cloud-init's, matching its MAC) and its lease are gone.
        #expect(tree.files(under: "etc/NetworkManager/system-connections").isEmpty)
        #expect(tree.files(under: "var/lib/NetworkManager").isEmpty)
        #expect(try tree.text("etc/cloud/cloud.cfg").contains(" - ssh\n - resolv-conf\n\ncloud_config_modules:"))
        #expect(try tree.text("etc/sysconfig/network") == "NOZEROCONF=yes\n")
        let entries = tree.files(under: "boot/loader/entries")
        #expect(entries.count == 3)
        for entry in entries {
            let options = try tree.text("boot/loader/entries/\(entry)").split(separator: "\n")
                .filter { $0.hasPrefix("options ") }
            #expect(options == ["options root=UUID=6d0a5f3c-2b1e-4c9d-8a7f-3e2d1c0b9a87 ro rootflags=subvol=root "
                                + "no_timer_check net.ifnames=0 \(console)"], "\(entry)")
        }
        #expect(try tree.text("etc/kernel/cmdline").hasSuffix("net.ifnames=0 \(console)\n"))
        let grub = try tree.text("etc/default/grub")
        #expect(grub.contains("GRUB_CMDLINE_LINUX_DEFAULT=\"\(console)\"") && grub.contains("GRUB_ENABLE_BLSCFG=true"))
        let grubenv = try #require(FileManager.default.contents(atPath: tree.path("boot/grub2/grubenv")))
        #expect(grubenv.count == 1024)
        // The repositories as they were, dnf's cache gone, root locked.
        #expect(try ["fedora.repo", "fedora-updates.repo"].map { try tree.text("etc/yum.repos.d/\($0)") } == repos)
        #expect(tree.files(under: "var/cache/dnf").isEmpty)
        #expect(try tree.text("etc/shadow").hasPrefix("root:!"))
        #expect(try tree.text("etc/machine-id") == "")
        for gone in ["var/log/dnf.log", "var/log/messages", "var/log/cloud-init.log", "root/.bash_history",
                     "home/fedora/.bash_history", "var/lib/cloud/instances", "etc/ssh/ssh_host_ed25519_key"] {
            #expect(!tree.exists(gone), "\(gone)")
        }

        let again = try Pipeline().apply(BuiltinProfiles.fedoraCloud, onTree: tree.path, guest: DistroGuests.fedora40)
        expectNothingChangedButTheSeed(again)
    }

    struct DebianFamily: Sendable, CustomTestStringConvertible {
        var tree: String
        var profile: String
        var guest: GuestFacts
        var renderedNetwork: String
        var lease: String
        var grubDefault: String
        var testDescription: String { profile }
    }

    static let debianFamily = [
        DebianFamily(tree: "debian12", profile: "debian-cloud", guest: DistroGuests.debian12,
                     renderedNetwork: "etc/network/interfaces.d/50-cloud-init", lease: "var/lib/dhcp/dhclient.ens3.leases",
                     grubDefault: "quiet \(console)"),
        DebianFamily(tree: "ubuntu2404", profile: "ubuntu-cloud", guest: DistroGuests.ubuntu2404,
                     renderedNetwork: "etc/netplan/50-cloud-init.yaml", lease: "var/lib/dhcpcd/enp1s0.lease",
                     grubDefault: "quiet splash \(console)"),
    ]

    @Test(arguments: debianFamily)
    func debianFamilyCloudOnItsTree(_ fixture: DebianFamily) throws {
        let tree = try fixtureTree([fixture.tree])
        // Ubuntu's cloud images set the console again after /etc/default/grub, where update-grub reads it last.
        let cloudImageSettings = "etc/default/grub.d/50-cloudimg-settings.cfg"
        try tree.write(cloudImageSettings, "# Set the recordfail timeout\nGRUB_RECORDFAIL_TIMEOUT=0\n"
                       + "GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 console=ttyS0\"\n")
        let profile = try #require(BuiltinProfiles.named(fixture.profile))
        let report = try Pipeline().apply(profile, onTree: tree.path, guest: fixture.guest)
        #expect(report.warnings.isEmpty, "\(report.warnings)")

        // The console in /etc/default/grub and on every kernel line of the generated grub.cfg.
        #expect(try tree.text("etc/default/grub").contains("GRUB_CMDLINE_LINUX_DEFAULT=\"\(fixture.grubDefault)\""))
        #expect(try tree.text(cloudImageSettings).hasSuffix("GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 console=ttyS0 \(console)\"\n"))
        let kernels = try tree.text("boot/grub/grub.cfg").split(separator: "\n")
            .filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("linux") }
        #expect(kernels.count == 3 && kernels.allSatisfy { $0.trimmingCharacters(in: .whitespaces).hasSuffix(console) })
        // cloud-init: OpenStack's datasources win over the image's list; the build machine's network is gone.
        #expect(try tree.text("etc/cloud/cloud.cfg.d/91_openstack.cfg")
            .contains("\ndatasource_list: [ NoCloud, ConfigDrive, OpenStack, None ]\n"))
        #expect(!tree.exists(fixture.renderedNetwork))
        if fixture.tree == "debian12" { #expect(try tree.text("etc/network/interfaces").contains("iface lo inet loopback")) }
        // apt's lists and caches, leases, root, identity, logs.
        #expect(tree.files(under: "var/lib/apt/lists") == ["lock"])
        #expect(tree.files(under: "var/cache/apt") == ["archives/lock"])
        #expect(!tree.exists(fixture.lease))
        #expect(try tree.text("etc/shadow").hasPrefix("root:!"))
        #expect(try tree.text("etc/machine-id") == "")
        for gone in ["var/log/apt/history.log", "var/log/dpkg.log", "var/log/cloud-init.log", "var/lib/cloud/data",
                     "root/.bash_history", "etc/passwd-", "etc/shadow-"] {
            #expect(!tree.exists(gone), "\(gone)")
        }

        let again = try Pipeline().apply(profile, onTree: tree.path, guest: fixture.guest)
        expectNothingChangedButTheSeed(again)
    }

    /// A netplan file the user wrote stays, and its MAC match is reported: no instance has that MAC.
    @Test func aNetplanMACMatchIsAWarning() throws {
        let tree = try fixtureTree(["ubuntu2404"])
        try tree.write("etc/netplan/01-builder.yaml", """
            network:
              version: 2
              ethernets:
                lan:
                  match:
                    macaddress: "52:54:00:7a:3c:91"
                  dhcp4: true

            """)
        let report = try Pipeline().customize([CloudInitNetwork()], onTree: tree.path, guest: DistroGuests.ubuntu2404)
        #expect(tree.exists("etc/netplan/01-builder.yaml") && !tree.exists("etc/netplan/50-cloud-init.yaml"))
        let warning = try #require(report.steps.first?.warning)
        #expect(warning.hasPrefix("/etc/netplan/01-builder.yaml match a NIC by MAC address"))
    }

    /// `cloud` runs the profile made for each fixture's guest and says which; a guest it has no profile for is
    /// refused before anything changes, naming what it found.
    @Test func cloudPicksPerGuestAndRefusesOthers() throws {
        let rhel7 = GuestFacts(type: "linux", distro: "rhel", majorVersion: 7, minorVersion: 9, osinfo: "rhel7.9",
                               productName: "Red Hat Enterprise Linux Server 7.9 (Maipo)")
        let rhel6 = GuestFacts(type: "linux", distro: "rhel", majorVersion: 6, minorVersion: 10, osinfo: "rhel6.10")
        let alma = GuestFacts(type: "linux", distro: "redhat-based", majorVersion: 9, minorVersion: 4,
                              productName: "AlmaLinux release 9.4 (Seafoam Ocelot)")
        let picks: [(GuestFacts, String)] = [(rhel7, "rhel7-cloud"), (rhel6, "rhel6-cloud"),
                                             (DistroGuests.rhel9, "rhel9-cloud"), (DistroGuests.rocky9, "rhel9-cloud"),
                                             (DistroGuests.rhel8, "rhel8-cloud"),
                                             (alma, "rhel9-cloud"), (DistroGuests.fedora40, "fedora-cloud"),
                                             (DistroGuests.debian12, "debian-cloud"),
                                             (DistroGuests.ubuntu2404, "ubuntu-cloud"),
                                             (GuestFacts(type: "windows", distro: "windows", majorVersion: 10,
                                                         osinfo: "win2k19", productName: "Windows Server 2019 Standard"),
                                              "windows-cloud")]
        for (guest, expected) in picks {
            #expect(BuiltinProfiles.cloudProfile(for: guest)?.name == expected, "\(guest.distro ?? "")")
            let steps = BuiltinProfiles.cloud.steps(for: guest)
            #expect(steps.first?.operation.name == "profile-choice" && steps.first?.operation.target == expected)
            #expect(steps.dropFirst().allSatisfy { $0.path.starts(with: ["cloud", expected]) })
        }

        let tree = try fixtureTree(["common", "el9", "rocky9"])
        let report = try Pipeline().apply(BuiltinProfiles.cloud, onTree: tree.path, guest: DistroGuests.rocky9)
        #expect(report.steps.first?.summary == "chose rhel9-cloud for Rocky Linux 9.4 (Blue Onyx) (rocky9)")

        let suse = GuestFacts(type: "linux", distro: "opensuse", majorVersion: 15, minorVersion: 5,
                              productName: "openSUSE Leap 15.5")
        let other = try fixtureTree(["ubuntu2404"])
        let before = try other.snapshot()
        let failure = try #require(throws: RunFailure.self) {
            try Pipeline().apply(BuiltinProfiles.cloud, onTree: other.path, guest: suse)
        }
        let error = try #require(failure.error as? CustomizeError)
        #expect(error.message.hasPrefix("profile cloud needs a rhel, centos, rocky, redhat-based or oraclelinux 9; rhel, centos, rocky, redhat-based or oraclelinux 8; rhel 7; rhel 6; fedora; "))
        #expect(error.message.hasSuffix("guest, found opensuse 15.5 (openSUSE Leap 15.5)"))
        #expect(error.hint?.contains("no cloud profile for this guest") == true)
        #expect(failure.imageUnchanged && failure.report.steps.isEmpty)
        #expect(try other.snapshot() == before)
    }
}
