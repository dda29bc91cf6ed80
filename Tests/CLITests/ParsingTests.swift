import ArgumentParser
import Foundation
import Testing
@testable import CLICommands
@testable import Operations
import Customize
import Diagnostics
import Formats
import Logging
import Profiles
import TestSupport

/// The command line parsed in-process, as `imgcustomize` parses it: no binary, no appliance.
@Suite struct ParsingTests {
    static let commands: [(name: String, command: any ParsableCommand.Type)] = [
        ("apply", IMGCustomize.Apply.self), ("customize", IMGCustomize.CustomizeCommand.self),
        ("sparsify", IMGCustomize.Sparsify.self), ("inspect", IMGCustomize.Inspect.self),
        ("convert", IMGCustomize.Convert.self), ("boot-check", IMGCustomize.BootCheckCommand.self),
        ("profiles", IMGCustomize.ProfilesCommand.self),
        ("operations", IMGCustomize.OperationsCommand.self),
    ]

    /// Every command's help ends with an example of that very command (a usage line alone does not count).
    @Test(arguments: commands.map(\.name))
    func everyCommandsHelpHasAnExample(name: String) throws {
        let command = try #require(Self.commands.first { $0.name == name }).command
        let help = IMGCustomize.helpMessage(for: command)
        let examples = try #require(help.range(of: "EXAMPLE"), "no EXAMPLE section in \(name)'s help")
        let example = help[examples.upperBound...].split(separator: "\n").dropFirst()
            .first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("imgcustomize ") }
        #expect(example?.trimmingCharacters(in: .whitespaces).hasPrefix("imgcustomize \(name)") == true,
                "\(name): \(help)")
    }

    @Test func everyCommandIsThere() {
        #expect(IMGCustomize.configuration.subcommands.map { $0._commandName } == Self.commands.map(\.name))
    }

    private func customize(_ arguments: [String]) throws
        -> (images: [String], operations: [any GuestOperation], attachments: [AttachedDisk]) {
        let command = try #require(try IMGCustomize.parseAsRoot(["customize"] + arguments)
            as? IMGCustomize.CustomizeCommand)
        return try command.operationArguments.parse()
    }

    /// virt-customize's --attach and --attach-format: each --attach in the format of the --attach-format before it
    /// (auto: the format detected), wherever they stand among the operations, which they are not.
    @Test func attachedDisksTakeTheFormatGivenBeforeThem() throws {
        let parsed = try customize(["--attach", "repo.iso", "img.qcow2", "--attach-format", "qcow2", "--attach=data.qcow2",
                                    "--run-command", "mount LABEL=EXTRA /mnt", "--attach-format", "auto",
                                    "--attach", "more.img"])
        #expect(parsed.images == ["img.qcow2"])
        #expect(parsed.operations.map(\.name) == ["run-command"])
        #expect(parsed.attachments == [AttachedDisk(path: "repo.iso"), AttachedDisk(path: "data.qcow2", format: .qcow2),
                                       AttachedDisk(path: "more.img")])
        let late = #expect(throws: ValidationError.self) {
            try customize(["img.qcow2", "--attach", "a.iso", "--attach-format", "raw"])
        }
        #expect(late?.message == "--attach-format must come before the --attach it is for")
        let unknown = #expect(throws: ValidationError.self) {
            try customize(["img.qcow2", "--attach-format", "dmg", "--attach", "a.dmg"])
        }
        #expect(unknown?.message.hasPrefix("--attach-format dmg: not a format the appliance opens") == true)
        #expect(throws: ValidationError.self) { try customize(["img.qcow2", "--attach"]) }
        let tree = #expect(throws: ValidationError.self) {
            var command = try IMGCustomize.parseAsRoot(["customize", "--tree", "/srv/tree", "--attach", "a.iso", "--lock-root"])
            try command.run()
        }
        #expect(tree?.message.hasPrefix("--attach needs an image") == true)
    }

    @Test func operationsKeepTheirCommandLineOrder() throws {
        let parsed = try customize(["img.qcow2", "--set-line", "/etc/sysconfig/network:NOZEROCONF=yes", "--lock-root",
                                    "--hostname=web1.example.com", "--trim-free-space"])
        #expect(parsed.images == ["img.qcow2"])
        #expect(parsed.operations.map(\.name) == ["set-line", "lock-root", "hostname", "trim-free-space"])
        #expect(parsed.operations.map(\.target) == ["/etc/sysconfig/network", "root", "web1.example.com", ""])
    }

    /// An optional argument is only taken with "=": the word after `--disable-repos` is the image, not a glob.
    @Test func anOptionalArgumentNeverTakesTheImage() throws {
        let bare = try customize(["--disable-repos", "img.qcow2"])
        #expect(bare.images == ["img.qcow2"])
        #expect((bare.operations.first as? DisableRepos)?.glob == "*")
        let given = try customize(["img.qcow2", "--disable-repos=rhel-*"])
        #expect((given.operations.first as? DisableRepos)?.glob == "rhel-*")
    }

    @Test func aRequiredArgumentIsAskedFor() throws {
        let error = #expect(throws: ValidationError.self) { try customize(["img.qcow2", "--write"]) }
        #expect(error?.message == "--write needs an argument: --write PATH:CONTENT")
        let unknown = #expect(throws: ValidationError.self) { try customize(["img.qcow2", "--no-such-thing"]) }
        #expect(unknown?.message.contains("unknown option or operation '--no-such-thing'") == true)
        let flag = #expect(throws: UsageError.self) { try customize(["img.qcow2", "--lock-root=yes"]) }
        #expect(flag?.diagnostic.message == "--lock-root: takes no argument, got \"yes\"")
    }

    @Test func checkInstalledIsAnOption() throws {
        let parsed = try customize(["img.qcow2", "--check-installed", "cloud-init:/usr/bin/cloud-init"])
        #expect((parsed.operations.first as? CheckInstalled)?.paths == ["/usr/bin/cloud-init"])
    }

    /// Guest commands are options like every operation; `--network` belongs to the run, and is off unless given.
    @Test func guestCommandsParseAndTheNetworkIsOffByDefault() throws {
        let parsed = try customize(["img.qcow2", "--run-command", "echo a && echo b", "--install", "cloud-init,vim",
                                    "--uninstall", "firewalld", "--update", "--run", "./setup.sh"])
        #expect(parsed.operations.map(\.name) == ["run-command", "install", "uninstall", "update", "run"])
        #expect((parsed.operations[0] as? RunCommand)?.command == "echo a && echo b")
        #expect((parsed.operations[1] as? Install)?.packages == ["cloud-init", "vim"])
        #expect((parsed.operations[4] as? RunScript)?.script == "./setup.sh")
        let offline = try #require(try IMGCustomize.parseAsRoot(["customize", "img.qcow2", "--update"])
            as? IMGCustomize.CustomizeCommand)
        #expect(try offline.runOptions.options(global: offline.global).appliance.network == false)
        let online = try #require(try IMGCustomize.parseAsRoot(["customize", "img.qcow2", "--network", "--update"])
            as? IMGCustomize.CustomizeCommand)
        #expect(try online.runOptions.options(global: online.global).appliance.network)
        #expect(try online.operationArguments.parse().1.map(\.name) == ["update"])
    }

    /// --sm-credentials, wherever it stands, is the account of every --sm-register; an --sm-register without one is
    /// refused as the command line is parsed, before any appliance starts.
    @Test func subscriptionStepsTakeTheirAccountFromTheCommandLine() throws {
        func planned(_ arguments: [String]) throws -> [any GuestOperation] {
            let command = try #require(try IMGCustomize.parseAsRoot(["customize"] + arguments)
                as? IMGCustomize.CustomizeCommand)
            return try command.operationArguments.planned().1
        }
        let operations = try planned(["img.qcow2", "--network", "--sm-register", "--sm-attach", "pool:8a85f98c6",
                                      "--sm-remove", "--sm-unregister", "--sm-credentials", "builder:password:s3cret"])
        #expect(operations.map(\.name) == ["sm-register", "sm-attach", "sm-remove", "sm-unregister"])
        #expect((operations[0] as? SMRegister)?.credentials == SubscriptionCredentials(user: "builder", password: "s3cret"))
        let missing = #expect(throws: UsageError.self) { try planned(["img.qcow2", "--sm-register"]) }
        #expect(missing?.diagnostic.message == "--sm-register: needs the account to register with: give --sm-credentials "
                + "USER:password:PASSWORD|USER:file:FILE")
        let bad = #expect(throws: UsageError.self) {
            try planned(["img.qcow2", "--sm-credentials", "builder", "--sm-register"])
        }
        #expect(bad?.diagnostic.message.hasPrefix("--sm-credentials: expected USER:password:PASSWORD or USER:file:FILE") == true)
    }

    /// apply takes operations after the profile, as virt-sysprep takes customize's options: they run after the
    /// profile's steps, under "command line", with the options of apply wherever they stand.
    @Test func applyRunsTheCommandLinesOperationsAfterTheProfile() throws {
        let apply = try #require(try IMGCustomize.parseAsRoot([
            "apply", "sysprep", "--operations", "defaults,-ssh-userdir", "guest.qcow2", "--hostname", "web1.example.com",
            "--dry-run", "--firstboot-command", "dnf -y update",
        ]) as? IMGCustomize.Apply)
        #expect(apply.profile == "sysprep" && apply.runOptions.dryRun)
        let (images, operations, _) = try apply.operationArguments.planned()
        #expect(images == ["guest.qcow2"])
        #expect(operations.map(\.name) == ["hostname", "firstboot-command"])
        let steps = try apply.chosenProfile().adding(operations, as: "command line").steps(for: GuestFacts(type: "linux"))
        #expect(steps.suffix(2).map(\.operation.name) == ["hostname", "firstboot-command"])
        #expect(steps.last?.path == ["sysprep", "command line"])
        #expect(!steps.contains { $0.operation.name == "ssh-userdir" })
        let plain = try #require(try IMGCustomize.parseAsRoot(["apply", "rhel7-cloud", "rhel7.qcow2"]) as? IMGCustomize.Apply)
        #expect(try plain.operationArguments.planned().images == ["rhel7.qcow2"])
        #expect(try plain.operationArguments.planned().operations.isEmpty)
        let unknown = #expect(throws: ValidationError.self) {
            try (IMGCustomize.parseAsRoot(["apply", "sysprep", "g.qcow2", "--frobnicate"]) as? IMGCustomize.Apply)?
                .operationArguments.planned()
        }
        #expect(unknown?.message.hasPrefix("unknown option or operation '--frobnicate'") == true)
    }

    /// A command file is read as the command line is parsed: a bad line stops the run before any appliance starts.
    @Test func aCommandFileIsReadWithTheCommandLine() throws {
        let directory = try TestDirectory()
        let path = directory.path("customize.commands")
        try "run-command echo hi\nwrite /etc/motd:hi\n\nfrobnicate /etc\n".write(toFile: path, atomically: true,
                                                                                    encoding: .utf8)
        let error = #expect(throws: UsageError.self) { try customize(["img.qcow2", "--commands-from-file", path]) }
        #expect(error?.diagnostic.message.hasPrefix("--commands-from-file: \(path):4: unknown command \"frobnicate\"") == true)
        try "run-command echo hi\nwrite /etc/motd:hi\n".write(toFile: path, atomically: true, encoding: .utf8)
        let parsed = try customize(["img.qcow2", "--lock-root", "--commands-from-file", path])
        #expect(parsed.operations.expandingCommandFiles.map(\.name) == ["lock-root", "run-command", "write"])
    }

    /// `--formats` is one option group: apply and inspect accept and refuse the same names, with the same words.
    @Test func formatsResolveTheSameEverywhere() throws {
        let apply = try #require(try IMGCustomize.parseAsRoot(["apply", "sysprep", "img.qcow2", "--formats", "raw, vhd"])
            as? IMGCustomize.Apply)
        #expect(try apply.runOptions.options(global: apply.global).allowedFormats == [.raw, .vpc])
        let inspect = try #require(try IMGCustomize.parseAsRoot(["inspect", "img.qcow2", "--formats", "qcow2"])
            as? IMGCustomize.Inspect)
        #expect(try inspect.formats.allowed() == [.qcow2])
        var messages: [String] = []
        for arguments in [["apply", "sysprep", "img.qcow2", "--formats", "qcow3"], ["inspect", "img.qcow2", "--formats", "qcow3"]] {
            let command = try IMGCustomize.parseAsRoot(arguments)
            let formats = (command as? IMGCustomize.Apply)?.runOptions.formats ?? (command as? IMGCustomize.Inspect)?.formats
            let error = #expect(throws: ValidationError.self) { try formats?.allowed() }
            messages.append(error?.message ?? "")
        }
        #expect(messages[0] == messages[1])
        #expect(messages[0].hasPrefix("unknown format 'qcow3' in --formats (known: raw, qcow2"))
    }

    @Test func applianceOptionsResolve() throws {
        let apply = try #require(try IMGCustomize.parseAsRoot(["apply", "sysprep", "img.qcow2", "--accel", "tcg",
                                                               "--launch-timeout", "90", "--dry-run", "-o", "out.qcow2"])
            as? IMGCustomize.Apply)
        let options = try apply.runOptions.options(global: apply.global)
        #expect(options.appliance.acceleration == .tcg)
        #expect(options.appliance.limits?.launchSeconds == 90)
        #expect(options.dryRun && options.output == "out.qcow2")
        #expect(throws: (any Error).self) { try IMGCustomize.parseAsRoot(["apply", "sysprep", "img", "--accel", "fast"]) }
        #expect(options.appliance.virtualCPUs == nil && options.appliance.memoryMiB == nil && !options.appliance.network)

        // virt-customize's spellings: --smp, --memsize, --no-network, --dryrun and -n.
        let customize = try #require(try IMGCustomize.parseAsRoot([
            "customize", "img.qcow2", "--smp", "1", "--memsize", "2048", "--network", "--no-network", "-n", "--lock-root",
        ]) as? IMGCustomize.CustomizeCommand)
        let sized = try customize.runOptions.options(global: customize.global)
        #expect(sized.appliance.virtualCPUs == 1 && sized.appliance.memoryMiB == 2048 && !sized.appliance.network && sized.dryRun)
        let dryrun = try #require(try IMGCustomize.parseAsRoot(["customize", "img.qcow2", "--dryrun", "--lock-root"])
            as? IMGCustomize.CustomizeCommand)
        #expect(dryrun.runOptions.dryRun)
        for (option, value, message) in [("--smp", "0", "--smp 0: give 1 to 255 virtual CPUs"),
                                         ("--memsize", "128", "--memsize 128: give 256 MiB or more")] {
            let error = #expect(throws: (any Error).self) {
                try IMGCustomize.parseAsRoot(["customize", "img.qcow2", option, value, "--lock-root"])
            }
            #expect(IMGCustomize.message(for: error!).hasPrefix(message), "\(IMGCustomize.message(for: error!))")
        }
    }

    /// Every command that launches the appliance reads --accel, --launch-timeout, --smp and --memsize the same way:
    /// a run, `inspect --os` and the launch that reads an image before `boot-check` boots it.
    @Test func everyLaunchingCommandTakesTheApplianceOptions() throws {
        let options = ["--accel", "tcg", "--launch-timeout", "90", "--smp", "1", "--memsize", "2048"]
        let sparsify = try #require(try IMGCustomize.parseAsRoot(["sparsify", "img.qcow2"] + options)
            as? IMGCustomize.Sparsify)
        let inspect = try #require(try IMGCustomize.parseAsRoot(["inspect", "--os", "img.qcow2"] + options)
            as? IMGCustomize.Inspect)
        let bootCheck = try #require(try IMGCustomize.parseAsRoot(["boot-check", "img.qcow2"] + options)
            as? IMGCustomize.BootCheckCommand)
        for appliance in [try sparsify.runOptions.options(global: sparsify.global).appliance,
                          try inspect.appliance.options(),
                          try bootCheck.options(logger: Logger(label: "test")).appliance] {
            #expect(appliance.acceleration == .tcg && appliance.limits?.launchSeconds == 90)
            #expect(appliance.virtualCPUs == 1 && appliance.memoryMiB == 2048)
        }
    }

    @Test func verbosityChoosesTheLogLevel() throws {
        let quiet = try #require(try IMGCustomize.parseAsRoot(["operations", "-q"]) as? IMGCustomize.OperationsCommand)
        #expect(quiet.global.logLevel == .warning)
        let chatty = try #require(try IMGCustomize.parseAsRoot(["operations", "-vv"]) as? IMGCustomize.OperationsCommand)
        #expect(chatty.global.logLevel == .debug)
    }
}

