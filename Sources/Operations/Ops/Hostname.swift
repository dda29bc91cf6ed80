/// `hostname NAME`: sets the guest's hostname where its distribution keeps it: /etc/hostname (RHEL 7+, Fedora,
/// Debian, Ubuntu, SUSE, ...), HOSTNAME= in /etc/sysconfig/network (RHEL 6 and older), and the 127.0.1.1 line of
/// /etc/hosts where the guest has one (Debian's installer writes it so that the hostname resolves offline).
public struct Hostname: RegisteredOperation {
    public static let name = "hostname"
    public static let sourceFile = #filePath
    public static let summary = "Set the hostname (distribution-aware)"
    public static let argument = OperationArgument.required(syntax: "NAME", example: "web1.example.com")

    public var hostname: String
    public var target: String { hostname }

    public init(_ hostname: String) { self.hostname = hostname }

    public static func parse(_ argument: String?) throws -> Hostname {
        let argument = try required(argument)
        let labels = argument.split(separator: ".", omittingEmptySubsequences: false)
        let valid = argument.count <= 253 && labels.allSatisfy { label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
        guard valid else {
            throw invalid("\"\(argument)\" is not a hostname (letters, digits and '-' in dot-separated labels)")
        }
        return Hostname(argument)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        var done: [String] = []
        if try keepsHostnameInSysconfig(guest, context.guest) {
            let changed = try guest.withAugeas(lens: "Shellvars.lns", path: "/etc/sysconfig/network") { edit in
                let node = "\(edit.root)/HOSTNAME"
                guard try edit.get(node) != hostname else { return false }
                try edit.set(node, hostname)
                return true
            }
            if changed { done.append("HOSTNAME=\(hostname) in /etc/sysconfig/network") }
        } else {
            let current = try guest.exists("/etc/hostname") ? try guest.readText("/etc/hostname") : nil
            if current != hostname + "\n" {
                try guest.writeText("/etc/hostname", hostname + "\n")
                done.append("/etc/hostname")
            }
        }
        if try guest.isFile("/etc/hosts"), try updateLoopbackLine(guest) {
            done.append("127.0.1.1 in /etc/hosts")
        }
        return done.isEmpty ? .unchanged("hostname already \(hostname)")
            : .changed("set \(hostname): \(done.joined(separator: ", "))")
    }

    /// RHEL 6 and older read HOSTNAME= from /etc/sysconfig/network; without inspection facts, a guest that has that
    /// file and no /etc/hostname is taken to be one of them.
    private func keepsHostnameInSysconfig(_ guest: GuestFilesystem, _ facts: GuestFacts) throws -> Bool {
        if facts.distro != nil {
            return facts.isRedHatFamily && facts.distro != "fedora" && (1...6).contains(facts.majorVersion)
        }
        return try guest.isFile("/etc/sysconfig/network") && !guest.exists("/etc/hostname")
    }

    /// Names the new host on the 127.0.1.1 line (FQDN first, then the short name), where such a line exists.
    private func updateLoopbackLine(_ guest: GuestFilesystem) throws -> Bool {
        let short = hostname.split(separator: ".").first.map(String.init) ?? hostname
        let wanted = short == hostname ? [hostname] : [hostname, short]
        return try guest.withAugeas(lens: "Hosts.lns", path: "/etc/hosts") { edit in
            guard let line = try edit.match("\(edit.root)/*[ipaddr = '127.0.1.1']").first else { return false }
            let names = try [edit.get("\(line)/canonical")].compactMap { $0 }
                + edit.match("\(line)/alias").compactMap { try edit.get($0) }
            guard names != wanted else { return false }
            try edit.remove("\(line)/alias")
            try edit.set("\(line)/canonical", hostname)
            if wanted.count > 1 { try edit.set("\(line)/alias", short) }
            return true
        }
    }
}
