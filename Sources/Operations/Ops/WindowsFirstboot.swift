/// The first-boot queue of a Windows guest (`firstboot` and `firstboot-command` there): batch files in `scripts`,
/// run in order at the next boot by `run.bat`, as SYSTEM and before anyone logs on, each moved to `done` before it
/// runs and its output appended to `firstboot.log`.
///
/// What starts the runner is Winlogon's setup hook (Microsoft KB939857): with HKLM\SYSTEM\Setup's SetupType 2,
/// Winlogon runs CmdLine as SYSTEM before the logon screen, then goes on booting. It needs nothing installed in the
/// guest: virt-customize's way, a service wrapper (rhsrvany or pvvxsvc), needs a binary Debian does not ship, and
/// RunOnce waits for a user to log on. The runner gives the hook back first (SetupType 0, CmdLine empty), so that it
/// runs once whatever the scripts do, and a script that starts Sysprep lets Sysprep set the hook for its own next
/// boot.
public enum WindowsFirstbootQueue {
    /// Below the guest's system drive (the root filesystem), in the case created when missing.
    static let directory = "/ProgramData/imgcustomize/firstboot"
    static let runnerName = "run.bat"

    /// The runner, with CRLF line ends as cmd.exe expects them.
    static let runner = [
        "@echo off",
        "rem imgcustomize's first-boot runner, started by Winlogon as SYSTEM before any logon (HKLM\\SYSTEM\\Setup:",
        "rem SetupType 2, CmdLine). It gives the hook back first, so that it runs once, then runs each queued script in",
        "rem order, moved to done\\ before it runs, its output appended to firstboot.log.",
        "setlocal EnableDelayedExpansion",
        "set dir=%~dp0",
        "set log=%dir%firstboot.log",
        "reg add HKLM\\SYSTEM\\Setup /v SetupType /t REG_DWORD /d 0 /f >nul",
        "reg add HKLM\\SYSTEM\\Setup /v CmdLine /t REG_SZ /d \"\" /f >nul",
        "if not exist \"%dir%done\" mkdir \"%dir%done\"",
        "for %%f in (\"%dir%scripts\\*.bat\") do (",
        "  echo === %date% %time% %%~nxf>>\"%log%\"",
        "  move /y \"%%f\" \"%dir%done\\%%~nxf\" >nul",
        "  call \"%dir%done\\%%~nxf\" >>\"%log%\" 2>&1",
        "  echo \(FirstbootQueue.exitLinePrefix)!errorlevel!: %%~nxf>>\"%log%\"",
        ")",
        "exit /b 0",
    ].joined(separator: "\r\n") + "\r\n"

