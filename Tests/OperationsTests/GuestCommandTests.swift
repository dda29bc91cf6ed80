import Foundation
import Logging
import Testing
@testable import Appliance
@testable import Operations
import TestSupport

/// virt-customize's command files, read without a guest.
@Suite struct CommandFileTests {
    /// A profile file's parameters: declared names replaced in one pass, a value holding `${...}` kept as given,
    /// undeclared and unclosed ones left as written (a shell's `${HOME}` in a run-command).
    @Test func parametersAreSubstitutedOnceFromTheLeft() {
        let values = ["site": "${port}", "port": "80"]
        #expect(CommandFile.substitute(values, in: "tar-in:${site}:/srv/${port}/${HOME}/${port") == "tar-in:${port}:/srv/80/${HOME}/${port")
    }

    @Test func commentsBlankLinesContinuationsAndBothSeparators() {
        let text = "# a comment\n\n  delete /var/log/*.log\nwrite:/etc/motd:hello world\r\nrun-command echo a \\\n    && echo b\n"
            + "   # indented comment \\\nselinux-relabel\nedit /etc/x:\\\n  s/a/b/\n"
        #expect(CommandFile.parse(text) == [
            .init(line: 3, option: "delete", argument: "/var/log/*.log"),
            .init(line: 4, option: "write", argument: "/etc/motd:hello world"),
            .init(line: 5, option: "run-command", argument: "echo a && echo b"),
            .init(line: 8, option: "selinux-relabel", argument: nil),
            .init(line: 9, option: "edit", argument: "/etc/x:s/a/b/"),
        ])
    }

    func file(_ text: String, in directory: TestDirectory, _ name: String = "customize.commands") throws -> String {
        let path = directory.path(name)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Every line becomes imgcustomize's operation, in the file's order, virt-customize's spellings translated.
    @Test func linesBecomeOperationsInOrder() throws {
        let directory = try TestDirectory()
        let nested = try file("touch /etc/nested\n", in: directory, "nested.commands")
        let path = try file("""
            run-command systemctl enable chronyd
            chown 1000.1000:/home/u/.bashrc
            link /usr/share/zoneinfo/UTC:/etc/localtime:/etc/localtime.bak
            ssh-inject root:string:ssh-ed25519 AAAA me@host
            commands-from-file \(nested)
            edit /etc/ssh/sshd_config:s/^PermitRootLogin yes/PermitRootLogin no/
            install cloud-init,qemu-guest-agent
            update
            sm-register
            firstboot-command systemctl enable --now chronyd
            copy-in \(directory.path):/srv
            sm-credentials builder@example.com:password:s3:cret
            sm-attach pool:8a85f98c6
            """, in: directory)
        let operations = try CommandFile.read(path)
        #expect(operations.map(\.name) == ["run-command", "chown", "link", "link", "ssh-inject", "touch", "edit",
                                           "install", "update", "sm-register", "firstboot-command", "copy-in",
                                           "sm-attach"])
        // sm-credentials is the account of the file's sm-register, wherever it stands.
        #expect((operations[9] as? SMRegister)?.credentials
                == SubscriptionCredentials(user: "builder@example.com", password: "s3:cret"))
        #expect((operations[12] as? SMAttach)?.pool == .id("8a85f98c6"))
        #expect((operations[0] as? RunCommand)?.command == "systemctl enable chronyd")
        #expect(operations[1].target == "/home/u/.bashrc")
        #expect(operations[2].target == "/etc/localtime" && operations[3].target == "/etc/localtime.bak")
        #expect(operations[5].target == "/etc/nested")
        #expect((operations[7] as? Install)?.packages == ["cloud-init", "qemu-guest-agent"])

        // The command line's option reads the file once, and a run expands it into a step per line.
        let option = try #require(try OperationRegistry.named("commands-from-file")?.parse(path))
        #expect([option].expandingCommandFiles.map(\.name) == operations.map(\.name))
    }

    @Test func anUnknownCommandNamesTheFileAndTheLine() throws {
        let directory = try TestDirectory()
        let path = try file("delete /tmp/x\n# fine\nfrobnicate /etc\n", in: directory)
        let error = #expect(throws: CommandFileError.self) { try CommandFile.read(path) }
        #expect(error?.description == "\(path):3: unknown command \"frobnicate\"\n"
                + "  hint: `imgcustomize operations` lists the operations a command file may use")

        let credentials = try file("\nsm-register\nsm-credentials builder\n", in: directory, "sm.commands")
        let account = #expect(throws: CommandFileError.self) { try CommandFile.read(credentials) }
        #expect(account?.line == 3)
        #expect(account?.problem.hasPrefix("--sm-credentials: expected USER:password:PASSWORD or USER:file:FILE")
                == true, "\(account.map { "\($0)" } ?? "")")

        let badArgument = try file("write /etc/motd\n", in: directory, "bad.commands")
        let write = #expect(throws: CommandFileError.self) { try CommandFile.read(badArgument) }
        #expect(write?.description.hasPrefix("\(badArgument):1: --write: no ':' in \"/etc/motd\"") == true)

        let looping = directory.path("loop.commands")
        try "commands-from-file \(looping)\n".write(toFile: looping, atomically: true, encoding: .utf8)
        let loop = #expect(throws: CommandFileError.self) { try CommandFile.read(looping) }
        #expect(loop?.problem.contains("nest more than 8 deep") == true)
    }
}

