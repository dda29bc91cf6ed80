import CGuestFS
import Logging
import Operations
import Host

#if canImport(Glibc)
import Glibc
#endif

/// How far a long appliance call (a download, a discard, a zeroing) has come, as libguestfs reports it.
public struct ApplianceProgress: Sendable, Equatable {
    public var done: UInt64
    public var total: UInt64

    public init(done: UInt64, total: UInt64) {
        self.done = done
        self.total = total
    }
}

/// A libguestfs handle as typed Swift methods: this file is the one place where libguestfs is called.
///
/// Every call goes through `perform`, which turns the C convention (-1 or NULL) into a `GuestError` built from
/// `guestfs_last_error` right after the failing call, naming the image, the action and the guest path.
/// A handle is not thread-safe, and neither is this class: one owner at a time.
final class Guestfs {
    private var handle: OpaquePointer?
    /// Names the image in every error: in a batch, the one being worked on.
    var guest: String
    let events: EventSink
    /// How many drives, added after the guest's, are attached data disks (`ApplianceDrive.attached`): the device
    /// listings below leave them out, so that inspection, LUKS, LVM, identities and trimming see only the guest's.
    var attachedDrives = 0
    /// In a batch (several images, each one guest drive, in one launch): the index of the drive being worked on.
    /// The device listings below and LVM (`restrictLVMToGuestDisks`) then see that drive alone: clones of one image
    /// share volume group names and every UUID, so a scan of all the drives would mix them.
    var selectedDrive: Int? {
        didSet { if selectedDrive != oldValue { selectedKernelDisk = nil } }
    }
    /// The kernel's name (/dev/sdd) of the selected drive of a batch, as `LVMFilter`'s script found it: trims and
    /// the release's flush then reach that disk alone, where the daemon's would flush every disk of the launch.
    private(set) var selectedKernelDisk: String?
    /// The LUKS mappings this handle opened (/dev/mapper/NAME), all on the guest's devices: LVM may look inside them.
    private var openedMappings: [String] = []
    /// What the native reader found on the (selected) guest drive's block devices before the launch, while it still
    /// holds: a program run in the guest or the appliance (`command`, `applianceShell`) may have changed them, and
    /// drops it.
    var blockLayout: BlockLayout?
    /// Every disk of the launch, once listed.
    private var listedDisks: [String]?
    /// The devices LVM was last limited to (`restrictLVMToGuestDisks`).
    private var lvmFilter: [String]?
    /// How the guest's filesystems are mounted again, after an identity change left them unmounted (and its volume
    /// groups inactive): run before the next call that may need them, that is any call but those marked
    /// `onDevicesOnly`. An identity change is a run's last phase, after which often nothing reads a file: this saves
    /// the mounts (and the volume groups' activation) that nothing would use. Cleared by whatever unmounts the
    /// guest for good (`forgetDeferredMount`).
    var deferredMount: (() throws -> Void)?
    /// Set while calls that work on devices alone (unmounting, LVM, UUIDs, the shutdown) run: they leave
    /// `deferredMount` pending.
    private var devicesOnly = false
    /// The statuses read since the last call that may have changed anything (any call not marked `onlyReading`):
    /// the operations ask the same paths again and again between two changes (628 status calls for 251 paths in
    /// `apply rhel7-cloud`, a round trip each). Keyed by "L" or "S" (following links) and the path.
    private var statuses: [String: FileStatus?] = [:]
    /// Set while a call that only reads the guest's files runs: it keeps `statuses`.
    private var reading = false

    init(guest: String, logger: Logger, progress: ((ApplianceProgress) -> Void)?) throws {
        // The environment stays honoured (LIBGUESTFS_DEBUG, LIBGUESTFS_TRACE, LIBGUESTFS_HV help debugging);
        // the acceleration settings are set explicitly before each launch.
        guard let handle = guestfs_create() else {
            throw GuestError(guest: guest, action: "create a libguestfs handle",
                             message: String(cString: strerror(errno)),
                             hint: "check that libguestfs is installed (libguestfs0) and its appliance can be built")
        }
        self.handle = handle
        self.guest = guest
        self.events = EventSink(logger: logger, progress: progress)
        let mask = UInt64(GUESTFS_EVENT_PROGRESS | GUESTFS_EVENT_APPLIANCE | GUESTFS_EVENT_LIBRARY
                          | GUESTFS_EVENT_WARNING | GUESTFS_EVENT_TRACE)
        let sink = Unmanaged.passUnretained(events).toOpaque()
        // A failure from here on closes the handle in deinit.
        try run("register for libguestfs events") { handle in
            guestfs_set_event_callback(handle, { _, opaque, event, _, _, buffer, length, array, count in
                guard let opaque else { return }
                let sink = Unmanaged<EventSink>.fromOpaque(opaque).takeUnretainedValue()
                sink.receive(event: event,
                             text: buffer.map { UnsafeBufferPointer(start: $0, count: length) },
                             numbers: array.map { UnsafeBufferPointer(start: $0, count: count) }
                                ?? .init(start: nil, count: 0))
            }, mask, 0, sink)
        }
        // At trace level (-vvv), libguestfs's call trace and the appliance's full boot output are worth their cost.
        if logger.logLevel <= .trace {
            try run("enable libguestfs tracing") { guestfs_set_trace($0, 1) }
            try run("enable libguestfs verbose messages") { guestfs_set_verbose($0, 1) }
        }
    }

    deinit {
        if let handle { guestfs_close(handle) }
    }

    /// Closes the handle, killing the appliance if it still runs; use `shutdown` first to flush writes.
    func close() {
        if let handle { guestfs_close(handle) }
        handle = nil
    }

    var isClosed: Bool { handle == nil }

    /// A failed call: the error users see and libguestfs's errno (0 when the failure did not come with one).
    private struct Failure: Error {
        var error: GuestError
        var errno: Int32
    }

