import Host
/// `random-seed`: fresh bytes from the host's /dev/urandom in the guest's random seed, which its init feeds to the
/// kernel's pool at boot and saves again at shutdown, so that clones of an image do not start from the seed of the
/// machine it was made on (and from each other's). virt-customize and virt-sysprep write it in every run.
///
/// Every seed file the distributions use that is a regular file is rewritten, keeping its mode and owner, with as
/// many bytes as it held, at least 512 and at most 8192 (some installers leave a few bytes only). A guest with none
/// gets /var/lib/systemd/random-seed where /var/lib/systemd exists (systemd-random-seed's file), else
/// /var/lib/random-seed where /var/lib exists, mode 0600, owner root. Only on Linux. It cannot be idempotent: every
/// run writes new bytes and says it changed the guest.
public struct RandomSeed: RegisteredOperation, Equatable {
    public static let name = "random-seed"
    public static let sourceFile = #filePath
    public static let summary = "Write fresh random bytes from the host into the guest's random seed files (new bytes every run, so always a change)"
    public static let argument = OperationArgument.none
    public static let sysprep = SysprepDefault.virtSysprepImplicit

    /// Where the distributions keep the seed: Fedora and RHEL 6, systemd, Debian's sysvinit, SUSE, CirrOS.
    static let seedFiles = [
        "/var/lib/random-seed", "/var/lib/systemd/random-seed", "/var/lib/urandom/random-seed",
        "/var/lib/misc/random-seed", "/etc/random-seed",
    ]
    static let sizes = 512...8192

    public init() {}

    public var target: String { "" }

    public static func parse(_ argument: String?) throws -> RandomSeed {
        try noArgument(argument)
        return RandomSeed()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard context.guest.isLinuxOrUnknown else {
            return .unchanged("not a Linux guest: \(context.guest.type ?? "unknown") has no random seed file")
        }
        var seeds: [(path: String, size: Int)] = []
        for path in Self.seedFiles {
            // A symlink is left alone: what it leads to is either in the list itself or not a seed.
            guard let status = try guest.lstat(path), status.kind == .regular else { continue }
            seeds.append((path, Int(min(max(status.size, Int64(Self.sizes.lowerBound)),
                                        Int64(Self.sizes.upperBound)))))
        }
        if seeds.isEmpty {
            if try guest.isDirectory("/var/lib/systemd") {
                seeds = [("/var/lib/systemd/random-seed", Self.sizes.lowerBound)]
            } else if try guest.isDirectory("/var/lib") {
                seeds = [("/var/lib/random-seed", Self.sizes.lowerBound)]
            } else {
                return .unchanged("no random seed file and no /var/lib to create one in")
            }
        }
        var written: [String] = []
        for seed in seeds {
            try guest.write(seed.path, try hostRandomBytes(seed.size, guest: guest), mode: 0o600)
            written.append("\(seed.path) (\(seed.size) bytes)")
        }
        return .changed("wrote fresh random bytes to " + written.joined(separator: ", "))
    }

    private func hostRandomBytes(_ count: Int, guest: GuestFilesystem) throws -> [UInt8] {
        do {
            return try HostFiles.randomBytes(count)
        } catch let error as SystemCallError {
            throw GuestError(guest: guest.guestDescription, action: "\(Self.name): read the host's random bytes",
                             path: "/dev/urandom", message: error.message,
                             hint: "check that this host's /dev/urandom is the kernel's random device and readable")
        }
    }
}
