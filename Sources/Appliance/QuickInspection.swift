import Formats
import Foundation
import Operations

/// Inspection of the Linux guests this tool prepares (Red Hat's family, Fedora, Debian, Ubuntu) in a few seconds
/// instead of the 20-30 s libguestfs's `inspect_os` takes under software emulation, where it runs parted, sgdisk and
/// blkid on every device and compiles every Augeas lens to read /etc/fstab.
///
/// It reads what `inspect_os` reads and draws the same conclusions, following libguestfs's rules
/// (daemon/inspect_fs_unix.ml, inspect_fs_unix_fstab.ml, lib/inspect-osinfo.c): filesystems are recognised by their
/// superblocks, fetched with one pread per device; the root is the filesystem holding /etc/fstab; the release
/// files give the distribution and version (`LinuxRelease`); the first of /bin/bash... gives the architecture;
/// /etc/fstab gives the mountpoints, its UUID= and LABEL= resolved against the superblocks.
///
/// LUKS devices the session opened are read through their mappings (/dev/mapper/luks-UUID), and an fstab entry naming
/// such a mapping resolves to it: what libguestfs 1.48 does too, taking /dev/mapper names that are not volumes as they
/// stand. (Later libguestfs resolves them through the guest's /etc/crypttab; a guest whose crypttab names a mapping
/// otherwise than luks-UUID leaves an fstab entry this inspection cannot resolve, and libguestfs decides.)
///
/// A btrfs filesystem on one device is examined as libguestfs's list_filesystems lists it: the whole device (its
/// default subvolume) and each other subvolume as `btrfsvol:DEVICE/PATH`, mounted with `subvol=PATH`; an fstab
/// entry of type btrfs with a `subvol=` option names that subvolume (Fedora's root and /home). Its devices are named
/// canonically (/dev/sda2), where libguestfs 1.48 gives the appliance kernel's name, which varies between launches:
/// the session's libguestfs inspection is brought to the canonical name too.
///
/// Whenever the guest is anything else (a distribution whose rules it does not carry, btrfs over several devices, a
/// closed LUKS device, RAID, an fstab entry it cannot resolve, a second operating system, a filesystem that will
/// not mount), it returns nil and the caller asks libguestfs, so that a guest it does not know is never misread. A
/// test compares both on every fixture.
struct QuickInspection {
    let guestfs: Guestfs
    /// The LUKS devices the session opened, and their mappings.
    var decrypted: [String: String] = [:]

    /// What a device holds, from its first 68 KiB.
    enum Content: Equatable {
        case filesystem(type: String, uuid: String, label: String)
        case swap
        case lvmPhysicalVolume
        /// Something this inspection does not handle: libguestfs must look.
        case unsupported(String)
        /// Nothing an OS inspection looks at (an empty or extended partition, a BIOS boot partition).
        case other
    }

    /// The guest's facts, or nil when libguestfs's full inspection must decide. Leaves nothing mounted.
    func inspect() throws -> GuestFacts? {
        let disks = try guestfs.disks()
        let partitions = try guestfs.partitions()
        let arrays = try guestfs.raidArrays()
        guard arrays.isEmpty else { return nil }

        // Whole disks without a partition table may hold a filesystem themselves.
        let bare = disks.filter { disk in !partitions.contains { Self.partition($0, isOn: disk) } }
        var contents: [(device: String, content: Content)] = []
        for device in bare + partitions {
            let readable = decrypted[device] ?? device
            contents.append((readable, try content(of: readable)))
        }
        var volumes: [String] = []
        if contents.contains(where: { $0.content == .lvmPhysicalVolume }) {
            volumes = try guestfs.logicalVolumes()
            for volume in volumes {
                let readable = decrypted[volume] ?? volume
                contents.append((readable, try content(of: readable)))
            }
        }
        if contents.contains(where: { if case .unsupported = $0.content { true } else { false } }) { return nil }

        let filesystems = contents.compactMap { entry -> (device: String, type: String, uuid: String, label: String)? in
            guard case .filesystem(let type, let uuid, let label) = entry.content else { return nil }
            return (entry.device, type, uuid, label)
        }
        var subvolumes: [String] = []
        for filesystem in filesystems where filesystem.type == "btrfs" {
            subvolumes += try btrfsSubvolumes(filesystem.device)
        }
        let devices = Devices(disks: disks, partitions: partitions, volumes: volumes, mappings: Array(decrypted.values),
                              subvolumes: subvolumes, uuids: filesystems.map { ($0.uuid, $0.device) },
                              labels: filesystems.filter { !$0.label.isEmpty }.map { ($0.label, $0.device) })

        // Likely roots first: a root's fstab then names the other filesystems, which need not be mounted to be
        // ruled out as another operating system.
        let unchecked = (filesystems.map(\.device) + subvolumes).sorted {
            (Self.rootLikelihood($0), $0) < (Self.rootLikelihood($1), $1)
        }
        return try Self.findRoot(among: unchecked) { try examine($0, devices: devices) }
    }