/// Guest commands on a directory tree: refused, naming the operation, before anything is written.
@Suite struct GuestCommandRefusalTests {
    @Test(arguments: [RunCommand("touch /ran") as any GuestOperation, RunScript("/dev/null"), Install(["vim"]),
                      Uninstall(["vim"]), Update()])
    func aTreeRefusesGuestCommands(operation: any GuestOperation) throws {
        let tree = try TemporaryTree()
        let error = #expect(throws: OperationFailure.self) { try OperationRunner(guest: tree.guest).run(operation) }
        #expect(error?.description == "\(operation.name)\(operation.target.isEmpty ? "" : " \(operation.target)") "
                + "failed: \(tree.path): \(operation.name): a directory tree cannot run the guest's programs: guest "
                + "commands need the appliance\n  hint: run \(operation.name) on an image, where it runs inside the "
                + "appliance")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tree.path).isEmpty)
    }

    /// A guest of another architecture is refused before anything runs, with what to do instead (a real handle,
    /// never launched: the check comes first).
    @Test func anotherArchitectureIsRefused() throws {
        let guestfs = try Guestfs(guest: "arm.qcow2", logger: Logger(label: "test"), progress: nil)
        defer { guestfs.close() }
        let commands = ApplianceCommands(guestfs: guestfs, facts: GuestFacts(arch: "aarch64"), network: false)
        let error = #expect(throws: GuestError.self) { try commands.run("true", operation: "run-command") }
        #expect(error?.description == "arm.qcow2: run-command: the guest is aarch64 and this host is "
                + "\(ApplianceCommands.hostArchitecture): the appliance runs the host's kernel, which cannot run the "
                + "guest's programs\n  hint: run run-command on a aarch64 host, or use operations that need no guest "
                + "program (write, upload, edit-file...)")
        let unknown = ApplianceCommands(guestfs: guestfs, facts: GuestFacts(), network: false)
        let unknownError = #expect(throws: GuestError.self) { try unknown.run("true", operation: "install") }
        #expect(unknownError?.message.hasPrefix("inspection could not tell the guest's architecture") == true)
    }

    @Test func onlyTheHostsArchitectureRuns() {
        #expect(ApplianceCommands.canRun(guest: "x86_64", host: "x86_64"))
        #expect(ApplianceCommands.canRun(guest: "i686", host: "x86_64"))
        #expect(!ApplianceCommands.canRun(guest: "aarch64", host: "x86_64"))
        #expect(!ApplianceCommands.canRun(guest: "x86_64", host: "aarch64"))
        #expect(ApplianceCommands.hostArchitecture == (try? runTool("uname", ["-m"]))?
            .trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

@Suite struct GuestCommandReportTests {
    /// A guest command's step says "unknown", its exit status and its last lines, and reads back the same.
    @Test func anUnknownChangeEncodesAsUnknown() throws {
        let output = (1...30).map { "line \($0)" }.joined(separator: "\n") + "\n\n"
        let step = StepReport(operation: "run-command", target: "make", changed: .unknown, summary: "exit status 0",
                              command: GuestCommandResult(command: "make", exitStatus: 0, output: output))
        #expect(step.output == (11...30).map { "line \($0)" })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(step), as: UTF8.self)
        #expect(json.hasPrefix(#"{"changed":"unknown","exit-status":0,"operation":"run-command","output":["line 11","#))
        #expect(try JSONDecoder().decode(StepReport.self, from: Data(json.utf8)) == step)
    }

    @Test func installTakesLocalFilesAndDirectories() throws {
        let directory = try TestDirectory()
        try FileManager.default.createDirectory(atPath: directory.path("debs"), withIntermediateDirectories: true)
        for name in ["b.deb", "a.deb", "notes.txt"] {
            _ = FileManager.default.createFile(atPath: directory.path("debs/\(name)"), contents: Data())
        }
        _ = FileManager.default.createFile(atPath: directory.path("one.rpm"), contents: Data())
        let install = try Install.parse("cloud-init,\(directory.path("debs")),\(directory.path("one.rpm"))")
        #expect(install.packages == ["cloud-init"])
        #expect(install.files == [directory.path("debs/a.deb"), directory.path("debs/b.deb"), directory.path("one.rpm")])
        let missing = #expect(throws: ArgumentError.self) { try Install.parse("./no-such.deb") }
        #expect(missing?.problem == "no package file or directory ./no-such.deb on this host")
        #expect(throws: ArgumentError.self) { try Install.parse("vim,,emacs") }
    }

    /// Offline, dnf and yum use no repository, so that local package files install without a network.
    @Test func packageCommandsPerManager() {
        #expect(PackageManager.apt.install(["./a b.deb"], network: false)
                == "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confnew install './a b.deb'")
        #expect(PackageManager.apt.install(["vim"], network: true).hasPrefix(
            "DEBIAN_FRONTEND=noninteractive apt-get -q -y update && "))
        #expect(PackageManager.dnf.install(["/tmp/x.rpm"], network: false) == "dnf -y --disablerepo='*' install '/tmp/x.rpm'")
        #expect(PackageManager.yum.uninstall(["it's"], network: true) == #"yum -y remove 'it'\''s'"#)
        #expect(PackageManager.zypper.update == "zypper -n update")
    }
}

