/// `selinux-relabel`: gives the files this run touched the labels the guest's own policy assigns them (its
/// file_contexts, read offline: no setfiles run, no host policy involved), so that an enforcing guest can read them
/// at first boot. Where the guest enables SELinux but carries no file_contexts, it creates /.autorelabel instead and
/// the guest relabels everything at its first boot. After guest commands, which may have written anything anywhere,
/// it relabels every file with the guest's own setfiles, or, without one, creates /.autorelabel and says so.
public struct SELinuxRelabel: RegisteredOperation {
    public static let name = "selinux-relabel"
    public static let sourceFile = #filePath
    public static let summary = "Label the files this run touched with the guest's own SELinux file contexts"
    public static let argument = OperationArgument.none
    public static let phase = OperationPhase.labels

    static let attribute = "security.selinux"

    /// nil: every path the earlier steps of the run touched (`OperationContext.touchedPaths`).
    public var paths: [String]?

    public var target: String { paths?.joined(separator: " ") ?? "" }

    public init(paths: [String]? = nil) { self.paths = paths }

    public static func parse(_ argument: String?) throws -> SELinuxRelabel {
        try noArgument(argument)
        return SELinuxRelabel()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let config = try SELinuxConfig.read(guest)
        guard config.mode == "enforcing" || config.mode == "permissive" else {
            return .unchanged("SELinux is disabled in the guest")
        }
        if paths == nil, context.guestCommandsRan {
            return try relabelEverything(guest, policy: config.policy)
        }
        guard var contexts = try FileContexts.load(type: config.policy, from: guest, logger: context.logger) else {
            if try guest.exists("/.autorelabel") {
                return .unchanged("no file_contexts for policy \(config.policy): /.autorelabel already requests a "
                                  + "full relabel at first boot")
            }
            try guest.write("/.autorelabel", [], mode: 0o644)
            return .changed("no file_contexts for policy \(config.policy) in the guest: created /.autorelabel, the "
                            + "guest relabels every file at its first boot (one extra reboot)")
        }

        var labelled: [String] = []
        var seen: Set<String> = []
        for path in paths ?? context.touchedPaths {
            for candidate in try [path] + unlabelledAncestors(of: path, guest) where seen.insert(candidate).inserted {
                if try relabel(candidate, guest, &contexts) { labelled.append(candidate) }
            }
        }
        guard !labelled.isEmpty else { return .unchanged("labels already match policy \(config.policy)") }
        let shown = labelled.prefix(3).joined(separator: ", ")
        return .changed("relabelled \(labelled.count) (\(config.policy)): \(shown)"
                        + (labelled.count > 3 ? " and \(labelled.count - 3) more" : ""))
    }

    /// Every file, by the guest's own setfiles inside the appliance (with -m where it has it: the appliance's
    /// kernel runs without SELinux, so no mount is "seclabel" and setfiles would otherwise skip them all), as
    /// libguestfs's selinux_relabel does; /.autorelabel when the guest has no setfiles or it fails.
    private func relabelEverything(_ guest: GuestFilesystem, policy: String) throws -> OperationOutcome {
        let specfile = "/etc/selinux/\(policy)/contexts/files/file_contexts"
        let setfiles = try ["/usr/sbin/setfiles", "/sbin/setfiles"].first(where: guest.isFile)
        let reason: String
        if let setfiles, try guest.isFile(specfile) {
            let command = "if \(setfiles) -m 2>&1 | grep -q \"invalid option -- 'm'\"; then m=; else m=-m; fi; "
                + "\(setfiles) -F $m -e /proc -e /sys -e /dev -e /selinux \(specfile) /"
            let result = try guest.commands(for: Self.name).run(command, operation: Self.name)
            if result.exitStatus == 0 {
                return .ran(result, "guest commands ran: relabelled every file with the guest's \(setfiles) "
                            + "(policy \(policy))")
            }
            reason = "\(setfiles) exited \(result.exitStatus): \(result.output.split(separator: "\n").last ?? "")"
        } else {
            reason = setfiles == nil ? "the guest has no setfiles" : "the guest has no \(specfile)"
        }
        let requested = try guest.exists("/.autorelabel")
        let summary = "guest commands ran and \(reason): "
            + (requested ? "/.autorelabel already requests" : "created /.autorelabel for")
            + " a relabel of every file at first boot (one extra reboot)"
        if !requested { try guest.write("/.autorelabel", [], mode: 0o644) }
        return OperationOutcome(changed: requested ? .no : .yes, summary: summary, warning: summary)
    }

    /// Directories a step created on the way to `path` have no label at all; ones that already have one are left
    /// as the guest has them.
    private func unlabelledAncestors(of path: String, _ guest: GuestFilesystem) throws -> [String] {
        var result: [String] = []
        var directory = path.parentPath
        while directory != "/", try guest.lstat(directory)?.kind == .directory,
              try guest.getxattr(directory, name: Self.attribute) == nil {
            result.append(directory)
            directory = directory.parentPath
        }
        return result
    }

    /// Sets the policy's label where it differs; false when the path is gone, excluded (`<<none>>`), unmatched or
    /// already right.
    private func relabel(_ path: String, _ guest: GuestFilesystem, _ contexts: inout FileContexts) throws -> Bool {
        guard let status = try guest.lstat(path) else { return false }
        let kind: FileContexts.Kind = switch status.kind {
        case .regular: .regular
        case .directory: .directory
        case .symlink: .symlink
        case .other: .special
        }
        guard case .context(let label) = contexts.label(for: path, kind: kind) else { return false }
        let current = try guest.getxattr(path, name: Self.attribute).map { bytes in
            String(decoding: bytes.last == 0 ? bytes.dropLast() : bytes[...], as: UTF8.self)
        }
        guard current != label else { return false }
        // The kernel stores the context NUL-terminated, as setfiles writes it.
        try guest.setxattr(path, name: Self.attribute, value: Array(label.utf8) + [0])
        return true
    }
}

/// /etc/selinux/config: SELINUX= and SELINUXTYPE=.
struct SELinuxConfig: Equatable {
    /// "enforcing", "permissive", "disabled"; "disabled" when the guest has no configuration.
    var mode: String
    /// The policy directory under /etc/selinux ("targeted" when the file does not say).
    var policy: String

    static func read(_ guest: GuestFilesystem) throws -> SELinuxConfig {
        guard try guest.isFile("/etc/selinux/config") else { return SELinuxConfig(mode: "disabled", policy: "") }
        var config = SELinuxConfig(mode: "disabled", policy: "targeted")
        for line in try guest.readText("/etc/selinux/config").split(separator: "\n") {
            let text = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let pair = text.split(separator: "=", maxSplits: 1).map { $0.trimmed.trimmingQuotes }
            guard pair.count == 2 else { continue }
            switch pair[0] {
            case "SELINUX": config.mode = pair[1].lowercased()
            case "SELINUXTYPE" where !pair[1].isEmpty && !pair[1].contains("/"): config.policy = pair[1]
            default: break
            }
        }
        return config
    }
}
