import Diagnostics
import Appliance
import Foundation
import Formats
import Logging
import Operations

#if canImport(Glibc)
import Glibc
import Host
#endif

public struct BootCheckOptions: Sendable {
    /// The whole check, boot to power-off: past it the check fails with the stage reached and the console's last
    /// lines.
    public var timeout: Double
    /// BIOS or UEFI; nil to choose from the image's partition table.
    public var firmware: Firmware?
    /// Where to keep the serial console's log; nil keeps it (in TMPDIR) only when the check fails.
    public var keepConsole: String?
    /// How the appliance that reads the image's identities before the boot is launched (its acceleration is the
    /// boot's too); its LUKS keys are for that reading: the guest itself is booted without them (it asks on its
    /// console, and the check then fails at the timeout). The check adds its own logger and cancellation.
    public var appliance: ApplianceOptions
    public var cancellation: Cancellation?
    public var logger: Logger
    public var access: FileAccess
    /// 1, or 2 to boot the same machine again after the first boot powered it off: what the first boot changed
    /// (first-boot scripts run and gone) is what the second finds. Each boot has the whole timeout.
    public var boots: Int

    public static let defaultTimeout: Double = 900

    public init(timeout: Double = BootCheckOptions.defaultTimeout, firmware: Firmware? = nil,
                keepConsole: String? = nil, appliance: ApplianceOptions = ApplianceOptions(),
                cancellation: Cancellation? = nil, logger: Logger = Logger(label: "imgcustomize.boot-check"),
                access: FileAccess = FileAccess(), boots: Int = 1) {
        self.appliance = appliance
        self.boots = boots
        self.timeout = timeout
        self.firmware = firmware
        self.keepConsole = keepConsole
        self.cancellation = cancellation
        self.logger = logger
        self.access = access
    }
}

/// Boots a throwaway overlay of an image under qemu with a NoCloud seed, logs in over SSH with a fresh key and
/// checks what a cloud user relies on: the metadata's hostname and key arrived, user-data ran, the machine-id and
/// SSH host keys are new, the serial console, a writable root, no failed units, cloud-init without errors, and that
/// the first-boot scripts imgcustomize queued ran once each and succeeded. The image itself is only read.
public struct BootCheck: Sendable {
    public var options: BootCheckOptions

    public init(options: BootCheckOptions = BootCheckOptions()) {
        self.options = options
    }

    public func run(image: String) throws -> BootReport {
        let started = Date()
        let inspection = try ImageInspector.requireSafe(path: image, policy: SafetyPolicy(access: options.access))
        let path = inspection.resolvedPath
        let firmware = try options.firmware ?? Firmware.detect(openImage(path: path, format: inspection.format))
        guard let qemuFormat = ApplianceDrive.Format(rawValue: inspection.format.qemuFormat) else {
            throw GuestError(guest: image, action: "boot-check", message: "qemu does not boot \(inspection.format.rawValue) images here",
                                 hint: "convert it to qcow2 or raw first (imgcustomize convert)")
        }
        if firmware == .uefi {
            for file in [OVMF.code, OVMF.vars] where !FileManager.default.isReadableFile(atPath: file) {
                throw GuestError(guest: image, action: "boot-check", message: "booting with UEFI needs \(file), which is missing",
                                     hint: "install Debian's ovmf package (scripts/install-deps), or use --bios")
            }
        }

        // What the image holds before any boot, to tell fresh identities from copied ones; its launch also decides
        // KVM or TCG exactly as every appliance launch does.
        options.logger.info("reading the image's machine-id, SSH host keys and boot configuration")
        let before = try ImageState.read(image: path, format: qemuFormat, options: options)
        try options.cancellation?.check(image: image)

        let scratch = try temporaryDirectory(image: image, prefix: "imgcustomize-boot-check")
        defer { scratch.remove() }
        let run = try GuestRun(image: path, format: inspection.format, firmware: firmware,
                               acceleration: before.acceleration, scratch: scratch.path, options: options)
        var report = try run.boot(imageName: image, before: before, again: options.boots > 1)
        if options.boots > 1, report.failure == nil {
            options.logger.info("booting the same machine a second time")
            let second = try run.boot(imageName: image, before: before, again: false)
            report.append(second: second)
        }
        report.warnings = before.warnings
        report.seconds = Date().timeIntervalSince(started)
        report.consoleLog = try keepConsole(run.consolePath, image: image, failed: !report.passed)
        return report
    }