    /// Queues `lines` as a batch file named after `base`, installing the runner and the hook first.
    static func enqueue(_ lines: [String], named base: String, in guest: GuestFilesystem,
                        context: OperationContext, operation: String) throws -> OperationOutcome {
        guard let windows = context.guest.windows else {
            throw GuestError(guest: guest.guestDescription, action: operation, message: "the guest is not Windows")
        }
        var done: [String] = []
        let root = try InjectVirtioWin.directoryIgnoringCase(directory, in: guest)
        let scripts = try InjectVirtioWin.directoryIgnoringCase(directory + "/scripts", in: guest)
        if try !guest.holds(root + "/" + runnerName, exactly: Array(runner.utf8)) {
            try guest.write(root + "/" + runnerName, Array(runner.utf8), mode: 0o644)
            done.append("installed \(root)/\(runnerName)")
        }
        // The hook: the runner's Windows path on the system drive (the root filesystem's letter, C: by default).
        let letter = windows.driveMappings.first { $0.value == context.guest.root }?.key ?? "C"
        let windowsPath = letter + ":" + (root + "/" + runnerName).replacingOccurrences(of: "/", with: "\\")
        let hook = RegistryKey(hive: .system, path: ["Setup"])
        let setup = try RegistryEdit(key: hook, operation: operation).apply(lines: [
            "\"SetupType\"=dword:00000002",
            "\"CmdLine\"=" + (RegistryData(kind: .sz, text: "cmd.exe /c \"\(windowsPath)\"").regValue ?? ""),
        ], guest: guest, context: context)
        if setup.changed { done.append("set HKLM\\SYSTEM\\Setup to run it at the next boot, before logon") }

        let content = Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
        let queued = try guest.list(scripts).sorted()
        if let same = try queued.first(where: { try guest.holds(scripts + "/" + $0, exactly: content) }) {
            return OperationOutcome(changed: done.isEmpty ? .no : .yes,
                                    summary: done.isEmpty ? "already queued as \(scripts)/\(same)" : done.joined(separator: "; "),
                                    diffs: setup.diff.map { [$0] })
        }
        let number = String((queued.compactMap { Int($0.prefix(while: \.isNumber)) }.max() ?? 0) + 1)
        let slug = String(base.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }.prefix(40))
        let path = scripts + "/" + String(repeating: "0", count: max(0, 4 - number.count)) + number + "-" + slug + ".bat"
        try guest.write(path, content, mode: 0o644)
        done.append("queued \(path) for the next boot, logged in \(root)/firstboot.log")
        return OperationOutcome(changed: .yes, summary: done.joined(separator: "; "), diffs: setup.diff.map { [$0] })
    }

    /// `firstboot-install` on Windows: each item "PATH [ARGUMENTS]" names a host installer, copied to `files` and
    /// run by its own queued batch file: an .msi by msiexec, quiet, with no restart and a verbose log beside the
    /// runner's; an .exe as it is, with the arguments given.
    static func install(_ items: [String], in guest: GuestFilesystem, context: OperationContext,
                        operation: String) throws -> OperationOutcome {
        var changed = false
        var summaries: [String] = []
        var diffs: [FileDiff] = []
        for item in items {
            let path = String(item.prefix { $0 != " " })
            let arguments = item.dropFirst(path.count).trimmingCharacters(in: .whitespaces)
            let name = (path.split(separator: "/").last.map(String.init) ?? path)
            let lower = name.lowercased()
            guard lower.hasSuffix(".msi") || lower.hasSuffix(".exe"),
                  name.allSatisfy({ $0.isLetter || $0.isNumber || "._-+".contains($0) }) else {
                throw GuestError(guest: guest.guestDescription, action: operation, path: path,
                                 message: "a Windows guest installs an .msi or an .exe named with letters, digits and ._-+",
                                 hint: "give PATH.msi or PATH.exe, a path without spaces (link or copy it elsewhere), then its arguments after a space")
            }
            let content = try hostScript(path, for: operation, guest: guest)
            let files = try InjectVirtioWin.directoryIgnoringCase(directory + "/files", in: guest)
            if try !guest.holds(files + "/" + name, exactly: content) {
                try guest.write(files + "/" + name, content, mode: 0o644)
                changed = true
            }
            // Scripts run from done\: the installers are in ..\files.
            let installer = "\"%~dp0..\\files\\\(name)\""
            let command = lower.hasSuffix(".msi")
                ? "msiexec /i \(installer) /qn /norestart /l*v \"%~dp0..\\\(name).log\"" + (arguments.isEmpty ? "" : " " + arguments)
                : installer + (arguments.isEmpty ? "" : " " + arguments)
            let step = try enqueue(["@echo off", command], named: "install-" + String(name.dropLast(4)), in: guest,
                                   context: context, operation: operation)
            if step.changed == .yes { changed = true }
            summaries.append(step.summary)
            diffs += step.diffs ?? []
        }
        return OperationOutcome(changed: changed ? .yes : .no, summary: summaries.joined(separator: "; "),
                                diffs: diffs.isEmpty ? nil : InjectVirtioWin.merged(diffs))
    }
}
