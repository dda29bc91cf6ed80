import Testing
import Customize
import Operations
import TestSupport

/// The Glance properties of a guest's operating system, from what inspection reports.
@Suite struct GlanceOSTests {
    static func guest(_ distro: String, _ major: Int, _ minor: Int, osinfo: String?, product: String) -> GuestFacts {
        GuestFacts(type: "linux", distro: distro, majorVersion: major, minorVersion: minor, osinfo: osinfo,
                   productName: product)
    }

    @Test(arguments: [
        (guest("rhel", 9, 4, osinfo: "rhel9.4", product: "Red Hat Enterprise Linux 9.4 (Plow)"),
         GlanceOS.Expected("rhel", "9.4", "rhel9.4")),
        (guest("rocky", 9, 4, osinfo: "rocky9", product: "Rocky Linux 9.4 (Blue Onyx)"),
         .init("rocky", "9.4", "rocky9")),
        (guest("centos", 9, 0, osinfo: "centos9", product: "CentOS Stream release 9"),
         .init("centos", "9", "centos-stream9")),
        (guest("centos", 7, 9, osinfo: "centos7.0", product: "CentOS Linux release 7.9.2009 (Core)"),
         .init("centos", "7.9", "centos7.0")),
        (guest("redhat-based", 9, 4, osinfo: "redhat-based9.4", product: "AlmaLinux release 9.4 (Seafoam Ocelot)"),
         .init("almalinux", "9.4", "almalinux9")),
        (guest("oraclelinux", 9, 3, osinfo: "oraclelinux9.3", product: "Oracle Linux Server release 9.3"),
         .init("ol", "9.3", "ol9.3")),
        (guest("fedora", 40, 0, osinfo: "fedora40", product: "Fedora Linux 40 (Cloud Edition)"),
         .init("fedora", "40", "fedora40")),
        (guest("debian", 12, 15, osinfo: "debian12", product: "12.15"), .init("debian", "12", "debian12")),
        (guest("ubuntu", 24, 4, osinfo: "ubuntu24.04", product: "Ubuntu 24.04.1 LTS"),
         .init("ubuntu", "24.04", "ubuntu24.04")),
    ])
    func osPropertiesPerFamily(_ facts: GuestFacts, _ expected: GlanceOS.Expected) throws {
        let os = try #require(GlanceOS(facts))
        #expect(os.distro == expected.distro && os.version == expected.version && os.osName == expected.osName)
    }
}

extension GlanceOS {
    struct Expected: Sendable {
        var distro, version, osName: String
        init(_ distro: String, _ version: String, _ osName: String) {
            (self.distro, self.version, self.osName) = (distro, version, osName)
        }
    }
}
