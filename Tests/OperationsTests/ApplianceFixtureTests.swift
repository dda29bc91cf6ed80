import Foundation
import Synchronization
import Testing
import Formats
@testable import Operations
@testable import Appliance
import TestSupport

/// The guest images Fixtures/build-images builds (and caches) from the committed trees, and the Debian guests
/// Fixtures/build-debian installs.
struct Fixture: Sendable, CustomTestStringConvertible {
    var file: String
    var format: ApplianceDrive.Format
    /// What the guest must be found to be, and a release file with what it says of the version, worked out when a
    /// test asks: a test's arguments are computed before any test runs, and the Debian guests' point release is
    /// known only once they are built (computing it then held the whole run until they were).
    private let known: @Sendable () -> (expected: GuestFacts, release: (path: String, text: String))
    var expected: GuestFacts { known().expected }
    var release: (path: String, text: String) { known().release }
    /// A file that lives on the guest's /boot, mounted or not.
    var bootFile: String
    /// A file on a /home mounted from a filesystem (or subvolume) of its own, for a guest that has one.
    var homeFile: String?
    var images: FixtureImages

    init(file: String, format: ApplianceDrive.Format, expected: @autoclosure @escaping @Sendable () -> GuestFacts,
         bootFile: String, release: @autoclosure @escaping @Sendable () -> (path: String, text: String),
         homeFile: String? = nil, images: FixtureImages = guestFixtures) {
        self.file = file
        self.format = format
        known = { (expected(), release()) }
        self.bootFile = bootFile
        self.homeFile = homeFile
        self.images = images
    }

    var testDescription: String { file }

    /// What libguestfs's `inspect_os` said of the image when the fixture script built it: NAME.inspection, lines of
    /// `key: value` (`roots`, `type`, `distro`, `major`, `minor`, `osinfo`, `product`, `hostname`, `arch`,
    /// `package-format`, `package-management`, and `mountpoint: MOUNTPOINT: DEVICE` for each mountpoint).
    func recordedLibguestfsInspection() throws -> GuestFacts {
        let name = String(file[..<(file.lastIndex(of: ".") ?? file.endIndex)]) + ".inspection"
        let text = try String(contentsOfFile: try images.path(name), encoding: .utf8)
        var facts = GuestFacts()
        for line in text.split(separator: "\n") {
            guard let separator = line.range(of: ": ") else { continue }
            let key = String(line[..<separator.lowerBound]), value = String(line[separator.upperBound...])
            switch key {
            case "roots": facts.root = value
            case "type": facts.type = value
            case "distro": facts.distro = value
            case "major": facts.majorVersion = Int(value) ?? -1
            case "minor": facts.minorVersion = Int(value) ?? -1
            case "osinfo": facts.osinfo = value
            case "product": facts.productName = value
            case "hostname": facts.hostname = value
            case "arch": facts.arch = value
            case "package-format": facts.packageFormat = value
            case "package-management": facts.packageManagement = value
            case "mountpoint":
                guard let inner = value.range(of: ": ") else { throw TestFailure("\(name): bad line \(line)") }
                facts.mountpoints[String(value[..<inner.lowerBound])] = String(value[inner.upperBound...])
            default: throw TestFailure("\(name): unknown key \(key)")
            }
        }
        return facts
    }

