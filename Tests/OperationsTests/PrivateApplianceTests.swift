import Diagnostics
import Foundation
import Testing
@testable import Appliance
import TestSupport
import Host

/// imgcustomize's appliance: libguestfs's own supermin.d with an edited /init, made from the host's libguestfs; no
/// launch (its launches are in the `ApplianceTests` suites).
@Suite struct PrivateApplianceTests {
    /// Where Debian's libguestfs keeps supermin's input, as `guestfs_get_path` gives it.
    static let libguestfsPath = "/usr/lib/x86_64-linux-gnu/guestfs"

    @Test func theHostLibguestfsInitTakesEveryEditAndStaysValidBash() throws {
        let archive = Self.libguestfsPath + "/supermin.d/init.tar.gz"
        let stock = try PrivateAppliance.readInit(archive)
        let edited = try PrivateAppliance.edit(stock, name: archive)
        for edit in PrivateAppliance.edits {
            #expect(!edited.split(separator: "\n").contains { $0 == edit.line }, "\(edit.line) is still there")
            #expect(edited.components(separatedBy: edit.replacement).count == 2, "\(edit.replacement) is not there once")
        }
        // Only the edited lines changed.
        let before = stock.split(separator: "\n", omittingEmptySubsequences: false)
        let after = edited.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(before.count == after.count)
        #expect(zip(before, after).filter { $0 != $1 }.count == PrivateAppliance.edits.count)
        // bash itself reads the result.
        let directory = try TestDirectory()
        let script = directory.path("init")
        try Data(edited.utf8).write(to: URL(fileURLWithPath: script))
        _ = try runTool("bash", ["-n", script])
    }

    /// The modules of the filesystems the native reader found: only those loaded on demand, each once; the edited
    /// line, run by bash with that argument on the command line, loads each (a function stands in for modprobe, as
    /// the host must not load modules for a test).
    @Test func theReadersFilesystemModulesLoadWhileTheApplianceBoots() throws {
        #expect(PrivateAppliance.preloadArgument(for: ["xfs", "ext4", "vfat", "xfs"]) == "imgcustomize_modules=vfat,xfs")
        #expect(PrivateAppliance.preloadArgument(for: ["ext4", "ext2"]) == nil)
        #expect(PrivateAppliance.preloadArgument(for: []) == nil)
        let line = try #require(PrivateAppliance.edits.first { $0.line.hasPrefix("systemd-tmpfiles") }).replacement
        let directory = try TestDirectory()
        let log = directory.path("log")
        func run(_ cmdline: String) throws -> [String] {
            try? FileManager.default.removeItem(atPath: log)
            let script = "modprobe() { echo \"modprobe $*\" >> \(log); }\n"
                + "cmdline='\(cmdline)'\n" + line + "\nwait\n"
            _ = try runTool("bash", ["-c", script])
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").map(String.init).sorted()
        }
        let argument = try #require(PrivateAppliance.preloadArgument(for: ["btrfs", "xfs"]))
        #expect(try run("panic=1 root=UUID=1 \(argument) loglevel=7") == ["modprobe -q btrfs", "modprobe -q xfs"])
        #expect(try run("panic=1 root=UUID=1 loglevel=7") == [])
    }