    /// The one root among `candidates`, examined in order; a root's fstab rules out the filesystems it mounts
    /// without examining them. Nil when a candidate is unknown or when there are two roots (a second operating
    /// system: libguestfs reports those).
    static func findRoot(among candidates: [String], examine: (String) throws -> Verdict) throws -> GuestFacts? {
        var unchecked = candidates
        var found: GuestFacts?
        while !unchecked.isEmpty {
            let device = unchecked.removeFirst()
            switch try examine(device) {
            case .unknown:
                return nil
            case .notRoot:
                continue
            case .root(let facts):
                guard found == nil else { return nil }
                found = facts
                unchecked.removeAll { facts.mountpoints.values.contains($0) }
            }
        }
        return found
    }

    /// The subvolumes of the btrfs filesystem on `device` but its default one (mounting the device gives that), as
    /// libguestfs names them.
    private func btrfsSubvolumes(_ device: String) throws -> [String] {
        let defaultID = try guestfs.btrfsDefaultSubvolume(device)
        return try guestfs.btrfsSubvolumes(device).filter { $0.id != defaultID }.map {
            BtrfsVolumeName.name(device: device, path: $0.path)
        }
    }

    enum Verdict {
        case root(GuestFacts)
        case notRoot
        /// Something libguestfs must look at.
        case unknown
    }

    /// Mounts `device` read-only and reads what makes it a root, or not.
    private func examine(_ device: String, devices: Devices) throws -> Verdict {
        guard (try? guestfs.mount(device, on: "/", readonly: true)) != nil else { return .unknown }
        defer { try? guestfs.unmountAll() }
        return try Self.verdict(GuestReader(guestfs: guestfs), device: device, devices: devices)
    }

    /// Whether the filesystem `guest` reads, `device`, is a Linux root, and its facts when it is.
    static func verdict(_ guest: some InspectedTree, device: String, devices: Devices) throws -> Verdict {
        guard try guest.kind("/etc/fstab") == .regular else {
            // /etc without an fstab, or a separate /usr: guests this inspection does not know.
            if try guest.kind("/etc") != nil || guest.kind("/lib/os-release") != nil { return .unknown }
            return .notRoot
        }
        // libguestfs's test for a Linux root: /bin a directory, or the usr/bin symlink of merged-/usr guests.
        guard try guest.kind("/etc") == .directory,
              try guest.linkKind("/bin") == .directory
                || (try guest.linkKind("/bin") == .symlink && guest.readlink("/bin") == "usr/bin")
        else { return .unknown }
        guard let release = try LinuxRelease.detect(isFile: { try guest.kind($0) == .regular },
                                                   read: { try guest.text($0) }),
              let arch = try Self.architecture(guest),
              let mountpoints = try Self.mountpoints(fstab: guest.text("/etc/fstab") ?? "", root: device,
                                                     devices: devices),
              let hostname = try Self.hostname(guest)
        else { return .unknown }
        return .root(GuestFacts(
            type: "linux", distro: release.distro, majorVersion: release.major, minorVersion: release.minor,
            osinfo: release.osinfo, arch: arch, hostname: hostname.isEmpty ? nil : hostname,
            productName: release.product, packageFormat: release.packageFormat,
            packageManagement: release.packageManagement(hasDNF: try guest.kind("/usr/bin/dnf") == .regular),
            mountpoints: mountpoints, root: device))
    }

