import Diagnostics
import Foundation
import Logging
import Operations
import Host

/// A disk image handed to the appliance. The format is always explicit: qemu never probes an untrusted file (a raw
/// image whose first bytes look like a qcow2 header would otherwise be opened as one, backing file and all).
public struct ApplianceDrive: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable {
        case raw, qcow2, vmdk, vdi, vhdx, vpc
    }

    /// Whether the guest's discards (fstrim, blkdiscard) reach the image file and free its space.
    public enum Discard: String, Sendable {
        /// Pass discards through where the format and the host filesystem allow, silently ignore them otherwise.
        case besteffort
        /// Pass discards through, or fail the launch.
        case enable
    }

    public var path: String
    public var format: Format
    public var readonly: Bool
    public var discard: Discard?
    /// For overlays that are thrown away or rewritten after the session: qemu skips flushing to the host disk
    /// (cachemode "unsafe"). The data still reaches the file when the appliance shuts down cleanly.
    public var scratch: Bool
    /// A data disk for guest commands (virt-customize's `--attach`: a repository ISO, a disk of packages), not part
    /// of the guest: always read-only, added after the guest's drives, and left out of inspection, LUKS, LVM,
    /// identities and trimming. Guest commands find it by its label (`mount LABEL=EXTRA /mnt`).
    public var attached: Bool

    public init(path: String, format: Format, readonly: Bool = false, discard: Discard? = nil, scratch: Bool = false) {
        self.path = path
        self.format = format
        self.readonly = readonly
        self.discard = discard
        self.scratch = scratch
        self.attached = false
    }

    /// The name the appliance gives the `index`th drive added (0 is /dev/sda, 25 /dev/sdz, 26 /dev/sdaa), as
    /// libguestfs names them: what the native reader names an image's devices when it is that drive of a batch.
    public static func deviceName(index: Int) -> String {
        var letters = ""
        var rest = index
        repeat {
            letters = String(UnicodeScalar(UInt8(97 + rest % 26))) + letters
            rest = rest / 26 - 1
        } while rest >= 0
        return "/dev/sd" + letters
    }

    /// A data disk attached for guest commands (see `attached`).
    public static func attachment(path: String, format: Format) -> ApplianceDrive {
        var drive = ApplianceDrive(path: path, format: format, readonly: true)
        drive.attached = true
        return drive
    }
}

/// How a session finds the guest's operating system.
public enum InspectionMethod: String, Sendable, CaseIterable {
    /// `QuickInspection` for the guests it knows (RHEL), libguestfs's inspection for everything else.
    case automatic
    /// Always libguestfs's `inspect_os`: slower (20-30 s under software emulation), knows every guest.
    case libguestfs
    /// `inspect --os` reads the image natively (`NativeInspection`) and fails where that reader does not handle the
    /// guest, instead of launching the appliance (`automatic` falls back to it). A session, whose appliance is up
    /// already, inspects as `automatic` does.
    case native
    /// `inspect --os` launches the appliance without trying the native reader; a session inspects as `automatic`.
    case appliance

    /// IMGCUSTOMIZE_INSPECTION=libguestfs forces libguestfs's inspection where `automatic` is asked for.
    public static let environmentVariable = "IMGCUSTOMIZE_INSPECTION"

