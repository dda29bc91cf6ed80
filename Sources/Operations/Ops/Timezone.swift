/// `timezone ZONE`: /etc/localtime becomes a symlink to the guest's own zoneinfo file (what systemd's timedatectl
/// does); RHEL 6 also keeps ZONE= in /etc/sysconfig/clock, and older Debian /etc/timezone, both updated where present.
public struct Timezone: RegisteredOperation {
    public static let name = "timezone"
    public static let sourceFile = #filePath
    public static let summary = "Set the time zone (e.g. Europe/Paris): /etc/localtime and the distribution's setting"
    public static let argument = OperationArgument.required(syntax: "ZONE", example: "Europe/Paris")

    public var zone: String
    public var target: String { zone }

    public init(_ zone: String) { self.zone = zone }

    public static func parse(_ argument: String?) throws -> Timezone {
        let argument = try required(argument)
        let valid = !argument.isEmpty && !argument.hasPrefix("/")
            && argument.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { part in
                !part.isEmpty && part != "." && part != ".."
                    && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_+-".contains($0)) }
            }
        guard valid else { throw invalid("\"\(argument)\" is not a time zone name (like Europe/Paris or UTC)") }
        return Timezone(argument)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let zoneFile = "/usr/share/zoneinfo/" + zone
        guard try guest.isFile(zoneFile) else {
            throw GuestError(guest: guest.guestDescription, action: "set the time zone to \(zone)", path: zoneFile,
                             message: "the guest has no such zone file",
                             hint: "name a zone under the guest's /usr/share/zoneinfo, or install tzdata in it")
        }
        var done: [String] = []
        let link = "../usr/share/zoneinfo/" + zone
        let current = try guest.lstat("/etc/localtime")
        let currentTarget = current?.kind == .symlink ? try guest.readlink("/etc/localtime") : nil
        if currentTarget != link {
            if current != nil { try guest.remove("/etc/localtime", recursive: false) }
            try guest.symlink(target: link, at: "/etc/localtime")
            done.append("/etc/localtime -> \(link)")
        }
        if try guest.isFile("/etc/sysconfig/clock") {
            let changed = try guest.withAugeas(lens: "Shellvars.lns", path: "/etc/sysconfig/clock") { edit in
                let node = "\(edit.root)/ZONE"
                guard try edit.get(node)?.trimmingQuotes != zone else { return false }
                try edit.set(node, "\"\(zone)\"")
                return true
            }
            if changed { done.append("ZONE in /etc/sysconfig/clock") }
        }
        if try guest.isFile("/etc/timezone"), try guest.readText("/etc/timezone") != zone + "\n" {
            try guest.writeText("/etc/timezone", zone + "\n")
            done.append("/etc/timezone")
        }
        return done.isEmpty ? .unchanged("time zone already \(zone)")
            : .changed("set \(zone): \(done.joined(separator: ", "))")
    }
}

extension String {
    /// The value of a shell variable without the quotes Augeas Shellvars keeps: "\"UTC\"" -> "UTC".
    var trimmingQuotes: String {
        guard count >= 2, let first, first == "\"" || first == "'", last == first else { return self }
        return String(dropFirst().dropLast())
    }
}
