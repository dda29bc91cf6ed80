import Diagnostics
import Foundation
import Host
import Logging
import Operations

#if canImport(Glibc)
import Glibc
#endif

/// libguestfs's own appliance, booted by a shorter `/init`.
///
/// libguestfs builds its appliance with supermin from the files of its `supermin.d` directory: package lists, the
/// daemon, and `init.tar.gz`, the script the appliance runs as `/init`. That script is written for every tool and
/// every guest: it asks udev to replay the events of every device of every subsystem and waits for them all, and it
/// runs the RAID and Windows dynamic-disk scanners on every boot. Under software emulation each of these is a
/// visible part of a launch (measured here: the unfiltered `udevadm trigger` and `settle` took 0.9-1.8 s, mdadm
/// twice, ldmtool and the tmpfiles pass 0.4-0.6 s).
///
/// imgcustomize builds its own `supermin.d`: links to libguestfs's files, with an `init.tar.gz` of its own made from
/// libguestfs's script by the line edits of `edits`, each one exact. When libguestfs's script does not hold each
/// edited line exactly once (another libguestfs version), the stock appliance boots instead and -v says why.
/// libguestfs builds and caches the result as it does its own (supermin rebuilds it when the host's packages change,
/// as the links make libguestfs's files its inputs), in a cache directory of its own, so that it and the stock
/// appliance never overwrite each other. `IMGCUSTOMIZE_APPLIANCE=stock` boots libguestfs's appliance as it is.
enum PrivateAppliance {
    static let environmentVariable = "IMGCUSTOMIZE_APPLIANCE"

    /// One line of libguestfs's `/init`, replaced whole.
    struct Edit: Sendable {
        var line: String
        var replacement: String
    }