    public static func resolve(_ requested: InspectionMethod,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> InspectionMethod {
        guard requested == .automatic, let value = environment[environmentVariable], !value.isEmpty else {
            return requested
        }
        guard let chosen = InspectionMethod(rawValue: value.lowercased()) else {
            throw HostError("\(environmentVariable): unknown inspection method \"\(value)\"",
                            hint: "use automatic, native, appliance or libguestfs, or unset \(environmentVariable)")
        }
        return chosen
    }
}

public struct ApplianceOptions: Sendable {
    public var acceleration: Acceleration
    public var inspection: InspectionMethod
    /// Where the KVM verdict is remembered; nil for ${XDG_CACHE_HOME:-~/.cache}/imgcustomize/acceleration.json.
    public var accelerationCache: URL?
    public var logger: Logger
    public var progress: (@Sendable (ApplianceProgress) -> Void)?
    /// How messages name the guest: the user's image, where the first drive is an overlay of it.
    public var guestName: String?
    /// How long a launch may take; nil for the defaults with IMGCUSTOMIZE_LAUNCH_TIMEOUT (see `LaunchLimits`).
    public var limits: LaunchLimits?
    /// The qemu to run; nil for libguestfs's own choice (LIBGUESTFS_HV or its built-in default).
    public var hypervisor: String?
    /// Where the usability of KVM is checked before trying it (tests point it elsewhere to try KVM anywhere).
    var kvmDevice = "/dev/kvm"
    /// Cancelling stops the launch, or kills the running appliance, so that the call waiting on it fails at once.
    public var cancellation: Cancellation?
    /// The keys of the guest's LUKS devices, opened before inspection (see `LUKSUnlock`). Never logged.
    public var keys: LUKSKeys
    /// Gives the appliance a user-mode network, for guest commands that download (`install`, `update`); off by
    /// default, so that nothing a run does depends on, or reaches, the network.
    public var network = false
    /// The appliance's virtual CPUs; nil for two where the host has two cores or more (virt-customize's `--smp`).
    public var virtualCPUs: Int?
    /// The appliance's memory in MiB; nil for libguestfs's default (virt-customize's `--memsize`).
    public var memoryMiB: Int?
    /// The guest's facts as the native reader found them in the image before the launch (`NativeInspection`): the
    /// session mounts by them instead of inspecting through the appliance, unless libguestfs's inspection is asked
    /// for or LUKS devices were opened.
    public var knownFacts: GuestFacts?
    /// The swap areas and LVM identities the native reader found with `knownFacts`: trimming and `lvm-uuids` take
    /// them instead of asking the appliance (see `BlockLayout`). Ignored when LUKS keys are given.
    public var knownLayout: BlockLayout?
    /// The types of the filesystems the guest mounts, as the native reader found them: their kernel modules are
    /// loaded while the appliance boots, instead of at the first mount (`PrivateAppliance.preloadArgument`).
    public var filesystemTypes: [String] = []
    /// Which operating system to work on where the image holds several (virt-customize's `--root`).
    public var root: RootSelection = .all

    public init(acceleration: Acceleration = .auto, accelerationCache: URL? = nil,
                logger: Logger = Logger(label: "imgcustomize.appliance"),
                progress: (@Sendable (ApplianceProgress) -> Void)? = nil, guestName: String? = nil,
                inspection: InspectionMethod = .automatic, limits: LaunchLimits? = nil,
                cancellation: Cancellation? = nil, keys: LUKSKeys = LUKSKeys()) {
        self.keys = keys
        self.guestName = guestName
        self.limits = limits
        self.cancellation = cancellation
        self.inspection = inspection
        self.acceleration = acceleration
        self.accelerationCache = accelerationCache
        self.logger = logger
        self.progress = progress
    }
}

/// One launch of the libguestfs appliance over one or more images: inspect the guest, mount its filesystems inside
/// the appliance (never on the host), hand out an `ApplianceFilesystem`, then shut down so that writes are flushed.
public final class ApplianceSession {
    public let drives: [ApplianceDrive]
    public let launchReport: LaunchReport
    /// Every drive read-only: filesystems are mounted read-only too.
    public let readonly: Bool
    /// Whether the appliance has a network (`ApplianceOptions.network`).
    public let network: Bool
    let guestfs: Guestfs
    private let logger: Logger
    private let inspectionMethod: InspectionMethod
    private var knownFacts: GuestFacts?
    private let rootSelection: RootSelection
    private var mountedFilesystem: ApplianceFilesystem?
    /// Whether the selected drive was released, its volume groups deactivated: the next `select` need not.
    private var released = false
    /// Kills this appliance's qemu when the run is cancelled, so that the call waiting on it fails at once.
    private var stopOnCancel: Cancellation.Registration?
    /// The LUKS devices opened at launch, closed again before the shutdown.
    private(set) var openedLUKS: [OpenedLUKS] = []
    /// What the user should know of this launch although it worked (KVM given up for TCG, a LUKS key that is for
    /// no device), in order: the caller reports them; the session never logs them.
    public private(set) var warnings: [String] = []

    /// Adds the drives and launches the appliance, coping with an unusable KVM (see `Acceleration`), then opens the
    /// LUKS devices the options have keys for.
    public init(drives: [ApplianceDrive], options: ApplianceOptions = ApplianceOptions()) throws {
        guard let first = drives.first, !first.attached else {
            throw HostError("cannot launch the appliance: no image given", hint: "give the image as the first drive")
        }
        // The guest's disks first, so that they keep their names (/dev/sda...) whatever is attached.
        let guestDrives = drives.filter { !$0.attached }
        let attached = drives.filter(\.attached).map { drive in
            var drive = drive
            drive.readonly = true
            return drive
        }
        let drives = guestDrives + attached
        self.drives = drives
        self.readonly = guestDrives.allSatisfy(\.readonly)
        self.network = options.network
        self.logger = options.logger
        self.inspectionMethod = try InspectionMethod.resolve(options.inspection)
        self.knownFacts = options.knownFacts
        self.rootSelection = options.root
        (guestfs, launchReport) = try Launcher(drives: drives, guest: options.guestName ?? first.path, options: options).launch()
        if let cancellation = options.cancellation {
            let pid = try guestfs.qemuPID
            stopOnCancel = cancellation.onCancel { kill(pid, SIGKILL) }
        }
        do {
            if let warning = launchReport.warning { warnings.append(warning) }
            if !attached.isEmpty { try guestfs.restrictLVMToGuestDisks() }
            // Without a key nothing is opened: the search for LUKS devices (blkid on every device, a batch's many)
            // would be for nothing.
            if options.keys.isEmpty {
                guestfs.blockLayout = options.knownLayout
            } else {
                let unlocked = try LUKSUnlock(guestfs: guestfs, keys: options.keys, readonly: readonly,
                                              logger: logger).run()
                openedLUKS = unlocked.opened
                warnings += unlocked.warnings
            }
        } catch {
            stopOnCancel?.end()
            guestfs.close()
            throw error
        }
    }