    /// Runs one libguestfs call. `body` returns nil when the C call reported failure.
    private func perform<R>(_ action: String, _ path: String?, _ body: (OpaquePointer) -> R?) -> Result<R, Failure> {
        guard let handle else {
            return .failure(Failure(error: GuestError(guest: guest, action: action, path: path,
                                                      message: "the appliance is already closed"),
                                    errno: 0))
        }
        // libguestfs keeps error handlers per thread, and callers may move between threads: without this, a failure
        // on another thread than the one that created the handle would be printed to stderr.
        guestfs_set_error_handler(handle, nil, nil)
        if !reading { statuses.removeAll(keepingCapacity: true) }
        if !devicesOnly, let mount = deferredMount {
            deferredMount = nil
            statuses.removeAll(keepingCapacity: true)
            do {
                try mount()
            } catch {
                // Nothing may then run on the appliance's own empty root as if it were the guest's: every later
                // call that needs the filesystems fails the same way.
                let failure = error as? GuestError ?? GuestError(
                    guest: guest, action: "mount the guest's filesystems again", message: "\(error)")
                deferredMount = { throw failure }
                return .failure(Failure(error: failure, errno: 0))
            }
        }
        if let result = body(handle) { return .success(result) }
        let message = guestfs_last_error(handle).map { String(cString: $0) } ?? "unknown libguestfs error"
        return .failure(Failure(error: GuestError(guest: guest, action: action, path: path, message: message),
                                errno: guestfs_last_errno(handle)))
    }

    /// Runs `body`, whose calls work on devices alone, leaving a deferred mount pending.
    func onDevicesOnly<R>(_ body: () throws -> R) rethrows -> R { try with(\.devicesOnly, body) }

    /// Runs `body`, whose calls only read the guest's files, keeping the statuses read so far.
    private func onlyReading<R>(_ body: () throws -> R) rethrows -> R { try with(\.reading, body) }

    /// Runs `body` with `flag` set, restoring it after.
    private func with<R>(_ flag: ReferenceWritableKeyPath<Guestfs, Bool>, _ body: () throws -> R) rethrows -> R {
        let outer = self[keyPath: flag]
        self[keyPath: flag] = true
        defer { self[keyPath: flag] = outer }
        return try body()
    }

    /// Drops a deferred mount: the caller unmounts the guest for good (the session's end, a batch's next image).
    func forgetDeferredMount() {
        deferredMount = nil
    }

    private func call<R>(_ action: String, _ path: String? = nil, _ body: (OpaquePointer) -> R?) throws -> R {
        switch perform(action, path, body) {
        case .success(let value): return value
        case .failure(let failure): throw failure.error
        }
    }

    /// Like `call`, but a failure with one of `errnos` (ENOENT for a missing path) means "not there": nil.
    private func callUnlessAbsent<R>(_ action: String, _ path: String?, absentWhen errnos: Set<Int32>,
                                     _ body: (OpaquePointer) -> R?) throws -> R? {
        switch perform(action, path, body) {
        case .success(let value): return value
        case .failure(let failure) where errnos.contains(failure.errno): return nil
        case .failure(let failure): throw failure.error
        }
    }

    // Typed forms of the C conventions.

    private func run(_ action: String, _ path: String? = nil, _ body: (OpaquePointer) -> Int32) throws {
        _ = try number(action, path, body)
    }

    private func number(_ action: String, _ path: String? = nil, _ body: (OpaquePointer) -> Int32) throws -> Int32 {
        try call(action, path) { handle -> Int32? in
            let result = body(handle)
            return result == -1 ? nil : result
        }
    }

    private func string(_ action: String, _ path: String? = nil,
                        _ body: (OpaquePointer) -> UnsafeMutablePointer<CChar>?) throws -> String {
        try call(action, path) { handle in Self.takeString(body(handle)) }
    }

    private func strings(_ action: String, _ path: String? = nil,
                         _ body: (OpaquePointer) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) throws
        -> [String] {
        try call(action, path) { handle in Self.takeStrings(body(handle)) }
    }

    /// A map libguestfs returns as a flat list: key, value, key, value...
    private func pairs(_ action: String, _ path: String? = nil,
                       _ body: (OpaquePointer) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) throws
        -> [(String, String)] {
        let flat = try strings(action, path, body)
        return stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
    }

    /// Takes ownership of a malloc'ed C string.
    private static func takeString(_ pointer: UnsafeMutablePointer<CChar>?,
                                   decode: (UnsafeMutablePointer<CChar>) -> String = { String(cString: $0) })
        -> String? {
        guard let pointer else { return nil }
        defer { free(pointer) }
        return decode(pointer)
    }

    /// Takes ownership of a malloc'ed, NULL-terminated array of malloc'ed C strings.
    private static func takeStrings(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                                    decode: (UnsafeMutablePointer<CChar>) -> String = { String(cString: $0) })
        -> [String]? {
        guard let list else { return nil }
        defer { free(list) }
        var strings: [String] = []
        var index = 0
        while let element = list[index] {
            strings.append(decode(element))
            free(element)
            index += 1
        }
        return strings
    }

    /// A guest name or path from libguestfs, decoded as the tree decodes names (`guestName(decoding:)`):
    /// String(cString:) would turn a byte that is not UTF-8 into U+FFFD, and the path made from it would name
    /// another file.
    private static func guestPath(_ pointer: UnsafeMutablePointer<CChar>) -> String {
        guestName(decoding: UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)))
    }

    /// Takes ownership of a malloc'ed buffer of `count` bytes (pread, lgetxattr).
    private static func takeBytes(_ pointer: UnsafeMutablePointer<CChar>?, count: Int) -> [UInt8]? {
        guard let pointer else { return nil }
        defer { free(pointer) }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: count) { Array(UnsafeBufferPointer(start: $0, count: count)) }
    }

    /// Runs `body` with `bytes` as a C buffer; an empty array has no storage, and libguestfs still wants a pointer.
    private static func withCBuffer<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>, Int) throws -> R) rethrows -> R {
        try bytes.withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { chars in
                let empty: CChar = 0
                return try withUnsafePointer(to: empty) { fallback in
                    try body(chars.baseAddress ?? fallback, chars.count)
                }
            }
        }
    }
}

