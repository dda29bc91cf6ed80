import Operations

/// The guest's operating system as Glance's image properties name it (glance/admin/useful-image-properties):
/// os_distro from the values its documentation lists, os_version as the distributor writes it, os_name as the
/// libosinfo id. libguestfs's names differ where it knows a distribution only by its release files: AlmaLinux is
/// "redhat-based", CentOS Stream is "centos" and Oracle Linux "oraclelinux"; the product name tells them apart.
public struct GlanceOS: Sendable, Equatable {
    public var distro: String
    public var version: String
    public var osName: String?

    /// Nil for a guest with no distribution (not inspected, or not Linux).
    public init?(_ facts: GuestFacts) {
        guard let inspected = facts.distro else { return nil }
        let major = facts.majorVersion, minor = facts.minorVersion
        let product = facts.productName ?? ""
        let twoDigitMinor = minor < 10 ? "0\(minor)" : "\(minor)"
        switch inspected {
        case "redhat-based" where product.hasPrefix("AlmaLinux"):
            // Glance's list has no AlmaLinux; libosinfo names it almalinuxN.
            (distro, version, osName) = ("almalinux", "\(major).\(minor)", "almalinux\(major)")
        case "centos" where product.contains("Stream"):
            (distro, version, osName) = ("centos", "\(major)", "centos-stream\(major)")
        case "oraclelinux":
            // Glance's list has no Oracle Linux; libosinfo names it olN.M.
            (distro, version, osName) = ("ol", "\(major).\(minor)", "ol\(major).\(minor)")
        case "ubuntu":
            (distro, version, osName) = ("ubuntu", "\(major).\(twoDigitMinor)", facts.osinfo)
        case "fedora":
            (distro, version, osName) = ("fedora", "\(major)", facts.osinfo)
        case "debian":
            (distro, version, osName) = ("debian", "\(major)", facts.osinfo)
        default:
            (distro, version, osName) = (inspected, "\(major).\(minor)", facts.osinfo)
        }
    }
}