    // MARK: Devices

    /// "/dev/sda1" is on "/dev/sda"; "/dev/nvme0n1p1" on "/dev/nvme0n1".
    static func partition(_ partition: String, isOn disk: String) -> Bool {
        guard partition.hasPrefix(disk), partition.count > disk.count else { return false }
        let rest = partition.dropFirst(disk.count).drop { $0 == "p" }
        return !rest.isEmpty && rest.allSatisfy(\.isNumber)
    }

    /// Logical volumes and btrfs subvolumes named like a root first, then other volumes and subvolumes, then
    /// partitions from the last.
    static func rootLikelihood(_ device: String) -> Int {
        if let subvolume = BtrfsVolumeName(device) {
            return subvolume.lastComponent?.contains("root") == true ? 0 : 1
        }
        let components = device.split(separator: "/")
        guard components.count == 3 else { return 2 }  // /dev/VG/LV
        return components[2].contains("root") ? 0 : 1
    }

    private func content(of device: String) throws -> Content {
        Self.identify(try guestfs.preadDevice(device, count: 65536 + 4096))
    }

    /// Recognises what libguestfs would find on a device from its first bytes (the superblock layouts of
    /// util-linux's libblkid probes).
    static func identify(_ bytes: [UInt8]) -> Content {
        let cursor = ByteCursor(bytes, file: "device")
        func at(_ offset: Int, _ text: String) -> Bool { cursor.matches(Array(text.utf8), at: offset) }
        // Past the end of what was read: nothing, as for a blank field.
        func uuid(_ offset: Int) -> String { (try? cursor.slice(offset, 16)).map(uuidString) ?? "" }
        func label(_ offset: Int, _ length: Int) -> String { (try? cursor.string(offset, length)) ?? "" }
        if at(0, "XFSB") {
            return .filesystem(type: "xfs", uuid: uuid(32), label: label(108, 12))
        }
        if cursor.count >= 2048, cursor.matches([0x53, 0xEF], at: 1080) {
            // ext2, ext3 and ext4 differ in feature flags only; the type matters here only as "not btrfs".
            return .filesystem(type: "ext", uuid: uuid(1024 + 104), label: label(1024 + 120, 16))
        }
        if SwapHeader(bytes) != nil { return .swap }
        if (0..<4).contains(where: { at($0 * 512, "LABELONE") && at($0 * 512 + 24, "LVM2 001") }) {
            return .lvmPhysicalVolume
        }
        if at(65536 + 64, "_BHRfS_M") {
            guard cursor.count >= 65536 + 299 + 256,
                  let deviceCount = try? cursor.littleEndian(UInt64.self, at: 65536 + 136) else { return .unsupported("btrfs") }
            // A filesystem over several devices (its num_devices) is not one this inspection follows.
            guard deviceCount == 1 else { return .unsupported("btrfs over \(deviceCount) devices") }
            return .filesystem(type: "btrfs", uuid: uuid(65536 + 32), label: label(65536 + 299, 256))
        }
        if cursor.matches([0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE], at: 0) { return .unsupported("LUKS") }
        // An MD RAID member with a version 1.1 or 1.2 superblock (a92b4efc little-endian, at 0 or 4 KiB).
        let raidMagic: [UInt8] = [0xFC, 0x4E, 0x2B, 0xA9]
        if [0, 4096].contains(where: { cursor.matches(raidMagic, at: $0) }) {
            return .unsupported("RAID member")
        }
        if cursor.matches([0x55, 0xAA], at: 510) {
            // A FAT filesystem (an EFI system partition) is fine only if nothing refers to it; an MBR (an extended
            // partition) is nothing to inspect.
            if at(82, "FAT32") {
                return .filesystem(type: "vfat", uuid: fatSerial(cursor, at: 67), label: fatLabel(cursor, at: 71))
            }
            if at(54, "FAT1") {
                return .filesystem(type: "vfat", uuid: fatSerial(cursor, at: 39), label: fatLabel(cursor, at: 43))
            }
            return .other
        }
        // Empty, a BIOS boot partition, or a filesystem not probed here. Harmless: a root on it leaves no root
        // found, and an fstab entry naming it by UUID is not resolved; either way libguestfs decides.
        return .other
    }