/// Receives libguestfs events on the thread making the call: progress as values for the caller, the appliance's
/// console and libguestfs's own messages as log lines, and the console's recent lines for launch diagnostics.
final class EventSink {
    let logger: Logger
    let progress: ((ApplianceProgress) -> Void)?
    private var partialLine: [UInt8] = []
    /// The watch of the launch under way, which looks for the guest kernel's first line.
    var launchWatch: LaunchWatch?
    /// The last console lines (qemu's stderr among them), to explain a failed launch.
    private(set) var recentConsole: [String] = []

    init(logger: Logger, progress: ((ApplianceProgress) -> Void)?) {
        self.logger = logger
        self.progress = progress
    }

    func forgetConsole() {
        recentConsole.removeAll()
        partialLine.removeAll()
    }

    func receive(event: UInt64, text: UnsafeBufferPointer<CChar>?, numbers: UnsafeBufferPointer<UInt64>) {
        switch event {
        case UInt64(GUESTFS_EVENT_PROGRESS):
            // [procedure, serial, position, total]
            if numbers.count >= 4, let progress { progress(ApplianceProgress(done: numbers[2], total: numbers[3])) }
        case UInt64(GUESTFS_EVENT_APPLIANCE):
            guard let text else { return }
            text.withMemoryRebound(to: UInt8.self) { consume($0) }
        default:
            guard let text else { return }
            let message = String(decoding: text.withMemoryRebound(to: UInt8.self) { Array($0) }, as: UTF8.self)
                .trimmingTrailingNewlines()
            switch event {
            case UInt64(GUESTFS_EVENT_WARNING): logger.info("libguestfs: \(message)")
            case UInt64(GUESTFS_EVENT_TRACE): logger.trace("libguestfs trace: \(message)")
            default: logger.debug("libguestfs: \(message)")
            }
        }
    }

    /// The console arrives in arbitrary chunks; log it line by line.
    private func consume(_ bytes: UnsafeBufferPointer<UInt8>) {
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                let line = String(decoding: partialLine, as: UTF8.self).trimmingTrailingNewlines()
                partialLine.removeAll(keepingCapacity: true)
                logger.trace("appliance: \(line)")
                launchWatch?.saw(line)
                recentConsole.append(line)
                if recentConsole.count > 200 { recentConsole.removeFirst(recentConsole.count - 200) }
            } else {
                partialLine.append(byte)
            }
        }
    }
}

fileprivate extension String {
    func trimmingTrailingNewlines() -> String {
        var text = Substring(self)
        while let last = text.last, last.isNewline { text = text.dropLast() }
        return String(text)
    }
}

// MARK: Launching

extension Guestfs {
    /// The qemu libguestfs runs (LIBGUESTFS_HV or its built-in default).
    var hypervisor: String {
        get throws { try string("find the hypervisor") { guestfs_get_hv($0) } }
    }

    /// Where libguestfs keeps the appliance supermin builds (LIBGUESTFS_CACHEDIR, TMPDIR or /var/tmp).
    var cacheDirectory: String {
        get throws { try string("find the appliance cache directory") { guestfs_get_cachedir($0) } }
    }

    /// Where libguestfs looks for its appliance (LIBGUESTFS_PATH or its built-in directory), colon-separated.
    var searchPath: String {
        get throws {
            try call("find the appliance") { handle -> String? in guestfs_get_path(handle).map { String(cString: $0) } }
        }
    }

    /// Boots the appliance in `directory` (a supermin.d inside it) and builds it there: its own path and cache.
    func useAppliance(_ directory: String) throws {
        try run("use the appliance", directory) { guestfs_set_path($0, directory) }
        try run("use the appliance cache", directory) { guestfs_set_cachedir($0, directory) }
    }

    func setHypervisor(_ path: String) throws {
        try run("use the hypervisor", path) { guestfs_set_hv($0, path) }
    }

    /// Adds `arguments` to the appliance kernel's command line, after what LIBGUESTFS_APPEND already holds.
    func appendKernelArguments(_ arguments: String) throws {
        let existing = try call("read the kernel arguments") { handle -> String? in
            guestfs_get_append(handle).map { String(cString: $0) } ?? ""
        }
        let combined = existing.isEmpty ? arguments : existing + " " + arguments
        try run("set the kernel arguments", combined) { guestfs_set_append($0, combined) }
    }

    /// Runs qemu under KVM (`true`), under software emulation (`false`), or as qemu decides (`nil`: KVM where
    /// it can, which is how libguestfs probes).
    func requireKVM(_ kvm: Bool?) throws {
        // LIBGUESTFS_BACKEND_SETTINGS may carry either; both at once make libguestfs refuse to launch.
        for setting in ["force_kvm", "force_tcg"] {
            try run("clear the backend setting \(setting)") { guestfs_clear_backend_setting($0, setting) }
        }
        switch kvm {
        case true?: try run("require KVM") { guestfs_set_backend_setting($0, "force_kvm", "1") }
        case false?: try run("require TCG") { guestfs_set_backend_setting($0, "force_tcg", "1") }
        case nil: break
        }
    }

    /// Gives the appliance a user-mode network (before the launch), which guest commands then use.
    func setNetwork(_ enabled: Bool) throws {
        try run("\(enabled ? "enable" : "disable") the appliance's network") { guestfs_set_network($0, enabled ? 1 : 0) }
    }

    func setMemory(mebibytes: Int32) throws {
        try run("give the appliance \(mebibytes) MiB of memory") { guestfs_set_memsize($0, mebibytes) }
    }

    func setVirtualCPUs(_ cpus: Int32) throws {
        try run("give the appliance \(cpus) virtual CPUs") { guestfs_set_smp($0, cpus) }
    }

