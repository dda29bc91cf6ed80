import Diagnostics
import Appliance
import Foundation
import Formats
import Host
import Operations

#if canImport(Glibc)
import Glibc
#endif

/// One boot of a throwaway overlay: the seed, the qemu process, the console watch, the SSH login and the checks.
final class GuestRun {
    let image: String
    let scratch: String
    let options: BootCheckOptions
    let firmware: Firmware
    let acceleration: Acceleration
    /// The serial console's log of every boot so far.
    let consolePath: String
    private let overlay: String
    private let key: String
    private let seed: String
    private let hostname: String
    private let token: String
    private let port: UInt16
    private var console = ConsoleWatch()
    private var boots = 0

    init(image: String, format: ImageFormat, firmware: Firmware, acceleration: Acceleration, scratch: String,
         options: BootCheckOptions) throws {
        self.image = image
        self.scratch = scratch
        self.options = options
        self.firmware = firmware
        self.acceleration = acceleration
        consolePath = scratch + "/console.log"
        overlay = scratch + "/overlay.qcow2"
        key = scratch + "/id_ed25519"
        seed = scratch + "/seed.iso"
        let random = (0..<4).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        hostname = "boot-check-\(random)"
        token = UUID().uuidString
        port = try Self.freePort(image: image)

        let absolute = image.hasPrefix("/") ? image : FileManager.default.currentDirectoryPath + "/" + image
        try tool("qemu-img", ["create", "-q", "-f", "qcow2", "-F", format.qemuFormat, "-b", absolute, overlay])
        try tool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "boot-check", "-f", key])
        try writeSeed()
    }

    /// A NoCloud seed: an ISO 9660 volume labelled `cidata` with meta-data (instance id, hostname) and user-data
    /// (the key for root and the default user, a command writing the marker).
    private func writeSeed() throws {
        let directory = scratch + "/seed"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let publicKey = try String(contentsOfFile: key + ".pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let metaData = "instance-id: \(hostname)\nlocal-hostname: \(hostname)\n"
        let userData = """
            #cloud-config
            disable_root: false
            ssh_pwauth: false
            ssh_authorized_keys:
              - \(publicKey)
            runcmd:
              - [sh, -c, "echo \(token) > /var/tmp/boot-check-marker"]

            """
        try Data(metaData.utf8).write(to: URL(fileURLWithPath: directory + "/meta-data"))
        try Data(userData.utf8).write(to: URL(fileURLWithPath: directory + "/user-data"))
        try tool("xorriso", ["-as", "mkisofs", "-quiet", "-output", seed, "-volid", "cidata", "-joliet", "-rock",
                             directory + "/user-data", directory + "/meta-data"])
    }

    /// Runs a host tool the boot needs; a failure throws with what it said.
    private func tool(_ program: String, _ arguments: [String]) throws {
        let command = HostCommand(program, arguments, output: .discard, timeout: 120, cancellation: options.cancellation)
        let result: CommandResult
        do { result = try command.run() } catch {
            throw GuestError(guest: image, action: "boot-check", message: Diagnostic(of: error).message,
                             hint: "run scripts/install-deps")
        }
        try options.cancellation?.check(image: image)
        guard result.succeeded else {
            throw GuestError(guest: image, action: "boot-check", message: "\(command.commandLine) \(result.explanation)",
                             hint: "run scripts/install-deps")
        }
    }

    /// A port on 127.0.0.1 nobody listens on now, for qemu's user-mode network to forward to the guest's SSH.
    private static func freePort(image: String) throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw GuestError(guest: image, action: "boot-check", message: "cannot open a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                bind(fd, sockaddrPointer, length) == 0 && getsockname(fd, sockaddrPointer, &length) == 0
            }
        }
        guard bound else {
            throw GuestError(guest: image, action: "boot-check", message: "cannot find a free port on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        return UInt16(bigEndian: address.sin_port)
    }

    private func qemuArguments(console consolePath: String) -> [String] {
        let kvm = acceleration == .kvm
        var arguments = [
            "-machine", "q35,accel=\(kvm ? "kvm" : "tcg")", "-cpu", kvm ? "host" : "max,la57=off",
            "-smp", String(min(2, ProcessInfo.processInfo.activeProcessorCount)), "-m", "1024",
            // A display adapter, as every machine has: GRUB's BIOS console calls the video BIOS, and with no VGA
            // device (-nodefaults) it never gets as far as loading a kernel.
            "-nodefaults", "-device", "VGA", "-display", "none", "-no-reboot",
            "-chardev", "file,id=console,path=\(consolePath)", "-serial", "chardev:console",
            "-drive", "file=\(overlay),format=qcow2,if=virtio,cache=unsafe",
            "-drive", "file=\(seed),format=raw,if=virtio,readonly=on",
            "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:\(port)-:22", "-device", "virtio-net-pci,netdev=net0",
            "-object", "rng-random,filename=/dev/urandom,id=rng0", "-device", "virtio-rng-pci,rng=rng0",
        ]
        if firmware == .uefi {
            arguments += ["-drive", "if=pflash,format=raw,unit=0,readonly=on,file=\(OVMF.code)",
                          "-drive", "if=pflash,format=raw,unit=1,file=\(scratch)/OVMF_VARS.fd"]
        }
        return arguments
    }

    /// Boots the overlay once. `again`: the overlay is booted another time after this, so the guest is given time
    /// to power off, and qemu is stopped (never killed) when it does not, which keeps the overlay whole.
    func boot(imageName: String, before: ImageState, again: Bool) throws -> BootReport {
        if firmware == .uefi, !FileManager.default.fileExists(atPath: scratch + "/OVMF_VARS.fd") {
            try FileManager.default.copyItem(atPath: OVMF.vars, toPath: scratch + "/OVMF_VARS.fd")
        }
        boots += 1
        // A later boot's console goes to a file of its own, appended to the log when it is over.
        let consolePath = boots == 1 ? self.consolePath : scratch + "/console-\(boots).log"
        defer { if boots > 1 { appendConsole(consolePath) } }
        console = ConsoleWatch()
        _ = FileManager.default.createFile(atPath: consolePath, contents: nil)
        let qemuLog = scratch + "/qemu.log"
        _ = FileManager.default.createFile(atPath: qemuLog, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: qemuLog))
        defer { try? log.close() }
        let process: HostProcess
        do {
            process = try HostCommand("/usr/bin/qemu-system-x86_64", qemuArguments(console: consolePath))
                .start(stdout: log.fileDescriptor, stderr: log.fileDescriptor)
        } catch {
            throw GuestError(guest: imageName, action: "boot-check", message: Diagnostic(of: error).message,
                             hint: "install qemu-system-x86 (scripts/install-deps)")
        }
        // Cancelling stops qemu at once, so the loop below does not wait for the guest; however the boot ends, qemu
        // is stopped (SIGTERM, SIGKILL after 5 s) and reaped.
        let registration = options.cancellation?.onCancel { process.signal(SIGTERM) }
        defer {
            registration?.end()
            process.stop(grace: 5)
        }
        let clock = Clock(start: Date())
        var report = BootReport(image: imageName, firmware: firmware, acceleration: acceleration.rawValue,
                                stages: [], checks: [], failure: nil, reached: nil, consoleLog: nil, identity: nil,
                                seconds: 0)
        let deadline = Date().addingTimeInterval(options.timeout)
        var lastSSHTry = Date.distantPast
        var login: Double?

        while login == nil {
            try options.cancellation?.check(image: imageName)
            console.update(from: consolePath, clock: clock)
            if let failure = console.failure {
                report.failure = failure
                break
            }
            if !process.isRunning {
                let said = (try? String(contentsOfFile: qemuLog, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                report.failure = said.isEmpty
                    ? "the guest stopped (powered off or rebooted) before SSH answered; \(console.lastLines())"
                    : "qemu exited: \(said)"
                break
            }
            if Date() > deadline {
                report.failure = "no SSH login within \(Int(options.timeout)) s"
                    + (before.cloudInit ? "" : " (the image has no cloud-init, so no key was injected)")
                    + (console.reached == "firmware"
                        ? "; the firmware ran but no kernel message followed: the boot loader did not start a kernel, "
                            + "or the kernel does not print to ttyS0"
                        : "")
                    + "; \(console.lastLines())"
                break
            }
            if Date().timeIntervalSince(lastSSHTry) > 3 {
                lastSSHTry = Date()
                if try ssh(["true"], timeout: 15).succeeded { login = clock.now }
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        console.update(from: consolePath, clock: clock)
        report.reached = console.reached
        guard let login, report.failure == nil else {
            report.stages = console.stages(guest: nil, login: nil)
            return report
        }
        // cloud-init may restart sshd (new host keys) just after the login: 255 is ssh's own failure, not
        // cloud-init's status, so that is tried again while the deadline allows.
        var waited = try ssh(["cloud-init", "status", "--wait"], timeout: max(30, deadline.timeIntervalSinceNow))
        for _ in 0..<3 where waited.termination == .exited(255) && deadline.timeIntervalSinceNow > 30 {
            Thread.sleep(forTimeInterval: 5)
            waited = try ssh(["cloud-init", "status", "--wait"], timeout: max(30, deadline.timeIntervalSinceNow))
        }
        let facts = try guestFacts(timeout: 180)
        console.update(from: consolePath, clock: clock)
        report.stages = console.stages(guest: GuestTimes(facts: facts, clock: clock), login: login)
        report.reached = "SSH login"
        report.checks = checks(facts: facts, cloudInitStatus: waited, before: before)
        report.identity = .init(machineID: facts["machine-id"]?.first ?? "", hostKeys: facts["host-key-fingerprint"] ?? [])

        // A thrown-away overlay is not worth waiting for a guest slow to stop (services under software emulation);
        // one booted again is, and qemu, if it must be stopped, is stopped by SIGTERM, so that it writes the
        // overlay's metadata out. The time it took, or that it was stopped, is part of the report.
        _ = try? ssh(["sh", "-c", "sync; systemctl poweroff"], timeout: 20)
        let patience: Double = again ? 180 : 30
        let off = Date().addingTimeInterval(patience)
        while process.isRunning, Date() < off { Thread.sleep(forTimeInterval: 0.5) }
        report.stages.append(.init(name: "power-off", seconds: process.isRunning ? nil : clock.now,
                                   source: process.isRunning ? "stopped after \(Int(patience)) s" : "systemctl poweroff"))
        if again, process.isRunning {
            process.signal(SIGTERM)
            process.wait()
        }
        return report
    }

    /// Appends a later boot's console to the log of all of them.
    private func appendConsole(_ path: String) {
        guard let log = FileHandle(forWritingAtPath: consolePath),
              let data = FileManager.default.contents(atPath: path) else { return }
        defer { try? log.close() }
        _ = try? log.seekToEnd()
        try? log.write(contentsOf: Data("\n=== boot \(boots) ===\n".utf8) + data)
    }

    /// Runs `command` in the guest as root; `input` goes to its standard input. ssh hands the remote shell one
    /// line, so a script travels on standard input, never as an argument.
    func ssh(_ command: [String], input: String? = nil, timeout: Double) throws -> CommandResult {
        let result = try HostCommand("ssh", ["-i", key, "-p", String(port), "-o", "BatchMode=yes",
                                             "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=no",
                                             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                                             "root@127.0.0.1"] + command,
                                     input: input.map { .bytes(Array($0.utf8)) } ?? .none, timeout: timeout,
                                     cancellation: options.cancellation).run()
        // An ssh stopped by the cancellation answered nothing: no retry, the run stops.
        try options.cancellation?.check(image: image)
        return result
    }

    /// One round trip: what the checks need, as KEY=VALUE lines.
    private func guestFacts(timeout: Double) throws -> [String: [String]] {
        let script = """
            echo "hostname=$(hostname)"
            echo "marker=$(cat /var/tmp/boot-check-marker 2>/dev/null)"
            echo "machine-id=$(cat /etc/machine-id 2>/dev/null)"
            for f in /etc/ssh/ssh_host_*_key.pub; do
              [ -f "$f" ] || continue
              echo "host-key=$(cut -d' ' -f1,2 "$f")"
              echo "host-key-fingerprint=$(ssh-keygen -l -f "$f" | cut -d' ' -f2,4)"
            done
            echo "cmdline=$(cat /proc/cmdline)"
            echo "root-options=$(findmnt -no OPTIONS /)"
            systemctl --failed --no-legend --plain 2>/dev/null | while read -r unit rest; do echo "failed-unit=$unit"; done
            echo "result=$(tr -d '\\n' < /run/cloud-init/result.json 2>/dev/null)"
            echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
            echo "now=$(date +%s.%N)"
            echo "startup=$(systemd-analyze 2>/dev/null | head -n1)"
            echo "status=$(tr -d '\\n' < /var/lib/cloud/data/status.json 2>/dev/null)"
            for f in \(FirstbootQueue.scripts)/*; do [ -f "$f" ] && echo "firstboot-queued=${f##*/}"; done
            grep '^\(FirstbootQueue.exitLinePrefix)' \(FirstbootQueue.log) 2>/dev/null | while read -r line; do
              echo "firstboot-ran=${line#\(FirstbootQueue.exitLinePrefix)}"
            done
            """
        // A round trip that fails (ssh cut off while sshd restarts, or too slow on a loaded host) would read as every
        // check failing with empty values: try again, and say so plainly if it never answers.
        var result = try ssh(["sh", "-s"], input: script, timeout: timeout)
        for _ in 0..<2 where !result.succeeded {
            Thread.sleep(forTimeInterval: 5)
            result = try ssh(["sh", "-s"], input: script, timeout: timeout)
        }
        guard result.succeeded else {
            throw GuestError(guest: image, action: "boot-check",
                             message: "the guest took the SSH login, but the checks' round trip failed three times: "
                                 + "ssh \(result.explanation)",
                             hint: "the guest's console is in \(consolePath); on a loaded host, run it again")
        }
        var facts: [String: [String]] = [:]
        for line in result.outputText.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            facts[String(line[..<equals]), default: []].append(String(line[line.index(after: equals)...]))
        }
        return facts
    }

    private func checks(facts: [String: [String]], cloudInitStatus: CommandResult, before: ImageState)
        -> [BootReport.Check] {
        func one(_ key: String) -> String { facts[key]?.first ?? "" }
        var checks: [BootReport.Check] = []
        let seenHostname = one("hostname")
        checks.append(.init(name: "hostname from the metadata", passed: seenHostname == hostname,
                            detail: seenHostname == hostname ? hostname : "expected \(hostname), found '\(seenHostname)'"))
        checks.append(.init(name: "user-data command ran", passed: one("marker") == token,
                            detail: one("marker") == token ? "/var/tmp/boot-check-marker written"
                                : "/var/tmp/boot-check-marker holds '\(one("marker"))'"))
        let id = one("machine-id")
        let freshID = !id.isEmpty && id != "uninitialized" && id != before.machineID
        checks.append(.init(name: "fresh machine-id", passed: freshID,
                            detail: id.isEmpty ? "/etc/machine-id is empty"
                                : id == before.machineID ? "\(id) is the one the image holds: clones would share it"
                                : before.machineID == nil ? "\(id) (the image holds none)"
                                : "\(id) (the image holds \(before.machineID ?? ""))"))
        let keys = Set(facts["host-key"] ?? [])
        let copied = keys.intersection(before.hostKeys)
        checks.append(.init(name: "fresh SSH host keys", passed: !keys.isEmpty && copied.isEmpty,
                            detail: keys.isEmpty ? "no /etc/ssh/ssh_host_*_key.pub"
                                : copied.isEmpty ? "\(keys.count) keys, none from the image"
                                : "\(copied.count) of \(keys.count) keys are the image's: clones would share them"))
        if before.serialConsole {
            let cmdline = one("cmdline")
            checks.append(.init(name: "serial console", passed: cmdline.contains("console=ttyS0"),
                                detail: cmdline.contains("console=ttyS0") ? "console=ttyS0 on /proc/cmdline"
                                    : "the image asks for console=ttyS0 but /proc/cmdline is '\(cmdline)'"))
        }
        let rootOptions = one("root-options")
        checks.append(.init(name: "root filesystem read-write", passed: rootOptions.split(separator: ",").first == "rw",
                            detail: "mounted \(rootOptions.isEmpty ? "(unknown)" : rootOptions)"))
        let failed = facts["failed-unit"] ?? []
        checks.append(.init(name: "no failed systemd units", passed: failed.isEmpty,
                            detail: failed.isEmpty ? "none" : failed.joined(separator: ", ")))
        if !before.firstbootQueue.isEmpty {
            checks.append(Self.firstbootCheck(queued: before.firstbootQueue, ran: facts["firstboot-ran"] ?? [],
                                              left: facts["firstboot-queued"] ?? []))
        }
        let result = one("result")
        let errors = Self.cloudInitErrors(result)
        // `status --wait` prints a dot a second while it waits, then "status: done".
        let statusText = cloudInitStatus.outputText.split(separator: "\n").last.map(String.init) ?? "no status"
        checks.append(.init(name: "cloud-init without errors", passed: cloudInitStatus.succeeded && errors == [],
                            detail: errors == nil ? "no /run/cloud-init/result.json (\(statusText))"
                                : errors!.isEmpty ? "result.json lists no errors (\(statusText))"
                                : errors!.joined(separator: "; ")))
        return checks
    }

    /// The first-boot scripts the image queued each ran once and exited 0, and none is left: `ran` holds the
    /// runner's log lines "STATUS: NAME", `left` what is still queued.
    static func firstbootCheck(queued: [String], ran: [String], left: [String]) -> BootReport.Check {
        var problems: [String] = []
        for name in queued {
            let runs = ran.filter { $0.hasSuffix(": " + name) }
            if runs.isEmpty { problems.append("\(name) did not run") }
            if runs.count > 1 { problems.append("\(name) ran \(runs.count) times") }
            if let failed = runs.first(where: { !$0.hasPrefix("0: ") }) {
                problems.append("\(name) exited \(failed.prefix(while: { $0 != ":" }))")
            }
        }
        if !left.isEmpty { problems.append("still queued: " + left.joined(separator: ", ")) }
        return .init(name: "first-boot scripts ran once", passed: problems.isEmpty,
                     detail: problems.isEmpty
                        ? "\(queued.joined(separator: ", ")): exit status 0, logged in \(FirstbootQueue.log)"
                        : problems.joined(separator: "; ") + " (see \(FirstbootQueue.log) in the guest)")
    }

    /// The `errors` of cloud-init's result.json; nil when it is missing or unreadable.
    static func cloudInitErrors(_ json: String) -> [String]? {
        guard let data = json.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let v1 = object["v1"] as? [String: Any], let errors = v1["errors"] as? [Any] else { return nil }
        return errors.map { "\($0)" }
    }
}

/// Seconds since qemu started.
struct Clock {
    let start: Date
    var now: Double { Date().timeIntervalSince(start) }
    func since(epoch: Double) -> Double { epoch - start.timeIntervalSince1970 }
}
