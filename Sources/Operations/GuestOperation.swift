import Host
import Logging

/// One thing that can be done to a guest: a small value with a kebab-case name, a one-line summary and its
/// parameters. Applying it twice changes nothing the second time, and says so.
public protocol GuestOperation: Sendable {
    /// The kebab-case name users type: "set-line", "lock-root".
    static var name: String { get }
    static var summary: String { get }
    /// When a run applies it; most operations change files (`.files`, the default).
    static var phase: OperationPhase { get }
    /// What this instance works on, for reports: a path, a user, a glob; "" when the operation has no target.
    var target: String { get }
    /// Why a dry run must not apply it, for an operation whose effect reaches beyond the image (registering with a
    /// subscription service): a dry run's copy is thrown away, those effects would not be. nil for most.
    static var effectBeyondTheImage: String? { get }
    func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome
}

extension GuestOperation {
    public var name: String { Self.name }
    public static var phase: OperationPhase { .files }
    public var phase: OperationPhase { Self.phase }
    public static var effectBeyondTheImage: String? { nil }
    public var effectBeyondTheImage: String? { Self.effectBeyondTheImage }
}

/// When in a run an operation is applied, whatever order a profile or the command line gives: every change to files
/// first, then the SELinux labels of what they touched, then the block devices' free space (trimming discards what
/// those phases freed), then the identities of the block devices (filesystem and LVM UUIDs). An identity change
/// frees no block, and needs the filesystems unmounted: last, they need not be mounted again unless a file is read
/// or written after it (an identity step rewriting the files that name the old UUIDs, whose freed blocks the
/// appliance trims again before it closes). Within a phase, operations keep their order.
public enum OperationPhase: Int, Sendable, Comparable, CaseIterable {
    case files, labels, devices, identities

    /// Whether the phase works on block devices, which an image in the appliance has and a directory tree does not.
    public var needsBlockDevices: Bool { self >= .devices }

    public static func < (lhs: OperationPhase, rhs: OperationPhase) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Whether a step changed the guest. An operation that edits files itself knows; one that ran the guest's own
/// programs (`run-command`, `install`) does not, and says `unknown` rather than guess.
public enum Change: Sendable, Equatable {
    case no, yes, unknown
}

/// What an operation did.
public struct OperationOutcome: Sendable, Equatable {
    public var changed: Change
    /// Short, human: "set NOZEROCONF=yes", "already locked".
    public var summary: String
    /// What the user should know although the step did not fail ("cloud-init is NOT installed ..."): returned in
    /// the step's report and the run's warnings, never logged by the operation.
    public var warning: String?
    /// The guest command the step ran, for steps that run one: its exit status and output.
    public var command: GuestCommandResult?
    /// Diffs the operation tells better than a byte diff of the files it wrote (a registry hive's as `.reg` text):
    /// they replace the recorded diff of the same paths.
    public var diffs: [FileDiff]?

    public init(changed: Change, summary: String, warning: String? = nil, command: GuestCommandResult? = nil,
                diffs: [FileDiff]? = nil) {
        self.changed = changed
        self.summary = summary
        self.warning = warning
        self.command = command
        self.diffs = diffs
    }

    public static func unchanged(_ summary: String) -> OperationOutcome { .init(changed: .no, summary: summary) }
    public static func changed(_ summary: String) -> OperationOutcome { .init(changed: .yes, summary: summary) }
    /// Nothing changed, and the user should hear of it: `summary` is also the warning.
    public static func warning(_ summary: String) -> OperationOutcome {
        .init(changed: .no, summary: summary, warning: summary)
    }
    /// A guest command ran and exited 0: what it changed is unknown.
    public static func ran(_ result: GuestCommandResult, _ summary: String) -> OperationOutcome {
        .init(changed: .unknown, summary: summary, command: result)
    }
}

/// What an operation may know of the guest it runs on, beyond its files.
public struct OperationContext: Sendable {
    public var guest: GuestFacts
    public var logger: Logger
    /// Paths the earlier steps of this run wrote, created or re-owned (set by `OperationRunner`), so that SELinux
    /// relabelling can label exactly those.
    public var touchedPaths: [String]
    /// An earlier step of this run ran the guest's own programs (set by `OperationRunner`): what they wrote is not
    /// in `touchedPaths`.
    public var guestCommandsRan: Bool
    /// How `password` and `root-password` hash (`--password-crypto`).
    public var passwordCrypto: PasswordCrypto
    /// The run's: a host program an operation runs (perl, tar) is stopped when the run is cancelled.
    public var cancellation: Cancellation?

