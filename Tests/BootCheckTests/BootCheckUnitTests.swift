import Foundation
import Formats
import Testing
import TestSupport
@testable import BootCheck

@Suite struct FirmwareDetectionTests {
    /// The firmware a disk needs, from the partition table sgdisk or sfdisk wrote, read through the qcow2 layer.
    @Test(arguments: [
        (["sgdisk", "-n", "1:2048:+64M", "-t", "1:ef00", "-n", "2:0:0", "-t", "2:8300"], Firmware.uefi),
        (["sgdisk", "-n", "1:2048:+1M", "-t", "1:ef02", "-n", "2:0:0", "-t", "2:8300"], Firmware.bios),
        (["sfdisk-mbr"], Firmware.bios),
        ([], Firmware.bios),
    ])
    func theFirmwareFollowsThePartitionTable(partitioning: [String], expected: Firmware) throws {
        let scratch = try TestDirectory("boot-check-test")
        let directory = scratch.path
        let raw = directory + "/disk.raw"
        try runTool("truncate", ["-s", "256M", raw])
        if partitioning == ["sfdisk-mbr"] {
            let script = directory + "/layout"
            try Data("label: dos\n,64M,83,*\n,,8e\n".utf8).write(to: URL(fileURLWithPath: script))
            try runTool("sh", ["-c", "sfdisk -q '\(raw)' < '\(script)'"])
        } else if let tool = partitioning.first {
            try runTool(tool, Array(partitioning.dropFirst()) + [raw])
        }
        let qcow2 = directory + "/disk.qcow2"
        try runTool("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, qcow2])
        #expect(try Firmware.detect(openImage(path: qcow2, format: .qcow2)) == expected)
    }
}

@Suite struct ConsoleWatchTests {
    func watch(_ lines: [String]) throws -> ConsoleWatch {
        let path = NSTemporaryDirectory() + "console-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data((lines.joined(separator: "\r\n") + "\r\n").utf8).write(to: URL(fileURLWithPath: path))
        var watch = ConsoleWatch()
        watch.update(from: path, clock: Clock(start: Date()))
        return watch
    }

    @Test func stagesAreSeenInTheConsole() throws {
        let console = try watch([
            "\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)",
            "[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)",
            "Welcome to \u{1b}[1mDebian GNU/Linux 12 (bookworm)\u{1b}[0m!",
            "ci-info: ++++++++++++++++++++++++++++++++++++++Net device info+++++++++++++++++++++++++++++++++++++++",
            "Cloud-init v. 22.4.2 finished at Tue, 01 Dec 2026 14:00:00 +0000. Datasource DataSourceNoCloud.  Up 61.2 seconds",
        ])
        #expect(console.failure == nil)
        #expect(console.reached == "cloud-init final")
        let stages = console.stages(guest: nil, login: 70)
        #expect(stages.map(\.name) == ConsoleWatch.stageNames)
        #expect(stages.allSatisfy { $0.seconds != nil })
        #expect(stages.last?.source == "ssh")
    }

    @Test(arguments: [
        ("[    2.345678] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)", "kernel panic: "),
        ("No bootable device.", "no boot loader found: "),
        ("BdsDxe: No bootable option or device was found.", "no boot loader found: "),
        ("error: file `/vmlinuz-6.1.0-28-cloud-amd64' not found.", "the boot loader failed: "),
        ("You are in emergency mode. After logging in, type \"journalctl -xb\" to view", "the guest fell into emergency mode: "),
    ])
    func linesThatEndTheBootAreReported(line: String, prefix: String) throws {
        let console = try watch(["SeaBIOS (version 1.16.2)", line])
        #expect(console.failure?.hasPrefix(prefix) == true)
        #expect(console.failure?.hasSuffix(line) == true)
    }

    @Test func aSilentConsoleSaysSo() throws {
        let console = try watch([])
        #expect(console.lastLines().contains("printed nothing"))
    }

    @Test func systemdAnalyzeDurationsAreRead() {
        let text = "Startup finished in 2.102s (kernel) + 1min 3.250s (initrd) + 27.123s (userspace) = 1min 32.475s"
        #expect(abs(GuestTimes.seconds(in: text, before: "(kernel)") - 2.102) < 0.001)
        #expect(abs(GuestTimes.seconds(in: text, before: "(initrd)") - 63.25) < 0.001)
        #expect(GuestTimes.seconds(in: "Startup finished in 850ms (kernel)", before: "(kernel)") == 0.85)
    }
}

@Suite struct BootReportTests {
    func report(identity: BootReport.Identity?) -> BootReport {
        BootReport(image: "guest.qcow2", firmware: .bios, acceleration: "tcg", stages: [],
                   checks: [.init(name: "fresh machine-id", passed: true, detail: "")], failure: nil, reached: "SSH login",
                   consoleLog: nil, identity: identity, seconds: 1)
    }