    /// Opens one image, inspects it and returns the guest's facts and virtual-hardware needs with the launch's
    /// warnings, then shuts the appliance down: `inspect --os`.
    public static func inspect(image path: String, format: ApplianceDrive.Format,
                               options: ApplianceOptions = ApplianceOptions()) throws
        -> (facts: GuestFacts, hardware: GuestHardware, warnings: [String]) {
        let session = try ApplianceSession(drives: [ApplianceDrive(path: path, format: format, readonly: true)],
                                           options: options)
        let filesystem: ApplianceFilesystem
        let hardware: GuestHardware
        do {
            filesystem = try session.mountOperatingSystem()
            hardware = try GuestHardware(reading: filesystem, facts: filesystem.facts)
        } catch {
            session.guestfs.close()
            throw error
        }
        try session.close()
        return (filesystem.facts, hardware, session.warnings)
    }

    /// The guest's operating system, found the way the session's options say. Refuses images with no operating
    /// system or with several, naming what it found.
    public func inspect() throws -> GuestFacts {
        try inspect(method: inspectionMethod)
    }

    /// The guest's operating system: `automatic` answers from `QuickInspection` where it can and from libguestfs's
    /// `inspect_os` everywhere else; `libguestfs` always asks libguestfs. Leaves nothing mounted.
    public func inspect(method: InspectionMethod) throws -> GuestFacts {
        if method != .libguestfs, openedLUKS.isEmpty, let knownFacts {
            logger.debug("inspected \(knownFacts.root ?? "") natively before the launch")
            if let root = knownFacts.root { _ = try rootSelection.choose(among: [root], guest: guestfs.guest) }
            return knownFacts
        }
        if method != .libguestfs {
            do {
                let decrypted = Dictionary(openedLUKS.map { ($0.device, $0.mapping) }, uniquingKeysWith: { a, _ in a })
                if let facts = try QuickInspection(guestfs: guestfs, decrypted: decrypted).inspect() {
                    logger.debug("inspected \(facts.root ?? "") by its release files and fstab")
                    if let root = facts.root { _ = try rootSelection.choose(among: [root], guest: guestfs.guest) }
                    return facts
                }
                logger.debug("not a guest the quick inspection knows: asking libguestfs")
            } catch {
                // Whatever went wrong, libguestfs's own inspection (which starts by unmounting everything) has the
                // last word.
                logger.debug("quick inspection failed (\(error)): asking libguestfs")
            }
        }
        let roots = try guestfs.inspectOS()
        if roots.isEmpty {
            let found = try guestfs.filesystems()
            let pairs = found.map { "\($0.device) (\($0.type))" }
            // list_filesystems leaves LUKS partitions out: ask each partition it did not list and the session
            // did not open.
            let listed = Set(found.map(\.device)).union(openedLUKS.map(\.device))
            let encrypted = try guestfs.partitions()
                .filter { !listed.contains($0) && guestfs.filesystemType($0) == "crypto_LUKS" }
            if let first = encrypted.first {
                let named = encrypted.map {
                    "partition \(String($0.reversed().prefix { $0.isNumber }.reversed())) (\($0)) is LUKS-encrypted"
                }
                throw GuestError(guest: guestfs.guest, action: "inspect", message:
                                    "no operating system found: " + named.joined(separator: ", ")
                                    + "; filesystems: " + pairs.joined(separator: ", "),
                                 hint: "give --key \(first):key:PASSPHRASE (or \(first):file:PATH, or the LUKS "
                                    + "UUID instead of the device) or --keys-from-stdin")
            }
            throw GuestError(guest: guestfs.guest, action: "inspect", message:
                                "no operating system found; filesystems: "
                                + (pairs.isEmpty ? "none" : pairs.joined(separator: ", ")),
                             hint: "is this the disk holding the guest's root filesystem?")
        }
        let chosen = try rootSelection.choose(among: roots, guest: guestfs.guest) { root in
            "\(root) (\((try? guestfs.inspected(.productName, root: root)) ?? "unknown"))"
        }
        return try facts(root: chosen)
    }