    public init(guest: GuestFacts = GuestFacts(), logger: Logger = Logger(label: "imgcustomize"),
                touchedPaths: [String] = [], guestCommandsRan: Bool = false, passwordCrypto: PasswordCrypto = .sha512,
                cancellation: Cancellation? = nil) {
        self.guest = guest
        self.cancellation = cancellation
        self.passwordCrypto = passwordCrypto
        self.logger = logger
        self.touchedPaths = touchedPaths
        self.guestCommandsRan = guestCommandsRan
    }
}

/// The inspected facts of a guest operating system, as libguestfs inspection reports them.
public struct GuestFacts: Sendable, Equatable, Codable {
    public var type: String?            // "linux"
    public var distro: String?          // "rhel"
    public var majorVersion: Int
    public var minorVersion: Int
    public var osinfo: String?          // "rhel7.9"
    public var arch: String?            // "x86_64"
    public var hostname: String?
    public var productName: String?
    public var packageFormat: String?   // "rpm"
    public var packageManagement: String?  // "yum"
    /// Mountpoint to device, e.g. "/boot" -> "/dev/sda1", "/" -> "/dev/rhel/root".
    public var mountpoints: [String: String]
    public var root: String?            // the inspected root device
    /// What only a Windows guest has: nil for every other guest.
    public var windows: WindowsFacts?

    enum CodingKeys: String, CodingKey {
        case type, distro, osinfo, arch, hostname, mountpoints, root, windows
        case majorVersion = "major-version"
        case minorVersion = "minor-version"
        case productName = "product-name"
        case packageFormat = "package-format"
        case packageManagement = "package-management"
    }

    public init(type: String? = nil, distro: String? = nil, majorVersion: Int = 0, minorVersion: Int = 0,
                osinfo: String? = nil, arch: String? = nil, hostname: String? = nil, productName: String? = nil,
                packageFormat: String? = nil, packageManagement: String? = nil,
                mountpoints: [String: String] = [:], root: String? = nil, windows: WindowsFacts? = nil) {
        self.type = type
        self.distro = distro
        self.majorVersion = majorVersion
        self.minorVersion = minorVersion
        self.osinfo = osinfo
        self.arch = arch
        self.hostname = hostname
        self.productName = productName
        self.packageFormat = packageFormat
        self.packageManagement = packageManagement
        self.mountpoints = mountpoints
        self.root = root
        self.windows = windows
    }
}

/// A Windows guest's facts beyond the common ones: libguestfs's product variant, system root and drive letters, and
/// the edition and build from the SOFTWARE hive (HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion).
public struct WindowsFacts: Sendable, Equatable, Codable {
    /// InstallationType: "Server", "Client", "Server Core", ...
    public var productVariant: String?
    /// EditionID: "ServerStandard", "Professional", ...
    public var edition: String?
    /// CurrentBuildNumber: "17763", "19045", ...
    public var build: String?
    /// %SYSTEMROOT% as a path in the root filesystem: "/Windows".
    public var systemRoot: String?
    /// Drive letter ("C") to device ("/dev/sda2"), from the SYSTEM hive's MountedDevices.
    public var driveMappings: [String: String]
    /// How the guest boots: "uefi" on a GPT disk (Windows boots GPT disks by UEFI only), "bios" on an MBR one.
    public var firmware: String?

    enum CodingKeys: String, CodingKey {
        case edition, build, firmware
        case productVariant = "product-variant"
        case systemRoot = "system-root"
        case driveMappings = "drive-mappings"
    }

    public init(productVariant: String? = nil, edition: String? = nil, build: String? = nil, systemRoot: String? = nil,
                driveMappings: [String: String] = [:], firmware: String? = nil) {
        self.productVariant = productVariant
        self.edition = edition
        self.build = build
        self.systemRoot = systemRoot
        self.driveMappings = driveMappings
        self.firmware = firmware
    }
}