    /// The volume serial number (little-endian) as blkid prints it: "1234-ABCD".
    private static func fatSerial(_ cursor: ByteCursor, at offset: Int) -> String {
        guard let serial = try? cursor.littleEndian(UInt32.self, at: offset) else { return "" }
        return String(format: "%04X-%04X", serial >> 16, serial & 0xFFFF)
    }

    private static func fatLabel(_ cursor: ByteCursor, at offset: Int) -> String {
        guard let raw = try? cursor.slice(offset, 11) else { return "" }
        let text = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        return text == "NO NAME" ? "" : text
    }

    /// The guest's block devices, to resolve fstab entries the way libguestfs does.
    struct Devices {
        var disks: [String]
        var partitions: [String]
        var volumes: [String]
        /// The mappings of opened LUKS devices (/dev/mapper/luks-UUID).
        var mappings: [String] = []
        /// The btrfs subvolumes, as `btrfsvol:DEVICE/PATH`.
        var subvolumes: [String] = []
        var uuids: [(String, String)]
        var labels: [(String, String)]

        func byUUID(_ uuid: String) -> String? {
            uuids.first { $0.0.lowercased() == uuid.lowercased() }?.1
        }

        func byLabel(_ label: String) -> String? {
            labels.first { $0.0 == label }?.1
        }
    }

    // MARK: Release values, architecture, hostname


