/// `firstboot SCRIPT`: a host script queued to run once, at the guest's next boot, as virt-customize's `--firstboot`.
/// Its `#!` line names the guest's interpreter (one without is run by /bin/sh). See `FirstbootQueue`.
public struct Firstboot: RegisteredOperation {
    public static let name = "firstboot"
    public static let sourceFile = #filePath
    public static let summary = "Run a host script once at the guest's next boot (logged in \(FirstbootQueue.log))"
    public static let argumentIsHostFile = true
    public static let argument = OperationArgument.required(syntax: "SCRIPT", example: "./first-boot.sh")

    /// The script's path on the host.
    public let script: String
    public var target: String { script }

    public init(_ script: String) { self.script = script }

    public static func parse(_ argument: String?) throws -> Firstboot {
        Firstboot(try required(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let content = try hostScript(script, for: Self.name, guest: guest)
        let base = script.split(separator: "/").last.map(String.init) ?? "script"
        if context.guest.windows != nil {
            // A batch file as it is; a PowerShell script is run by PowerShell, from the batch file's own lines.
            let text = String(decoding: content, as: UTF8.self)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
            guard base.lowercased().hasSuffix(".bat") || base.lowercased().hasSuffix(".cmd") else {
                throw GuestError(guest: guest.guestDescription, action: Self.name, path: script,
                                 message: "a Windows guest runs batch files at first boot",
                                 hint: "give a .bat or .cmd script, or use firstboot-command 'powershell -File ...'")
            }
            return try WindowsFirstbootQueue.enqueue(lines, named: String(base.dropLast(4)), in: guest,
                                                     context: context, operation: Self.name)
        }
        return try FirstbootQueue.enqueue(content, named: base, in: guest)
    }
}

/// `firstboot-command CMD`: a shell command queued to run once at the guest's next boot, as virt-customize's
/// `--firstboot-command`.
public struct FirstbootCommand: RegisteredOperation {
    public static let name = "firstboot-command"
    public static let sourceFile = #filePath
    public static let summary = "Run a shell command once at the guest's next boot (logged in \(FirstbootQueue.log))"
    public static let argument = OperationArgument.required(syntax: "CMD", example: "systemctl enable --now chronyd")

    public let command: String
    public var target: String { command }

    public init(_ command: String) { self.command = command }

    public static func parse(_ argument: String?) throws -> FirstbootCommand {
        FirstbootCommand(try required(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        if context.guest.windows != nil {
            return try WindowsFirstbootQueue.enqueue(["@echo off", command], named: "command", in: guest,
                                                     context: context, operation: Self.name)
        }
        return try FirstbootQueue.enqueue(Array("#!/bin/sh\n\(command)\n".utf8), named: "command", in: guest)
    }
}

extension FirstbootCommand: CommandLineRepresentable {
    public func commandLines() throws -> [String] {
        guard !command.contains("\n"), !command.hasSuffix("\\") else {
            throw Self.invalid("a command holding a newline or ending in a backslash, which a command file cannot say")
        }
        return ["\(Self.name):\(command)"]
    }
}

/// `firstboot-install PKG,...`: packages installed by the guest's package manager once at its next boot, with the
/// guest's own network, as virt-customize's `--firstboot-install`. On a Windows guest each item is a host installer
/// with its arguments ("./CloudbaseInitSetup_x64.msi LOGGINGSERIALPORTNAME=COM1"): copied into the guest and run at
/// the next boot, an .msi by msiexec (quiet, no restart, logged), an .exe as it is.
public struct FirstbootInstall: RegisteredOperation {
    public static let name = "firstboot-install"
    public static let sourceFile = #filePath
    public static let summary = "Install packages once at the guest's next boot, with its own network and repositories"
    public static let argument = OperationArgument.required(syntax: "PKG,...", example: "cloud-utils-growpart,tuned")

    public let packages: [String]
    public var target: String { packages.joined(separator: ",") }

    public init(_ packages: [String]) { self.packages = packages }

    public static func parse(_ argument: String?) throws -> FirstbootInstall {
        FirstbootInstall(try Install.packageList(argument))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        if context.guest.windows != nil {
            return try WindowsFirstbootQueue.install(packages, in: guest, context: context, operation: Self.name)
        }
        let manager = try PackageManager.of(context.guest, in: guest.guestDescription, operation: Self.name)
        let install = manager.install(packages, network: true)
        return try FirstbootQueue.enqueue(Array("#!/bin/sh\n\(install)\n".utf8), named: "install", in: guest)
    }
}

extension FirstbootInstall: CommandLineRepresentable {
    public func commandLines() throws -> [String] { ["\(Self.name):\(target)"] }
}

/// The guest side of the first-boot operations: a queue of scripts in `scripts`, run in order by `runner` at the
/// next boot, each one removed once it ran (whatever its exit status) and its output appended to `log`; a later
/// boot finds the queue empty and runs nothing. The runner starts from a systemd unit on systemd guests, after the
/// network is online, and from a SysV init script (runlevels 2-5, last) on the others, such as RHEL 6.
///
/// A script is queued once: a second run with the same first-boot steps finds each one's content already queued and
/// changes nothing. Scripts are numbered in the order they are queued, after those already there.
public enum FirstbootQueue {
    public static let directory = "/usr/lib/imgcustomize/firstboot"
    public static let scripts = directory + "/scripts"
    public static let runner = directory + "/run"
    public static let log = "/var/log/imgcustomize-firstboot.log"
    /// The runner's line after each script: "=== exit status STATUS: NAME".
    public static let exitLinePrefix = "=== exit status "
    static let unitName = "imgcustomize-firstboot.service"
    static let unit = "/etc/systemd/system/" + unitName
    static let unitLink = "/etc/systemd/system/multi-user.target.wants/" + unitName
    static let initScriptName = "imgcustomize-firstboot"

    static let runnerScript = """
        #!/bin/sh
        # imgcustomize's first-boot runner: runs each queued script once, in order, appends its output to the log
        # and removes it, whatever its exit status.
        log=\(log)
        for script in \(scripts)/*; do
          [ -f "$script" ] || continue
          echo "=== $(date -u '+%Y-%m-%d %H:%M:%S') $script" >>"$log"
          "$script" >>"$log" 2>&1 </dev/null
          echo "\(exitLinePrefix)$?: ${script##*/}" >>"$log"
          rm -f "$script"
        done
        sync
        exit 0

        """

    static let unitFile = """
        [Unit]
        Description=imgcustomize first-boot scripts
        Wants=network-online.target
        After=network-online.target
        ConditionDirectoryNotEmpty=\(scripts)

        [Service]
        Type=oneshot
        ExecStart=\(runner)
        RemainAfterExit=yes
        TimeoutSec=0

        [Install]
        WantedBy=multi-user.target

        """

    static let initScript = """
        #!/bin/sh
        ### BEGIN INIT INFO
        # Provides:          \(initScriptName)
        # Required-Start:    $network $remote_fs
        # Required-Stop:
        # Default-Start:     2 3 4 5
        # Default-Stop:
        # Short-Description: imgcustomize first-boot scripts
        ### END INIT INFO
        # chkconfig: 2345 99 01
        # description: imgcustomize first-boot scripts
        case "$1" in
          start) exec \(runner) ;;
          *) exit 0 ;;
        esac

        """

    /// Queues `content` as a script (mode 0755), installing the runner and what starts it first.
    static func enqueue(_ content: [UInt8], named base: String, in guest: GuestFilesystem) throws -> OperationOutcome {
        var done = try install(in: guest)
        let queued = try guest.isDirectory(scripts) ? try guest.list(scripts).sorted() : []
        if let same = try queued.first(where: { try guest.holds(scripts + "/" + $0, exactly: content) }) {
            return done.isEmpty ? .unchanged("already queued as \(scripts)/\(same)")
                : .changed(done.joined(separator: "; "))
        }
        let number = String((queued.compactMap { Int($0.prefix(while: \.isNumber)) }.max() ?? 0) + 1)
        let slug = String(base.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }.prefix(40))
        let path = scripts + "/" + String(repeating: "0", count: max(0, 4 - number.count)) + number + "-" + slug
        try guest.write(path, content, mode: 0o755)
        done.append("queued \(path) for the next boot, logged in \(log)")
        return .changed(done.joined(separator: "; "))
    }

    /// Installs the runner and, by the guest's init system, the unit or init script that starts it: what it wrote,
    /// empty when everything was there.
    private static func install(in guest: GuestFilesystem) throws -> [String] {
        var done: [String] = []
        if try !guest.isDirectory(scripts) { try guest.mkdir(scripts, mode: 0o755, parents: true) }
        if try write(guest, runner, runnerScript, mode: 0o755) { done.append("installed \(runner)") }
        if try isSystemd(guest) {
            if try write(guest, unit, unitFile, mode: 0o644) { done.append("installed \(unit)") }
            if try link(guest, unit, at: unitLink) { done.append("enabled \(unitName)") }
            return done
        }
        guard let initDirectory = try ["/etc/rc.d/init.d", "/etc/init.d"].first(where: guest.isDirectory) else {
            throw GuestError(guest: guest.guestDescription, action: "install the first-boot runner",
                             message: "the guest has neither systemd (/usr/lib/systemd/system) nor SysV init scripts",
                             hint: "first-boot scripts need one of them to start; run the command now with "
                                + "run-command instead")
        }
        let script = initDirectory + "/" + initScriptName
        if try write(guest, script, initScript, mode: 0o755) { done.append("installed \(script)") }
        let rc = initDirectory == "/etc/rc.d/init.d" ? "/etc/rc.d/rc" : "/etc/rc"
        for level in 2...5 {
            let directory = "\(rc)\(level).d"
            guard try guest.isDirectory(directory) else { continue }
            if try link(guest, "../init.d/\(initScriptName)", at: "\(directory)/S99\(initScriptName)") {
                done.append("enabled in \(directory)")
            }
        }
        return done
    }

    /// Writes `text` to `path` unless it holds it, its directory created; whether it had to.
    private static func write(_ guest: GuestFilesystem, _ path: String, _ text: String, mode: UInt32) throws -> Bool {
        try makeParent(guest, path)
        return try ensureContent(guest, path, Array(text.utf8), mode: mode).changed == .yes
    }

    /// Makes `path` a symlink to `target`, its directory created; whether it had to.
    private static func link(_ guest: GuestFilesystem, _ target: String, at path: String) throws -> Bool {
        try makeParent(guest, path)
        return try Link(target, at: path).apply(to: guest, context: OperationContext()).changed == .yes
    }

    private static func makeParent(_ guest: GuestFilesystem, _ path: String) throws {
        let parent = "/" + path.split(separator: "/").dropLast().joined(separator: "/")
        if try !guest.isDirectory(parent) { try guest.mkdir(parent, mode: 0o755, parents: true) }
    }

    /// systemd is the guest's init: its unit directory exists (/lib is /usr/lib on merged-/usr guests).
    private static func isSystemd(_ guest: GuestFilesystem) throws -> Bool {
        try guest.isDirectory("/usr/lib/systemd/system") || guest.isDirectory("/lib/systemd/system")
    }
}