    /// The edited script's RAID, dynamic-disk and channel lines, run by bash in order with functions standing in for
    /// the tools (lsblk printing what udev would have probed): mdadm runs where a member is, its second pass also
    /// where logical volumes may hold one, ldmtool where a dynamic disk's partition is, and nothing runs otherwise.
    /// A real array is assembled in `aRAIDArrayIsAssembledByImgcustomizesInit`, which boots this script.
    @Test func theProbesRunOnlyWhatTheDevicesCallFor() throws {
        let stock = try PrivateAppliance.readInit(Self.libguestfsPath + "/supermin.d/init.tar.gz")
        let edited = try PrivateAppliance.edit(stock, name: "init").split(separator: "\n").map(String.init)
        func line(_ prefix: String) throws -> String {
            try #require(edited.first { $0.hasPrefix(prefix) }, "\(prefix)")
        }
        let lines = [try line("probed="), try line("if [[ $probed == *_raid_member* ]] ||"), try line("if [[ ${probed,,}"),
                     try line("if [[ $cmdline =~ guestfs_channel")]
        func run(lsblk: String, blkid: String = "") throws -> [String] {
            let script = """
                lsblk() { printf '%s' \(shellQuoted(lsblk)); }
                blkid() { printf '%s' \(shellQuoted(blkid)); }
                mdadm() { echo "mdadm $*"; }
                ldmtool() { echo "ldmtool $*"; }
                cmdline='panic=1 guestfs_channel=/dev/vport1p1 loglevel=7'
                static_nodes=
                """ + "\n" + lines.joined(separator: "\n") + "\necho \"channel $guestfs_channel\"\n"
            return try runTool("bash", ["-c", script]).split(separator: "\n").map(String.init)
        }
        let channel = "channel /dev/vport1p1"
        #expect(try run(lsblk: "ext4 \nxfs 0x83\n") == [channel])
        #expect(try run(lsblk: "linux_raid_member 0xfd\nlinux_raid_member 0xfd\n")
                == ["mdadm -As --auto=yes --no-degraded", "mdadm -As --auto=yes --run", channel])
        #expect(try run(lsblk: "isw_raid_member \n")
                == ["mdadm -As --auto=yes --no-degraded", "mdadm -As --auto=yes --run", channel])
        // Logical volumes: the second pass where one of them is a member, not otherwise.
        #expect(try run(lsblk: "LVM2_member 0x8e\n", blkid: "LVM2_member\nlinux_raid_member\n")
                == ["mdadm -As --auto=yes --run", channel])
        #expect(try run(lsblk: "LVM2_member 0x8e\n", blkid: "LVM2_member\nxfs\n") == [channel])
        // Dynamic disks, by MBR type or GPT type in any case; a type that merely contains 0x42 is not one.
        #expect(try run(lsblk: "ntfs 0x7\n 0x42\n") == ["ldmtool create all", channel])
        #expect(try run(lsblk: " 5808C8AA-7E8F-42E0-85D2-E1E90434CFB3\n") == ["ldmtool create all", channel])
        #expect(try run(lsblk: "ext4 0x420\n") == [channel])
    }

    @Test func anInitWithoutALineOrWithItTwiceIsNotEdited() throws {
        let stock = try PrivateAppliance.readInit(Self.libguestfsPath + "/supermin.d/init.tar.gz")
        let missing = stock.replacingOccurrences(of: "\nldmtool create all\n", with: "\n")
        let error = #expect(throws: PrivateAppliance.Unavailable.self) {
            _ = try PrivateAppliance.edit(missing, name: "init.tar.gz")
        }
        #expect(error?.message == "init.tar.gz has no lines \"ldmtool create all\" (another libguestfs version)")
        let twice = stock.replacingOccurrences(of: "\nudevadm trigger\n", with: "\nudevadm trigger\nudevadm trigger\n")
        #expect(throws: PrivateAppliance.Unavailable.self) { _ = try PrivateAppliance.edit(twice, name: "init.tar.gz") }
    }

    @Test func theApplianceIsPreparedOnceFromLibguestfsFilesAndInitOnly() throws {
        let directory = try TestDirectory()
        let cache = directory.path("appliance")
        let choice = PrivateAppliance.choose(searchPath: Self.libguestfsPath, cache: cache,
                                             logger: LogRecorder().logger(), environment: [:])
        guard case .own(let prepared, let source) = choice else {
            Issue.record("expected imgcustomize's appliance, got \(choice)")
            return
        }
        #expect(source == Self.libguestfsPath + "/supermin.d")
        let input = prepared + "/supermin.d"
        let stockEntries = try FileManager.default.contentsOfDirectory(atPath: source).sorted()
        #expect(try FileManager.default.contentsOfDirectory(atPath: input).sorted() == stockEntries)
        for entry in stockEntries where entry != "init.tar.gz" {
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: input + "/" + entry) == source + "/" + entry)
        }
        // tar, not our reader, lists the archive: one executable init owned by root.
        let listing = try runTool("tar", ["-tvzf", input + "/init.tar.gz"])
        #expect(listing.hasPrefix("-rwxr-xr-x root/root"), "\(listing)")
        #expect(listing.split(separator: "\n").count == 1 && listing.hasSuffix(" init\n"))
        #expect(try PrivateAppliance.readInit(input + "/init.tar.gz")
                == PrivateAppliance.edit(PrivateAppliance.readInit(source + "/init.tar.gz"), name: "stock"))

        // The next run finds it and leaves it as it is: supermin rebuilds the appliance when its input is newer.
        let made = try FileManager.default.attributesOfItem(atPath: input + "/init.tar.gz")[.modificationDate] as? Date
        let again = PrivateAppliance.choose(searchPath: Self.libguestfsPath, cache: cache,
                                            logger: LogRecorder().logger(), environment: [:])
        #expect(again == choice)
        #expect(try FileManager.default.attributesOfItem(atPath: input + "/init.tar.gz")[.modificationDate] as? Date == made)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache) == [(prepared as NSString).lastPathComponent])
    }

    @Test func runsPreparingAtOnceShareOneAppliance() async throws {
        let directory = try TestDirectory()
        let cache = directory.path("appliance")
        let choices = await withTaskGroup(of: PrivateAppliance.Choice.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    PrivateAppliance.choose(searchPath: Self.libguestfsPath, cache: cache,
                                            logger: LogRecorder().logger(), environment: [:])
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(choices.map { "\($0)" }).count == 1)
        guard case .own(let prepared, _) = choices[0] else {
            Issue.record("expected imgcustomize's appliance, got \(choices[0])")
            return
        }
        // No half-made directory is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache) == [(prepared as NSString).lastPathComponent])
    }

    @Test func theStockApplianceBootsWhereTheUserOrLibguestfsChoseAnother() throws {
        let directory = try TestDirectory()
        let cache = directory.path("appliance")
        let logger = LogRecorder().logger()
        #expect(PrivateAppliance.choose(searchPath: Self.libguestfsPath, cache: cache, logger: logger,
                                        environment: [PrivateAppliance.environmentVariable: "stock"])
                == .stock(reason: "IMGCUSTOMIZE_APPLIANCE=stock"))
        #expect(PrivateAppliance.choose(searchPath: "/srv/appliance", cache: cache, logger: logger,
                                        environment: ["LIBGUESTFS_PATH": "/srv/appliance"])
                == .stock(reason: "LIBGUESTFS_PATH chooses the appliance (/srv/appliance)"))
        // A fixed appliance (guestfs(3), "FIXED APPLIANCE") first in the path.
        let fixed = directory.path("fixed")
        try FileManager.default.createDirectory(atPath: fixed, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: fixed + "/README.fixed", contents: Data())
        #expect(PrivateAppliance.choose(searchPath: fixed + ":" + Self.libguestfsPath, cache: cache, logger: logger,
                                        environment: [:])
                == .stock(reason: "\(fixed) holds a fixed appliance"))
        #expect(PrivateAppliance.choose(searchPath: directory.path("none"), cache: cache, logger: logger, environment: [:])
                == .stock(reason: "no supermin.d in libguestfs's path \(directory.path("none"))"))
        #expect(!FileManager.default.fileExists(atPath: cache))
    }
}