    /// The console log where the user asked for it, or on failure in TMPDIR; nil once the scratch goes.
    private func temporaryDirectory(image: String, prefix: String) throws -> TemporaryDirectory {
        do {
            return try TemporaryDirectory(prefix: prefix)
        } catch {
            throw GuestError(guest: image, action: "boot-check", message: Diagnostic(of: error).message, hint: "set TMPDIR to a writable directory")
        }
    }

    private func keepConsole(_ console: String, image: String, failed: Bool) throws -> String? {
        if let keep = options.keepConsole {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: console, toPath: keep)
            return keep
        }
        guard failed else { return nil }
        // Kept after the run on purpose: the user reads it.
        let directory = try temporaryDirectory(image: image, prefix: "imgcustomize-boot-console")
        directory.keep()
        let kept = directory.appending("console.log")
        try FileManager.default.copyItem(atPath: console, toPath: kept)
        return kept
    }
}

enum OVMF {
    static let code = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    static let vars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
}

/// The identities and boot settings an image holds before it is booted.
struct ImageState: Sendable {
    var acceleration: Acceleration
    var machineID: String?
    /// "TYPE BASE64" of each /etc/ssh/ssh_host_*_key.pub.
    var hostKeys: Set<String>
    /// The boot loader's configuration asks for console=ttyS0.
    var serialConsole: Bool
    var cloudInit: Bool
    /// The first-boot scripts queued in the image (names in `FirstbootQueue.scripts`), in order.
    var firstbootQueue: [String] = []
    /// Why the image's guest could not be read (then only the boot itself is checked).
    var unreadable: String?
    /// The reading launch's warnings (KVM given up for TCG, a LUKS key for no device).
    var warnings: [String] = []

    static func read(image: String, format: ApplianceDrive.Format, options: BootCheckOptions) throws -> ImageState {
        var appliance = options.appliance
        appliance.logger = options.logger
        appliance.cancellation = options.cancellation
        let session = try ApplianceSession(drives: [ApplianceDrive(path: image, format: format, readonly: true)],
                                           options: appliance)
        defer { try? session.close() }
        var state = ImageState(acceleration: session.launchReport.acceleration, machineID: nil, hostKeys: [],
                               serialConsole: false, cloudInit: false, unreadable: nil, warnings: session.warnings)
        do {
            let guest = try session.mountOperatingSystem()
            if try guest.isFile("/etc/machine-id") {
                let id = try guest.readText("/etc/machine-id").trimmingCharacters(in: .whitespacesAndNewlines)
                state.machineID = id.isEmpty || id == "uninitialized" ? nil : id
            }
            let keys = try guest.isDirectory("/etc/ssh") ? try guest.list("/etc/ssh") : []
            for name in keys where name.hasPrefix("ssh_host_") && name.hasSuffix(".pub") {
                let fields = try guest.readText("/etc/ssh/" + name).split(separator: " ")
                if fields.count >= 2 { state.hostKeys.insert("\(fields[0]) \(fields[1])") }
            }
            for config in ["/etc/default/grub", "/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/etc/kernel/cmdline"]
            where try guest.isFile(config) {
                if try guest.readText(config).contains("console=ttyS0") { state.serialConsole = true }
            }
            state.cloudInit = try guest.exists("/usr/bin/cloud-init")
            if try guest.isDirectory(FirstbootQueue.scripts) {
                state.firstbootQueue = try guest.list(FirstbootQueue.scripts).sorted()
            }
        } catch let error as GuestError {
            state.unreadable = error.message
        }
        return state
    }
}