    /// Adds a drive with an explicit format (qemu never probes), the given cache mode ("unsafe", "writeback") and
    /// discard mode ("disable", "besteffort", "enable").
    func addDrive(_ path: String, format: String, readonly: Bool, cacheMode: String, discard: String) throws {
        var optargs = guestfs_add_drive_opts_argv()
        optargs.bitmask = imgc_add_drive_format | imgc_add_drive_readonly | imgc_add_drive_cachemode
            | imgc_add_drive_discard
        optargs.readonly = readonly ? 1 : 0
        try format.withCString { formatC in
            optargs.format = formatC
            try cacheMode.withCString { cacheModeC in
                optargs.cachemode = cacheModeC
                try discard.withCString { discardC in
                    optargs.discard = discardC
                    try run("add the drive (\(format))", path) { guestfs_add_drive_opts_argv($0, path, &optargs) }
                }
            }
        }
    }

    func launch() throws {
        try run("launch the appliance") { guestfs_launch($0) }
    }

    /// The process id of the running qemu.
    var qemuPID: pid_t {
        get throws { try number("find the appliance's process") { guestfs_get_pid($0) } }
    }

    /// Shuts the appliance down cleanly, which is what flushes its writes to the images.
    func shutdown() throws {
        try onDevicesOnly {
            try run("shut the appliance down (flushing writes to the image)") { guestfs_shutdown($0) }
        }
    }
}

// MARK: Devices and inspection

extension Guestfs {
    /// The guest's whole disks: /dev/sda, /dev/sdb... An attached disk is none of them: libguestfs names the disks in
    /// the order they were added, and the attached ones are added last.
    func disks() throws -> [String] {
        try allAndGuestDisks().guest
    }

    /// Every disk, attached ones included, and the guest's. The drives are fixed at launch, so they are listed once:
    /// list_devices waits for udev to settle, 0.4-0.5 s under software emulation, and a batch asks several times an
    /// image.
    private func allAndGuestDisks() throws -> (all: [String], guest: [String]) {
        let all = try listedDisks ?? strings("list the disks") { guestfs_list_devices($0) }
        listedDisks = all
        let guests = Array(all.prefix(max(0, all.count - attachedDrives)))
        guard let selectedDrive else { return (all, guests) }
        return (all, guests.indices.contains(selectedDrive) ? [guests[selectedDrive]] : [])
    }

    /// Whether some drives are not the guest's: attached data disks, or the other images of a batch.
    private var scoped: Bool { attachedDrives > 0 || selectedDrive != nil }

    /// The partitions of the guest's disks.
    func partitions() throws -> [String] {
        let all = try strings("list the partitions") { guestfs_list_partitions($0) }
        guard scoped else { return all }
        let disks = try disks()
        return all.filter { partition in disks.contains { QuickInspection.partition(partition, isOn: $0) } }
    }

    /// The RAID arrays made of the guest's devices only.
    func raidArrays() throws -> [String] {
        let all = try strings("list the RAID arrays") { guestfs_list_md_devices($0) }
        let isGuestDevice = try guestDeviceTest()
        return try all.filter(isGuestDevice)
    }

    /// Tells whether a device (a disk, a partition, a RAID array, a btrfsvol: mountable; a logical volume or a LUKS
    /// mapping, which are the guest's once `restrictLVMToGuestDisks` ran) is one of the guest's, not of an attached
    /// disk; the disks are listed once, for every device the test is asked about.
    private func guestDeviceTest() throws -> (String) throws -> Bool {
        guard scoped else { return { _ in true } }
        let (all, guestDisks) = try allAndGuestDisks()
        func onGuestDisk(_ device: String) -> Bool? {
            all.first { $0 == device || QuickInspection.partition(device, isOn: $0) }.map(guestDisks.contains)
        }
        return { device in
            let name = BtrfsVolumeName(device)?.plainDevice ?? device
            if let onGuest = onGuestDisk(name) { return onGuest }
            guard name.hasPrefix("/dev/md") else { return true }
            let members = try self.raidMembers(name)
            return !members.isEmpty && members.allSatisfy { onGuestDisk($0) == true }
        }
    }

    /// The devices an md array is made of.
    private func raidMembers(_ array: String) throws -> [String] {
        let list = try call("read the members of the RAID array", array) { guestfs_md_stat($0, array) }
        defer { guestfs_free_mdstat_list(list) }
        return (0..<Int(list.pointee.len)).map { String(cString: list.pointee.val[$0].mdstat_device) }
    }

    /// Makes LVM see only the guest's disks and the LUKS mappings opened on them, so that a volume group of an
    /// attached disk (even a clone of the guest's, with the same names and UUIDs) is never activated, renamed, given
    /// new UUIDs or trimmed. Through the daemon, every volume group is deactivated and scanned again: nothing may be
    /// mounted from one.
    ///
    /// `selected`, a batch's drive (by index) whose volume groups are all inactive (it was released, or they were
    /// deactivated just before): the daemon marks the disk and one appliance shell writes the filter and activates
    /// (`LVMFilter`), without the daemon's deactivation and rescan.
    func restrictLVMToGuestDisks(selected index: Int? = nil) throws {
        let devices = try disks() + openedMappings
        let action = "limit LVM to the guest's disks (\(devices.joined(separator: ", ")))"
        lvmFilter = nil
        if let index, devices == [ApplianceDrive.deviceName(index: index)] {
            let mark = LVMFilter.markKiB(drive: index)
            try run("mark \(devices[0]) for the LVM filter") { guestfs_blockdev_setra($0, devices[0], Int32(mark * 2)) }
            let said = try applianceShell(LVMFilter.activationScript(markKiB: mark), action: action)
            selectedKernelDisk = LVMFilter.disk(in: said)
        } else {
            var cStrings = devices.map { strdup($0) }
            defer { cStrings.forEach { free($0) } }
            cStrings.append(nil)
            try run(action) { handle in
                cStrings.withUnsafeBufferPointer { guestfs_lvm_set_filter(handle, $0.baseAddress) }
            }
        }
        lvmFilter = devices
    }

    /// Logical volumes, as /dev/VG/LV.
    func logicalVolumes() throws -> [String] {
        try strings("list the logical volumes") { guestfs_lvs($0) }
    }

    /// Every volume group with its free space in bytes.
    func volumeGroups() throws -> [(name: String, freeBytes: UInt64)] {
        let groups = try call("list the volume groups") { guestfs_vgs_full($0) }
        defer { guestfs_free_lvm_vg_list(groups) }
        return (0..<Int(groups.pointee.len)).map { index in
            let group = groups.pointee.val[index]
            return (String(cString: group.vg_name), group.vg_free)
        }
    }