/// virt-sysprep's `script` needs the appliance, which a directory tree does not have.
@Suite struct ScriptRefusalTests {
    @Test func aTreeRefusesAScriptBeforeReadingIt() throws {
        let tree = try TemporaryTree()
        let error = #expect(throws: OperationFailure.self) {
            try OperationRunner(guest: tree.guest).run(Script("/no/such/script.sh"))
        }
        #expect(error?.description == "script /no/such/script.sh failed: \(tree.path): script /no/such/script.sh: "
                + "a directory tree has no appliance to run the script in\n  hint: run script on an image; on a tree, "
                + "run the script yourself from the tree's root directory")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tree.path).isEmpty)
    }
}

extension ApplianceTestsOnFixtures {
    /// `script` on a fixture image: the host script runs in the appliance from the guest's root, with the
    /// appliance's programs; one launch for the whole story.
    @Suite struct ApplianceScriptTests {
        @Test func aScriptRunsFromTheGuestsRootInTheAppliance() throws {
            let directory = try TestDirectory()
            let overlay = try makeOverlay(over: Fixture.rhel7Single.path(), format: .raw, in: directory)
            let script = directory.path("prepare.sh")
            try """
                #!/bin/sh
                set -e
                . ./etc/os-release
                echo "guest: $ID $VERSION_ID, in $(pwd)"
                printf '%s\\n' "$PRETTY_NAME" > ./root/from-script
                ls /tmp | grep -c '^imgcustomize-script-'

                """.write(toFile: script, atomically: true, encoding: .utf8)
            let failing = directory.path("failing.sh")
            try "echo checking the guest\necho 'no such file: ./etc/missing' >&2\nexit 3\n"
                .write(toFile: failing, atomically: true, encoding: .utf8)

            let session = try ApplianceSession(drives: [ApplianceDrive(path: overlay, format: .qcow2)])
            defer { try? session.close() }
            let fs = try session.mountOperatingSystem()
            let runner = OperationRunner(guest: fs, context: OperationContext(guest: fs.facts))
            let report = try runner.run(Script(script))
            #expect(report.changed == .unknown && report.summary == "exit status 0" && report.exitStatus == 0)
            // The guest's os-release read by its relative path; the copy that ran is the one in the appliance's /tmp.
            #expect(report.output == ["guest: rhel 7.9, in /sysroot", "1"])
            #expect(try fs.readText("/root/from-script") == "Red Hat Enterprise Linux Server 7.9 (Maipo)\n")
            #expect(runner.ranGuestCommands)
            #expect(try fs.glob("/tmp/imgcustomize-*").isEmpty)
            #expect(try !fs.guestfs.applianceShell("ls /tmp", action: "list the appliance's /tmp")
                .contains("imgcustomize-script-"))

            // A script without #! runs with /bin/sh; its failure fails the step with its status and last lines.
            let error = #expect(throws: OperationFailure.self) { try runner.run(Script(failing)) }
            // The command's own failure says which operation ran it, so the step adds no "script ... failed:".
            #expect(error?.description == "\(overlay): script: \(failing.debugDescription) "
                    + "exited with status 3, its last lines:\n    checking the guest\n    no such file: ./etc/missing")
        }
    }
}
