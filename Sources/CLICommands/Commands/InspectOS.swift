import Foundation
import Formats
import Host
import Logging
import Operations
import Appliance

extension IMGCustomize.Inspect {
    /// `inspect --os`: launches the appliance read-only on an image that passed the safety checks, with the format
    /// they detected (qemu never probes), and returns what libguestfs inspection finds.
    static func guestFacts(_ inspection: ImageInspection, path: String, appliance: ApplianceArguments,
                           method requested: InspectionMethod = .automatic,
                           logger: Logger) throws -> (facts: GuestFacts, hardware: GuestHardware) {
        // The native reader first, unless libguestfs is asked for or there are LUKS keys to use (it reads no LUKS).
        let method = try InspectionMethod.resolve(requested)
        if method == .automatic || method == .native, appliance.keys.isEmpty, !appliance.keysFromStdin {
            do {
                if let native = try NativeInspection.inspect(image: path, format: inspection.format) {
                    logger.debug("inspected \(native.facts.root ?? "") natively")
                    return (native.facts, native.hardware)
                }
                guard method != .native else {
                    throw GuestError(guest: path, action: "inspect the guest natively",
                                     message: "the native reader does not handle this guest",
                                     hint: "use --inspection automatic to let the appliance inspect it")
                }
                logger.debug("the native reader does not handle this guest: launching the appliance")
            } catch let error where method != .native {
                logger.debug("native inspection failed (\(error)): launching the appliance")
            }
        }
        guard let format = ApplianceDrive.Format(rawValue: inspection.format.qemuFormat) else {
            throw GuestError(guest: path, action: "inspect the guest",
                             message: "the appliance does not open \(inspection.format.rawValue) images",
                             hint: "convert it to qcow2 or raw first")
        }
        let cancellation = Interruption.install()
        var options = try appliance.options(logger: logger, cancellation: cancellation)
        options.inspection = method == .libguestfs ? .libguestfs : .automatic
        do {
            let inspected = try ApplianceSession.inspect(image: path, format: format, options: options)
            for warning in inspected.warnings { logger.warning("\(warning)") }
            return (inspected.facts, inspected.hardware)
        } catch {
            throw cancellation.explain(error, image: path)
        }
    }

    /// The guest's facts under an "os:" heading, in the indented style of the rest of the report.
    static func osText(_ facts: GuestFacts) -> String {
        var out = "os:\n"
        func line(_ key: String, _ value: String?) {
            if let value { out += "    \(key): \(shown(value))\n" }
        }
        line("type", facts.type)
        line("distro", facts.distro)
        line("version", "\(facts.majorVersion).\(facts.minorVersion)")
        line("osinfo", facts.osinfo)
        line("product", facts.productName)
        line("arch", facts.arch)
        line("hostname", facts.hostname)
        line("package format", facts.packageFormat)
        line("package management", facts.packageManagement)
        line("root", facts.root)
        if let windows = facts.windows {
            line("product variant", windows.productVariant)
            line("edition", windows.edition)
            line("build", windows.build)
            line("system root", windows.systemRoot)
            line("firmware", windows.firmware)
            for (letter, device) in windows.driveMappings.sorted(by: { $0.key < $1.key }) {
                line("drive \(letter):", device)
            }
        }
        out += "    mountpoints:\n"
        for (mountpoint, device) in facts.mountpoints.sorted(by: { $0.key < $1.key }) {
            out += "        \(shown(mountpoint)): \(shown(device))\n"
        }
        return out
    }
}