    private func facts(root: String) throws -> GuestFacts {
        func text(_ fact: Guestfs.InspectedText) throws -> String? {
            let value = try guestfs.inspected(fact, root: root)
            return value == "unknown" || value.isEmpty ? nil : value
        }
        let canonical = try canonicalSubvolumes()
        let mountpoints = Dictionary(
            try guestfs.inspectedMountpoints(root: root).map { ($0.mountpoint, canonical($0.device)) },
            uniquingKeysWith: { first, _ in first })
        let version = try guestfs.inspectedVersion(root: root)
        let type = try text(.type)
        return GuestFacts(
            type: type, distro: try text(.distribution),
            majorVersion: version.major, minorVersion: version.minor,
            osinfo: try text(.osinfo), arch: try text(.architecture), hostname: try text(.hostname),
            productName: try text(.productName), packageFormat: try text(.packageFormat),
            packageManagement: try text(.packageManager),
            mountpoints: mountpoints,
            root: canonical(root),
            windows: type == "windows" ? try windowsFacts(root: root) : nil)
    }

    /// What libguestfs's inspection gives of a Windows root, plus the edition and build it does not (1.48 has no
    /// build id), read from the SOFTWARE hive in the appliance.
    private func windowsFacts(root: String) throws -> WindowsFacts {
        func text(_ fact: Guestfs.InspectedText) throws -> String? {
            let value = try guestfs.inspected(fact, root: root)
            return value == "unknown" || value.isEmpty ? nil : value
        }
        let systemRoot = try text(.windowsSystemRoot)
        var current: [String: String] = [:]
        if let systemRoot {
            try guestfs.mount(root, on: "/", readonly: true)
            defer { try? guestfs.unmountAll() }
            if let hive = try? guestfs.caseSensitivePath(systemRoot + "/System32/config/SOFTWARE") {
                current = try guestfs.registryStrings(hive: hive, key: ["Microsoft", "Windows NT", "CurrentVersion"],
                                                      values: ["EditionID", "CurrentBuildNumber"])
            }
        }
        let disk = (try? guestfs.disk(ofPartition: root)) ?? root
        let table = try? guestfs.partitionTableType(disk)
        return WindowsFacts(
            productVariant: try text(.productVariant), edition: current["EditionID"],
            build: current["CurrentBuildNumber"], systemRoot: systemRoot,
            driveMappings: Dictionary(try guestfs.inspectedDriveMappings(root: root).map { ($0.letter, $0.device) },
                                      uniquingKeysWith: { first, _ in first }),
            firmware: table == "gpt" ? "uefi" : table == "msdos" ? "bios" : nil)
    }

    /// libguestfs 1.48 names a btrfs subvolume's device as the appliance's kernel named it, unlike every other device
    /// name it returns: btrfsvol:/dev/sdb2/root for the guest's /dev/sda2 when the appliance's own disk was probed
    /// first, which varies between launches. This gives such a name as the quick inspection does, by the canonical
    /// name of the device holding the filesystem's UUID (what libguestfs translates back when mounting); a name that
    /// is a canonical device already stays.
    private func canonicalSubvolumes() throws -> (String) -> String {
        let devices = Set(try guestfs.disks() + guestfs.partitions())
        return { mountable in
            guard let (device, path) = BtrfsVolumeName(mountable)?.splits.first, !devices.contains(device),
                  let uuid = try? self.guestfs.filesystemUUID(device), !uuid.isEmpty,
                  let found = try? self.guestfs.device(withUUID: uuid), devices.contains(found)
            else { return mountable }
            return BtrfsVolumeName.name(device: found, path: path)
        }
    }

    /// Inspects the guest and mounts every filesystem of its root, parents before children (/ before /boot),
    /// read-only when every drive is. Once per session.
    public func mountOperatingSystem() throws -> ApplianceFilesystem {
        if let mountedFilesystem { return mountedFilesystem }
        let facts = try inspect()
        let ordered = facts.mountOrder
        for (mountpoint, device) in ordered {
            try guestfs.mount(device, on: mountpoint, readonly: readonly)
        }
        logger.debug("mounted \(ordered.map { "\($0.device) on \($0.mountpoint)" }.joined(separator: ", "))")
        let filesystem = ApplianceFilesystem(guestfs: guestfs, facts: facts, readonly: readonly, network: network)
        mountedFilesystem = filesystem
        return filesystem
    }

