import Foundation
import Operations

#if canImport(Glibc)
import Glibc
#endif

/// The guest's own programs, run inside the appliance against the mounted guest: chrooted into it by the
/// libguestfs daemon, with /dev, /proc and /sys bound in and, when the network is on, the appliance's resolv.conf
/// standing in for the guest's while the command runs.
///
/// The appliance runs the host's kernel, so only programs of the host's architecture (or, on x86_64, of i386) run:
/// every command is refused on a guest of another architecture before anything runs.
public final class ApplianceCommands: GuestCommands {
    let guestfs: Guestfs
    let facts: GuestFacts
    public let network: Bool

    /// The output a command keeps: its last MiB, well below libguestfs's 4 MiB limit on a reply.
    static let outputLimit = 1 << 20

    /// Runs the command given as $1 with its stderr in its stdout and no stdin, then prints its exit status after
    /// the marker $2 on a line of its own: libguestfs hands back the stdout of a command that exits 0, and only the
    /// stderr of one that does not. PATH is what a root login on the guest has, not the appliance's.
    static let wrapper = """
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root; export PATH HOME
        { /bin/sh -c "$1" 2>&1 </dev/null; printf '\\n%s %d\\n' "$2" "$?"; } | tail -c \(outputLimit)
        """

    init(guestfs: Guestfs, facts: GuestFacts, network: Bool) {
        self.guestfs = guestfs
        self.facts = facts
        self.network = network
    }

    public func run(_ command: String, operation: String) throws -> GuestCommandResult {
        try checkArchitecture(operation)
        let marker = "imgcustomize-exit-status-\(UUID().uuidString)"
        let action = "\(operation): run \(command.debugDescription) in the guest"
        let printed = try guestfs.command(["/bin/sh", "-c", Self.wrapper, "sh", command, marker], action: action)
        guard let line = printed.range(of: "\n\(marker) ", options: .backwards),
              let status = Int32(printed[line.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw GuestError(guest: guestfs.guest, action: action,
                             message: "the guest's shell gave no exit status; it printed: "
                                + String(printed.suffix(2000)),
                             hint: "does the guest have a working /bin/sh and tail?")
        }
        return GuestCommandResult(command: command, exitStatus: status, output: String(printed[..<line.lowerBound]))
    }

    /// Refuses a guest whose programs the host's kernel cannot run, or whose architecture inspection could not tell.
    func checkArchitecture(_ operation: String) throws {
        let host = Self.hostArchitecture
        guard let guest = facts.arch else {
            throw GuestError(guest: guestfs.guest, action: operation,
                             message: "inspection could not tell the guest's architecture, so its programs may not "
                                + "run on this \(host) host",
                             hint: "edit files with operations that need no guest program (write, upload, "
                                + "edit-file...), or check the image with `imgcustomize inspect --os`")
        }
        guard Self.canRun(guest: guest, host: host) else {
            throw GuestError(guest: guestfs.guest, action: operation,
                             message: "the guest is \(guest) and this host is \(host): the appliance runs the "
                                + "host's kernel, which cannot run the guest's programs",
                             hint: "run \(operation) on a \(guest) host, or use operations that need no guest "
                                + "program (write, upload, edit-file...)")
        }
    }

    /// Same architecture, or a 32-bit x86 guest on an x86_64 host (as virt-customize allows).
    static func canRun(guest: String, host: String) -> Bool {
        guest == host || (host == "x86_64" && ["i386", "i486", "i586", "i686"].contains(guest))
    }

    /// `uname -m` of the host.
    static let hostArchitecture: String = {
        var names = utsname()
        guard uname(&names) == 0 else { return "unknown" }
        return withUnsafeBytes(of: &names.machine) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }()
}
