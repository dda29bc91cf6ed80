import Foundation
import Testing
import Formats
@testable import Operations
@testable import Appliance
import TestSupport

extension Fixture {
    var imageFormat: ImageFormat { format == .raw ? .raw : .qcow2 }
}

/// `inspect --os` without the appliance: what the native reader concludes from the image file, field by field
/// against what libguestfs's `inspect_os` said of the same image (NAME.inspection, recorded when the fixture was
/// built) and against what the guest must be. Every fixture goes through the native path: ext2/3/4, XFS and LVM,
/// Fedora's btrfs root and /home subvolumes, the Debian UEFI guest's ESP. No appliance is launched.
@Suite(.fixtures(guestFixtures, debianFixtures)) struct NativeInspectionTests {
    @Test(arguments: Fixture.all)
    func sameFactsAsLibguestfs(fixture: Fixture) throws {
        let image = try fixture.path()
        let started = ContinuousClock.now
        let native = try NativeInspection.inspect(image: image, format: fixture.imageFormat)
        print("\(fixture.file): native inspection \(native == nil ? "declined" : "answered") in \(ContinuousClock.now - started)")
        let facts = try #require(native?.facts)
        let libguestfs = try fixture.recordedLibguestfsInspection()
        for (field, mine, theirs) in [
            ("type", facts.type, libguestfs.type), ("distro", facts.distro, libguestfs.distro),
            ("major", "\(facts.majorVersion)", "\(libguestfs.majorVersion)"),
            ("minor", "\(facts.minorVersion)", "\(libguestfs.minorVersion)"),
            ("osinfo", facts.osinfo, libguestfs.osinfo), ("product", facts.productName, libguestfs.productName),
            ("hostname", facts.hostname, libguestfs.hostname), ("arch", facts.arch, libguestfs.arch),
            ("package-format", facts.packageFormat, libguestfs.packageFormat),
            ("package-management", facts.packageManagement, libguestfs.packageManagement),
            ("root", facts.root, libguestfs.root),
            ("mountpoints", facts.mountpoints.sorted { $0.key < $1.key }.description,
             libguestfs.mountpoints.sorted { $0.key < $1.key }.description),
        ] as [(String, String?, String?)] {
            #expect(mine == theirs, "\(fixture.file): \(field)")
        }
        #expect(facts == libguestfs)
        #expect(facts == fixture.expected)
    }
}