    /// Turns a session over several images (a batch: one guest drive each) to the `index`th: whatever an earlier
    /// image left mounted is unmounted and its volume groups deactivated, then LVM and every device listing see that
    /// drive alone (its clones elsewhere in the batch share volume group names and UUIDs), and the session names
    /// `name` in its errors and mounts by `knownFacts` (the native reader's, naming the drive's devices) when given,
    /// and trims and renews LVM UUIDs by `knownLayout`.
    public func select(drive index: Int, name: String, knownFacts: GuestFacts?,
                       knownLayout: BlockLayout? = nil) throws {
        guard drives.indices.contains(index), !drives[index].attached, openedLUKS.isEmpty else {
            throw GuestError(guest: name, action: "select the image", message: "drive \(index) is not one of a batch's images")
        }
        guestfs.blockLayout = nil
        guestfs.forgetDeferredMount()
        try guestfs.unmountAll()
        mountedFilesystem = nil
        // After the launch or an image that failed before its release, something may still be active.
        if !released { try guestfs.activateVolumeGroups(false) }
        released = false
        guestfs.guest = name
        guestfs.selectedDrive = index
        let expected = ApplianceDrive.deviceName(index: index)
        let listed = try guestfs.disks()
        guard listed == [expected] else {
            throw GuestError(guest: name, action: "select the image", message:
                                "the appliance does not name its drive \(index) \(expected) (it lists \(listed))")
        }
        try guestfs.restrictLVMToGuestDisks(selected: index)
        self.knownFacts = knownFacts
        guestfs.blockLayout = knownLayout
    }

    /// Ends the work on the selected drive of a batch: unmounts it, deactivates its volume groups, flushes its writes
    /// to its overlay file, and makes the drive read-only in the appliance, so that the file no longer changes while
    /// the appliance works on the next image (the caller may rewrite it meanwhile).
    public func release() throws {
        try mountedFilesystem?.blockDevices.trimAgainWhatWasRewritten()
        guestfs.forgetDeferredMount()
        // Where the identity changes left the volume groups inactive, with no mount since, they stay so.
        let inactive = mountedFilesystem?.blockDevices.volumeGroupsInactive ?? false
        try guestfs.unmountAll()
        mountedFilesystem = nil
        if !inactive { try guestfs.activateVolumeGroups(false) }
        if try !guestfs.flushAndProtectSelectedDisk() {
            try guestfs.sync()
            for disk in try guestfs.disks() { try guestfs.setReadOnly(disk) }
        }
        released = true
    }

    /// Unmounts and shuts the appliance down, so that every write reaches the images; reports what failed.
    /// Closing twice is harmless.
    public func close() throws {
        guard !guestfs.isClosed else { return }
        defer { guestfs.close() }
        // From the shutdown on, qemu exits and its process id may be reused.
        stopOnCancel?.end()
        // A failed unmount must not skip the shutdown: that is what flushes the writes to the image.
        let retrimmed = Result { try mountedFilesystem?.blockDevices.trimAgainWhatWasRewritten() }
        guestfs.forgetDeferredMount()
        let unmounted = Result {
            if mountedFilesystem != nil {
                try guestfs.unmountAll()
            }
            // Volume groups inside a LUKS device hold it open.
            if !openedLUKS.isEmpty { try guestfs.activateVolumeGroups(false) }
            for luks in openedLUKS.reversed() { try guestfs.cryptsetupClose(luks.mapping) }
        }
        try guestfs.shutdown()
        try retrimmed.get()
        try unmounted.get()
    }
}

/// Brings an appliance up with the acceleration decided by `Acceleration`, its environment variable and the cache,
/// within `LaunchLimits`: a KVM that hangs is given up within seconds, any launch within the overall limit.
struct Launcher {
    let drives: [ApplianceDrive]
    let guest: String
    let options: ApplianceOptions
    let clock = ContinuousClock()
    /// Why a stuck boot was launched again, for the report's warning.
    private let stall = Stall()

    private final class Stall { var reason: String? }

    private enum Mode { case forceKVM, forceTCG, automatic }

