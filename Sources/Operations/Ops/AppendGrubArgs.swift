/// `append-grub-args ARGS`: kernel arguments everywhere the guest's bootloader keeps them, edited as text, without
/// running grub2-mkconfig or grubby in the guest:
/// - GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub (the key is created when absent), for future grub2-mkconfig runs,
///   and in the /etc/default/grub.d/*.cfg files that set it (Ubuntu's cloud images do, and they are read after);
/// - every linux/linux16/linuxefi line of grub2's generated grub.cfg, BIOS and EFI locations;
/// - every `kernel` line of legacy GRUB's grub.conf (RHEL 6); a symlink to it (/etc/grub.conf) is not edited twice;
/// - the `options` line of each BLS entry in /boot/loader/entries, and /etc/kernel/cmdline where present;
/// - `kernelopts` in GRUB's environment block (RHEL 8, whose BLS entries say `options $kernelopts`).
///
/// An argument already present is not added again. `console=` may appear several times and the last one becomes
/// /dev/console, so the requested console arguments are kept together at the end, in the requested order. Another
/// `key=value` replaces the value of an existing `key=` (the kernel would use the last one anyway).
public struct AppendGrubArgs: RegisteredOperation {
    public static let name = "append-grub-args"
    public static let sourceFile = #filePath
    public static let summary = "Add kernel arguments to /etc/default/grub and every boot entry (grub2, legacy GRUB, BLS)"
    public static let argument = OperationArgument.required(syntax: "ARGS", example: "console=tty0 console=ttyS0,115200n8")

    public let arguments: [String]
    public var target: String { arguments.joined(separator: " ") }

    /// Keys the kernel accepts more than once, where order matters.
    static let repeatableKeys: Set<String> = ["console"]

    static let defaultGrub = "/etc/default/grub"
    static let grub2Configurations = ["/boot/grub2/grub.cfg", "/boot/grub/grub.cfg", "/boot/efi/EFI/*/grub.cfg"]
    static let legacyConfigurations = ["/boot/grub/grub.conf", "/boot/grub/menu.lst", "/etc/grub.conf"]

    public init(_ arguments: [String]) {
        self.arguments = arguments
    }

