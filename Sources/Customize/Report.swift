import Foundation
import Operations
import Host

/// The machine-readable account of a run: what `--json` prints, and what library callers get back.
public struct RunReport: Encodable, Sendable {
    public var profile: String?
    public var image: String
    public var output: String?
    public var dryRun: Bool
    public var guest: GuestFacts?
    public var steps: [StepReport]
    /// Seconds per stage (`Stage`'s names) the run went through.
    public var timings: [String: Double]
    public var size: Size
    /// What the user should know although the run succeeded, in order: KVM given up for TCG, a package a step
    /// found missing, a profile forced onto a guest it was not made for.
    public var warnings: [String] = []
    /// The disks attached read-only for guest commands (`--attach`), with the format each was opened as.
    public var attached: [AttachedDisk] = []

    public struct Size: Encodable, Sendable {
        /// Allocated bytes of the image before the run and of the result after it.
        public var before: Int64
        public var after: Int64?
    }

    enum CodingKeys: String, CodingKey {
        case profile, image, output, dryRun = "dry-run", guest = "os", steps, timings, size, warnings, attached
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(profile, forKey: .profile)
        try container.encode(image, forKey: .image)
        try container.encode(output, forKey: .output)
        try container.encode(dryRun, forKey: .dryRun)
        try container.encodeIfPresent(guest, forKey: .guest)
        try container.encode(steps, forKey: .steps)
        try container.encode(timings.mapValues { ($0 * 1000).rounded() / 1000 }, forKey: .timings)
        try container.encode(size, forKey: .size)
        try container.encode(warnings, forKey: .warnings)
        if !attached.isEmpty { try container.encode(attached, forKey: .attached) }
    }

    public func json() -> String { jsonDocument(self) }

    /// Records a warning and hands it to the caller's progress as it happens.
    mutating func warn(_ warning: String, _ progress: (RunProgress) -> Void) {
        warnings.append(warning)
        progress(.warning(warning))
    }
}

/// One pretty-printed JSON document with sorted keys, what --json prints.
public func jsonDocument(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    // Encoding plain strings, numbers and booleans cannot fail.
    let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
}

/// Bytes a file occupies on disk (what `qemu-img info` calls actual-size).
func allocatedBytes(_ path: String) -> Int64 {
    var info = stat()
    guard stat(path, &info) == 0 else { return 0 }
    return Int64(info.st_blocks) * 512
}

extension RunReport {
    /// The report for a person: a line per step, the diffs when asked, and a closing summary.
    public func text(diffs: Bool) -> String {
        var lines: [String] = []
        if let guest {
            lines.append("guest: \(guest.productName ?? guest.distro ?? "unknown") (\(guest.osinfo ?? "?"), \(guest.arch ?? "?"))")
        }
        for disk in attached {
            lines.append("attached: \(disk.path) (\(disk.format?.rawValue ?? "?"), read-only)")
        }
        for step in steps {
            let mark = switch step.changed {
            case .yes: dryRun ? "would change" : "changed"
            case .no: "ok"
            case .unknown: "changed: unknown"
            }
            let target = step.target.isEmpty ? "" : " \(step.target)"
            let summary = dryRun && step.changed == .yes ? conditional(step.summary) : step.summary
            lines.append("[\(mark)] \(step.operation)\(target): \(summary)")
            for line in step.output ?? [] { lines.append("    | " + line) }
            if diffs {
                for diff in step.diffs ?? [] { lines.append(diff.unified) }
            }
        }
        let changed = steps.filter { $0.changed == .yes }.count
        var summary = "\(changed) of \(steps.count) steps \(dryRun ? "would change the guest" : "changed the guest")"
        let untried = steps.filter { $0.changed == .unknown && $0.summary.hasPrefix(NativeDryRunTarget.wouldRun) }.count
        let unknown = steps.filter { $0.changed == .unknown }.count - untried
        if unknown > 0 {
            summary += ", \(unknown) ran guest commands (what they changed is unknown)"
        }
        if untried > 0 {
            summary += ", \(untried) would run but were not tried without the appliance (--appliance tries them)"
        }
        if let after = size.after, let output {
            summary += "; \(output): \(formatBytes(size.before)) -> \(formatBytes(after))"
        }
        if dryRun { summary += "; dry run: \(image) is unchanged" }
        let total = timings.values.reduce(0, +)
        summary += String(format: "; %.1f s", total)
        lines.append(summary)
        return lines.joined(separator: "\n")
    }
}

/// A step's summary said of a dry run, which changed only a throwaway overlay: "removed /root/.bash_history, removed
/// /var/log/x" becomes "would remove /root/.bash_history, would remove /var/log/x". Summaries start with a verb in
/// the past tense, and lists of them are joined by ", ".
func conditional(_ summary: String) -> String {
    summary.components(separatedBy: ", ").map { part in
        guard let space = part.firstIndex(of: " "), let verb = conditionalVerbs[String(part[..<space])] else {
            return part
        }
        return "would \(verb)" + part[space...]
    }.joined(separator: ", ")
}

/// The past tenses operations report in, and their infinitives.
private let conditionalVerbs = [
    "added": "add", "appended": "append", "applied": "apply", "copied": "copy", "created": "create",
    "disabled": "disable", "emptied": "empty", "linked": "link", "locked": "lock", "moved": "move",
    "relabelled": "relabel", "removed": "remove", "reset": "reset", "set": "set", "trimmed": "trim",
    "wrote": "write", "truncated": "truncate", "touched": "touch", "deleted": "delete",
]