/// `inspect --create-args`, in-process: what a pipeline hands to `openstack image create`.
@Suite struct CreateArgumentsTests {
    /// A streamOptimized VMDK with a BusLogic adapter, as qemu-img writes one.
    private func vmdk(in directory: TestDirectory) throws -> String {
        let path = directory.path("disk.vmdk")
        _ = try runTool("qemu-img", ["create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized,adapter_type=buslogic",
                                     path, "1536M"])
        return path
    }

    @Test func argumentsCarryTheFormatSizeAndVMwareTypes() throws {
        let directory = try TestDirectory()
        let image = try vmdk(in: directory)
        let command = try #require(try IMGCustomize.parseAsRoot(["inspect", image, "--create-args"]) as? IMGCustomize.Inspect)
        #expect(command.createArgs && !command.glance)
        let properties = GlanceProperties(try ImageInspector.inspect(path: image))
        let expected = ["--disk-format", "vmdk", "--container-format", "bare", "--min-disk", "2",
                        "--property", "vmware_disktype=streamOptimized", "--property", "vmware_adaptertype=busLogic"]
        #expect(properties.createArguments == expected)
        #expect(try IMGCustomize.Inspect.createArguments(properties, json: false) == expected.joined(separator: "\n"))
        let json = try IMGCustomize.Inspect.createArguments(properties, json: true)
        #expect(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String] == expected)
    }

