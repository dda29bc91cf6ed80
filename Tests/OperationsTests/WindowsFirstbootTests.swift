import Diagnostics
import Foundation
import Testing
@testable import Operations
import TestSupport

/// firstboot and firstboot-command on a Windows 10 guest tree with real hives: the queue under ProgramData, the
/// runner, and Winlogon's setup hook in HKLM\SYSTEM\Setup, read back with hivexregedit.
@Suite struct WindowsFirstbootTests {
    static let win10 = GuestFacts(type: "windows", distro: "windows", majorVersion: 10, osinfo: "win10", arch: "x86_64",
                                  root: "/dev/sda3",
                                  windows: WindowsFacts(systemRoot: "/Windows", driveMappings: ["C": "/dev/sda3"]))

    @Test func commandsAreQueuedInOrderAndTheHookRunsTheRunnerOnce() throws {
        let tree = try WindowsRegistryTests.windowsTree()
        let host = try TestDirectory("windows-firstboot")
        try Data("echo from a script\r\n".utf8).write(to: URL(fileURLWithPath: host.path("prepare.bat")))
        let runner = OperationRunner(guest: tree.guest, context: OperationContext(guest: Self.win10), recordDiffs: true)
        let first = try runner.run(FirstbootCommand("msiexec /i C:\\cbi.msi /qn"))
        #expect(first.changed == .yes, "\(first.summary)")
        #expect(try runner.run(Firstboot(host.path("prepare.bat"))).changed == .yes)
        let again = try runner.run(FirstbootCommand("msiexec /i C:\\cbi.msi /qn"))
        #expect(again.changed == .no && again.diffs == [], "\(again.summary)")

        let directory = "/ProgramData/imgcustomize/firstboot"
        #expect(try tree.guest.list(directory + "/scripts").sorted() == ["0001-command.bat", "0002-prepare.bat"])
        #expect(tree.text(directory + "/scripts/0001-command.bat") == "@echo off\r\nmsiexec /i C:\\cbi.msi /qn\r\n")
        let runnerText = try #require(tree.text(directory + "/run.bat"))
        #expect(runnerText.contains("reg add HKLM\\SYSTEM\\Setup /v SetupType /t REG_DWORD /d 0 /f"))
        #expect(runnerText.contains("\r\n") && !runnerText.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        let setup = try WindowsRegistryTests.exported(tree, "SYSTEM", "Setup")
        #expect(setup.contains("\"SetupType\"=dword:00000002"), "\(setup)")
        #expect(setup.contains("\"CmdLine\"=str(1):\"cmd.exe /c \\\"C:\\ProgramData\\imgcustomize\\firstboot\\run.bat\\\"\""),
                "\(setup)")
        // The hook's diff is .reg text.
        #expect(first.diffs?.contains { $0.path == "/Windows/System32/config/SYSTEM" && $0.unified.contains("+\"SetupType\"=dword:00000002") } == true)
    }

    @Test func aScriptThatIsNotABatchFileIsRefused() throws {
        let tree = try WindowsRegistryTests.windowsTree()
        let host = try TestDirectory("windows-firstboot")
        try Data("echo hi\n".utf8).write(to: URL(fileURLWithPath: host.path("setup.sh")))
        let runner = OperationRunner(guest: tree.guest, context: OperationContext(guest: Self.win10))
        let error = #expect(throws: OperationFailure.self) { try runner.run(Firstboot(host.path("setup.sh"))) }
        #expect(error.map { Diagnostic(of: $0).message.contains("batch files") } == true)
    }

    @Test func installersAreCopiedAndRunQuietlyOnce() throws {
        let tree = try WindowsRegistryTests.windowsTree()
        let host = try TestDirectory("windows-firstboot")
        try Data("an msi".utf8).write(to: URL(fileURLWithPath: host.path("CloudbaseInitSetup_x64.msi")))
        try Data("an exe".utf8).write(to: URL(fileURLWithPath: host.path("tool.exe")))
        let runner = OperationRunner(guest: tree.guest, context: OperationContext(guest: Self.win10))
        let install = try FirstbootInstall.parse(host.path("CloudbaseInitSetup_x64.msi") + " LOGGINGSERIALPORTNAME=COM1,"
                                                 + host.path("tool.exe") + " /S")
        #expect(try runner.run(install).changed == .yes)
        #expect(try runner.run(install).changed == .no)
        let directory = "/ProgramData/imgcustomize/firstboot"
        #expect(tree.text(directory + "/files/CloudbaseInitSetup_x64.msi") == "an msi")
        #expect(try tree.guest.list(directory + "/scripts").sorted()
                == ["0001-install-CloudbaseInitSetup_x64.bat", "0002-install-tool.bat"])
        #expect(tree.text(directory + "/scripts/0001-install-CloudbaseInitSetup_x64.bat") == "@echo off\r\n"
                + "msiexec /i \"%~dp0..\\files\\CloudbaseInitSetup_x64.msi\" /qn /norestart "
                + "/l*v \"%~dp0..\\CloudbaseInitSetup_x64.msi.log\" LOGGINGSERIALPORTNAME=COM1\r\n")
        #expect(tree.text(directory + "/scripts/0002-install-tool.bat") == "@echo off\r\n\"%~dp0..\\files\\tool.exe\" /S\r\n")
        #expect(throws: OperationFailure.self) {
            try runner.run(try FirstbootInstall.parse(host.path("tool.exe").replacingOccurrences(of: ".exe", with: ".sh")))
        }
    }
}