    /// KEY=value lines, values shell-unquoted (os-release(5)).
    static func keyValues(_ text: String) -> [(String, String)] {
        text.split(separator: "\n").compactMap { line in
            guard let equals = line.firstIndex(of: "="), !line.hasPrefix("#") else { return nil }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = Substring(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces))
            if let quote = value.first, quote == "\"" || quote == "'", value.count >= 2, value.last == quote {
                value = value.dropFirst().dropLast()
                if quote == "\"" {
                    var unescaped = "", escaping = false
                    for character in value {
                        if escaping || character != "\\" { unescaped.append(character); escaping = false }
                        else { escaping = true }
                    }
                    return (key, unescaped)
                }
            }
            return (key, String(value))
        }
    }

    /// The architecture of the first of libguestfs's probe binaries, from its ELF header.
    static func architecture(_ guest: some InspectedTree) throws -> String? {
        let binaries = ["/bin/bash", "/bin/ls", "/bin/echo", "/bin/rm", "/bin/sh"]
        for binary in binaries where try guest.kind(binary) == .regular {
            let header = try guest.bytes(binary, count: 20)
            guard header.count == 20, header[0..<4] == [0x7F, 0x45, 0x4C, 0x46] else { return nil }
            let is64 = header[4] == 2, littleEndian = header[5] == 1
            let machine = littleEndian ? Int(header[18]) | Int(header[19]) << 8 : Int(header[18]) << 8 | Int(header[19])
            switch (machine, is64, littleEndian) {
            case (62, true, true): return "x86_64"
            case (183, true, true): return "aarch64"
            case (21, true, true): return "ppc64le"
            case (22, true, false): return "s390x"
            default: return nil
            }
        }
        return nil
    }

    /// /etc/HOSTNAME or /etc/hostname (first line), else HOSTNAME= in /etc/sysconfig/network; "" for none, nil
    /// when the value needs a shell to read (libguestfs would return it as Augeas prints it).
    static func hostname(_ guest: some InspectedTree) throws -> String? {
        for file in ["/etc/HOSTNAME", "/etc/hostname"] where try guest.kind(file) == .regular {
            // libguestfs takes the first line of a file that is not empty, even an empty first line.
            if let text = try guest.text(file), !text.isEmpty {
                return String(text.split(separator: "\n", omittingEmptySubsequences: false)[0])
            }
        }
        guard try guest.kind("/etc/sysconfig/network") == .regular,
              let text = try guest.text("/etc/sysconfig/network") else { return "" }
        let mentions = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.hasPrefix("#") && $0.contains("HOSTNAME") }
        guard let only = mentions.first else { return "" }
        // Twice, exported, or anything but a plain assignment: Augeas's reading may differ from a guess.
        guard mentions.count == 1, only.hasPrefix("HOSTNAME=") else { return nil }
        let value = only.dropFirst("HOSTNAME=".count)
        guard value.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else { return nil }
        return String(value)
    }

    // MARK: fstab

    /// The mountpoints of /etc/fstab, resolved to appliance devices as libguestfs does; nil for an entry it would
    /// resolve in a way this inspection does not reproduce.
    static func mountpoints(fstab: String, root: String, devices: Devices) -> [String: String]? {
        var result: [String: String] = [:]
        for line in fstab.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = fields.first, !first.hasPrefix("#") else { continue }
            guard fields.count >= 3 else { return nil }
            let spec = String(fields[0]), mountpoint = String(fields[1]), type = String(fields[2])
            guard !spec.contains("\\"), !mountpoint.contains("\\") else { return nil }
            // libguestfs skips floppies, CD-ROMs and pseudo-filesystems' mountpoints; swap has no mountpoint.
            if spec.hasPrefix("/dev/fd") || spec.hasPrefix("/dev/cd") || spec == "/dev/floppy" || spec == "/dev/cdrom" {
                continue
            }
            guard mountpoint.hasPrefix("/") else { continue }
            let path = canonical(mountpoint)
            if ["/dev", "/proc", "/sys", "/selinux"].contains(where: { path == $0 || path.hasPrefix($0 + "/") })
                || path.hasPrefix("/media/") {
                continue
            }
            var device: String
            if spec.hasPrefix("UUID=") {
                guard let found = devices.byUUID(unquote(String(spec.dropFirst(5)))) else { return nil }
                device = found
            } else if spec.hasPrefix("LABEL=") {
                guard let found = devices.byLabel(unquote(String(spec.dropFirst(6)))) else { return nil }
                device = found
            } else if spec == "/dev/root" {
                device = root
            } else if spec.hasPrefix("/dev/") {
                guard let found = resolve(spec, devices: devices) else { return nil }
                device = found
            } else if spec.contains("=") {
                return nil  // PARTUUID=, PARTLABEL=...
            } else {
                continue  // tmpfs, none...
            }
            if type == "btrfs", BtrfsVolumeName(device) == nil {
                guard let subvolume = btrfsSubvolume(options: fields.count > 3 ? String(fields[3]) : "",
                                                     device: device, devices: devices) else { return nil }
                device = subvolume
            }
            if result[path] == nil { result[path] = device }
        }
        return result
    }

    /// What a btrfs entry on `device` mounts: the subvolume of its first `subvol=` option, else the whole device (as
    /// libguestfs's get_btrfs_mountable decides); nil for a subvolume that is not on `device` as named (a leading
    /// slash, a nested path libguestfs would name otherwise) or for `subvolid=` alone, which libguestfs reads as the
    /// whole device although the guest mounts a subvolume.
    static func btrfsSubvolume(options: String, device: String, devices: Devices) -> String? {
        let options = options.split(separator: ",")
        guard let subvol = options.first(where: { $0.hasPrefix("subvol=") })?.dropFirst("subvol=".count) else {
            return options.contains(where: { $0.hasPrefix("subvolid=") }) ? nil : device
        }
        let subvolume = BtrfsVolumeName.name(device: device, path: subvol)
        return devices.subvolumes.contains(subvolume) ? subvolume : nil
    }

    /// /dev/mapper/VG-LV and /dev/VG/LV to the volume; /dev/vda1, /dev/xvda1, /dev/hda1 to the same partition of
    /// the appliance's disk of that rank; nil for anything else.
    static func resolve(_ spec: String, devices: Devices) -> String? {
        if devices.mappings.contains(spec) { return spec }
        if spec.hasPrefix("/dev/mapper/") {
            // Device-mapper doubles the dashes of VG and LV names and joins them with a single one.
            let name = Array(spec.dropFirst("/dev/mapper/".count))
            var index = 0
            while index < name.count {
                if name[index] == "-" {
                    if index + 1 < name.count, name[index + 1] == "-" { index += 2; continue }
                    let group = String(name[..<index]).replacingOccurrences(of: "--", with: "-")
                    let volume = String(name[(index + 1)...]).replacingOccurrences(of: "--", with: "-")
                    let device = "/dev/\(group)/\(volume)"
                    return devices.volumes.contains(device) ? device : nil
                }
                index += 1
            }
            return nil
        }
        if devices.volumes.contains(spec) { return spec }
        for prefix in ["/dev/xvd", "/dev/hd", "/dev/sd", "/dev/vd"] where spec.hasPrefix(prefix) {
            let rest = spec.dropFirst(prefix.count)
            let letters = rest.prefix { $0.isLowercase && $0.isASCII }
            let number = rest.dropFirst(letters.count)
            // Four letters are past any disk count; more would overflow the rank.
            guard !letters.isEmpty, letters.count <= 4, number.allSatisfy(\.isNumber) else { return nil }
            // "a" is 0, "z" 25, "aa" 26 (drive_index in libguestfs).
            var rank = 0
            for letter in letters { rank = rank * 26 + Int(letter.asciiValue! - 97) + 1 }
            rank -= 1
            guard rank < devices.disks.count, !number.isEmpty else { return nil }
            let device = devices.disks[rank] + number
            return devices.partitions.contains(device) ? device : nil
        }
        return nil
    }

    static func canonical(_ path: String) -> String {
        "/" + path.split(separator: "/").joined(separator: "/")
    }

    static func unquote(_ value: String) -> String {
        if let quote = value.first, quote == "\"" || quote == "'", value.count >= 2, value.last == quote {
            return String(value.dropFirst().dropLast())
        }
        return value
    }
}