    /// The binary, as a pipeline runs it: the arguments on stdout; for an unsafe image nothing there, the report on
    /// stderr and status 1, so `set -o pipefail` stops the upload.
    @Test func theBinaryPrintsArgumentsOnlyForASafeImage() throws {
        let directory = try TestDirectory()
        let safe = try imgcustomize(["inspect", "--create-args", try vmdk(in: directory)])
        #expect(safe.status == 0)
        #expect(safe.stdout.split(separator: "\n").prefix(2) == ["--disk-format", "vmdk"])
        let unsafe = directory.path("backed.qcow2")
        _ = try runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", unsafe])
        let refused = try imgcustomize(["inspect", "--create-args", unsafe])
        #expect(refused.status == 1 && refused.stdout.isEmpty)
        #expect(refused.stderr.contains("backing-file: qcow2 names a backing file '/etc/hostname'"))
    }

    /// Guest facts become `--property` arguments after the three options, in the order `--glance` lists them.
    @Test func guestFactsBecomeProperties() throws {
        let directory = try TestDirectory()
        let image = directory.path("disk.raw")
        #expect(FileManager.default.createFile(atPath: image, contents: nil))
        try FileHandle(forWritingAtPath: image).map { try $0.truncate(atOffset: 6 << 30); try $0.close() }
        var properties = GlanceProperties(try ImageInspector.inspect(path: image))
        properties.osDistro = "rhel"
        properties.osVersion = "7.9"
        properties.osName = "rhel7.9"
        properties.architecture = "x86_64"
        #expect(properties.createArguments == [
            "--disk-format", "raw", "--container-format", "bare", "--min-disk", "6",
            "--property", "architecture=x86_64", "--property", "os_distro=rhel", "--property", "os_version=7.9",
            "--property", "os_name=rhel7.9",
        ])
    }
}