    /// Two boots of one image are told apart by what a user compares: the machine-id and the host key fingerprints.
    @Test func theIdentityIsInTheJSONAndTheText() throws {
        let identity = BootReport.Identity(machineID: "0123456789abcdef0123456789abcdef",
                                           hostKeys: ["SHA256:abc (ED25519)", "SHA256:def (RSA)"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report(identity: identity).json().utf8))
            as? [String: Any])
        let encoded = try #require(json["identity"] as? [String: Any])
        #expect(encoded["machine-id"] as? String == identity.machineID)
        #expect(encoded["ssh-host-keys"] as? [String] == identity.hostKeys)
        #expect(report(identity: identity).text().contains(
            "machine-id 0123456789abcdef0123456789abcdef; SSH host keys: SHA256:abc (ED25519), SHA256:def (RSA)"))
    }

    @Test func aBootWithoutALoginHasNoIdentity() throws {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report(identity: nil).json().utf8))
            as? [String: Any])
        #expect(json["identity"] is NSNull)
        #expect(!report(identity: nil).text().contains("SSH host keys:"))
    }
}

@Suite struct FirstbootCheckTests {
    let queued = ["0001-command", "0002-setup.sh"]

    @Test func everyScriptRanOnceAndExitedZero() {
        let check = GuestRun.firstbootCheck(queued: queued, ran: ["0: 0001-command", "0: 0002-setup.sh"], left: [])
        #expect(check.passed)
        #expect(check.detail == "0001-command, 0002-setup.sh: exit status 0, logged in /var/log/imgcustomize-firstboot.log")
    }

    /// What a broken runner or script looks like: one ran twice, one failed, one is still queued.
    @Test func aScriptRunTwiceFailedOrLeftIsNamed() {
        let twice = GuestRun.firstbootCheck(queued: queued, ran: ["0: 0001-command", "0: 0002-setup.sh",
                                                                 "0: 0001-command"], left: [])
        #expect(!twice.passed && twice.detail.hasPrefix("0001-command ran 2 times"), "\(twice.detail)")
        let failed = GuestRun.firstbootCheck(queued: queued, ran: ["0: 0001-command", "3: 0002-setup.sh"], left: [])
        #expect(!failed.passed && failed.detail.hasPrefix("0002-setup.sh exited 3"), "\(failed.detail)")
        let left = GuestRun.firstbootCheck(queued: queued, ran: ["0: 0001-command"], left: ["0002-setup.sh"])
        #expect(left.detail == "0002-setup.sh did not run; still queued: 0002-setup.sh (see "
                + "/var/log/imgcustomize-firstboot.log in the guest)")
    }
}

@Suite struct SecondBootReportTests {
    func boot(_ machineID: String, failure: String? = nil) -> BootReport {
        BootReport(image: "guest.qcow2", firmware: .bios, acceleration: "tcg",
                   stages: [.init(name: "SSH login", seconds: 50, source: "ssh")],
                   checks: [.init(name: "no failed systemd units", passed: true, detail: "none")], failure: failure,
                   reached: failure == nil ? "SSH login" : "kernel", consoleLog: nil,
                   identity: failure == nil ? .init(machineID: machineID, hostKeys: ["SHA256:abc (ED25519)"]) : nil,
                   seconds: 60)
    }

    @Test func theSecondBootsChecksFollowTheFirstsAndTheMachineIsTheSame() {
        var report = boot("aa")
        report.append(second: boot("aa"))
        #expect(report.checks.map(\.name) == ["no failed systemd units", "second boot: no failed systemd units",
                                              "second boot: the same machine"])
        #expect(report.stages.map(\.name) == ["SSH login", "second boot: SSH login"])
        #expect(report.passed)
    }

    @Test func anotherMachineIDOrAFailedSecondBootFailsTheCheck() {
        var other = boot("aa")
        other.append(second: boot("bb"))
        #expect(!other.passed)
        #expect(other.checks.last?.detail == "machine-id aa became bb")
        var stuck = boot("aa")
        stuck.append(second: boot("", failure: "no SSH login within 900 s"))
        #expect(stuck.failure == "second boot: no SSH login within 900 s")
        #expect(stuck.reached == "second boot: kernel")
        #expect(!stuck.passed)
    }
}