    /// The subvolumes of the btrfs filesystem on `device` (mounted by libguestfs on a directory of its own for the
    /// call), each with its id and its path from the top level.
    func btrfsSubvolumes(_ device: String) throws -> [(id: UInt64, path: String)] {
        let list = try call("list the btrfs subvolumes of", device) { guestfs_btrfs_subvolume_list($0, device) }
        defer { guestfs_free_btrfssubvolume_list(list) }
        return (0..<Int(list.pointee.len)).map { index in
            let subvolume = list.pointee.val[index]
            return (subvolume.btrfssubvolume_id, String(cString: subvolume.btrfssubvolume_path))
        }
    }

    /// The id of the subvolume the btrfs filesystem on `device` mounts when no subvolume is named (5, the top level,
    /// unless set otherwise).
    func btrfsDefaultSubvolume(_ device: String) throws -> UInt64 {
        try call("read the default btrfs subvolume of", device) { handle -> UInt64? in
            let id = guestfs_btrfs_subvolume_get_default(handle, device)
            return id < 0 ? nil : UInt64(id)
        }
    }

    /// Filesystems and their types (device, type), as libguestfs's list_filesystems sees them (LUKS left out).
    func filesystems() throws -> [(device: String, type: String)] {
        let isGuestDevice = try guestDeviceTest()
        return try pairs("list filesystems") { guestfs_list_filesystems($0) }.map { ($0.0, $0.1) }
            .filter { try isGuestDevice($0.0) }
    }

    /// What blkid says a device holds ("ext4", "swap", "crypto_LUKS"...); nil when it reports nothing.
    func filesystemType(_ device: String) -> String? {
        guard case .success(let type) = perform("read the filesystem type of", device, {
            Self.takeString(guestfs_vfs_type($0, device))
        }) else { return nil }
        return type.isEmpty ? nil : type
    }

    func filesystemUUID(_ device: String) throws -> String {
        try string("read the UUID of", device) { guestfs_vfs_uuid($0, device) }
    }

    /// Checks the (unmounted) ext2/3/4 filesystem on `device` all through, fixing what is safe to fix (e2fsck -p -f):
    /// tune2fs changes the UUID of a filesystem with metadata checksums only when it was checked just before.
    func checkExtFilesystem(_ device: String) throws {
        try run("check the filesystem (e2fsck -f) on", device) { guestfs_e2fsck_f($0, device) }
    }

    /// Sets the UUID of the (unmounted) filesystem or swap area on `device`.
    func setUUID(_ device: String, _ uuid: String) throws {
        try onDevicesOnly { try run("set the UUID \(uuid) on", device) { guestfs_set_uuid($0, device, uuid) } }
    }

    /// LVM physical volumes, by device.
    func physicalVolumes() throws -> [String] {
        try strings("list the LVM physical volumes") { guestfs_pvs($0) }
    }

    /// The UUID of an LVM physical volume, as LVM prints it.
    func physicalVolumeUUID(_ device: String) throws -> String {
        try onDevicesOnly { try string("read the LVM UUID of", device) { guestfs_pvuuid($0, device) } }
    }

    /// Volume group names.
    func volumeGroupNames() throws -> [String] {
        try strings("list the volume groups") { guestfs_vgs($0) }
    }

    func volumeGroupUUID(_ group: String) throws -> String {
        try onDevicesOnly { try string("read the UUID of the volume group", group) { guestfs_vguuid($0, group) } }
    }

    /// New random UUIDs for every physical volume, then for every volume group (which must be inactive).
    func renewLVMUUIDs() throws {
        try onDevicesOnly {
            try run("give the LVM physical volumes new UUIDs") { guestfs_pvchange_uuid_all($0) }
            try run("give the LVM volume groups new UUIDs") { guestfs_vgchange_uuid_all($0) }
        }
    }

    /// The device holding the filesystem whose UUID is `uuid` (blkid -U), by its canonical name.
    func device(withUUID uuid: String) throws -> String {
        try string("find the filesystem of UUID", uuid) { guestfs_findfs_uuid($0, uuid) }
    }

    /// Up to `count` bytes from the start of a block device (superblocks, swap headers).
    func preadDevice(_ device: String, count: Int) throws -> [UInt8] {
        try call("read the start of", device) { handle -> [UInt8]? in
            var size = 0
            return Guestfs.takeBytes(guestfs_pread_device(handle, device, Int32(count), 0, &size), count: size)
        }
    }

    /// Writes `bytes` at `offset` of a block device; returns how many it took. `action` names the write in errors.
    func pwriteDevice(_ device: String, _ bytes: [UInt8], offset: Int64, action: String) throws -> Int {
        Int(try Self.withCBuffer(bytes) { pointer, count in
            try number(action, device) { guestfs_pwrite_device($0, device, pointer, count, offset) }
        })
    }

    /// Discards a whole block device (blkdiscard).
    func discard(_ device: String) throws {
        try run("discard", device) { guestfs_blkdiscard($0, device) }
    }

    /// Makes a block device read-only in the appliance's kernel (its partitions with it): nothing written to it
    /// from then on reaches the image.
    func setReadOnly(_ device: String) throws {
        try run("make read-only", device) { guestfs_blockdev_setro($0, device) }
    }

    /// Writes what the appliance holds to the drives and flushes qemu's caches to the image files (the daemon
    /// fsyncs every block device after sync(2)).
    func sync() throws {
        try run("flush the writes to the images") { guestfs_sync($0) }
    }

    /// In a batch, flushes the selected disk (sync(2), then `sync DISK`: an fsync of the device, which sends qemu
    /// the flush) and makes it read-only, in one appliance shell; false where the disk's kernel name is not known,
    /// for the caller to do both through the daemon. The daemon's `sync` runs a udev settle for every disk of the
    /// launch (70 ms each under TCG), and so does its `fstrim` before trimming.
    func flushAndProtectSelectedDisk() throws -> Bool {
        guard let disk = selectedKernelDisk else { return false }
        try applianceShell("sync && sync \(disk) && blockdev --setro \(disk)",
                           action: "flush the writes to the image and make its disk read-only", keepsDevices: true)
        return true
    }

