import Foundation

/// What `BootCheck` saw: the stages the boot reached with their times, and each check made inside the guest.
public struct BootReport: Encodable, Sendable {
    public struct Stage: Encodable, Sendable, Equatable {
        public var name: String
        /// Seconds from qemu's start until the stage was seen; nil when it was not seen.
        public var seconds: Double?
        /// Where the time comes from: the serial console, the guest's own account (systemd-analyze, cloud-init),
        /// or the SSH login.
        public var source: String?
    }

    public struct Check: Encodable, Sendable, Equatable {
        public var name: String
        public var passed: Bool
        public var detail: String
    }

    /// Who the booted machine was: what tells two boots of one image apart, as a user compares them.
    public struct Identity: Encodable, Sendable, Equatable {
        public var machineID: String
        /// `ssh-keygen -l` of each host key: "SHA256:… (ED25519)".
        public var hostKeys: [String]

        enum CodingKeys: String, CodingKey {
            case machineID = "machine-id"
            case hostKeys = "ssh-host-keys"
        }
    }

    public var image: String
    public var firmware: Firmware
    public var acceleration: String
    public var stages: [Stage]
    public var checks: [Check]
    /// Why the boot did not get far enough to check, in words a user can act on; nil when it did.
    public var failure: String?
    /// The stage the boot reached last.
    public var reached: String?
    public var consoleLog: String?
    /// nil when the boot did not get as far as a login.
    public var identity: Identity?
    public var seconds: Double
    /// What the user should know although the check ran (KVM given up for TCG), in order.
    public var warnings: [String] = []

    public var passed: Bool { failure == nil && !checks.isEmpty && checks.allSatisfy(\.passed) }

    /// Folds in a second boot of the same machine: its stages and checks, named "second boot: ...", its failure,
    /// and whether it was the same machine (the machine-id and host keys the first boot made, kept).
    mutating func append(second: BootReport) {
        let prefix = "second boot: "
        stages += second.stages.map { Stage(name: prefix + $0.name, seconds: $0.seconds, source: $0.source) }
        checks += second.checks.map { Check(name: prefix + $0.name, passed: $0.passed, detail: $0.detail) }
        if let failure = second.failure {
            self.failure = prefix + failure
            reached = prefix + (second.reached ?? "nothing")
            return
        }
        if let first = identity, let again = second.identity {
            let same = first == again
            checks.append(Check(name: prefix + "the same machine", passed: same,
                                detail: same ? "machine-id \(first.machineID) and the SSH host keys kept"
                                    : "machine-id \(first.machineID) became \(again.machineID)"
                                        + (first.hostKeys == again.hostKeys ? "" : "; the SSH host keys changed")))
        }
    }

    enum CodingKeys: String, CodingKey {
        case image, firmware, acceleration, stages, checks, failure, reached, passed, seconds, identity, warnings
        case consoleLog = "console-log"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(image, forKey: .image)
        try container.encode(firmware, forKey: .firmware)
        try container.encode(acceleration, forKey: .acceleration)
        try container.encode(stages, forKey: .stages)
        try container.encode(checks, forKey: .checks)
        try container.encode(failure, forKey: .failure)
        try container.encode(reached, forKey: .reached)
        try container.encode(passed, forKey: .passed)
        try container.encode(consoleLog, forKey: .consoleLog)
        try container.encode(identity, forKey: .identity)
        try container.encode((seconds * 10).rounded() / 10, forKey: .seconds)
        try container.encode(warnings, forKey: .warnings)
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Stage by stage with seconds, then the checks, then the verdict.
    public func text() -> String {
        var lines = ["\(image): booted with \(firmware == .uefi ? "UEFI (OVMF)" : "BIOS (SeaBIOS)") under \(acceleration)"]
        for stage in stages {
            let when = stage.seconds.map { String(format: "%6.1f s", $0) } ?? "     -  "
            let how = stage.source.map { " (\($0))" } ?? " (not seen)"
            lines.append("  \(when)  \(stage.name)\(how)")
        }
        for check in checks {
            lines.append("  [\(check.passed ? "ok" : "FAILED")] \(check.name): \(check.detail)")
        }
        if let identity {
            lines.append("  machine-id \(identity.machineID.isEmpty ? "(none)" : identity.machineID); SSH host keys: "
                         + (identity.hostKeys.isEmpty ? "none" : identity.hostKeys.joined(separator: ", ")))
        }
        if let failure {
            lines.append("boot-check failed\(reached.map { " after \($0)" } ?? ""): \(failure)")
        } else {
            let failed = checks.filter { !$0.passed }.count
            lines.append(failed == 0 ? "boot-check passed: \(checks.count) checks in \(String(format: "%.0f", seconds)) s"
                         : "boot-check failed: \(failed) of \(checks.count) checks failed")
        }
        if let consoleLog { lines.append("console: \(consoleLog)") }
        return lines.joined(separator: "\n")
    }
}