    static let rhel7 = Fixture(
        file: "rhel7.qcow2", format: .qcow2,
        expected: rhel(major: 7, minor: 9, product: "Red Hat Enterprise Linux Server 7.9 (Maipo)",
                       mountpoints: ["/": "/dev/rhel/root", "/boot": "/dev/sda1"]),
        bootFile: "/boot/grub2/grub.cfg", release: ("/etc/redhat-release", "release 7.9 "))
    static let rhel6 = Fixture(
        file: "rhel6.qcow2", format: .qcow2,
        expected: rhel(major: 6, minor: 10, product: "Red Hat Enterprise Linux Server release 6.10 (Santiago)",
                       mountpoints: ["/": "/dev/VolGroup/lv_root", "/boot": "/dev/sda1"]),
        bootFile: "/boot/grub/menu.lst", release: ("/etc/redhat-release", "release 6.10 "))
    static let rhel7Single = Fixture(
        file: "rhel7-single.raw", format: .raw,
        expected: rhel(major: 7, minor: 9, product: "Red Hat Enterprise Linux Server 7.9 (Maipo)",
                       mountpoints: ["/": "/dev/sda1"]),
        bootFile: "/boot/grub2/grub.cfg", release: ("/etc/redhat-release", "release 7.9 "))
    static let rhel9 = el9(file: "rhel9.qcow2", distro: "rhel", osinfo: "rhel9.4",
                           product: "Red Hat Enterprise Linux 9.4 (Plow)", releaseFile: "/etc/redhat-release")
    static let rocky9 = el9(file: "rocky9.qcow2", distro: "rocky", osinfo: "rocky9",
                            product: "Rocky Linux 9.4 (Blue Onyx)", releaseFile: "/etc/rocky-release")
    static let ubuntu2404 = Fixture(
        file: "ubuntu2404.qcow2", format: .qcow2,
        expected: GuestFacts(type: "linux", distro: "ubuntu", majorVersion: 24, minorVersion: 4,
                             osinfo: "ubuntu24.04", arch: "x86_64", hostname: "ubuntu2404-build",
                             productName: "Ubuntu 24.04.1 LTS", packageFormat: "deb", packageManagement: "apt",
                             mountpoints: ["/": "/dev/sda1"], root: "/dev/sda1"),
        bootFile: "/boot/grub/grub.cfg", release: ("/etc/os-release", "VERSION_ID=\"24.04\""))
    /// Fedora Cloud's layout: / and /home are the subvolumes root and home of one btrfs filesystem.
    static let fedora40 = Fixture(
        file: "fedora40.qcow2", format: .qcow2,
        expected: GuestFacts(type: "linux", distro: "fedora", majorVersion: 40, minorVersion: 0, osinfo: "fedora40",
                             arch: "x86_64", hostname: "fedora40-build.example.com",
                             productName: "Fedora Linux 40 (Cloud Edition)", packageFormat: "rpm",
                             packageManagement: "dnf",
                             mountpoints: ["/": "btrfsvol:/dev/sda2/root", "/boot": "/dev/sda1",
                                           "/home": "btrfsvol:/dev/sda2/home"],
                             root: "btrfsvol:/dev/sda2/root"),
        bootFile: "/boot/grub2/grubenv", release: ("/etc/os-release", "VERSION_ID=40\n"),
        homeFile: "/home/fedora/.bashrc")
    /// Debian's real guests: version and product come from /etc/debian_version, whose point release the archive
    /// decided when they were built.
    static let debian12BIOS = debian(file: "debian12-bios.qcow2", hostname: "deb12-bios",
                                     mountpoints: ["/": "/dev/deb12-bios-vg/root", "/boot": "/dev/sda1"],
                                     bootFile: "/boot/grub/grub.cfg")
    static let debian12UEFI = debian(file: "debian12-uefi.qcow2", hostname: "deb12-uefi",
                                     mountpoints: ["/": "/dev/sda2", "/boot/efi": "/dev/sda1"],
                                     bootFile: "/boot/efi/EFI/BOOT/BOOTX64.EFI")

    private static func rhel(major: Int, minor: Int, product: String, mountpoints: [String: String]) -> GuestFacts {
        GuestFacts(type: "linux", distro: "rhel", majorVersion: major, minorVersion: minor,
                   osinfo: "rhel\(major).\(minor)", arch: "x86_64", hostname: "rhel\(major)-build.example.com",
                   productName: product, packageFormat: "rpm", packageManagement: "yum",
                   mountpoints: mountpoints, root: mountpoints["/"])
    }

    /// The RHEL 9.4 tree's images, each with its distribution's release files.
    private static func el9(file: String, distro: String, osinfo: String, product: String, releaseFile: String)
        -> Fixture {
        Fixture(file: file, format: .qcow2,
                expected: GuestFacts(type: "linux", distro: distro, majorVersion: 9, minorVersion: 4, osinfo: osinfo,
                                     arch: "x86_64", hostname: "\(distro)9-build.example.com", productName: product,
                                     packageFormat: "rpm", packageManagement: "dnf",
                                     mountpoints: ["/": "/dev/sda2", "/boot": "/dev/sda1"], root: "/dev/sda2"),
                bootFile: "/boot/grub2/grubenv", release: (releaseFile, "release 9.4 "))
    }

    private static func debian(file: String, hostname: String, mountpoints: [String: String], bootFile: String)
        -> Fixture {
        Fixture(file: file, format: .qcow2,
                expected: GuestFacts(type: "linux", distro: "debian", majorVersion: 12,
                                     minorVersion: Int(debianPointRelease.dropFirst(3)) ?? -1, osinfo: "debian12",
                                     arch: "x86_64", hostname: hostname, productName: debianPointRelease,
                                     packageFormat: "deb", packageManagement: "apt",
                                     mountpoints: mountpoints, root: mountpoints["/"]),
                bootFile: bootFile, release: ("/etc/debian_version", debianPointRelease), images: debianFixtures)
    }

    /// "12.15": what the Debian guests' build recorded as their point release (NAME.layout's inspect lines).
    static let debianPointRelease: String = {
        let layout = (try? String(contentsOfFile: debianFixtures.directory + "/debian12-uefi.layout",
                                  encoding: .utf8)) ?? ""
        return layout.split(separator: "\n").first { $0.hasPrefix("inspect product: ") }
            .map { String($0.dropFirst("inspect product: ".count)) } ?? "unknown"
    }()