    func zero(_ device: String) throws {
        try run("zero", device) { guestfs_zero_device($0, device) }
    }

    /// Creates the logical volume `volume` in `group` over all its free extents, whatever they hold: free extents
    /// may still carry the signature of a volume removed from them (a swap area, a filesystem), at which lvcreate
    /// stops to ask whether to wipe it, and libguestfs's lvcreate_free gives it no --yes. The block layout holds
    /// through the call: the caller removes the volume again before anything else runs.
    func createVolumeOverFreeSpace(_ volume: String, group: String) throws {
        let layout = blockLayout
        defer { blockLayout = layout }
        try applianceShell("lvm lvcreate --yes --wipesignatures n --zero n --extents 100%FREE --name "
                           + shellQuoted(volume) + " " + shellQuoted(group),
                           action: "claim the free space of the volume group \(group) as /dev/\(group)/\(volume)")
    }

    func removeVolume(_ device: String) throws {
        try run("remove the temporary volume", device) { guestfs_lvremove($0, device) }
    }

    /// The operating systems' root devices libguestfs's inspection finds.
    /// (An operating system on an attached disk is not the guest's, and is left out.)
    func inspectOS() throws -> [String] {
        let roots = try strings("inspect for operating systems") { guestfs_inspect_os($0) }
        let isGuestDevice = try guestDeviceTest()
        return try roots.filter(isGuestDevice)
    }

    /// An inspected root's textual facts.
    enum InspectedText: String {
        case type, distribution, osinfo = "osinfo id", architecture, hostname, productName = "product name"
        case packageFormat = "package format", packageManager = "package manager"
        /// Windows guests only.
        case productVariant = "product variant", windowsSystemRoot = "Windows system root"
    }

    /// An inspected root's fact as libguestfs returns it ("unknown" when it could not tell).
    func inspected(_ fact: InspectedText, root: String) throws -> String {
        try string("read the \(fact.rawValue) of", root) { handle in
            switch fact {
            case .type: guestfs_inspect_get_type(handle, root)
            case .distribution: guestfs_inspect_get_distro(handle, root)
            case .osinfo: guestfs_inspect_get_osinfo(handle, root)
            case .architecture: guestfs_inspect_get_arch(handle, root)
            case .hostname: guestfs_inspect_get_hostname(handle, root)
            case .productName: guestfs_inspect_get_product_name(handle, root)
            case .packageFormat: guestfs_inspect_get_package_format(handle, root)
            case .packageManager: guestfs_inspect_get_package_management(handle, root)
            case .productVariant: guestfs_inspect_get_product_variant(handle, root)
            case .windowsSystemRoot: guestfs_inspect_get_windows_systemroot(handle, root)
            }
        }
    }

    func inspectedVersion(root: String) throws -> (major: Int, minor: Int) {
        let major = try number("read the major version of", root) { guestfs_inspect_get_major_version($0, root) }
        let minor = try number("read the minor version of", root) { guestfs_inspect_get_minor_version($0, root) }
        return (Int(major), Int(minor))
    }

    /// An inspected root's mountpoints (mountpoint, device).
    func inspectedMountpoints(root: String) throws -> [(mountpoint: String, device: String)] {
        try pairs("read the mountpoints of", root) { guestfs_inspect_get_mountpoints($0, root) }.map { ($0.0, $0.1) }
    }

    func mount(_ device: String, on mountpoint: String, readonly: Bool) throws {
        try run("mount \(device) (\(readonly ? "read-only" : "read-write")) on", mountpoint) {
            readonly ? guestfs_mount_ro($0, device, mountpoint) : guestfs_mount($0, device, mountpoint)
        }
    }

    func unmountAll() throws {
        try onDevicesOnly { try run("unmount the guest filesystems") { guestfs_umount_all($0) } }
    }

    /// What is mounted where (device, mountpoint).
    func mountpoints() throws -> [(device: String, mountpoint: String)] {
        try pairs("list the mounted filesystems") { guestfs_mountpoints($0) }.map { ($0.0, $0.1) }
    }

    /// Discards the unused blocks of the filesystem mounted at `mountpoint`, the writes flushed first as the daemon
    /// does (in a batch, to the selected disk alone: see `flushAndProtectSelectedDisk`).
    func fstrim(_ mountpoint: String) throws {
        if let disk = selectedKernelDisk {
            try applianceShell("sync && sync \(disk) && fstrim -- \"${root:?}\"\(shellQuoted(mountpoint))",
                               action: "trim the free space of \(mountpoint)", keepsDevices: true)
        } else {
            try run("trim the free space of", mountpoint) { guestfs_fstrim_argv($0, mountpoint, nil) }
        }
    }
}

// MARK: LUKS

extension Guestfs {
    func luksUUID(_ device: String) throws -> String {
        try string("read the LUKS UUID of", device) { guestfs_luks_uuid($0, device) }
    }

    /// Opens the LUKS `device` as /dev/mapper/`name`. libguestfs's trace shows the key as "***", and the daemon
    /// hands it to cryptsetup in a file: it appears in no log.
    func cryptsetupOpen(_ device: String, key: String, name: String, readonly: Bool) throws {
        var optargs = guestfs_cryptsetup_open_argv()
        optargs.bitmask = imgc_cryptsetup_open_readonly
        optargs.readonly = readonly ? 1 : 0
        try run("open the LUKS device", device) { guestfs_cryptsetup_open_argv($0, device, key, name, &optargs) }
        openedMappings.append("/dev/mapper/\(name)")
    }

    func cryptsetupClose(_ mapping: String) throws {
        try run("close the LUKS mapping", mapping) { guestfs_cryptsetup_close($0, mapping) }
        openedMappings.removeAll { $0 == mapping || $0 == "/dev/mapper/\(mapping)" }
    }