/// What `profiles` says, in-process.
@Suite struct ProfilesListingTests {
    /// `profiles NAME` shows the steps, as the overview says, without `show`.
    @Test func aProfileNameAloneShowsItsSteps() throws {
        let command = try #require(try IMGCustomize.parseAsRoot(["profiles", "sysprep"])
            as? IMGCustomize.ProfilesCommand.List)
        #expect(command.name == "sysprep")
        let steps = try IMGCustomize.ProfilesCommand.Show.steps(of: "sysprep")
        #expect(steps.hasPrefix("sysprep: "))
        #expect(steps.contains("\n  bash-history"))
        #expect(throws: ValidationError.self) { try IMGCustomize.ProfilesCommand.Show.steps(of: "no-such-profile") }
    }

    /// Each profile says whether it trims and how it writes the image: sysprep does neither of the cloud ones' work.
    @Test func everyProfileSaysWhatItDoes() {
        let listing = IMGCustomize.ProfilesCommand.List.listing()
        #expect(listing.contains("trims free space, writes compressed qcow2"))
        #expect(BuiltinProfiles.named("sysprep")?.effects == "no trimming, keeps the image's format")
        #expect(BuiltinProfiles.named("rhel7-cloud")?.effects == "trims free space, writes compressed qcow2")
        let help = IMGCustomize.helpMessage(for: IMGCustomize.Apply.self)
        #expect(help.contains("sysprep: no trimming, keeps the image's format"))
    }
}