    static let all = [rhel7, rhel6, rhel7Single, rhel9, rocky9, ubuntu2404, fedora40, debian12BIOS, debian12UEFI]

    /// Builds the images on first use (minutes), then finds them in the cache (a moment).
    func path() throws -> String { try images.path(file) }
}

extension ApplianceTestsOnFixtures {
    @Suite struct FixtureTests {
        /// Trimming reaches every mounted filesystem, the swap volume (its header, hence label and UUID, kept) and the
        /// volume group's free space, and the overlay's data shrinks accordingly. The session has the native reader's
        /// facts and device layout, as `apply` gives it: trimming goes by that layout until a program runs in the
        /// appliance, which may change the devices (here it removes the swap volume), and then lists them anew.
        @Test func trimmingAnLVMGuest() throws {
            let directory = try TestDirectory()
            let overlay = try makeOverlay(over: Fixture.rhel7.path(), format: .qcow2, in: directory)
            let before = try allocatedBytes(overlay)
            let native = try #require(try NativeInspection.inspect(image: Fixture.rhel7.path(), format: .qcow2))
            let layout = try #require(native.layout)
            #expect(layout.swapAreas == ["/dev/rhel/swap"])

            let progress = Mutex<[ApplianceProgress]>([])
            var options = ApplianceOptions(progress: { event in progress.withLock { $0.append(event) } })
            options.knownFacts = native.facts
            options.knownLayout = layout
            let session = try ApplianceSession(
                drives: [ApplianceDrive(path: overlay, format: .qcow2, discard: .besteffort, scratch: true)],
                options: options)
            let fs = try session.mountOperatingSystem()
            let swapBefore = try #require(try fs.blockDevices.swapHeader(of: "/dev/rhel/swap"))
            // Data written and deleted during the run must not survive in the image either.
            try fs.write("/var/tmp/scratch.bin", [UInt8](ScratchGuest.randomBytes(32 << 20)), mode: 0o600)
            try fs.remove("/var/tmp/scratch.bin", recursive: false)
            let summary = try fs.blockDevices.trimFreeSpace()
            let swapAfter = try #require(try fs.blockDevices.swapHeader(of: "/dev/rhel/swap"))
            let blkidUUID = try fs.guestfs.filesystemUUID("/dev/rhel/swap")
            #expect(session.guestfs.blockLayout == layout)

            let script = directory.path("remove-swap")
            try "#!/bin/sh\nlvm lvremove -f rhel/swap\n".write(toFile: script, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
            let removed = try fs.guestCommands.runInAppliance(hostScript: script, operation: "test")
            #expect(removed.exitStatus == 0, "\(removed.output)")
            #expect(session.guestfs.blockLayout == nil)
            let freed = try fs.blockDevices.trimFreeSpace() ?? ""
            try session.close()

            #expect(summary == "trimmed /, /boot, swap rhel/swap, 0 B free in VG rhel")
            // The removed volume's extents are the group's free space now; no swap area is left.
            #expect(freed.hasPrefix("trimmed /, /boot, ") && freed.hasSuffix(" free in VG rhel")
                    && !freed.contains("swap") && !freed.contains(" 0 B free"), "\(freed)")
            #expect(swapAfter == swapBefore)
            #expect(blkidUUID == swapAfter.uuid)
            #expect(swapAfter.uuid == "a2baea2f-1680-4e9a-bfde-57eff94b5af7")
            let after = try allocatedBytes(overlay)
            print("rhel7.qcow2 data: \(before) bytes before trimming, \(after) after; progress events: "
                  + progress.withLock { "\($0.count), last \($0.last.map { "\($0.done)/\($0.total)" } ?? "none")" })
            #expect(after < before)
        }
    }
}