    /// Scans for LVM volume groups again (those inside newly opened LUKS devices) and activates them all, or
    /// deactivates them all.
    /// With attached disks, the scan is `restrictLVMToGuestDisks` where LUKS mappings were opened since the filter
    /// was set, to take them in (where a volume group is in use, a LUKS device open inside a logical volume, LVM
    /// keeps the filter it had); with the same devices, the scan keeps to the filter already set, at half the cost.
    func activateVolumeGroups(_ activate: Bool) throws {
        if activate, scoped, (try? disks() + openedMappings) != lvmFilter, (try? restrictLVMToGuestDisks()) != nil {
            return
        }
        if activate {
            try run("scan for LVM volume groups") { guestfs_lvm_scan($0, 1) }
        } else {
            try run("deactivate the LVM volume groups") { guestfs_vg_activate_all($0, 0) }
        }
    }
}

// MARK: Files

/// A guest path as libguestfs takes it: its bytes (`guestPathBytes`), so that a name listed with a byte that is not
/// UTF-8 reaches the same file. The implicit String conversion would send the escape characters' UTF-8 instead.
private func cPath(_ path: String) -> [CChar] { guestPathBytes(path).map { CChar(bitPattern: $0) } + [0] }

extension Guestfs {
    /// Status of a guest path, following symlinks (inside the guest) or not; nil when nothing is there.
    func status(_ path: String, followingLinks: Bool) throws -> FileStatus? {
        let key = (followingLinks ? "S" : "L") + path
        // A deferred mount pending: the first call mounts (and forgets what was read before).
        if deferredMount == nil, let known = statuses[key] { return known }
        let found = try onlyReading { try readStatus(path, followingLinks: followingLinks) }
        statuses[key] = .some(found)
        return found
    }

    private func readStatus(_ path: String, followingLinks: Bool) throws -> FileStatus? {
        guard let raw = try callUnlessAbsent("read the status of", path, absentWhen: [ENOENT, ENOTDIR], {
            followingLinks ? guestfs_statns($0, cPath(path)) : guestfs_lstatns($0, cPath(path))
        }) else { return nil }
        defer { guestfs_free_statns(raw) }
        let mode = raw.pointee.st_mode
        let kind: FileStatus.Kind
        switch mode & Int64(S_IFMT) {
        case Int64(S_IFREG): kind = .regular
        case Int64(S_IFDIR): kind = .directory
        case Int64(S_IFLNK): kind = .symlink
        default: kind = .other
        }
        return FileStatus(kind: kind, mode: UInt32(truncatingIfNeeded: mode & 0o7777),
                          uid: Int(raw.pointee.st_uid), gid: Int(raw.pointee.st_gid), size: raw.pointee.st_size)
    }

    /// The inode number of `path` itself.
    func inode(_ path: String) throws -> Int64 {
        let raw = try onlyReading { try call("read the inode of", path) { guestfs_lstatns($0, cPath(path)) } }
        defer { guestfs_free_statns(raw) }
        return raw.pointee.st_ino
    }

    func list(_ directory: String) throws -> [String] {
        try onlyReading {
            try call("list", directory) { Self.takeStrings(guestfs_ls($0, cPath(directory)), decode: Self.guestPath) }
        }
    }

    /// The paths matching a glob, directories without a trailing slash.
    func glob(_ pattern: String) throws -> [String] {
        var optargs = guestfs_glob_expand_opts_argv()
        optargs.bitmask = imgc_glob_expand_directoryslash
        optargs.directoryslash = 0
        return try onlyReading {
            try call("expand the glob", pattern) {
                Self.takeStrings(guestfs_glob_expand_opts_argv($0, cPath(pattern), &optargs), decode: Self.guestPath)
            }
        }
    }

    func readlink(_ path: String) throws -> String {
        try onlyReading {
            try call("read the link", path) { Self.takeString(guestfs_readlink($0, cPath(path)), decode: Self.guestPath) }
        }
    }

    /// Up to `count` bytes of a guest file from `offset`, carried in the reply of one call (a short read is the end).
    func pread(_ path: String, count: Int, offset: Int64 = 0) throws -> [UInt8] {
        try onlyReading {
            try call("read", path) { handle -> [UInt8]? in
                var size = 0
                return Guestfs.takeBytes(guestfs_pread(handle, cPath(path), Int32(count), offset, &size), count: size)
            }
        }
    }

    /// An extended attribute of `path` itself; nil when it has none, or the filesystem has none at all.
    func extendedAttribute(_ path: String, name: String) throws -> [UInt8]? {
        try onlyReading {
            try callUnlessAbsent("read the extended attribute \(name) of", path,
                                 absentWhen: [ENODATA, EOPNOTSUPP]) { handle -> [UInt8]? in
                var size = 0
                let value = guestfs_lgetxattr(handle, cPath(path), name, &size)
                return Guestfs.takeBytes(value, count: size)
            }
        }
    }

    func setExtendedAttribute(_ path: String, name: String, value: [UInt8]) throws {
        let action = "set the extended attribute \(name) of"
        guard let length = Int32(exactly: value.count) else {
            throw GuestError(guest: guest, action: action, path: path,
                             message: "a value of \(value.count) bytes is too large")
        }
        try Self.withCBuffer(value) { pointer, _ in
            try run(action, path) { guestfs_lsetxattr($0, name, pointer, length, cPath(path)) }
        }
    }

    /// Replaces the content of `path` with the bytes of one message (limited to a few MiB).
    func write(_ path: String, _ content: [UInt8]) throws {
        try Self.withCBuffer(content) { pointer, count in
            try run("write", path) { guestfs_write($0, cPath(path), pointer, count) }
        }
    }

    /// Replaces the content of `path` with the host file `hostFile`, as a file transfer.
    func upload(_ hostFile: String, to path: String) throws {
        try run("upload", path) { guestfs_upload($0, hostFile, cPath(path)) }
    }

    func mkdirWithParents(_ path: String) throws {
        try run("create the directory (with parents)", path) { guestfs_mkdir_p($0, cPath(path)) }
    }