/// What inspection reads of a guest root: through the appliance (`GuestReader`) or natively
/// (`NativeInspection`).
protocol InspectedTree {
    /// What `path` leads to, following symlinks; nil when nothing is there.
    func kind(_ path: String) throws -> FileStatus.Kind?
    /// What `path` itself is, a symlink not followed; nil when nothing is there.
    func linkKind(_ path: String) throws -> FileStatus.Kind?
    func readlink(_ path: String) throws -> String
    /// The first `count` bytes of a file.
    func bytes(_ path: String, count: Int) throws -> [UInt8]
    /// A small text file (libguestfs reads release files of up to 1 MiB); nil when absent or not UTF-8.
    func text(_ path: String) throws -> String?
}

/// Reads the filesystem mounted at the appliance's / during inspection (every call runs chrooted in the guest).
struct GuestReader: InspectedTree {
    let guestfs: Guestfs

    func kind(_ path: String) throws -> FileStatus.Kind? {
        try guestfs.status(path, followingLinks: true)?.kind
    }

    func linkKind(_ path: String) throws -> FileStatus.Kind? {
        try guestfs.status(path, followingLinks: false)?.kind
    }

    func readlink(_ path: String) throws -> String {
        try guestfs.readlink(path)
    }

    func bytes(_ path: String, count: Int) throws -> [UInt8] {
        try guestfs.pread(path, count: count)
    }

    func text(_ path: String) throws -> String? {
        guard try kind(path) == .regular else { return nil }
        return String(validating: try bytes(path, count: 1 << 20), as: UTF8.self)
    }
}
