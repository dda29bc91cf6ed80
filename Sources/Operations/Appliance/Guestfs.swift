import CGuestFS
import Logging

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

/// A libguestfs handle: the one place where libguestfs is called.
///
/// Every call goes through `perform`, which turns the C convention (-1 or NULL) into a `GuestError` built from
/// `guestfs_last_error` right after the failing call, naming the image, the action and the guest path.
/// A handle is not thread-safe, and neither is this class: one owner at a time.
final class Guestfs {
    private var handle: OpaquePointer?
    /// Names the image in every error.
    let guest: String
    let events: EventSink

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
    struct Failure: Error {
        var error: GuestError
        var errno: Int32
    }

    /// Runs one libguestfs call. `body` returns nil when the C call reported failure.
    func perform<R>(_ action: String, _ path: String?, _ body: (OpaquePointer) -> R?) -> Result<R, Failure> {
        guard let handle else {
            return .failure(Failure(error: GuestError(guest: guest, action: action, path: path,
                                                      message: "the appliance is already closed"),
                                    errno: 0))
        }
        // libguestfs keeps error handlers per thread, and callers may move between threads: without this, a failure
        // on another thread than the one that created the handle would be printed to stderr.
        guestfs_set_error_handler(handle, nil, nil)
        if let result = body(handle) { return .success(result) }
        let message = guestfs_last_error(handle).map { String(cString: $0) } ?? "unknown libguestfs error"
        return .failure(Failure(error: GuestError(guest: guest, action: action, path: path, message: message),
                                errno: guestfs_last_errno(handle)))
    }

    func call<R>(_ action: String, _ path: String? = nil, _ body: (OpaquePointer) -> R?) throws -> R {
        switch perform(action, path, body) {
        case .success(let value): return value
        case .failure(let failure): throw failure.error
        }
    }

    /// Like `call`, but a failure with one of `errnos` (ENOENT for a missing path) means "not there": nil.
    func callUnlessAbsent<R>(_ action: String, _ path: String?, absentWhen errnos: Set<Int32>,
                             _ body: (OpaquePointer) -> R?) throws -> R? {
        switch perform(action, path, body) {
        case .success(let value): return value
        case .failure(let failure) where errnos.contains(failure.errno): return nil
        case .failure(let failure): throw failure.error
        }
    }

    // Typed forms of the C conventions.

    func run(_ action: String, _ path: String? = nil, _ body: (OpaquePointer) -> Int32) throws {
        _ = try call(action, path) { handle -> Int32? in
            let result = body(handle)
            return result == -1 ? nil : result
        }
    }

    func number(_ action: String, _ path: String? = nil, _ body: (OpaquePointer) -> Int32) throws -> Int32 {
        try call(action, path) { handle -> Int32? in
            let result = body(handle)
            return result == -1 ? nil : result
        }
    }

    func string(_ action: String, _ path: String? = nil,
                _ body: (OpaquePointer) -> UnsafeMutablePointer<CChar>?) throws -> String {
        try call(action, path) { handle in Self.takeString(body(handle)) }
    }

    func strings(_ action: String, _ path: String? = nil,
                 _ body: (OpaquePointer) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) throws -> [String] {
        try call(action, path) { handle in Self.takeStrings(body(handle)) }
    }

