import Foundation

/// Follows the guest's serial console as qemu writes it: when each boot stage first shows, the last lines, and
/// the lines that mean the boot cannot succeed.
struct ConsoleWatch {
    static let stageNames = ["firmware", "kernel", "init", "network", "cloud-init final", "SSH login"]

    private var offset: UInt64 = 0
    private var partial: [UInt8] = []
    private(set) var seen: [String: Double] = [:]
    private(set) var recent: [String] = []
    /// Why the boot will not get anywhere, quoting the console.
    private(set) var failure: String?

    mutating func update(from path: String, clock: Clock) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.readToEnd(), !data.isEmpty else { return }
        offset += UInt64(data.count)
        // Split on bytes: as a String, "\r\n" is one character and never equals "\n".
        partial += data
        while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: partial[..<newline], as: UTF8.self)
            partial.removeSubrange(...newline)
            consume(Self.plain(line), at: clock.now)
        }
    }

    /// Without terminal escapes and carriage returns.
    static func plain(_ line: String) -> String {
        var out = ""
        var escape = false
        for scalar in line.unicodeScalars {
            if escape {
                if scalar.properties.isAlphabetic || scalar == "~" { escape = false }
                continue
            }
            if scalar == "\u{1b}" { escape = true; continue }
            if scalar == "\r" || (scalar.value < 0x20 && scalar != "\t") { continue }
            out.unicodeScalars.append(scalar)
        }
        return out.trimmingCharacters(in: .whitespaces)
    }

    private mutating func consume(_ line: String, at seconds: Double) {
        guard !line.isEmpty else { return }
        recent.append(line)
        if recent.count > 40 { recent.removeFirst(recent.count - 40) }
        func mark(_ stage: String) { if seen[stage] == nil { seen[stage] = seconds } }
        mark("firmware")
        if line.contains("Linux version") { mark("kernel") }
        // "Welcome to GRUB!" is the boot loader; systemd greets with the distribution's name.
        if (line.contains("Welcome to ") && !line.contains("GRUB")) || line.contains("systemd[1]: ")
            || line.contains("Reached target") {
            mark("init")
        }
        if line.contains("Net device info") { mark("network") }
        if line.contains("Cloud-init v.") && line.contains("finished at") { mark("cloud-init final") }
        guard failure == nil else { return }
        if line.contains("Kernel panic - not syncing") {
            failure = "kernel panic: \(line)"
        } else if line.contains("No bootable device") || line.contains("Boot failed: not a bootable disk")
                    || line.contains("No bootable option or device was found") || line.hasPrefix("Shell>") {
            failure = "no boot loader found: \(line)"
        } else if line.contains("grub rescue>") || line.hasPrefix("error: file `") || line.contains("error: no such device") {
            failure = "the boot loader failed: \(line)"
        } else if line.contains("You are in emergency mode") || line.contains("Give root password for maintenance") {
            failure = "the guest fell into emergency mode: \(line)"
        }
    }

    /// The last stage the console showed.
    var reached: String? {
        Self.stageNames.last { seen[$0] != nil }
    }

    func lastLines(_ count: Int = 8) -> String {
        recent.isEmpty
            ? "the serial console printed nothing (does the image's kernel command line have console=ttyS0?)"
            : "the console's last lines:\n    " + recent.suffix(count).joined(separator: "\n    ")
    }

    /// Every stage with the time it was reached: from the console where it showed, else from the guest's own
    /// account of its boot.
    func stages(guest: GuestTimes?, login: Double?) -> [BootReport.Stage] {
        Self.stageNames.map { name in
            if name == "SSH login" { return .init(name: name, seconds: login, source: login == nil ? nil : "ssh") }
            if let seconds = seen[name] { return .init(name: name, seconds: seconds, source: "console") }
            if let seconds = guest?.stages[name] { return .init(name: name, seconds: seconds, source: "guest clock") }
            return .init(name: name, seconds: nil, source: nil)
        }
    }
}

/// When the guest says its boot stages happened, in seconds since qemu started: the kernel from its uptime, init
/// from systemd-analyze, network and cloud-init's end from cloud-init's status.json.
struct GuestTimes {
    var stages: [String: Double] = [:]

    init(facts: [String: [String]], clock: Clock) {
        guard let uptime = facts["uptime"]?.first.flatMap(Double.init),
              let now = facts["now"]?.first.flatMap(Double.init) else { return }
        // The guest's clock starts from the host's, so its epoch seconds compare with qemu's start.
        let kernel = clock.since(epoch: now - uptime)
        stages["kernel"] = kernel
        if let startup = facts["startup"]?.first {
            let before = Self.seconds(in: startup, before: "(kernel)") + Self.seconds(in: startup, before: "(initrd)")
            if before > 0 { stages["init"] = kernel + before }
        }
        if let status = facts["status"]?.first, let data = status.data(using: .utf8),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let v1 = object["v1"] as? [String: Any] {
            func finished(_ stage: String) -> Double? {
                (v1[stage] as? [String: Any])?["finished"] as? Double
            }
            if let initialized = finished("init") { stages["network"] = clock.since(epoch: initialized) }
            if let final = finished("modules-final") { stages["cloud-init final"] = clock.since(epoch: final) }
        }
    }

    /// The duration systemd-analyze prints just before `label`: "2.1s (kernel)", "1min 3.2s (userspace)".
    static func seconds(in text: String, before label: String) -> Double {
        guard let range = text.range(of: label) else { return 0 }
        let words = text[..<range.lowerBound].split(separator: " ").reversed()
        var total = 0.0
        for word in words {
            if word.hasSuffix("ms"), let value = Double(word.dropLast(2)) { total += value / 1000 }
            else if word.hasSuffix("min"), let value = Double(word.dropLast(3)) { total += value * 60 }
            else if word.hasSuffix("s"), let value = Double(word.dropLast()) { total += value }
            else { break }
        }
        return total
    }
}