    func launch() throws -> (Guestfs, LaunchReport) {
        let started = clock.now
        let limits = try options.limits ?? LaunchLimits.resolve(launchSeconds: nil)
        func report(_ acceleration: Acceleration, _ decision: LaunchReport.Decision,
                    kvmFailure: String? = nil) -> LaunchReport {
            let elapsed = clock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            options.logger.debug("appliance up in \(String(format: "%.1f", seconds)) s (\(acceleration.rawValue))")
            var report = LaunchReport(acceleration: acceleration, decision: decision, kvmFailure: kvmFailure,
                                      seconds: seconds)
            if let stuck = stall.reason { report.warning = "\(stuck); launched it again" }
            return report
        }
        let logger = options.logger

        switch try Acceleration.resolve(options.acceleration) {
        case .kvm:
            return (try attempt(.forceKVM, limits).launched(), report(.kvm, .requested))
        case .tcg:
            return (try attempt(.forceTCG, limits).launched(), report(.tcg, .requested))
        case .auto:
            break
        }
        // Without access to /dev/kvm, qemu would quietly fall back to TCG and the verdict would be wrong.
        guard access(options.kvmDevice, R_OK | W_OK) == 0 else {
            logger.debug("no usable /dev/kvm: using software emulation (TCG)")
            return (try attempt(.forceTCG, limits).launched(), report(.tcg, .noKVM))
        }
        let cache = AccelerationCache(file: options.accelerationCache ?? AccelerationCache.defaultFile())
        let handle = try makeHandle()
        let key = (try? handle.hypervisor).flatMap(AccelerationCache.key(hypervisor:))
        let cached = key.flatMap { cache.entry(for: $0, logger: logger) }
        if let cached, cached.verdict == .tcg {
            logger.debug("using software emulation (TCG): KVM failed here before (\(cached.reason ?? cache.file.path))")
            return (try attempt(.forceTCG, limits, on: handle).launched(), report(.tcg, .cached))
        }

        let kvmFailure: LaunchFailure
        switch attempt(.automatic, limits, on: handle) {
        case .success(let guestfs):
            if let key, cached == nil { cache.record(.init(key: key, verdict: .kvm, reason: nil), logger: logger) }
            return (guestfs, report(.kvm, cached == nil ? .probed : .cached))
        case .failure(let failure):
            if failure.cancelled { throw failure.error }
            kvmFailure = failure
        }
        let reason = kvmFailure.reason
        switch attempt(.forceTCG, limits) {
        case .success(let guestfs):
            if let key { cache.record(.init(key: key, verdict: .tcg, reason: reason), logger: logger) }
            var launched = report(.tcg, .probed, kvmFailure: reason)
            launched.warning = """
                KVM is unusable here (\(reason)); using software emulation (TCG), slower; remembered in \
                \(cache.file.path)
                """ + (launched.warning.map { "; " + $0 } ?? "")
            return (guestfs, launched)
        case .failure(let tcgFailure):
            guard var error = tcgFailure.error as? GuestError else { throw tcgFailure.error }
            error.hint = "it failed with KVM too: \(reason)"
            throw error
        }
    }

    struct LaunchFailure: Error {
        /// What the user sees: a `GuestError`, or `RunCancelled` when the run was cancelled during the launch.
        var error: any Error
        /// Why KVM did not do, in a few words: qemu's own error line, or the hang the launch watch saw.
        var reason: String
        /// The kernel started and then stopped printing (`LaunchWatch.Verdict.stalled`): worth one more try.
        var stalled = false
        var cancelled: Bool { error is RunCancelled }
    }

    private func makeHandle() throws -> Guestfs {
        let guestfs = try Guestfs(guest: guest, logger: options.logger, progress: options.progress)
        if let hypervisor = options.hypervisor { try guestfs.setHypervisor(hypervisor) }
        switch PrivateAppliance.choose(searchPath: try guestfs.searchPath,
                                       cache: (ToolCache.directory() as NSString).appendingPathComponent("appliance"),
                                       logger: options.logger) {
        case .own(let directory, let source):
            try guestfs.useAppliance(directory)
            options.logger.info("appliance: imgcustomize's shorter /init, built from \(source) in \(directory)")
        case .stock(let reason):
            options.logger.info("appliance: libguestfs's own (\(reason))")
        }
        // A user's first launch builds their appliance from the host kernel: say before launching if it cannot.
        let built = "\(try guestfs.cacheDirectory)/.guestfs-\(geteuid())/appliance.d/kernel"
        if access(built, R_OK) != 0, let unreadable = HostKernel.unreadable() { throw unreadable }
        // Two virtual CPUs where the host has two cores: under software emulation each is a host thread, and the
        // appliance's boot (udev, LVM scanning) keeps both busy. Measured here: launches about 3 s shorter.
        let cpus = Int32(options.virtualCPUs ?? min(2, ProcessInfo.processInfo.activeProcessorCount))
        try guestfs.setVirtualCPUs(cpus)
        if let memory = options.memoryMiB { try guestfs.setMemory(mebibytes: Int32(memory)) }
        try guestfs.setNetwork(options.network)
        for drive in drives { try add(drive, to: guestfs) }
        guestfs.attachedDrives = drives.filter(\.attached).count
        return guestfs
    }

