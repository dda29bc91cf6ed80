import Testing
@testable import Appliance

/// libguestfs 1.48's conclusions from release files, one distribution each (the fixture tests compare the whole
/// inspection with libguestfs's own on real images).
@Suite struct LinuxReleaseTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var files: [String: String]
        var expected: LinuxRelease?
        var osinfo: String?
        var packageManagement: String?
        var testDescription: String { name }
    }

    static func osRelease(id: String, version: String, pretty: String) -> String {
        "NAME=\"x\"\nID=\"\(id)\"\nVERSION_ID=\"\(version)\"\nPRETTY_NAME=\"\(pretty)\"\n"
    }

    static let cases: [Case] = [
        Case(name: "RHEL 9.4", files: ["/etc/os-release": osRelease(id: "rhel", version: "9.4",
                                                                    pretty: "Red Hat Enterprise Linux 9.4 (Plow)"),
                                       "/etc/redhat-release": "Red Hat Enterprise Linux release 9.4 (Plow)\n"],
             expected: .init(distro: "rhel", major: 9, minor: 4, product: "Red Hat Enterprise Linux 9.4 (Plow)"),
             osinfo: "rhel9.4", packageManagement: "dnf"),
        Case(name: "RHEL 8.10", files: ["/etc/os-release": osRelease(id: "rhel", version: "8.10",
                                                                     pretty: "Red Hat Enterprise Linux 8.10 (Ootpa)")],
             expected: .init(distro: "rhel", major: 8, minor: 10, product: "Red Hat Enterprise Linux 8.10 (Ootpa)"),
             osinfo: "rhel8.10", packageManagement: "dnf"),
        Case(name: "Rocky 9.4", files: ["/etc/os-release": osRelease(id: "rocky", version: "9.4",
                                                                     pretty: "Rocky Linux 9.4 (Blue Onyx)")],
             expected: .init(distro: "rocky", major: 9, minor: 4, product: "Rocky Linux 9.4 (Blue Onyx)"),
             osinfo: "rocky9", packageManagement: "dnf"),
        // VERSION_ID without a minor: CentOS's release file decides, product name included.
        Case(name: "CentOS Stream 9", files: ["/etc/os-release": osRelease(id: "centos", version: "9",
                                                                           pretty: "CentOS Stream 9"),
                                              "/etc/centos-release": "CentOS Stream release 9\n",
                                              "/etc/redhat-release": "CentOS Stream release 9\n"],
             expected: .init(distro: "centos", major: 9, minor: 0, product: "CentOS Stream release 9"),
             osinfo: "centos9", packageManagement: "dnf"),
        // libguestfs 1.48 knows neither ID=almalinux nor ID=ol: the release files decide.
        Case(name: "AlmaLinux 9.4", files: ["/etc/os-release": osRelease(id: "almalinux", version: "9.4",
                                                                         pretty: "AlmaLinux 9.4 (Seafoam Ocelot)"),
                                            "/etc/almalinux-release": "AlmaLinux release 9.4 (Seafoam Ocelot)\n",
                                            "/etc/redhat-release": "AlmaLinux release 9.4 (Seafoam Ocelot)\n"],
             expected: .init(distro: "redhat-based", major: 9, minor: 4, product: "AlmaLinux release 9.4 (Seafoam Ocelot)"),
             osinfo: "redhat-based9.4", packageManagement: "dnf"),
        Case(name: "Oracle Linux 9.3", files: ["/etc/os-release": osRelease(id: "ol", version: "9.3",
                                                                            pretty: "Oracle Linux Server 9.3"),
                                               "/etc/oracle-release": "Oracle Linux Server release 9.3\n",
                                               "/etc/redhat-release": "Red Hat Enterprise Linux release 9.3 (Plow)\n"],
             expected: .init(distro: "oraclelinux", major: 9, minor: 3, product: "Oracle Linux Server release 9.3"),
             osinfo: "oraclelinux9.3", packageManagement: "dnf"),
        Case(name: "Fedora 40", files: ["/etc/os-release": osRelease(id: "fedora", version: "40",
                                                                     pretty: "Fedora Linux 40 (Cloud Edition)"),
                                        "/usr/bin/dnf": ""],
             expected: .init(distro: "fedora", major: 40, minor: 0, product: "Fedora Linux 40 (Cloud Edition)"),
             osinfo: "fedora40", packageManagement: "dnf"),
        // Fedora's own os-release leaves ID and VERSION_ID unquoted, and sets an empty VERSION_CODENAME.
        Case(name: "Fedora 40 Cloud", files: ["/etc/os-release": "NAME=\"Fedora Linux\"\nVERSION=\"40 (Cloud Edition)\"\n"
                                                + "ID=fedora\nVERSION_ID=40\nVERSION_CODENAME=\"\"\n"
                                                + "PRETTY_NAME=\"Fedora Linux 40 (Cloud Edition)\"\nVARIANT_ID=cloud\n",
                                              "/etc/redhat-release": "Fedora release 40 (Forty)\n", "/usr/bin/dnf": ""],
             expected: .init(distro: "fedora", major: 40, minor: 0, product: "Fedora Linux 40 (Cloud Edition)"),
             osinfo: "fedora40", packageManagement: "dnf"),
        // Without os-release, redhat-release's "Fedora release N" (the first line, whole, is the product name).
        Case(name: "Fedora 40 without os-release", files: ["/etc/redhat-release": "Fedora release 40 (Forty)\n"],
             expected: .init(distro: "fedora", major: 40, minor: 0, product: "Fedora release 40 (Forty)"),
             osinfo: "fedora40", packageManagement: "yum"),
        // Debian's os-release has the major version only: /etc/debian_version gives version and product name.
        Case(name: "Debian 12", files: ["/etc/os-release": osRelease(id: "debian", version: "12",
                                                                     pretty: "Debian GNU/Linux 12 (bookworm)"),
                                        "/etc/debian_version": "12.7\n"],
             expected: .init(distro: "debian", major: 12, minor: 7, product: "12.7"),
             osinfo: "debian12", packageManagement: "apt"),
        Case(name: "Ubuntu 24.04", files: ["/etc/os-release": osRelease(id: "ubuntu", version: "24.04",
                                                                        pretty: "Ubuntu 24.04.1 LTS"),
                                           "/etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=24.04\n",
                                           "/etc/debian_version": "trixie/sid\n"],
             expected: .init(distro: "ubuntu", major: 24, minor: 4, product: "Ubuntu 24.04.1 LTS"),
             osinfo: "ubuntu24.04", packageManagement: "apt"),
        Case(name: "RHEL 6.10", files: ["/etc/redhat-release": "Red Hat Enterprise Linux Server release 6.10 (Santiago)\n"],
             expected: .init(distro: "rhel", major: 6, minor: 10,
                             product: "Red Hat Enterprise Linux Server release 6.10 (Santiago)"),
             osinfo: "rhel6.10", packageManagement: "yum"),
        // Distributions whose rules this inspection does not carry: libguestfs decides.
        Case(name: "openSUSE", files: ["/etc/os-release": osRelease(id: "opensuse-leap", version: "15.5",
                                                                    pretty: "openSUSE Leap 15.5")],
             expected: nil),
        Case(name: "Arch", files: ["/etc/arch-release": ""], expected: nil),
        Case(name: "no release file", files: [:], expected: nil),
    ]

    @Test(arguments: cases)
    func concludesAsLibguestfsDoes(_ test: Case) throws {
        let release = try LinuxRelease.detect(isFile: { test.files[$0] != nil }, read: { test.files[$0] })
        #expect(release == test.expected)
        if let release {
            #expect(release.osinfo == test.osinfo)
            #expect(release.packageManagement(hasDNF: test.files["/usr/bin/dnf"] != nil) == test.packageManagement)
        }
    }

    @Test func fedoraWithoutDNFIsAYumGuest() throws {
        let files = ["/etc/os-release": Self.osRelease(id: "fedora", version: "40", pretty: "Fedora Linux 40")]
        let release = try #require(try LinuxRelease.detect(isFile: { files[$0] != nil }, read: { files[$0] }))
        #expect(release.packageManagement(hasDNF: false) == "yum")
    }
}
