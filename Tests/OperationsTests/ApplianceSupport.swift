import Foundation
import Logging
import Synchronization
import Testing
@testable import Operations
@testable import Appliance
import TestSupport

extension Tag {
    @Tag static var appliance: Self
}

/// The appliance tests of this target run under two serialized parents, each one test at a time: each launch is a
/// VM and the machine has two cores. Two, not one: when the other targets' tests are done, a single chain would leave
/// one core idle for the rest of the run (it did, for the last quarter of an hour of a whole run). This one holds the
/// backend's own tests (files, sessions, launch limits).
@Suite(.serialized, .tags(.appliance)) struct ApplianceTests {}

/// The second chain: tests on the fixture images (inspection against libguestfs, sysprep, guest commands, the
/// customize sequence).
@Suite(.fixtures(guestFixtures), .serialized, .tags(.appliance)) struct ApplianceTestsOnFixtures {}

/// Records log lines, so that tests can check what a user would read.
final class LogRecorder: Sendable {
    private let lines = Mutex<[(Logger.Level, String)]>([])

    var messages: [(Logger.Level, String)] { lines.withLock { $0 } }

    func logger(_ label: String = "appliance-test") -> Logger {
        var logger = Logger(label: label) { _ in RecordingHandler(recorder: self) }
        logger.logLevel = .debug
        return logger
    }

    fileprivate func record(_ level: Logger.Level, _ message: String) {
        lines.withLock { $0.append((level, message)) }
    }
}

private struct RecordingHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        recorder.record(event.level, event.message.description)
    }
}

/// A qcow2 overlay over `base`, so that a test writes into its own file and the base stays untouched.
func makeOverlay(over base: String, format: ApplianceDrive.Format, in directory: TestDirectory,
                 name: String = "overlay.qcow2") throws -> String {
    let overlay = directory.path(name)
    try runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", format.rawValue, overlay])
    return overlay
}

/// Bytes of guest data the image chain holds (what `qemu-img map` reports as data): what a rewrite has to copy.
func allocatedBytes(_ image: String) throws -> Int64 {
    struct Extent: Decodable { var length: Int64; var data: Bool }
    let json = try runTool("qemu-img", ["map", "--output=json", image])
    return try JSONDecoder().decode([Extent].self, from: Data(json.utf8)).filter(\.data).reduce(0) { $0 + $1.length }
}

/// A small RHEL 7-like guest on a whole-disk ext4 filesystem, built on the host without mounting anything
/// (mkfs.ext4 -d copies a directory tree into the new filesystem). Enough for inspection and every file
/// operation; the fixtures helper's images add LVM, xfs and swap.
enum ScratchGuest {
    static let hostname = "scratch.example.com"
    static let shadow = """
        root:$6$saltsalt$0123456789abcdef:19000:0:99999:7:::
        bin:*:19000:0:99999:7:::
        sshd:!!:19000::::::

        """
    static let ifcfg = """
        TYPE=Ethernet
        DEVICE=eth0
        HWADDR=52:54:00:12:34:56
        ONBOOT=yes
        BOOTPROTO=dhcp

        """
    /// More than a libguestfs message can carry, so reads and writes of it go through file transfers.
    static let bigFileSize = 3 << 20
    /// Data the trim test deletes and expects to disappear from the image.
    static let junkSize = 48 << 20

    static func build(in directory: TestDirectory) throws -> String {
        let tree = directory.url.appendingPathComponent("tree", isDirectory: true)
        func file(_ path: String, _ text: String, mode: Int = 0o644) throws {
            let url = tree.appendingPathComponent(String(path.dropFirst()))
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
        }
        try file("/etc/redhat-release", "Red Hat Enterprise Linux Server release 7.9 (Maipo)\n")
        try file("/etc/os-release", """
            NAME="Red Hat Enterprise Linux Server"
            VERSION="7.9 (Maipo)"
            ID="rhel"
            ID_LIKE="fedora"
            VERSION_ID="7.9"
            PRETTY_NAME="Red Hat Enterprise Linux Server 7.9 (Maipo)"

            """)
        try file("/etc/fstab", "LABEL=scratchroot / ext4 defaults 0 0\n")
        try file("/etc/hostname", hostname + "\n")
        try file("/etc/shadow", shadow, mode: 0o000)
        try file("/etc/broken/shadow", "root:this line has too few fields\n", mode: 0o000)
        try file("/etc/sysconfig/network-scripts/ifcfg-eth0", ifcfg)
        try file("/usr/bin/true", "#!/bin/sh\n", mode: 0o755)
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("var/lib/rpm"),
                                                withIntermediateDirectories: true)
        // libguestfs recognises a Linux root by /etc, /bin (or its usr/bin link) and /etc/fstab.
        try FileManager.default.createSymbolicLink(atPath: tree.appendingPathComponent("bin").path,
                                                   withDestinationPath: "usr/bin")
        try FileManager.default.createSymbolicLink(atPath: tree.appendingPathComponent("etc/system-release").path,
                                                   withDestinationPath: "redhat-release")
        try randomBytes(bigFileSize).write(to: tree.appendingPathComponent("var/lib/big.bin"))
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("var/tmp"),
                                                withIntermediateDirectories: true)
        try randomBytes(junkSize).write(to: tree.appendingPathComponent("var/tmp/junk.bin"))

        let image = directory.path("scratch.raw")
        try runTool("mkfs.ext4", ["-q", "-F", "-L", "scratchroot", "-d", tree.path, image, "256M"])
        return image
    }

    /// Incompressible bytes, so that nothing but a discard can make them disappear from an image.
    static func randomBytes(_ count: Int) throws -> Data {
        let source = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        defer { try? source.close() }
        return source.readData(ofLength: count)
    }
}

/// One appliance for a whole suite, launched on first use and shared by its tests (which run one at a time).
final class SharedGuest: Sendable {
    final class Guest {
        let directory: TestDirectory
        let image: String
        let session: ApplianceSession
        let filesystem: ApplianceFilesystem
        let logs: LogRecorder

        init(directory: TestDirectory, image: String, session: ApplianceSession,
             filesystem: ApplianceFilesystem, logs: LogRecorder) {
            self.directory = directory
            self.image = image
            self.session = session
            self.filesystem = filesystem
            self.logs = logs
        }
    }

    private let state = Mutex<Result<Guest, any Error>?>(nil)
    private let open: @Sendable () throws -> Guest

    init(open: @escaping @Sendable () throws -> Guest) {
        self.open = open
    }

    func use<T: Sendable>(_ body: (Guest) throws -> T) throws -> T {
        try state.withLock { state in
            let guest: Result<Guest, any Error>
            if let opened = state {
                guest = opened
            } else {
                guest = Result { try open() }
                state = guest
            }
            return try body(guest.get())
        }
    }
}