    private func add(_ drive: ApplianceDrive, to guestfs: Guestfs) throws {
        try guestfs.addDrive(drive.path, format: drive.format.rawValue, readonly: drive.readonly,
                             cacheMode: drive.scratch ? "unsafe" : "writeback",
                             discard: drive.discard?.rawValue ?? "disable")
    }

    /// One launch on a fresh handle (or `handle`, which must not have been launched), watched by a `LaunchWatch`;
    /// the handle is closed again when the launch fails.
    private func attempt(_ mode: Mode, _ limits: LaunchLimits, on handle: Guestfs? = nil) -> Result<Guestfs, LaunchFailure> {
        let first = once(mode, limits, on: handle)
        guard case .failure(let failure) = first, failure.stalled else { return first }
        // A boot that got stuck once boots the next time: the handle was closed with the stuck qemu, so a new one.
        stall.reason = String(failure.reason.prefix { $0 != ";" })
        return once(mode, limits)
    }

    /// One launch, as `attempt`, without the second try.
    private func once(_ mode: Mode, _ limits: LaunchLimits, on handle: Guestfs? = nil) -> Result<Guestfs, LaunchFailure> {
        let guestfs: Guestfs
        do {
            guestfs = try handle ?? makeHandle()
        } catch {
            let inner = Diagnostic(of: error)
            let guestError = error as? GuestError
                ?? GuestError(guest: guest, action: "prepare the appliance", message: inner.message, hint: inner.hint)
            return .failure(LaunchFailure(error: guestError, reason: guestError.message))
        }
        var watch: LaunchWatch?
        do {
            try guestfs.requireKVM(mode == .forceKVM ? true : mode == .forceTCG ? false : nil)
            // The guest kernel's boot messages are what tells a hung KVM from a slow one, and what a failed launch
            // is explained with: libguestfs boots it "quiet" unless debugging.
            try guestfs.appendKernelArguments("loglevel=7")
            if let preload = PrivateAppliance.preloadArgument(for: options.filesystemTypes) {
                try guestfs.appendKernelArguments(preload)
                options.logger.debug("appliance: \(preload): the guest's filesystem modules load while it boots")
            }
            let kernels = PVHKernel.cacheDirectory()
            if let kernels, let cache = try? guestfs.cacheDirectory {
                PVHKernel.prepare(kernel: PVHKernel.applianceKernel(cacheDirectory: cache), in: kernels,
                                  logger: options.logger)
                if SlimInitrd.enabled() {
                    SlimInitrd.prepare(initrd: SlimInitrd.applianceInitrd(cacheDirectory: cache), in: kernels,
                                       logger: options.logger)
                }
            }
            let started = try LaunchWatch(hypervisor: try guestfs.hypervisor, underKVM: mode != .forceTCG,
                                          limits: limits, kernels: kernels, slimInitrd: SlimInitrd.enabled(),
                                          boot: BootShortcuts.resolve())
            watch = started
            try guestfs.setHypervisor(started.wrapper)
            guestfs.events.forgetConsole()
            guestfs.events.launchWatch = started
            started.start(cancellation: options.cancellation)
            defer { guestfs.events.launchWatch = nil }
            let launched = Result { try guestfs.launch() }
            if let verdict = started.finish() {
                return .failure(failure(verdict, mode: mode, console: guestfs.events.recentConsole, closing: guestfs))
            }
            try launched.get()
            logKernel(started.kernelUsed, kernels: kernels)
            logInitrd(started.initrdUsed, kernels: kernels)
            if let boot = started.bootUsed {
                options.logger.info("appliance boot: firmware and kernel arguments \(boot)")
            }
            return .success(guestfs)
        } catch {
            _ = watch?.finish()
            let qemuMessage = Self.qemuError(in: guestfs.events.recentConsole)
            guestfs.close()
            let inner = Diagnostic(of: error)
            var guestError = error as? GuestError
                ?? GuestError(guest: guest, action: "launch the appliance", message: inner.message, hint: inner.hint)
            if let qemuMessage {
                // The earlier messages libguestfs refers to are qemu's: say the one that matters.
                let message = guestError.message.replacingOccurrences(of: ", see earlier error messages", with: "")
                guestError.message = "\(message) (qemu: \(qemuMessage))"
            }
            if guestError.hint == nil {
                guestError.hint = "run with LIBGUESTFS_DEBUG=1 to see the appliance's output; "
                    + "\(Acceleration.environmentVariable)=tcg or =kvm chooses the acceleration"
            }
            return .failure(LaunchFailure(error: guestError, reason: qemuMessage.map { "qemu: \($0)" } ?? guestError.message))
        }
    }