    public static func parse(_ argument: String?) throws -> AppendGrubArgs {
        let words = try required(argument).words
        guard !words.isEmpty else { throw invalid("no kernel arguments") }
        return AppendGrubArgs(words)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard !arguments.isEmpty else { return .unchanged("no kernel arguments to add") }
        var changed: [String] = []
        var present: [String] = []
        func note(_ description: String, _ didChange: Bool) {
            if didChange { changed.append(description) } else { present.append(description) }
        }

        if try guest.isFile(Self.defaultGrub) {
            note(Self.defaultGrub, try editDefaultGrub(guest, Self.defaultGrub))
        }
        for path in try guest.glob("/etc/default/grub.d/*.cfg") where try guest.lstat(path)?.kind == .regular {
            let sets = try guest.readText(path).split(separator: "\n")
                .contains { $0.trimmed.hasPrefix("GRUB_CMDLINE_LINUX_DEFAULT=") }
            if sets { note(path, try editDefaultGrub(guest, path)) }
        }
        // Before the BLS entries: an entry whose options are `$kernelopts` gets the arguments from grubenv.
        var kernelopts = false
        for pattern in Self.grubEnvironments {
            // /boot/grub2/grubenv is a symlink to the EFI one on UEFI installs: edited once, as the file it names.
            for path in try guest.glob(pattern) where try guest.lstat(path)?.kind == .regular {
                if let changed = try editGrubEnvironment(guest, path) {
                    note("kernelopts in \(path)", changed)
                    kernelopts = true
                }
            }
        }
        var files: [(path: String, commands: Set<String>)] = []
        for pattern in Self.grub2Configurations {
            for path in try guest.glob(pattern) { files.append((path, ["linux", "linux16", "linuxefi"])) }
        }
        for path in Self.legacyConfigurations { files.append((path, ["kernel"])) }
        for path in try guest.glob("/boot/loader/entries/*.conf") { files.append((path, ["options"])) }

        for (path, commands) in files {
            // A symlink is another name of a file this list edits (/etc/grub.conf -> ../boot/grub/grub.conf).
            guard try guest.lstat(path)?.kind == .regular else { continue }
            if let result = try editLines(guest, path, commands: commands, skipping: kernelopts ? "$kernelopts" : nil) {
                note("\(result.lines) \(commands.sorted().joined(separator: "/")) line(s) of \(path)", result.changed)
            }
        }
        if try guest.lstat("/etc/kernel/cmdline")?.kind == .regular {
            note("/etc/kernel/cmdline", try editKernelCmdline(guest))
        }

        guard !changed.isEmpty || !present.isEmpty else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: nil,
                             message: "no bootloader configuration found (looked for \(Self.defaultGrub), "
                                 + (Self.grub2Configurations + Self.legacyConfigurations).joined(separator: ", ")
                                 + ", /boot/loader/entries/*.conf, /etc/kernel/cmdline)",
                             hint: "is /boot mounted?")
        }
        if changed.isEmpty { return .unchanged("\(target) already in " + present.joined(separator: ", ")) }
        return .changed("added \(target) to " + changed.joined(separator: ", "))
    }

    private func editDefaultGrub(_ guest: GuestFilesystem, _ path: String) throws -> Bool {
        let key = "GRUB_CMDLINE_LINUX_DEFAULT"
        return try guest.withAugeas(lens: "Shellvars.lns", path: path) { edit in
            let node = "\(edit.root)/\(key)"
            let raw = try edit.match(node).first.flatMap { try edit.get($0) }
            let words = ShellValue.unquote(raw ?? "").words
            let merged = Self.merge(words, arguments)
            guard merged != words || raw == nil else { return false }
            try edit.set(node, ShellValue.render(merged.joined(separator: " "), like: raw ?? "\"\""))
            return true
        }
    }

    /// Lines holding the word `skipping` are counted but left alone.
    private func editLines(_ guest: GuestFilesystem, _ path: String, commands: Set<String>, skipping: String? = nil)
        throws -> (lines: Int, changed: Bool)? {
        var file = TextFile(try TextFile.read(guest, path, action: Self.name))
        var count = 0
        var changed = false
        for index in file.lines.indices {
            let line = file.lines[index]
            let words = line.words
            guard let command = words.first, commands.contains(command) else { continue }
            count += 1
            if let skipping, words.contains(skipping) { continue }
            // The kernel image path follows linux/kernel; BLS options lines carry arguments only.
            let fixed = command == "options" ? 1 : 2
            guard words.count >= fixed else { continue }
            let merged = Self.merge(Array(words[fixed...]), arguments)
            if merged != Array(words[fixed...]) {
                file.lines[index] = Self.replacingArguments(of: line, after: fixed, with: merged)
                changed = true
            }
        }
        guard count > 0 else { return nil }
        if changed { try guest.writeText(path, file.text) }
        return (count, changed)
    }

    private func editKernelCmdline(_ guest: GuestFilesystem) throws -> Bool {
        var file = TextFile(try TextFile.read(guest, "/etc/kernel/cmdline", action: Self.name))
        let words = file.lines.first?.words ?? []
        let merged = Self.merge(words, arguments)
        guard merged != words else { return false }
        if file.lines.isEmpty { file.lines = [""] }
        file.lines[0] = merged.joined(separator: " ")
        try guest.writeText("/etc/kernel/cmdline", file.text)
        return true
    }

    /// `line` with the words after its first `fixed` ones replaced by `arguments`, touching only those: every word
    /// kept in place keeps the blanks before it (the tab after `linux`, double spaces) and the line its trailing
    /// blanks; a removed word goes with the blanks before it, an added one comes after a space.
    static func replacingArguments(of line: String, after fixed: Int, with arguments: [String]) -> String {
        func isBlank(_ character: Character) -> Bool { character == " " || character == "\t" }
        // (blanks before, word) for every word; what follows the last word.
        var tokens: [(blanks: Substring, word: Substring)] = []
        var rest = Substring(line)
        while let start = rest.firstIndex(where: { !isBlank($0) }) {
            let end = rest[start...].firstIndex(where: isBlank) ?? rest.endIndex
            tokens.append((rest[..<start], rest[start..<end]))
            rest = rest[end...]
        }
        var text = tokens.prefix(fixed).map { $0.blanks + $0.word }.joined()
        var next = 0
        for token in tokens.dropFirst(fixed) where next < arguments.count {
            // Kept or replaced in place (the same key with a new value): at this word's place, with its blanks.
            if token.word == arguments[next] || key(String(token.word)) == key(arguments[next]) {
                text += token.blanks + arguments[next]
                next += 1
            }
        }
        for argument in arguments[next...] { text += " " + argument }
        return text + rest
    }

    static func key(_ argument: String) -> String {
        argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
    }

    /// `existing` with `requested` merged in; equal to `existing` when every argument is already there as asked.
    static func merge(_ existing: [String], _ requested: [String]) -> [String] {
        var result = existing
        var appended: [String] = []
        for key in Set(requested.map(key)) where repeatableKeys.contains(key) {
            let wanted = requested.filter { Self.key($0) == key }
            if result.filter({ wanted.contains($0) }) != wanted || !endsWith(result, wanted, key: key) {
                result.removeAll { wanted.contains($0) }
                appended += wanted
            }
        }
        for argument in requested where !repeatableKeys.contains(key(argument)) {
            let key = key(argument)
            if let first = result.firstIndex(where: { $0 == argument || (argument.contains("=") && Self.key($0) == key
                                                                          && $0.contains("=")) }) {
                result[first] = argument
                var index = result.count - 1
                while index > first {
                    if result[index] == argument || (argument.contains("=") && Self.key(result[index]) == key
                                                     && result[index].contains("=")) {
                        result.remove(at: index)
                    }
                    index -= 1
                }
            } else {
                appended.append(argument)
            }
        }
        let order = requested.filter { appended.contains($0) }
        return result + order
    }

    /// Whether the last `wanted.count` arguments with `key` are `wanted`, so that the last console= is the one asked.
    private static func endsWith(_ arguments: [String], _ wanted: [String], key: String) -> Bool {
        Array(arguments.filter { Self.key($0) == key }.suffix(wanted.count)) == wanted
    }
}

extension AppendGrubArgs: CommandLineRepresentable {
    public func commandLines() throws -> [String] { ["\(Self.name):\(arguments.joined(separator: " "))"] }
}