    /// Takes ownership of a malloc'ed C string.
    static func takeString(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
        guard let pointer else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// Takes ownership of a malloc'ed, NULL-terminated array of malloc'ed C strings.
    static func takeStrings(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String]? {
        guard let list else { return nil }
        defer { free(list) }
        var strings: [String] = []
        var index = 0
        while let element = list[index] {
            strings.append(String(cString: element))
            free(element)
            index += 1
        }
        return strings
    }

    /// libguestfs returns maps as flat lists: key, value, key, value...
    static func pairs(_ flat: [String]) -> [(String, String)] {
        stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
    }

    /// Takes ownership of a malloc'ed buffer of `count` bytes (read_file, lgetxattr).
    static func takeBytes(_ pointer: UnsafeMutablePointer<CChar>?, count: Int) -> [UInt8]? {
        guard let pointer else { return nil }
        defer { free(pointer) }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: count) { Array(UnsafeBufferPointer(start: $0, count: count)) }
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
            case UInt64(GUESTFS_EVENT_WARNING): logger.notice("libguestfs: \(message)")
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

/// The settings a launch makes.
extension Guestfs {
    /// The qemu libguestfs runs (LIBGUESTFS_HV or its built-in default).
    var hypervisor: String {
        get throws { try string("find the hypervisor") { guestfs_get_hv($0) } }
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

    func launch() throws {
        try run("launch the appliance") { guestfs_launch($0) }
    }

    /// The process id of the running qemu.
    var qemuPID: pid_t {
        get throws { try number("find the appliance's process") { guestfs_get_pid($0) } }
    }
}

/// The calls more than one part of the appliance code makes.
extension Guestfs {
    /// Status of a guest path, following symlinks (inside the guest) or not; nil when nothing is there.
    func status(_ path: String, followingLinks: Bool) throws -> FileStatus? {
        guard let raw = try callUnlessAbsent("read the status of", path, absentWhen: [ENOENT, ENOTDIR], {
            followingLinks ? guestfs_statns($0, path) : guestfs_lstatns($0, path)
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

    /// Up to `count` bytes of a guest file from `offset`, carried in the reply of one call (a short read is the end).
    func pread(_ path: String, count: Int, offset: Int64 = 0) throws -> [UInt8] {
        try call("read", path) { handle -> [UInt8]? in
            var size = 0
            return Guestfs.takeBytes(guestfs_pread(handle, path, Int32(count), offset, &size), count: size)
        }
    }

    /// Up to `count` bytes from the start of a block device (superblocks, swap headers).
    func preadDevice(_ device: String, count: Int) throws -> [UInt8] {
        try call("read the start of", device) { handle -> [UInt8]? in
            var size = 0
            return Guestfs.takeBytes(guestfs_pread_device(handle, device, Int32(count), 0, &size), count: size)
        }
    }
}

/// LUKS: finding encrypted devices, opening and closing their mappings.
extension Guestfs {
    /// The filesystem type blkid reports ("crypto_LUKS" for a LUKS device); nil when it reports none.
    func filesystemType(_ device: String) -> String? {
        guard case .success(let type) = perform("read the filesystem type of", device, {
            Self.takeString(guestfs_vfs_type($0, device))
        }) else { return nil }
        return type.isEmpty ? nil : type
    }

    func luksUUID(_ device: String) throws -> String {
        try string("read the LUKS UUID of", device) { guestfs_luks_uuid($0, device) }
    }

    /// Opens the LUKS `device` as /dev/mapper/`name`. libguestfs's trace shows the key as "***", and the daemon
    /// hands it to cryptsetup in a file: it appears in no log.
    func cryptsetupOpen(_ device: String, key: String, name: String, readonly: Bool) -> Result<Void, Failure> {
        var optargs = guestfs_cryptsetup_open_argv()
        optargs.bitmask = imgc_cryptsetup_open_readonly
        optargs.readonly = readonly ? 1 : 0
        return perform("open the LUKS device", device) { handle -> Void? in
            guestfs_cryptsetup_open_argv(handle, device, key, name, &optargs) == -1 ? nil : ()
        }
    }

    func cryptsetupClose(_ mapping: String) throws {
        try run("close the LUKS mapping", mapping) { guestfs_cryptsetup_close($0, mapping) }
    }

    /// Scans for LVM volume groups again (those inside newly opened LUKS devices) and activates them all, or
    /// deactivates them all.
    func activateVolumeGroups(_ activate: Bool) throws {
        if activate {
            try run("scan for LVM volume groups") { guestfs_lvm_scan($0, 1) }
        } else {
            try run("deactivate the LVM volume groups") { guestfs_vg_activate_all($0, 0) }
        }
    }
}