    /// Says at -v which kernel the appliance booted; after a stock boot of a kernel the cache lacks (an appliance
    /// other than supermin's, or one rebuilt during this launch), extracts its PVH entry for the next launch.
    private func logKernel(_ used: String?, kernels: String?) {
        guard let used, let space = used.firstIndex(of: " ") else {
            options.logger.info("appliance kernel: as libguestfs gives it (the PVH entry is off: \(PVHKernel.environmentVariable)=stock)")
            return
        }
        let path = String(used[used.index(after: space)...])
        if used.hasPrefix("pvh ") {
            options.logger.info("appliance kernel: booted through its PVH entry (\(path))")
        } else {
            options.logger.info("appliance kernel: the stock kernel \(path) (no PVH entry cached for it)")
            if let kernels { PVHKernel.prepare(kernel: path, in: kernels, logger: options.logger) }
        }
    }

    /// Says at -v which initrd the appliance booted; after a stock boot, makes the slim one for the next launch.
    private func logInitrd(_ used: String?, kernels: String?) {
        guard let used, let kernels, let space = used.firstIndex(of: " ") else {
            if kernels != nil {
                options.logger.info("appliance initrd: as supermin built it (\(SlimInitrd.environmentVariable)=stock)")
            }
            return
        }
        let path = String(used[used.index(after: space)...])
        if used.hasPrefix("slim ") {
            options.logger.info("appliance initrd: without the modules no launch uses (\(path))")
        } else {
            options.logger.info("appliance initrd: the stock one \(path) (no slim copy cached for it)")
            SlimInitrd.prepare(initrd: path, in: kernels, logger: options.logger)
        }
    }

    /// The failure for a launch the watch stopped: qemu is dead by now, and closing the handle removes its files.
    private func failure(_ verdict: LaunchWatch.Verdict, mode: Mode, console: [String], closing guestfs: Guestfs)
        -> LaunchFailure {
        guestfs.close()
        let accel = mode == .forceTCG ? "software emulation (TCG)" : "KVM"
        let lastLines = console.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.suffix(8)
        let consoleText = lastLines.isEmpty ? "the console printed nothing"
            : "the console's last lines:\n    " + lastLines.joined(separator: "\n    ")
        func seconds(_ value: Double) -> String { String(format: "%g s", value) }
        switch verdict {
        case .cancelled(let reason):
            return LaunchFailure(error: RunCancelled(image: guest, reason: reason), reason: reason)
        case .kvmSilent(let limit):
            let reason = "qemu ran under KVM but the guest printed no kernel message within \(seconds(limit)): it hangs"
            return LaunchFailure(error: GuestError(guest: guest, action: "launch the appliance", message: reason,
                                                   hint: "use --accel tcg (software emulation); \(consoleText)"),
                                 reason: reason)
        case .kvmSlow(let limit):
            let reason = "the appliance was not up under KVM within \(seconds(limit)), where it takes a few seconds"
            return LaunchFailure(error: GuestError(guest: guest, action: "launch the appliance", message: reason,
                                                   hint: "use --accel tcg (software emulation); \(consoleText)"),
                                 reason: reason)
        case .stalled(let limit):
            let message = "the appliance's kernel started under \(accel), then its console said nothing for "
                + "\(seconds(limit)): it is stuck; \(consoleText)"
            return LaunchFailure(error: GuestError(
                guest: guest, action: "launch the appliance", message: message,
                hint: "the image is unchanged; run again (a stuck boot is rare), with -vvv to see the whole boot"),
                                 reason: message, stalled: true)
        case .timedOut(let limit):
            let message = "the appliance was not up within \(seconds(limit)) under \(accel); \(consoleText)"
            return LaunchFailure(error: GuestError(
                guest: guest, action: "launch the appliance", message: message,
                hint: "the image is unchanged; on a slow or busy machine give more time with --launch-timeout or "
                    + "\(LaunchLimits.environmentVariable), and run with -vvv to see the whole boot"),
                                 reason: message)
        }
    }

    /// qemu's error line ("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"), without its prefix;
    /// failing an "error:" line, its first line that is not a warning.
    static func qemuError(in console: [String]) -> String? {
        let messages = console.filter { $0.hasPrefix("qemu-system") }.compactMap { line -> Substring? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let message = line[line.index(after: colon)...].drop(while: { $0 == " " })
            return message.isEmpty ? nil : message
        }
        if let error = messages.first(where: { $0.hasPrefix("error:") }) {
            return String(error.dropFirst("error:".count).drop(while: { $0 == " " }))
        }
        return messages.first(where: { !$0.hasPrefix("warning:") }).map(String.init)
    }
}

private extension Result where Failure == Launcher.LaunchFailure {
    func launched() throws -> Success {
        switch self {
        case .success(let guestfs): return guestfs
        case .failure(let failure): throw failure.error
        }
    }
}
