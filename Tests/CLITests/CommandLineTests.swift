import Foundation
import Testing
import TestSupport

/// What a new user meets first, end to end through the binary: the version, the lists, completions, exit codes.
/// (Parsing and help are tested in-process, in ParsingTests.)
@Suite struct CommandLineTests {
    @Test func helpGoesToStdoutAndSucceeds() throws {
        let help = try imgcustomize(["apply", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("imgcustomize apply rhel7-cloud rhel7.qcow2"), "\(help.stdout)")
    }

    /// `--version` names the release CHANGELOG.md's newest heading describes, and the commit the binary was built
    /// from: the suite's own checkout, built by `swift build` (Plugins/BuildCommit), so HEAD, modified or not.
    @Test func versionNamesTheReleaseAndTheCommit() throws {
        let version = try imgcustomize(["--version"])
        #expect(version.status == 0)
        let changelog = try String(contentsOf: packageRoot.appendingPathComponent("CHANGELOG.md"), encoding: .utf8)
        let newest = changelog.split(separator: "\n").first { $0.hasPrefix("## ") }?.split(separator: " ")[1]
        #expect(version.stdout.split(separator: " ").first == newest, "\(version.stdout)")
        let head = try runTool("git", ["-C", packageRoot.path, "rev-parse", "HEAD"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(version.stdout.hasPrefix("\(newest ?? "?") (commit \(head)"), "\(version.stdout)")
    }

    @Test func badUsage() throws {
        let bad = try imgcustomize(["apply", "no-such-profile", "x.qcow2"])
        #expect(bad.status != 0 && bad.status != 1)
        #expect(bad.stderr.contains("cloud, rhel9-cloud, rhel8-cloud, rhel7-cloud, rhel6-cloud, fedora-cloud, debian-cloud, ubuntu-cloud, sysprep"))
    }

    @Test func operationsListsTheDesignCardAndSysprepOperations() throws {
        let list = try imgcustomize(["operations"])
        #expect(list.status == 0)
        for name in ["edit-file", "set-line", "append-grub-args", "lock-root", "disable-repos", "remove-machine-id",
                     "trim-free-space", "hostname", "ssh-inject", "selinux-relabel", "logfiles", "net-hwaddr"] {
            #expect(list.stdout.contains("--\(name)"), "\(name)")
        }
    }

    /// An operation is found by its name in one step: the file that defines it, then its summary.
    @Test func operationsWhereNamesTheSourceFile() throws {
        let found = try imgcustomize(["operations", "--where", "edit"])
        #expect(found.status == 0)
        let lines = found.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "Sources/Operations/Ops/PerlEdit.swift", "\(found.stdout)")
        #expect(lines.dropFirst().first?.hasPrefix("    edit: ") == true, "\(found.stdout)")
        #expect(FileManager.default.fileExists(atPath: packageRoot.appendingPathComponent(lines[0]).path))

        let json = try jsonObject(try imgcustomize(["operations", "--where", "bash-history", "--json"]).stdout)
        #expect(json["name"] as? String == "bash-history")
        #expect(json["source"] as? String == "Sources/Operations/Ops/SysprepOperations.swift")
        #expect((json["summary"] as? String)?.isEmpty == false && json["usage"] as? String == "--bash-history")

        let unknown = try imgcustomize(["operations", "--where", "no-such-operation"])
        #expect(unknown.status != 0 && unknown.stdout.isEmpty)
        #expect(unknown.stderr.contains("no operation named 'no-such-operation'"), "\(unknown.stderr)")
    }

    @Test func profilesShowPrintsTheSourceDocumentsSteps() throws {
        let show = try imgcustomize(["profiles", "show", "rhel6-cloud"])
        #expect(show.status == 0)
        for line in ["write-lines /etc/sysconfig/network-scripts/ifcfg-eth0", "yaml-list-add /etc/cloud/cloud.cfg",
                     "set-line /etc/sysconfig/network", "write /etc/udev/rules.d/75-persistent-net-generator.rules",
                     "append-grub-args console=tty0 console=ttyS0,115200n8", "disable-repos", "lock-root",
                     "sysprep:", "trim-free-space"] {
            #expect(show.stdout.contains(line), "\(line)")
        }
    }

    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScriptsKnowTheCommands(shell: String) throws {
        let script = try imgcustomize(["--generate-completion-script", shell])
        #expect(script.status == 0)
        // Whole words: "customize" is also inside "imgcustomize", which every script names.
        let words = Set(script.stdout.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "-") }))
        for command in ["apply", "customize", "sparsify", "inspect", "convert", "boot-check", "profiles", "operations"] {
            #expect(words.contains(Substring(command)), "\(shell): \(command)")
        }
        // After `apply` and `profiles show`: the built-in profiles.
        for profile in ["cloud", "rhel7-cloud", "debian-cloud", "sysprep"] {
            #expect(words.contains(Substring(profile)), "\(shell): \(profile)")
        }
    }

    @Test func customizeOnATreeIsIdempotent() throws {
        let directory = try TestDirectory()
        let root = directory.path("guest")
        try FileManager.default.createDirectory(atPath: root + "/etc/sysconfig", withIntermediateDirectories: true)
        try "NETWORKING=yes\n".write(toFile: root + "/etc/sysconfig/network", atomically: true, encoding: .utf8)
        let arguments = ["customize", "--root", root, "--json", "--set-line", "/etc/sysconfig/network:NOZEROCONF=yes"]
        let first = try imgcustomize(arguments)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(steps(try jsonObject(first.stdout)).first?["changed"] as? Bool == true)
        #expect(try String(contentsOfFile: root + "/etc/sysconfig/network", encoding: .utf8)
                == "NETWORKING=yes\nNOZEROCONF=yes\n")
        let second = try imgcustomize(arguments)
        #expect(steps(try jsonObject(second.stdout)).first?["changed"] as? Bool == false)
    }
}
