import ArgumentParser
import Foundation
import Testing
@testable import CLICommands
@testable import Operations
import Profiles
import TestSupport

/// `apply sysprep --operations` and `--enable`, chosen as virt-sysprep chooses, and `operations --sysprep`.
@Suite struct SysprepSelectionTests {
    private static let rhel9 = GuestFacts(type: "linux", distro: "rhel", majorVersion: 9)

    private func steps(_ arguments: [String]) throws -> [String] {
        let command = try #require(try IMGCustomize.parseAsRoot(["apply", "sysprep", "img.qcow2"] + arguments)
            as? IMGCustomize.Apply)
        return try command.chosenProfile().steps(for: Self.rhel9).map(\.operation.name)
    }

    @Test func withoutAChoiceTheDefaultsRun() throws {
        let names = try steps([])
        #expect(names == sysprepOperations(for: Self.rhel9).map(\.name))
        #expect(!names.contains("user-account"))
    }

    /// `--operations`: left to right from nothing; `defaults`, `all`, NAME adds, -NAME removes; virt-sysprep's
    /// names (`machine-id`) work too.
    @Test func operationsAddAndRemoveFromTheDefaults() throws {
        let names = try steps(["--operations", "defaults,-ssh-userdir,user-account,-machine-id"])
        #expect(names.contains("user-account") && names.contains("logfiles"))
        #expect(!names.contains("ssh-userdir") && !names.contains("remove-machine-id"))
        #expect(names.count == sysprepOperations(for: Self.rhel9).count - 1)
        // virt-sysprep's order: sorted by its names, user-account between udev-persistent-net and utmp.
        #expect(names.firstIndex(of: "user-account")! == names.firstIndex(of: "udev-persistent-net")! + 1)

        #expect(try steps(["--operations", "ssh-hostkeys"]) == ["ssh-hostkeys"])
        let all = try steps(["--operations", "all,-logfiles"])
        #expect(all.contains("user-account") && !all.contains("logfiles"))
    }

    @Test func enableRunsExactlyThatList() throws {
        #expect(try steps(["--enable", "machine-id,logfiles,user-account"])
            == ["logfiles", "remove-machine-id", "user-account"])
    }

    /// virt-sysprep's `script` needs its SCRIPT, which a sysprep list cannot give: adding it is refused with where
    /// to give it, `all` leaves it out, and removing it is fine.
    @Test func scriptIsGivenAsAnOperationNotInAList() throws {
        let error = #expect(throws: ValidationError.self) { try steps(["--enable", "logfiles,script"]) }
        #expect(error?.message == "--enable: script needs an argument, which a sysprep list cannot give: give it "
                + "as an operation, `imgcustomize apply sysprep IMAGE --script SCRIPT`")
        #expect(throws: ValidationError.self) { try steps(["--operations", "defaults,script"]) }
        let all = try steps(["--operations", "all,-script"])
        #expect(all == (try steps(["--operations", "all"])))
        #expect(!all.contains("script") && all.contains("user-account") && all.last == "random-seed")
        let customize = try #require(try IMGCustomize.parseAsRoot(["customize", "img.qcow2", "--script", "./x.sh",
                                                                   "--random-seed"])
            as? IMGCustomize.CustomizeCommand)
        let operations = try customize.operationArguments.parse().1
        #expect(operations.map(\.name) == ["script", "random-seed"] && operations.first?.target == "./x.sh")
        let apply = try #require(try IMGCustomize.parseAsRoot(["apply", "sysprep", "img.qcow2", "--script", "./x.sh"])
            as? IMGCustomize.Apply)
        #expect(try apply.operationArguments.parse().1.map(\.target) == ["./x.sh"])
    }

    @Test func badChoicesAreRefusedWhenParsed() throws {
        let unknown = #expect(throws: ValidationError.self) { try steps(["--enable", "logfiles,no-such-op"]) }
        #expect(unknown?.message.contains("no sysprep operation named \"no-such-op\"") == true)
        #expect(unknown?.message.contains("imgcustomize operations --sysprep") == true)
        let both = #expect(throws: ValidationError.self) { try steps(["--enable", "logfiles", "--operations", "all"]) }
        #expect(both?.message == "give either --operations or --enable, not both")
        let empty = #expect(throws: ValidationError.self) { try steps(["--operations", "defaults,,logfiles"]) }
        #expect(empty?.message.contains("empty operation name") == true)
        let other = try #require(try IMGCustomize.parseAsRoot(["apply", "rhel9-cloud", "img.qcow2", "--enable", "logfiles"])
            as? IMGCustomize.Apply)
        #expect(throws: ValidationError.self) { try other.chosenProfile() }
    }

    @Test func operationsSysprepSaysWhatIsOnByDefault() throws {
        let command = try #require(try IMGCustomize.parseAsRoot(["operations", "--sysprep"]) as? IMGCustomize.OperationsCommand)
        let lines = command.sysprepListing().split(separator: "\n").map(String.init)
        let line = { (name: String) in lines.first { $0.hasPrefix(name + " ") } ?? "" }
        #expect(line("logfiles").contains(" default "))
        #expect(line("user-account").contains(" off "))
        #expect(line("remove-machine-id").contains("default (virt-sysprep's machine-id)"))
        #expect(line("cloud-init-state").contains("default (not in virt-sysprep)"))
        #expect(line("random-seed").contains("default (virt-sysprep does it in every run)"))
        #expect(line("script").contains(" off "))
        #expect(lines.count == SysprepSelection.known.count)
    }

    /// A tree run through the binary: `--enable` runs those and nothing else, and a second run changes nothing.
    @Test func aTreeRunDoesWhatEnableChose() throws {
        let directory = try TestDirectory()
        let root = directory.path("guest")
        let files = [
            "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/bash\n",
            "/etc/shadow": "root:!!:19000::::::\nbob:!!:19000::::::\n",
            "/home/bob/.bashrc": "# bob\n", "/var/log/messages": "boot\n", "/tmp/keep": "x\n",
        ]
        for (path, text) in files {
            try FileManager.default.createDirectory(atPath: root + (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try text.write(toFile: root + path, atomically: true, encoding: .utf8)
        }
        // An operation after the options runs after the chosen ones, as virt-sysprep's customize operation.
        let arguments = ["apply", "sysprep", "--tree", root, "--json", "--enable", "logfiles,user-account",
                         "--write", "/etc/motd:prepared\n"]
        let first = try imgcustomize(arguments)
        #expect(first.status == 0, "\(first.stderr)")
        let done = CLITests.steps(try jsonObject(first.stdout))
        #expect(done.map { $0["operation"] as? String } == ["logfiles", "user-account", "write"])
        #expect(try String(contentsOfFile: root + "/etc/motd", encoding: .utf8) == "prepared\n")
        #expect(done.allSatisfy { $0["changed"] as? Bool == true })
        #expect(!FileManager.default.fileExists(atPath: root + "/var/log/messages"))
        #expect(!FileManager.default.fileExists(atPath: root + "/home/bob"))
        #expect(try String(contentsOfFile: root + "/etc/passwd", encoding: .utf8) == "root:x:0:0:root:/root:/bin/bash\n")
        #expect(FileManager.default.fileExists(atPath: root + "/tmp/keep"))
        let second = try imgcustomize(arguments)
        #expect(CLITests.steps(try jsonObject(second.stdout)).allSatisfy { $0["changed"] as? Bool == false })
    }
}
