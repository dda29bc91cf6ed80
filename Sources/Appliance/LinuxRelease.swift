/// What a Linux root's release files say, concluded as libguestfs 1.48 concludes it (daemon/inspect_fs_unix.ml's
/// `linux_root_tests`, `check_package_format`/`check_package_management` in inspect_fs.ml, lib/inspect-osinfo.c):
/// the release files are tried in libguestfs's order, each parser may leave values behind for the next one, and the
/// first that succeeds ends the search.
///
/// It answers only for the distributions whose rules it carries (Red Hat's family, Fedora, Debian, Ubuntu); for a
/// release file or a distribution it does not model, `detect` returns nil and libguestfs decides.
struct LinuxRelease: Equatable {
    /// libguestfs's distribution name: "rhel", "rocky", "redhat-based", "ubuntu"...
    var distro: String
    var major: Int
    var minor: Int
    var product: String?

    /// The distributions this inspection draws conclusions for.
    static let supported: Set<String> = ["rhel", "centos", "rocky", "oraclelinux", "scientificlinux", "redhat-based",
                                         "fedora", "debian", "ubuntu"]

    /// What libguestfs's parsers accumulate while trying the release files.
    private struct Data {
        var distro: String?
        var product: String?
        var version: (major: Int, minor: Int)?
    }

    /// A release file, how it is parsed, and whether this inspection models it.
    private enum Test {
        case osRelease
        case lsbRelease
        /// The first line, a regular expression giving major and minor (or nil: a best-effort version).
        case generic(distro: String, pattern: String?)
        /// libguestfs's last resort for a redhat-release nothing recognised.
        case redHatBased
        /// A release file libguestfs knows and this inspection does not: libguestfs must decide.
        case unmodelled
    }