    static let edits: [Edit] = [
        // Every fork and exec of the script costs 25-50 ms under software emulation: directories are made by one
        // mkdir each time, the loopback is set up by one ip, and what bash can do itself it does.
        Edit(line: "mkdir -p /dev/pts /dev/shm", replacement: "mkdir -p /dev/pts /dev/shm /sysroot /run /tmp/lvm"),
        Edit(line: "mkdir -p /run/lock", replacement: "mkdir -p /run/lock /run/tmpfiles.d"),
        // The static device nodes of modules not yet loaded (kmod's list, then tmpfiles; 0.25 s), made in the
        // background: the first use of one (btrfs-control, loop-control) is the daemon's, which waits for them.
        // The rest of the tmpfiles configuration is for a booted system's /run, which the appliance does not use.
        // udevd sets no permission on them when they come after its start: the appliance runs everything as root.
        Edit(line: "kmod static-nodes --format=tmpfiles --output=/run/tmpfiles.d/kmod.conf",
             replacement: "{ kmod static-nodes --format=tmpfiles --output=/run/tmpfiles.d/kmod.conf && systemd-tmpfiles --create --boot /run/tmpfiles.d/kmod.conf; } & static_nodes=$!"),
        Edit(line: "machine_id=$(dd if=/dev/urandom bs=16 count=1 status=none | od -x -A n)",
             replacement: "read -r machine_id < /proc/sys/kernel/random/uuid; machine_id=${machine_id//-/}"),
        // The filesystem modules the native reader found the guest needs (`preloadArgument`) start loading in the
        // background, beside udev's and LVM's work, instead of at the first mount (xfs.ko took 1 s under software
        // emulation, with the daemon waiting).
        Edit(line: "systemd-tmpfiles --prefix=/dev --prefix=/run --prefix=/var/run --create --boot",
             replacement: #"if [[ $cmdline =~ imgcustomize_modules=([a-z0-9_,]+) ]]; then for m in ${BASH_REMATCH[1]//,/ }; do modprobe -q "$m" & done; fi"#),
        // The devices guestfsd uses: disks, partitions and device-mapper nodes with their /dev/disk links (block),
        // its channel /dev/virtio-ports/org.libguestfs.channel.0 (virtio-ports), /dev/mapper/control (misc), and
        // the network interface when the network is on. Devices that appear later (LVM, LUKS, md) raise their own
        // events, which udev handles without a trigger.
        Edit(line: "udevadm trigger",
             replacement: #"udevadm trigger --subsystem-match=block --subsystem-match=virtio-ports --subsystem-match=misc $(test "$guestfs_network" = 1 && echo --subsystem-match=net)"#),
        Edit(line: "ip addr add 127.0.0.1/8 brd + dev lo scope host",
             replacement: #"ip -batch - <<< $'address add 127.0.0.1/8 brd + dev lo scope host\nlink set dev lo up'"#),
        // RAID assembly only where a RAID member is: udev's probe of every device, read once by lsblk, names every
        // kind mdadm assembles "..._raid_member". The second pass, after LVM activation, looks again only where
        // logical volumes may hold members; the same listing says whether a Windows dynamic disk is there.
        Edit(line: "mdadm -As --auto=yes --no-degraded",
             replacement: "probed=$(lsblk -rno FSTYPE,PARTTYPE 2>/dev/null); if [[ $probed == *_raid_member* ]]; then mdadm -As --auto=yes --no-degraded; fi"),
        Edit(line: "touch /tmp/lvm/lvm.conf", replacement: ": >> /tmp/lvm/lvm.conf"),
        Edit(line: "mdadm -As --auto=yes --run",
             replacement: "if [[ $probed == *_raid_member* ]] || { [[ $probed == *LVM2_member* ]] && blkid -o value -s TYPE 2>/dev/null | grep -q _raid_member; }; then mdadm -As --auto=yes --run; fi"),
        // Windows dynamic disks only where a partition of theirs is: MBR type 0x42, or GPT's LDM metadata type.
        // Then the static nodes are waited for: the daemon starts next.
        Edit(line: "ldmtool create all",
             replacement: "if [[ ${probed,,} =~ (^|[[:space:]])(0x42|5808c8aa-7e8f-42e0-85d2-e1e90434cfb3)($|[[:space:]]) ]]; then ldmtool create all; fi; wait $static_nodes"),
        Edit(line: "eval `grep -Eo 'guestfs_channel=[^[:space:]]+' /proc/cmdline`",
             replacement: "if [[ $cmdline =~ guestfs_channel=([^[:space:]]+) ]]; then guestfs_channel=${BASH_REMATCH[1]}; fi"),
    ] + folded.map { Edit(line: $0.line, replacement: "# imgcustomize: " + $0.doneBy) }

    /// Lines whose work an edited line does (one mkdir, one ip), each left as a comment that says which.
    static let folded: [(line: String, doneBy: String)] = [
        ("mkdir -p /sysroot", "/sysroot is made with /dev/pts"),
        ("mkdir -p /run", "/run is made with /dev/pts"),
        ("mkdir -p /tmp/lvm", "/tmp/lvm is made with /dev/pts"),
        ("mkdir -p /run/tmpfiles.d", "/run/tmpfiles.d is made with /run/lock"),
        ("ip link set dev lo up", "lo is up with its address"),
    ]

    /// The kernel modules of the filesystem types the guest mounts (as the native reader found them) that the
    /// appliance loads on demand: ext4 is not among them (the mini-initrd loads it for the appliance's own root).
    static let filesystemModules = ["xfs": "xfs", "btrfs": "btrfs", "vfat": "vfat"]

    /// The kernel argument that has imgcustomize's `/init` load the modules of `types` while it boots
    /// ("imgcustomize_modules=btrfs,xfs"), or nil when none needs loading. The stock appliance ignores it.
    static func preloadArgument(for types: [String]) -> String? {
        let modules = Set(types.compactMap { filesystemModules[$0] }).sorted()
        return modules.isEmpty ? nil : "imgcustomize_modules=" + modules.joined(separator: ",")
    }

    /// Which appliance a launch boots.
    enum Choice: Equatable {
        /// imgcustomize's: the directory to give libguestfs as its path and as its cache directory.
        case own(directory: String, from: String)
        /// libguestfs's own, and why.
        case stock(reason: String)
    }

    /// Why a launch boots the stock appliance: said at -v, never a failure of the run.
    struct Unavailable: DiagnosticError {
        var message: String
        init(_ message: String) { self.message = message }
        var diagnostic: Diagnostic { Diagnostic(message, hint: "the appliance boots libguestfs's own /init instead") }
    }

    /// The appliance for a handle whose search path is `searchPath` (libguestfs's `get_path`), prepared in
    /// `cache` (`ToolCache`'s "appliance" directory) the first time.
    static func choose(searchPath: String, cache: String, logger: Logger,
                       environment: [String: String] = ProcessInfo.processInfo.environment) -> Choice {
        if environment[environmentVariable] == "stock" {
            return .stock(reason: "\(environmentVariable)=stock")
        }
        if let path = environment["LIBGUESTFS_PATH"], !path.isEmpty {
            return .stock(reason: "LIBGUESTFS_PATH chooses the appliance (\(path))")
        }
        // libguestfs's own search: in each directory of the path, a fixed appliance, then supermin's input, then
        // an old-style kernel and initrd. Only supermin's input can be rebuilt with another /init.
        for directory in searchPath.split(separator: ":").map(String.init) where !directory.isEmpty {
            if access(directory + "/README.fixed", F_OK) == 0 {
                return .stock(reason: "\(directory) holds a fixed appliance")
            }
            if access(directory + "/supermin.d", F_OK) == 0 {
                do {
                    return .own(directory: try prepare(supermin: directory + "/supermin.d", cache: cache, logger: logger),
                                from: directory + "/supermin.d")
                } catch {
                    return .stock(reason: Diagnostic(of: error).message)
                }
            }
            if access(directory + "/kernel", F_OK) == 0 {
                return .stock(reason: "\(directory) holds a prebuilt appliance")
            }
        }
        return .stock(reason: "no supermin.d in libguestfs's path \(searchPath)")
    }

    /// libguestfs's `/init` with every edit made; throws when a line to edit is missing or not alone.
    static func edit(_ script: String, name: String) throws -> String {
        var lines = script.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for edit in edits {
            let found = lines.indices.filter { lines[$0] == edit.line }
            guard found.count == 1 else {
                throw Unavailable("\(name) has \(found.count == 0 ? "no" : "\(found.count)") lines \"\(edit.line)\" (another libguestfs version)")
            }
            lines[found[0]] = edit.replacement
        }
        return lines.joined(separator: "\n")
    }

    /// The directory of imgcustomize's appliance made from `supermin` (libguestfs's `supermin.d`), made the first
    /// time: `cache/KEY/supermin.d`, where KEY follows libguestfs's init file and the edits, so that a new libguestfs
    /// or new edits make a new one. Made beside and renamed into place: two runs preparing at once each rename a
    /// whole directory, and the second one's rename fails and it uses the first's.
    static func prepare(supermin: String, cache: String, logger: Logger) throws -> String {
        let stockInit = supermin + "/init.tar.gz"
        var info = stat()
        guard stat(stockInit, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw Unavailable("\(stockInit) is not a file")
        }
        var key = FNV1a()
        key.add("\(supermin)\0\(info.st_size)\0\(info.st_mtim.tv_sec)\0\(info.st_ino)\0")
        for edit in edits { key.add("\(edit.line)\0\(edit.replacement)\0") }
        let name = String(format: "%016llx", key.value)
        let target = (cache as NSString).appendingPathComponent(name)
        if access(target + "/supermin.d/init.tar.gz", R_OK) == 0 { return target }

        do {
            try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
        } catch {
            throw Unavailable("cannot create \(cache): \(Diagnostic(of: error).message)")
        }
        TemporaryDirectory.removeStale(in: cache, prefix: ".new", logger: logger)
        let building: TemporaryDirectory
        do {
            building = try TemporaryDirectory(in: cache, prefix: ".new")
        } catch {
            throw Unavailable("cannot prepare the appliance in \(cache): \(Diagnostic(of: error).message)")
        }
        var kept = false
        defer { if !kept { building.remove() } }
        let input = building.appending("supermin.d"), source = building.appending("init")
        guard mkdir(input, 0o755) == 0, mkdir(source, 0o755) == 0 else {
            throw Unavailable("cannot create \(input): \(String(cString: strerror(errno)))")
        }
        let script = try edit(try readInit(stockInit), name: stockInit)
        guard FileManager.default.createFile(atPath: source + "/init", contents: Data(script.utf8),
                                             attributes: [.posixPermissions: 0o755]) else {
            throw Unavailable("cannot write \(source)/init")
        }
        try tar(["-C", source, "-czf", input + "/init.tar.gz", "--owner=0", "--group=0", "init"], about: stockInit)
        // The other inputs are libguestfs's own files, linked: supermin rebuilds the appliance when they change.
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: supermin)
        } catch {
            throw Unavailable("cannot list \(supermin): \(Diagnostic(of: error).message)")
        }
        for entry in entries.sorted() where entry != "init.tar.gz" {
            guard symlink(supermin + "/" + entry, input + "/" + entry) == 0 else {
                throw Unavailable("cannot link \(input)/\(entry): \(String(cString: strerror(errno)))")
            }
        }
        unlink(source + "/init")
        rmdir(source)
        chmod(building.path, 0o755)
        if rename(building.path, target) == 0 {
            // Renamed into the cache: no longer scratch for an interrupted run to remove.
            building.keep()
            kept = true
        } else if access(target + "/supermin.d/init.tar.gz", R_OK) != 0 {
            throw Unavailable("cannot rename \(building.path) to \(target): \(String(cString: strerror(errno)))")
        }
        removeStale(in: cache, keeping: name)
        return target
    }

    /// libguestfs's `/init`, from its `init.tar.gz`.
    static func readInit(_ archive: String) throws -> String {
        let text = String(decoding: try tar(["-xzOf", archive, "init"], about: archive), as: UTF8.self)
        guard text.hasPrefix("#!") else { throw Unavailable("\(archive) holds no init script") }
        return text
    }

    @discardableResult
    private static func tar(_ arguments: [String], about path: String) throws -> [UInt8] {
        // libguestfs's script is 8 KB; a megabyte is plenty and bounds what is read.
        let command = HostCommand("tar", arguments, output: .capture(limit: 1 << 20))
        let result: CommandResult
        do {
            result = try command.run()
        } catch {
            throw Unavailable("cannot run tar on \(path): \(Diagnostic(of: error).message)")
        }
        guard result.succeeded else { throw Unavailable("\(command.commandLine) \(result.explanation)") }
        return result.output
    }

    /// Removes the appliances of earlier libguestfs versions or edits, once unused for a day (a run that began
    /// before the change may still be booting one).
    private static func removeStale(in cache: String, keeping name: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: cache) else { return }
        let dayAgo = time(nil) - 86_400
        for entry in entries where entry != name && entry.count == 16 && entry.allSatisfy(\.isHexDigit) {
            let path = (cache as NSString).appendingPathComponent(entry)
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_mtim.tv_sec < dayAgo else { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// 64-bit FNV-1a: names the cache entry; not a defence, the cache is the user's own.
    private struct FNV1a {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        mutating func add(_ text: String) {
            for byte in text.utf8 {
                value ^= UInt64(byte)
                value = value &* 0x0000_0100_0000_01b3
            }
        }
    }
}