    func mkdir(_ path: String, mode: UInt32) throws {
        try run("create the directory", path) { guestfs_mkdir_mode($0, cPath(path), Int32(mode & 0o7777)) }
    }

    func removeRecursively(_ path: String) throws {
        try run("remove recursively", path) { guestfs_rm_rf($0, cPath(path)) }
    }

    func remove(_ path: String) throws {
        try run("remove", path) { guestfs_rm_f($0, cPath(path)) }
    }

    func chmod(_ path: String, mode: UInt32) throws {
        try run("change the mode (\(String(mode, radix: 8))) of", path) { guestfs_chmod($0, Int32(mode & 0o7777), cPath(path)) }
    }

    /// lchown: a symlink's own owner changes, never what it points to.
    func lchown(_ path: String, uid: Int32, gid: Int32) throws {
        try run("change the owner (\(uid):\(gid)) of", path) { guestfs_lchown($0, uid, gid, cPath(path)) }
    }

    func symlink(target: String, at path: String) throws {
        try run("create the symlink (to \(target))", path) { guestfs_ln_s($0, cPath(target), cPath(path)) }
    }

    func truncate(_ path: String, size: Int64) throws {
        try run("truncate (to \(size) bytes)", path) { guestfs_truncate_size($0, cPath(path), size) }
    }

    func touch(_ path: String) throws {
        try run("touch", path) { guestfs_touch($0, cPath(path)) }
    }

    func scrubFile(_ path: String) throws {
        try run("scrub", path) { guestfs_scrub_file($0, cPath(path)) }
    }

    func rename(_ from: String, to: String) throws {
        try run("rename (to \(to))", from) { guestfs_rename($0, cPath(from), cPath(to)) }
    }
}

// MARK: Guest commands

extension Guestfs {
    /// Runs `arguments` (the program first) chrooted into the mounted guest, with /dev, /proc and /sys bound into it,
    /// and returns its stdout. A non-zero exit fails with its stderr as libguestfs's message; the exit status itself
    /// is not passed on.
    func command(_ arguments: [String], action: String) throws -> String {
        blockLayout = nil
        var cStrings = arguments.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        cStrings.append(nil)
        return try string(action) { handle in
            cStrings.withUnsafeBufferPointer { guestfs_command(handle, $0.baseAddress) }
        }
    }

    /// Runs `command` with the appliance's own /bin/sh (the libguestfs daemon's `debug sh`): not chrooted, in the
    /// appliance's / with the guest mounted at $root (/sysroot), stdin /dev/null, stderr and stdout together.
    /// Returns what it printed; a non-zero exit fails with the output (cut at 64 KiB) as libguestfs's message.
    /// `keepsDevices`: the command neither makes nor changes a device, partition, volume or swap area, so what the
    /// session knows of them (`blockLayout`) holds.
    @discardableResult
    func applianceShell(_ command: String, action: String, keepsDevices: Bool = false) throws -> String {
        if !keepsDevices { blockLayout = nil }
        // The daemon joins the extra arguments with spaces into one `sh -c` string: one argument keeps it as is.
        let cStrings: [UnsafeMutablePointer<CChar>?] = [strdup(command), nil]
        defer { cStrings.forEach { free($0) } }
        return try string(action) { handle in
            cStrings.withUnsafeBufferPointer { guestfs_debug(handle, "sh", $0.baseAddress) }
        }
    }

    /// Uploads the host file `hostFile` to `path` in the appliance itself (not the guest), created with `mode`.
    func uploadToAppliance(_ hostFile: String, to path: String, mode: UInt32) throws {
        try run("upload \(hostFile) into the appliance", path) {
            guestfs_debug_upload($0, hostFile, path, Int32(mode))
        }
    }
}

// MARK: Windows

extension Guestfs {
    /// Drive letters and the devices libguestfs maps them to (from the SYSTEM hive's MountedDevices).
    func inspectedDriveMappings(root: String) throws -> [(letter: String, device: String)] {
        try pairs("read the drive letters of", root) { guestfs_inspect_get_drive_mappings($0, root) }.map { ($0.0, $0.1) }
    }

    /// The path of `path` whose components match the guest's names ignoring case, as Windows sees NTFS names.
    func caseSensitivePath(_ path: String) throws -> String {
        try string("resolve the case of", path) { guestfs_case_sensitive_path($0, path) }
    }

    /// "msdos" or "gpt" (or another of parted's names) for a whole disk.
    func partitionTableType(_ device: String) throws -> String {
        try string("read the partition table type of", device) { guestfs_part_get_parttype($0, device) }
    }

    /// The whole disk a partition is on.
    func disk(ofPartition partition: String) throws -> String {
        try string("find the disk of", partition) { guestfs_part_to_dev($0, partition) }
    }

    /// The string values under `key` (a path of subkeys from the hive's root) of the registry hive at `hive`, read
    /// in the appliance by hivex, read-only; a missing key or value is left out.
    func registryStrings(hive: String, key: [String], values names: [String]) throws -> [String: String] {
        var optargs = guestfs_hivex_open_argv()
        optargs.bitmask = 0
        try run("open the registry hive", hive) { guestfs_hivex_open_argv($0, hive, &optargs) }
        defer { _ = try? run("close the registry hive", hive) { guestfs_hivex_close($0) } }
        func handleNumber(_ action: String, _ body: (OpaquePointer) -> Int64) throws -> Int64 {
            try call(action, hive) { handle -> Int64? in
                let result = body(handle)
                return result == -1 ? nil : result
            }
        }
        var node = try handleNumber("find the root key of") { guestfs_hivex_root($0) }
        for name in key {
            let parent = node
            node = try handleNumber("find the key \(name) in") { guestfs_hivex_node_get_child($0, parent, name) }
            if node == 0 { return [:] }
        }
        var found: [String: String] = [:]
        for name in names {
            let parent = node
            let value = try handleNumber("find the value \(name) in") { guestfs_hivex_node_get_value($0, parent, name) }
            guard value != 0 else { continue }
            found[name] = try string("read the value \(name) in", hive) { guestfs_hivex_value_string($0, value) }
        }
        return found
    }
}
