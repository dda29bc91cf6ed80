import Foundation
import Synchronization
import Testing
@testable import Operations
@testable import Appliance
import TestSupport

/// The guest images Fixtures/build-images builds (and caches) from the committed trees.
struct Fixture: Sendable, CustomTestStringConvertible {
    var file: String
    var format: ApplianceDrive.Format
    var expected: GuestFacts
    /// A file that lives on the guest's /boot, mounted or not.
    var bootFile: String

    var testDescription: String { file }

    static let rhel7 = Fixture(
        file: "rhel7.qcow2", format: .qcow2,
        expected: facts(major: 7, minor: 9, product: "Red Hat Enterprise Linux Server 7.9 (Maipo)",
                        mountpoints: ["/": "/dev/rhel/root", "/boot": "/dev/sda1"]),
        bootFile: "/boot/grub2/grub.cfg")
    static let rhel6 = Fixture(
        file: "rhel6.qcow2", format: .qcow2,
        expected: facts(major: 6, minor: 10, product: "Red Hat Enterprise Linux Server release 6.10 (Santiago)",
                        mountpoints: ["/": "/dev/VolGroup/lv_root", "/boot": "/dev/sda1"]),
        bootFile: "/boot/grub/menu.lst")
    static let rhel7Single = Fixture(
        file: "rhel7-single.raw", format: .raw,
        expected: facts(major: 7, minor: 9, product: "Red Hat Enterprise Linux Server 7.9 (Maipo)",
                        mountpoints: ["/": "/dev/sda1"]),
        bootFile: "/boot/grub2/grub.cfg")

    private static func facts(major: Int, minor: Int, product: String, mountpoints: [String: String]) -> GuestFacts {
        GuestFacts(type: "linux", distro: "rhel", majorVersion: major, minorVersion: minor,
                   osinfo: "rhel\(major).\(minor)", arch: "x86_64", hostname: "rhel\(major)-build.example.com",
                   productName: product, packageFormat: "rpm", packageManagement: "yum",
                   mountpoints: mountpoints, root: mountpoints["/"])
    }

    static let all = [rhel7, rhel6, rhel7Single]

    /// Builds the images on first use (minutes), then finds them in the cache (a moment).
    func path() throws -> String { try guestFixtures.path(file) }
}

extension ApplianceTests {
    @Suite struct FixtureTests {
        /// What `inspect --os` reports, from the quick inspection and from libguestfs's, and a read-only session:
        /// every filesystem mounted, nothing writable.
        @Test(arguments: Fixture.all)
        func inspectionAndReadOnlyMounts(fixture: Fixture) throws {
            let image = try fixture.path()
            let session = try ApplianceSession(drives: [ApplianceDrive(path: image, format: fixture.format,
                                                                       readonly: true)])
            defer { try? session.close() }
            // The quick inspection answers for these guests (no fallback), and says what libguestfs says.
            let quick = try #require(try QuickInspection(guestfs: session.guestfs).inspect())
            let libguestfs = try session.inspect(method: .libguestfs)
            #expect(quick == libguestfs)
            #expect(quick == fixture.expected)
            let fs = try session.mountOperatingSystem()
            print("\(fixture.file): \(fs.facts)")
            #expect(fs.facts == fixture.expected)
            #expect(try fs.isFile(fixture.bootFile))
            let version = "release \(fixture.expected.majorVersion).\(fixture.expected.minorVersion) "
            #expect(try fs.readText("/etc/redhat-release").contains(version))
            let error = #expect(throws: GuestError.self) { try fs.writeText("/etc/motd", "hello\n") }
            #expect(error?.message.contains("Read-only file system") == true)
            #expect(throws: GuestError.self) { try fs.blockDevices.trimFreeSpace() }
        }

        /// Trimming reaches every mounted filesystem, the swap volume (its header, hence label and UUID, kept) and the
        /// volume group's free space, and the overlay's data shrinks accordingly.
        @Test func trimmingAnLVMGuest() throws {
            let directory = try TestDirectory()
            let overlay = try makeOverlay(over: Fixture.rhel7.path(), format: .qcow2, in: directory)
            let before = try allocatedBytes(overlay)

            let progress = Mutex<[ApplianceProgress]>([])
            let session = try ApplianceSession(
                drives: [ApplianceDrive(path: overlay, format: .qcow2, discard: .besteffort, scratch: true)],
                options: ApplianceOptions(progress: { event in progress.withLock { $0.append(event) } }))
            let fs = try session.mountOperatingSystem()
            let swapBefore = try #require(try fs.blockDevices.swapIdentity(of: "/dev/rhel/swap"))
            // Data written and deleted during the run must not survive in the image either.
            try fs.write("/var/tmp/scratch.bin", [UInt8](ScratchGuest.randomBytes(32 << 20)), mode: 0o600)
            try fs.remove("/var/tmp/scratch.bin", recursive: false)
            let summary = try fs.blockDevices.trimFreeSpace()
            let swapAfter = try #require(try fs.blockDevices.swapIdentity(of: "/dev/rhel/swap"))
            let blkidUUID = try fs.guestfs.filesystemUUID("/dev/rhel/swap")
            try session.close()

            #expect(summary == "trimmed /, /boot, swap rhel/swap, 0 B free in VG rhel")
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