    private static let tests: [(file: String, test: Test)] = [
        ("/etc/os-release", .osRelease),
        ("/etc/lsb-release", .lsbRelease),
        ("/etc/openmandriva-release", .unmodelled),
        ("/etc/oracle-release", .generic(distro: "oraclelinux", pattern: #"Oracle Linux.*release (\d+).*Update (\d+)"#)),
        ("/etc/oracle-release", .generic(distro: "oraclelinux", pattern: #"Oracle Linux.*release (\d+)\.(\d+)"#)),
        ("/etc/oracle-release", .generic(distro: "oraclelinux", pattern: #"Oracle Linux.*release (\d+)"#)),
        ("/etc/centos-release", .generic(distro: "centos", pattern: #"CentOS.*release (\d+).*Update (\d+)"#)),
        ("/etc/centos-release", .generic(distro: "centos", pattern: #"CentOS.*release (\d+)\.(\d+)"#)),
        ("/etc/centos-release", .generic(distro: "centos", pattern: #"CentOS.*release (\d+)"#)),
        ("/etc/rocky-release", .generic(distro: "rocky", pattern: #"Rocky Linux.*release (\d+)\.(\d+)"#)),
        ("/etc/rocky-release", .generic(distro: "rocky", pattern: #"Rocky Linux.*release (\d+)"#)),
        ("/etc/altlinux-release", .unmodelled),
        ("/etc/redhat-release", .generic(distro: "fedora", pattern: #"Fedora release (\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "rhel", pattern: #"Red Hat.*release (\d+).*Update (\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "rhel", pattern: #"Red Hat.*release (\d+)\.(\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "rhel", pattern: #"Red Hat.*release (\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "centos", pattern: #"CentOS.*release (\d+).*Update (\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "centos", pattern: #"CentOS.*release (\d+)\.(\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "centos", pattern: #"CentOS.*release (\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "rocky", pattern: #"Rocky Linux.*release (\d+)\.(\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "rocky", pattern: #"Rocky Linux.*release (\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "scientificlinux",
                                         pattern: #"Scientific Linux.*release (\d+).*Update (\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "scientificlinux", pattern: #"Scientific Linux.*release (\d+)\.(\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "scientificlinux", pattern: #"Scientific Linux.*release (\d+)"#)),
        ("/etc/redhat-release", .generic(distro: "redhat-based", pattern: nil)),
        ("/etc/redhat-release", .redHatBased),
        ("/etc/debian_version", .generic(distro: "debian", pattern: nil)),
        // Pardus, Arch, Gentoo, MeeGo, Slackware, ttylinux, SUSE, CirrOS, Buildroot, Alpine, Frugalware, PLD.
        ("/etc/pardus-release", .unmodelled), ("/etc/arch-release", .unmodelled),
        ("/etc/gentoo-release", .unmodelled), ("/etc/meego-release", .unmodelled),
        ("/etc/slackware-version", .unmodelled), ("/etc/ttylinux-target", .unmodelled),
        ("/etc/SuSE-release", .unmodelled), ("/etc/cirros/version", .unmodelled), ("/etc/br-version", .unmodelled),
        ("/etc/alpine-release", .unmodelled), ("/etc/frugalware-release", .unmodelled),
        ("/etc/pld-release", .unmodelled),
    ]

    /// os-release's ID as libguestfs 1.48 names it; an ID it does not list (almalinux, ol...) leaves the distribution
    /// unset, and the release files decide.
    static let osReleaseIDs: [String: String] = [
        "alpine": "alpinelinux", "altlinux": "altlinux", "arch": "archlinux", "centos": "centos", "coreos": "coreos",
        "debian": "debian", "fedora": "fedora", "frugalware": "frugalware", "gentoo": "gentoo", "kali": "kalilinux",
        "kylin": "kylin", "mageia": "mageia", "neokylin": "neokylin", "openmandriva": "openmandriva",
        "opensuse": "opensuse", "pardus": "pardus", "pld": "pldlinux", "rhel": "rhel", "rocky": "rocky",
        "sles": "sles", "sled": "sles", "ubuntu": "ubuntu", "void": "voidlinux",
    ]

    static let lsbReleaseIDs = ["CoreOS": "coreos", "LinuxMint": "linuxmint", "Mageia": "mageia", "Ubuntu": "ubuntu"]

    /// The release, or nil when libguestfs must decide. `isFile` follows symlinks; `read` gives a small text file.
    static func detect(isFile: (String) throws -> Bool, read: (String) throws -> String?) throws -> LinuxRelease? {
        var data = Data()
        var finished = false
        for (file, test) in tests where try isFile(file) {
            guard let text = try read(file) else { return nil }
            switch test {
            case .unmodelled:
                return nil
            case .osRelease:
                finished = parseOSRelease(text, &data)
            case .lsbRelease:
                finished = parseLSBRelease(text, &data)
            case .generic(let distro, let pattern):
                finished = parseGeneric(text, distro: distro, pattern: pattern, &data)
            case .redHatBased:
                data.distro = "redhat-based"
                finished = true
            }
            if finished { break }
        }
        guard let distro = data.distro, supported.contains(distro) else { return nil }
        let version = data.version ?? (0, 0)
        return LinuxRelease(distro: distro, major: version.major, minor: version.minor, product: data.product)
    }

    private static func parseOSRelease(_ text: String, _ data: inout Data) -> Bool {
        for (key, value) in QuickInspection.keyValues(text) {
            switch key {
            case "ID": if let distro = osReleaseIDs[value] { data.distro = distro }
            case "PRETTY_NAME": data.product = value
            case "VERSION_ID": parseVersion(value, &data)
            default: break
            }
        }
        guard let distro = data.distro, data.product != nil, let version = data.version else { return false }
        // Debian's, CentOS's and Rocky's VERSION_ID may carry the major version only: the release files then tell.
        if ["debian", "centos", "rocky"].contains(distro), version.minor == 0 { return false }
        return true
    }

    private static func parseLSBRelease(_ text: String, _ data: inout Data) -> Bool {
        var found = false
        for (key, value) in QuickInspection.keyValues(text) {
            switch key {
            case "DISTRIB_ID":
                if let distro = lsbReleaseIDs[value] { data.distro = distro; found = true }
            case "DISTRIB_RELEASE": parseVersion(value, &data)
            case "DISTRIB_DESCRIPTION": data.product = value; found = true
            default: break
            }
        }
        return found
    }

    private static func parseGeneric(_ text: String, distro: String, pattern: String?, _ data: inout Data) -> Bool {
        let product = String(text.prefix { $0 != "\n" })
        guard !product.isEmpty else { return false }
        data.product = product
        data.distro = distro
        guard let pattern else {
            parseVersion(product, &data)
            return true
        }
        guard let groups = captures(pattern, in: product) else { return false }
        if let major = groups.first.flatMap({ $0 }) {
            data.version = (major, groups.count > 1 ? groups[1] ?? 0 : 0)
        }
        return true
    }

    /// libguestfs's parse_version_from_major_minor: the first "N.M" anywhere, else the first number; else unchanged.
    private static func parseVersion(_ text: String, _ data: inout Data) {
        if let groups = captures(#"(\d+)\.(\d+)"#, in: text), let major = groups[0], let minor = groups[1] {
            data.version = (major, minor)
        } else if let groups = captures(#"(\d+)"#, in: text), let major = groups[0] {
            data.version = (major, 0)
        }
    }

    /// The numbers `pattern`'s groups capture at its first match in `text` (PCRE-like: unanchored, leftmost).
    private static func captures(_ pattern: String, in text: String) -> [Int?]? {
        guard let regex = try? Regex(pattern), let match = text.firstMatch(of: regex) else { return nil }
        return (1..<match.output.count).map { index in match.output[index].substring.flatMap { Int($0) } }
    }

    // MARK: What follows from the release

    var packageFormat: String {
        ["debian", "ubuntu"].contains(distro) ? "deb" : "rpm"
    }

    /// `hasDNF`: whether /usr/bin/dnf is a file (libguestfs asks only for Fedora).
    func packageManagement(hasDNF: Bool) -> String? {
        switch distro {
        case "debian", "ubuntu": return "apt"
        case "fedora": return major >= 22 && hasDNF ? "dnf" : major >= 1 ? "yum" : nil
        default: return major >= 8 ? "dnf" : major >= 5 ? "yum" : major >= 2 ? "up2date" : nil
        }
    }

    /// The libosinfo id libguestfs derives (lib/inspect-osinfo.c); nil where it says "unknown".
    var osinfo: String? {
        switch distro {
        case "centos" where major >= 8, "rocky" where major >= 8, "debian" where major >= 4, "fedora":
            return "\(distro)\(major)"
        case "centos" where major == 7:
            return "centos7.0"
        case "ubuntu":
            return "ubuntu\(major)." + (minor < 10 ? "0\(minor)" : "\(minor)")
        default:
            return major > 0 || minor > 0 ? "\(distro)\(major).\(minor)" : nil
        }
    }
}
