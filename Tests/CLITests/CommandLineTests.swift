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
        #expect(bad.stderr.contains("cloud, rhel9-cloud, rhel8-cloud, rhel7-cloud, rhel6-cloud, fedora-cloud, debian-cloud, ubuntu-cloud, windows-cloud, sysprep"))
    }

    @Test func jobsIsForABatchAndAtLeastOne() throws {
        let directory = try TestDirectory("jobs")
        let zero = try imgcustomize(["apply", "rhel7-cloud", "a.qcow2", "b.qcow2", "--output-dir", directory.path, "-j", "0"])
        #expect(zero.status == 64 && zero.stderr.contains("--jobs 0: give 1 or more appliances"), "\(zero.stderr)")
        let alone = try imgcustomize(["apply", "rhel7-cloud", "a.qcow2", "--jobs", "2"])
        #expect(alone.status == 64, "\(alone.stderr)")
        #expect(alone.stderr.contains("--jobs is for several images with --output-dir"), "\(alone.stderr)")
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

    /// windows-cloud's parameters, as `profiles show` lists them and `--json` gives them; `apply cloud` has them too,
    /// needed only when it chooses windows-cloud.
    @Test func profilesShowListsTheParameters() throws {
        let show = try imgcustomize(["profiles", "show", "windows-cloud"])
        #expect(show.status == 0)
        #expect(show.stdout.contains("""
            parameters (apply windows-cloud IMAGE --param NAME=VALUE):
              virtio-win=PATH (required): The virtio-win ISO, or a directory with its layout
              cloudbase-init=PATH (required): Cloudbase-Init's MSI, CloudbaseInitSetup_x64.msi from cloudbase.it
              admin-user=VALUE (default Admin): The account Cloudbase-Init creates and sets the password of
            """), "\(show.stdout)")
        #expect(show.stdout.contains("    inject-virtio-win ${virtio-win}\n"), "\(show.stdout)")
        let json = try jsonObject(try imgcustomize(["profiles", "show", "cloud", "--json"]).stdout)
        let parameters = try #require(json["parameters"] as? [[String: Any]])
        #expect(parameters.map { $0["name"] as? String } == ["virtio-win", "cloudbase-init", "admin-user"])
        #expect(parameters.allSatisfy { $0["needed-by"] as? String == "windows-cloud" && $0["required"] as? Bool == false })
        #expect(parameters.first?["host-path"] as? Bool == true && parameters.last?["default"] as? String == "Admin")
        let bash = try imgcustomize(["--generate-completion-script", "bash"]).stdout
        #expect(bash.contains("'admin-user='$'\\n''cloudbase-init='$'\\n''virtio-win='"), "--param completes the parameters' names")
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

    /// Every operation of the registry is an option of customize and apply in each shell's script, as the shell's
    /// own syntax declares one: ArgumentParser alone lists none of them (they are one free argument).
    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScriptsKnowEveryOperation(shell: String) throws {
        let script = try imgcustomize(["--generate-completion-script", shell]).stdout
        let operations = try #require(try jsonObject(try imgcustomize(["operations", "--json"]).stdout)["operations"]
                                      as? [[String: Any]])
        #expect(operations.count > 90)
        for name in operations.compactMap({ $0["name"] as? String }) {
            let declared = switch shell {
            case "bash": ["(--\(name) ", " --\(name) "]
            case "zsh": ["'*--\(name)[", "'*--\(name)=-["]
            default: ["-l '\(name)'"]
            }
            // Once for customize, once for apply.
            let count = declared.map { script.components(separatedBy: $0).count - 1 }.reduce(0, +)
            #expect(count == 2, "\(shell): --\(name)")
        }
    }

    /// What a bash user gets on Tab, through bash itself: the operations after an image, a host file after an
    /// operation that reads one, nothing but its own argument after one that takes another, the profiles after
    /// apply, and the image as a file.
    @Test func bashCompletesOperationsTheirFilesAndProfiles() throws {
        let directory = try TestDirectory()
        try "#!/bin/sh\n".write(toFile: directory.path("setup.sh"), atomically: true, encoding: .utf8)
        try Data().write(to: URL(fileURLWithPath: directory.path("disk.qcow2")))
        let script = directory.path("imgcustomize.bash")
        try imgcustomize(["--generate-completion-script", "bash"]).stdout.write(toFile: script, atomically: true,
                                                                                encoding: .utf8)
        /// The words bash offers for the command line `line`, the cursor at its end.
        func offered(_ line: String) throws -> Set<String> {
            let probe = """
                source "$1"
                COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}
                read -ra COMP_WORDS <<<"$COMP_LINE"
                [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
                COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
                _imgcustomize imgcustomize "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
                printf '%s\n' "${COMPREPLY[@]}"
                """
            let result = try runProcess("/bin/bash", ["-c", probe, "probe", script, line])
            #expect(result.status == 0, "\(result.stderr)")
            return Set(result.stdout.split(separator: "\n").map(String.init))
        }
        #expect(try offered("imgcustomize customize disk.qcow2 --host") == ["--hostname"])
        #expect(try offered("imgcustomize apply sysprep disk.qcow2 --lock-r") == ["--lock-root"])
        #expect(try offered("imgcustomize customize disk.qcow2 --run \(directory.path("se"))")
                == [directory.path("setup.sh")])
        #expect(try offered("imgcustomize customize disk.qcow2 --hostname ").isEmpty)
        #expect(try offered("imgcustomize customize \(directory.path("di"))") == [directory.path("disk.qcow2")])
        #expect(try offered("imgcustomize apply rhel") == ["rhel9-cloud", "rhel8-cloud", "rhel7-cloud", "rhel6-cloud"])
        #expect(try offered("imgcustomize customize disk.qcow2 --root ") == ["all", "single", "first"])
    }

    /// imgcustomize-operations(7), as man shows it: one entry for every operation of the registry, with its usage.
    @Test func theOperationsPageListsEveryOperation() throws {
        let directory = try TestDirectory()
        let page = directory.path("imgcustomize-operations.7")
        try runTool(packageRoot.appendingPathComponent("scripts/man-sections").path,
                    ["--operations-page", try imgcustomizeBinary(), page])
        let rendered = try runTool("groff", ["-mdoc", "-Tutf8", "-P-c", "-P-b", "-P-u", page])
        let lines = rendered.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let operations = try #require(try jsonObject(try imgcustomize(["operations", "--json"]).stdout)["operations"]
                                      as? [[String: Any]])
        #expect(rendered.contains("The \(operations.count) operations:"), "\(rendered.prefix(2000))")
        for usage in operations.compactMap({ $0["usage"] as? String }) {
            // A short tag shares its line with the summary.
            #expect(lines.contains { $0 == usage || $0.hasPrefix(usage + "  ") }, "\(usage)")
        }
    }

    /// A profile file through the binary: the printed form of a built-in applied to a tree by its path, and a bad
    /// header refused as a usage error naming the file and line.
    @Test func aProfileFileAppliesByItsPath() throws {
        let directory = try TestDirectory()
        let printed = try imgcustomize(["profiles", "show", "rhel7-cloud", "--as-file"])
        #expect(printed.status == 0 && printed.stdout.contains("#@ name: rhel7-cloud\n"), "\(printed.stderr)")
        let file = directory.path("my-rhel7.profile")
        try printed.stdout.replacingOccurrences(of: "#@ name: rhel7-cloud", with: "#@ name: my-rhel7")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let tree = directory.path("guest")
        _ = try runTool("cp", ["-a", packageRoot.appendingPathComponent("Fixtures/trees/common").path + "/.", tree])
        _ = try runTool("cp", ["-a", packageRoot.appendingPathComponent("Fixtures/trees/rhel7").path + "/.", tree])
        let run = try imgcustomize(["apply", file, "--tree", tree, "--force", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try jsonObject(run.stdout)["profile"] as? String == "my-rhel7", "\(run.stdout.prefix(300))")
        #expect(try String(contentsOfFile: tree + "/etc/sysconfig/network", encoding: .utf8).contains("NOZEROCONF=yes"))

        try "#@ name: x\n#@ output: zip\n".write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try imgcustomize(["apply", file, "--tree", tree])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("\(file):2: unknown output \"zip\""), "\(bad.stderr)")
    }

    @Test func customizeOnATreeIsIdempotent() throws {
        let directory = try TestDirectory()
        let root = directory.path("guest")
        try FileManager.default.createDirectory(atPath: root + "/etc/sysconfig", withIntermediateDirectories: true)
        try "NETWORKING=yes\n".write(toFile: root + "/etc/sysconfig/network", atomically: true, encoding: .utf8)
        let arguments = ["customize", "--tree", root, "--json", "--set-line", "/etc/sysconfig/network:NOZEROCONF=yes"]
        let first = try imgcustomize(arguments)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(steps(try jsonObject(first.stdout)).first?["changed"] as? Bool == true)
        #expect(try String(contentsOfFile: root + "/etc/sysconfig/network", encoding: .utf8)
                == "NETWORKING=yes\nNOZEROCONF=yes\n")
        let second = try imgcustomize(arguments)
        #expect(steps(try jsonObject(second.stdout)).first?["changed"] as? Bool == false)
    }
}
