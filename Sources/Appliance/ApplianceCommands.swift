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
        try run(command, shownAs: command, operation: operation)
    }

    public func run(_ command: String, shownAs display: String, operation: String) throws -> GuestCommandResult {
        try checkArchitecture(operation)
        let marker = Self.marker()
        let action = "\(operation): run \(display.debugDescription) in the guest"
        let printed = try guestfs.command(["/bin/sh", "-c", Self.wrapper, "sh", command, marker], action: action)
        return try result(of: display, printed: printed, marker: marker, action: action, shell: "the guest's shell",
                          hint: "does the guest have a working /bin/sh and tail?")
    }

    /// Uploads the script into the appliance's /tmp, runs it from the guest's root (the daemon's `debug sh` runs in
    /// the appliance's /, with the guest mounted at $root), then removes the copy. The appliance's programs are the
    /// host's, so the architecture of the guest does not matter. The exit status comes after a marker, as for
    /// `run`: `debug sh` passes on the output only of a command that exits 0.
    public func runInAppliance(hostScript: String, operation: String) throws -> GuestCommandResult {
        let copy = "/tmp/imgcustomize-script-\(UUID().uuidString)"
        let marker = Self.marker()
        let action = "\(operation): run \(hostScript) in the appliance"
        try guestfs.uploadToAppliance(hostScript, to: copy, mode: 0o700)
        let printed = Result {
            try guestfs.applianceShell("""
                cd "$root" || exit; { \(copy) 2>&1 </dev/null; printf '\\n%s %d\\n' \(marker) "$?"; } \
                | tail -c \(Self.outputLimit)
                """, action: action)
        }
        try guestfs.applianceShell("rm -f \(copy)", action: "\(operation): remove the copy \(copy) from the appliance")
        return try result(of: hostScript, printed: printed.get(), marker: marker, action: action,
                          shell: "the appliance's shell", hint: "the appliance has the host's programs: check that "
                            + "the host's /bin/sh and tail work")
    }

    private static func marker() -> String { "imgcustomize-exit-status-\(UUID().uuidString)" }

    /// The command's result from what the wrapper printed: its output, then its exit status after `marker`.
    private func result(of command: String, printed: String, marker: String, action: String, shell: String,
                        hint: String) throws -> GuestCommandResult {
        guard let line = printed.range(of: "\n\(marker) ", options: .backwards),
              let status = Int32(printed[line.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw GuestError(guest: guestfs.guest, action: action,
                             message: "\(shell) gave no exit status; it printed: " + String(printed.suffix(2000)),
                             hint: hint)
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