/// What `inspect --os` reports, from the quick inspection and from libguestfs's, and a read-only session: every
/// filesystem mounted, nothing writable. Every fixture is a drive of one launch, as a batch has them: selecting one
/// scopes inspection and mounts to it, and its devices are named by its drive (/dev/sdb1 for the second), where a
/// launch of its own names them /dev/sda1; the facts are compared under that name. A suite of its own, beside the
/// `ApplianceTestsOnFixtures` chain, since it waits for the Debian guests (the longest fixture build) too.
///
/// libguestfs's answer is the one its `inspect_os` gave for this very image when the fixture script built it
/// (NAME.inspection beside the image, which the build checked against what the guest must be): asking again here
/// would cost 20-60 s of software emulation per image for the same answer. The live `--inspection libguestfs` path
/// is tested on the LUKS guest (LUKSTests).
@Suite(.fixtures(guestFixtures, debianFixtures), .serialized, .tags(.appliance)) struct FixtureInspectionTests {
    @Test func inspectionAndReadOnlyMountsOfEveryFixture() throws {
        let fixtures = Fixture.all
        let session = try ApplianceSession(drives: try fixtures.map {
            ApplianceDrive(path: try $0.path(), format: $0.format, readonly: true)
        })
        defer { try? session.close() }
        for (index, fixture) in fixtures.enumerated() {
            let disk = ApplianceDrive.deviceName(index: index)
            try session.select(drive: index, name: fixture.file, knownFacts: nil)
            if index == 0 {
                // Selecting writes LVM's filter itself (`LVMFilter`): the same file, naming the same disk (the
                // kernel's name for it), as the daemon's lvm_set_filter.
                let conf = "cat \"${LVM_SYSTEM_DIR:-/etc/lvm}/lvm.conf\""
                let written = try session.guestfs.applianceShell(conf, action: "read lvm.conf")
                #expect(written.contains("[0-9]|\",\n        \"r|.*|\"\n    ]\n}"), "\(written)")
                try session.guestfs.restrictLVMToGuestDisks()
                #expect(try session.guestfs.applianceShell(conf, action: "read lvm.conf") == written)
            }
            // The quick inspection answers for these guests (no fallback), and says what libguestfs says.
            let quick = try #require(try QuickInspection(guestfs: session.guestfs).inspect(), "\(fixture.file)")
            #expect(quick.naming(disk, as: "/dev/sda") == (try fixture.recordedLibguestfsInspection()), "\(fixture.file)")
            #expect(quick.naming(disk, as: "/dev/sda") == fixture.expected, "\(fixture.file)")
            let fs = try session.mountOperatingSystem()
            print("\(fixture.file): \(fs.facts)")
            #expect(fs.facts.naming(disk, as: "/dev/sda") == fixture.expected, "\(fixture.file)")
            // The native reader, where it handles the guest, finds the hardware the appliance finds too, and the swap
            // areas and LVM identities the appliance lists.
            if let native = try NativeInspection.inspect(image: try fixture.path(), format: fixture.imageFormat, disk: disk) {
                #expect(native.hardware == (try GuestHardware(reading: fs, facts: fs.facts)), "\(fixture.file)")
                #expect(native.layout == (try listedLayout(fs)), "\(fixture.file)")
            }
            #expect(try fs.isFile(fixture.bootFile), "\(fixture.file)")
            #expect(try fs.readText(fixture.release.path).contains(fixture.release.text), "\(fixture.file)")
            if let homeFile = fixture.homeFile { #expect(try fs.isFile(homeFile), "\(fixture.file)") }
            let error = #expect(throws: GuestError.self) { try fs.writeText("/etc/motd", "hello\n") }
            #expect(error?.message.contains("Read-only file system") == true, "\(fixture.file)")
            #expect(throws: GuestError.self) { try fs.blockDevices.trimFreeSpace() }
        }
    }
}

/// The swap areas and LVM identities of the session's selected drive as the appliance lists them: every device's
/// header, `pvs`, `vgs` with vg_free, and each object's UUID as LVM prints it.
func listedLayout(_ fs: ApplianceFilesystem) throws -> BlockLayout {
    let guestfs = fs.guestfs
    let devices = try guestfs.disks() + guestfs.partitions() + guestfs.logicalVolumes().sorted()
    let swapAreas = try devices.filter { try fs.blockDevices.swapHeader(of: $0) != nil }
    let groups = try guestfs.volumeGroups().map {
        BlockLayout.Group(name: $0.name, uuid: try guestfs.volumeGroupUUID($0.name), freeBytes: $0.freeBytes)
    }
    let volumes = try guestfs.physicalVolumes().map {
        BlockLayout.PhysicalVolume(device: $0, uuid: try guestfs.physicalVolumeUUID($0))
    }
    return BlockLayout(swapAreas: swapAreas, groups: groups.sorted { $0.name < $1.name },
                       physicalVolumes: volumes.sorted { $0.device < $1.device })
}

extension GuestFacts {
    /// The facts with the devices of `disk` (its partitions, /dev/sdb1..., and btrfs subvolumes on them,
    /// btrfsvol:/dev/sdb2/root) named as on `name`.
    func naming(_ disk: String, as name: String) -> GuestFacts {
        func renamed(_ device: String) -> String {
            for prefix in ["", "btrfsvol:"] where device.hasPrefix(prefix + disk) {
                let tail = device.dropFirst(prefix.count + disk.count)
                let rest = tail.drop(while: \.isNumber)
                if rest.isEmpty || (!prefix.isEmpty && rest.hasPrefix("/")) { return prefix + name + tail }
            }
            return device
        }
        var facts = self
        facts.root = root.map(renamed)
        facts.mountpoints = mountpoints.mapValues(renamed)
        return facts
    }
}
