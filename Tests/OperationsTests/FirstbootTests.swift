import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree
import TestSupport

/// The first-boot operations on trees: what they install, where, in which order, and the runner itself run by the
/// host's /bin/sh over the queue. That the guest runs the queue at its first boot and not at the second is proved by
/// booting the real Debian guest (BootTests).
@Suite struct FirstbootTests {
    /// A tree whose init is systemd, as the Debian and RHEL 7+ guests: /usr/lib/systemd/system exists.
    func systemdTree() throws -> TemporaryTree {
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/usr/lib/systemd/system", mode: 0o755, parents: true)
        return tree
    }

    @Test func stepsAreQueuedInOrderBehindAnEnabledUnitAndQueuedOnce() throws {
        let tree = try systemdTree()
        let directory = try TestDirectory()
        let script = directory.path("grow root.sh")
        try "#!/bin/sh\necho from the script\n".write(toFile: script, atomically: true, encoding: .utf8)
        let apt = OperationContext(guest: GuestFacts(distro: "debian", packageManagement: "apt"))
        let runner = OperationRunner(guest: tree.guest, context: apt)
        let steps: [any GuestOperation] = [FirstbootCommand("echo first"), Firstboot(script),
                                           FirstbootInstall(["tuned", "qemu-guest-agent"])]
        let first = try steps.map { try runner.run($0) }
        #expect(first.map(\.changed) == [.yes, .yes, .yes])
        #expect(first[0].summary.hasPrefix("installed /usr/lib/imgcustomize/firstboot/run; installed "
                                           + "/etc/systemd/system/imgcustomize-firstboot.service; enabled "
                                           + "imgcustomize-firstboot.service; queued "), "\(first[0].summary)")
        #expect(first[1].summary == "queued /usr/lib/imgcustomize/firstboot/scripts/0002-grow_root.sh for the next "
                + "boot, logged in /var/log/imgcustomize-firstboot.log")

        let queue = "/usr/lib/imgcustomize/firstboot/scripts"
        #expect(try tree.guest.list(queue).sorted() == ["0001-command", "0002-grow_root.sh", "0003-install"])
        #expect(tree.text(queue + "/0001-command") == "#!/bin/sh\necho first\n")
        #expect(tree.text(queue + "/0002-grow_root.sh") == "#!/bin/sh\necho from the script\n")
        #expect(tree.text(queue + "/0003-install")?.contains("apt-get") == true)
        #expect(tree.text(queue + "/0003-install")?.contains("install 'tuned' 'qemu-guest-agent'") == true)
        for path in [queue + "/0001-command", "/usr/lib/imgcustomize/firstboot/run"] {
            #expect(try tree.hostStatus(path).mode == 0o755, "\(path)")
        }
        let unit = try #require(tree.text("/etc/systemd/system/imgcustomize-firstboot.service"))
        #expect(unit.contains("ExecStart=/usr/lib/imgcustomize/firstboot/run\n"))
        #expect(unit.contains("ConditionDirectoryNotEmpty=\(queue)\n"))
        #expect(unit.contains("WantedBy=multi-user.target\n"))
        #expect(try tree.guest.readlink("/etc/systemd/system/multi-user.target.wants/imgcustomize-firstboot.service")
                == "/etc/systemd/system/imgcustomize-firstboot.service")

        // The same steps again: each finds its script queued.
        let second = try steps.map { try runner.run($0) }
        #expect(second.map(\.changed) == [.no, .no, .no])
        #expect(second[2].summary == "already queued as \(queue)/0003-install")
        #expect(try tree.guest.list(queue).count == 3)

        // A new step goes after them.
        #expect(try runner.run(FirstbootCommand("echo later")).summary.hasPrefix("queued \(queue)/0004-command "))
    }

    /// The runner, as the guest runs it (here by the host's /bin/sh over the tree's queue): every script in order,
    /// its output and exit status in the log, each removed even when it failed; a second run runs nothing.
    @Test func theRunnerRunsEachScriptOnceInOrderAndLogsIt() throws {
        let tree = try systemdTree()
        let runner = OperationRunner(guest: tree.guest)
        for command in ["echo one", "echo two >&2; exit 3", "echo three"] {
            _ = try runner.run(FirstbootCommand(command))
        }
        let queue = tree.path + FirstbootQueue.scripts, log = tree.path + FirstbootQueue.log
        try FileManager.default.createDirectory(atPath: tree.path + "/var/log", withIntermediateDirectories: true)
        let script = try #require(tree.text(FirstbootQueue.runner))
            .replacingOccurrences(of: FirstbootQueue.scripts, with: queue)
            .replacingOccurrences(of: FirstbootQueue.log, with: log)
        for _ in 0..<2 { _ = try runTool("sh", ["-c", script]) }

        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("=== 2") }
        #expect(lines == ["one", "=== exit status 0: 0001-command", "two", "=== exit status 3: 0002-command",
                          "three", "=== exit status 0: 0003-command"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: queue).isEmpty)
    }

    /// RHEL 6 has SysV init: an init script started last in runlevels 2-5, linked in the rc directories it has.
    @Test func aSysVGuestGetsAnInitScript() throws {
        let tree = try TemporaryTree()
        for directory in ["/etc/rc.d/init.d", "/etc/rc.d/rc3.d", "/etc/rc.d/rc5.d"] {
            try tree.guest.mkdir(directory, mode: 0o755, parents: true)
        }
        let (first, _) = try tree.applyTwice(FirstbootCommand("echo hello"))
        #expect(first.summary.contains("installed /etc/rc.d/init.d/imgcustomize-firstboot; enabled in "
                                       + "/etc/rc.d/rc3.d; enabled in /etc/rc.d/rc5.d; queued "), "\(first.summary)")
        let initScript = try #require(tree.text("/etc/rc.d/init.d/imgcustomize-firstboot"))
        #expect(initScript.contains("# chkconfig: 2345 99 01\n"))
        #expect(initScript.contains("start) exec /usr/lib/imgcustomize/firstboot/run ;;"))
        for level in [3, 5] {
            #expect(try tree.guest.readlink("/etc/rc.d/rc\(level).d/S99imgcustomize-firstboot")
                    == "../init.d/imgcustomize-firstboot")
        }
        #expect(try !tree.guest.exists("/etc/systemd/system/imgcustomize-firstboot.service"))
    }

    @Test func aGuestWithoutAnInitSystemItKnowsIsRefused() throws {
        let tree = try TemporaryTree()
        let error = try #require(throws: OperationFailure.self) {
            try OperationRunner(guest: tree.guest).run(FirstbootCommand("echo hello"))
        }
        #expect("\(error)".contains("neither systemd (/usr/lib/systemd/system) nor SysV init scripts"), "\(error)")
        #expect("\(error)".contains("run-command"))
    }

    @Test func aMissingHostScriptIsNamed() throws {
        let tree = try systemdTree()
        let error = try #require(throws: OperationFailure.self) {
            try OperationRunner(guest: tree.guest).run(Firstboot("/nonexistent/first.sh"))
        }
        #expect("\(error)".contains("/nonexistent/first.sh"), "\(error)")
        #expect("\(error)".contains("No such file or directory"))
        #expect(try !tree.guest.exists(FirstbootQueue.scripts + "/0001-first.sh"))
    }
}
