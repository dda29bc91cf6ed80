import ArgumentParser
import Foundation
import Formats
import Operations
import Host
import Appliance

extension InspectionMethod: ExpressibleByArgument {}

extension IMGCustomize {
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Detect an image's format and check that it is safe to open, reading only its headers.",
            discussion: """
                Exits with status 1 when the image fails a safety check (a backing or data file, a VMDK extent \
                naming a path, a polyglot, a malformed header, ...); the report names each problem.

                EXAMPLES:
                  imgcustomize inspect rhel7.qcow2
                  imgcustomize inspect so-disk.vmdk --json
                  imgcustomize inspect --os --glance --json rhel7.qcow2
                  imgcustomize inspect --formats raw,iso upload.img
                  imgcustomize inspect --os --create-args rhel7.raw | xargs -d '\\n' \\
                      openstack image create --file rhel7.raw rhel7
                """)

        @Argument(help: "The image file.", completion: .file())
        var image: String

        @Flag(help: "Print JSON with qemu-img info's keys plus \"safety\" (and \"glance\" with --glance).")
        var json = false

        @Flag(help: "Print the Glance properties (disk_format, container_format, min_disk; with --os also architecture, os_distro, os_version, os_name, os_type, hw_firmware_type, hw_qemu_guest_agent).")
        var glance = false

        @Flag(help: ArgumentHelp(
            "Print only the `openstack image create` arguments for the Glance properties, one per line (a JSON array with --json).",
            discussion: "Nothing is printed on stdout for an unsafe image: its report goes to stderr and the exit status is 1."))
        var createArgs = false

        @Flag(help: "With --glance, publish a partitioned raw disk as an AMI.")
        var amazon = false

        @OptionGroup var formats: FormatArguments

        @Flag(help: "Also launch the appliance (read-only) and report the guest operating system.")
        var os = false

        @Option(help: ArgumentHelp("""
            How --os finds the guest's OS (or IMGCUSTOMIZE_INSPECTION): automatic reads the image natively and \
            launches the appliance only for a guest that reader does not handle; native never launches it (and \
            fails for such a guest); appliance always launches it; libguestfs launches it and asks libguestfs's \
            own inspection.
            """, valueName: "method"))
        var inspection: InspectionMethod = .automatic

        @OptionGroup(title: "With --os") var appliance: ApplianceArguments

        @OptionGroup var global: GlobalOptions

        func run() throws {
            var policy = SafetyPolicy(access: global.access)
            policy.allowedFormats = try formats.allowed()
            let inspection = try ImageInspector.inspect(path: image, policy: policy)
            // An image that fails a safety check is never handed to qemu.
            let guest = os && inspection.safety.safe
                ? try Self.guestFacts(inspection, path: inspection.resolvedPath, appliance: appliance, method: self.inspection,
                                     logger: global.makeLogger())
                : nil
            let facts = guest?.facts
            var properties = glance || createArgs ? GlanceProperties(inspection, amazon: amazon) : nil
            if let guest { properties?.add(guest.facts, guest.hardware) }
            if createArgs, let properties {
                guard inspection.safety.safe else {
                    FileHandle.standardError.write(Data(try Self.text(inspection, glance: nil).utf8))
                    // With --json, the refusal is the document: no arguments to give, and why.
                    if json { try inspection.requireSafe() }
                    throw ExitCode.failure
                }
                let arguments = try Self.createArguments(properties, json: json)
                if json { Output.document(arguments) } else { print(arguments) }
            } else if json {
                Output.document(try Self.json(inspection, glance: properties, os: facts))
            } else {
                print(try Self.text(inspection, glance: properties) + (facts.map(Self.osText) ?? ""), terminator: "")
            }
            if !inspection.safety.safe { throw ExitCode.failure }
        }

        static func json(_ inspection: ImageInspection, glance: GlanceProperties?, os: GuestFacts? = nil) throws -> String {
            let encoder = JSONEncoder()
            var object = try JSONSerialization.jsonObject(with: encoder.encode(inspection)) as? [String: Any] ?? [:]
            if let glance {
                object["glance"] = try JSONSerialization.jsonObject(with: encoder.encode(glance))
            }
            if let os {
                object["os"] = try JSONSerialization.jsonObject(with: encoder.encode(os))
            }
            let data = try JSONSerialization.data(withJSONObject: object,
                                                  options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self)
        }

        /// One argument a line, which `xargs -d '\n'` or `mapfile -t` take back without a shell's quoting; or a JSON
        /// array of them.
        static func createArguments(_ properties: GlanceProperties, json: Bool) throws -> String {
            guard json else { return properties.createArguments.joined(separator: "\n") }
            let data = try JSONSerialization.data(withJSONObject: properties.createArguments, options: [.withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self)
        }

        /// The layout of `qemu-img info`, then the safety verdict.
        static func text(_ inspection: ImageInspection, glance: GlanceProperties?) throws -> String {
            var out = "image: \(shown(inspection.filename))\n"
            if let target = inspection.linkTarget { out += "symbolic link to: \(shown(target))\n" }
            out += "file format: \(inspection.format.rawValue)\n"
            if let size = inspection.virtualSize {
                out += "virtual size: \(formatBytes(size)) (\(size) bytes)\n"
            } else {
                out += "virtual size: unknown\n"
            }
            out += "disk size: \(formatBytes(inspection.actualSize))\n"
            let detected = inspection.formatsDetected.isEmpty ? "none (raw)" : inspection.formatsDetected.joined(separator: ", ")
            out += "formats detected: \(detected)\n"
            if let specific = inspection.formatSpecific {
                let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(specific)) as? [String: Any]
                if let data = object?["data"] as? [String: Any], !data.isEmpty {
                    out += "Format specific information:\n" + lines(data, indent: 4)
                }
            }
            if let glance {
                out += "Glance properties:\n"
                for (key, value) in glance.properties { out += "    \(shown(key)): \(shown(value))\n" }
            }
            if inspection.safety.safe {
                out += "safety: safe\n"
            } else {
                out += "safety: UNSAFE\n"
                for violation in inspection.safety.violations {
                    out += "    \(violation.code.rawValue): \(shown(violation.message))\n        \(shown(violation.hint))\n"
                }
            }
            return out
        }

        /// A name taken from an image (a backing file, an extent, a path) as it can be printed on a line: control
        /// characters as `\xNN`, so that a NUL or a newline in an image cannot end a line and inject another, and
        /// an escape sequence cannot reach the terminal; a backslash as `\\`, so that the escaping reads back
        /// unambiguously. Bytes that are not UTF-8 were decoded as U+FFFD, which prints as itself. JSON escapes all
        /// of this by itself.
        static func shown(_ text: String) -> String {
            var out = ""
            for scalar in text.unicodeScalars {
                switch scalar.value {
                case 0x5C: out += "\\\\"
                case 0..<0x20, 0x7F..<0xA0: out += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out
        }

        /// Nested format-specific data as indented `key: value` lines, keys sorted.
        static func lines(_ value: Any, indent: Int) -> String {
            let pad = String(repeating: " ", count: indent)
            let items: [(String, Any)]
            if let object = value as? [String: Any] {
                items = object.keys.sorted().compactMap { key in object[key].map { (key, $0) } }
            } else if let array = value as? [Any] {
                items = array.enumerated().map { ("[\($0.offset)]", $0.element) }
            } else {
                return ""
            }
            var out = ""
            for (key, item) in items {
                if item is [String: Any] || item is [Any] {
                    out += "\(pad)\(shown(key)):\n" + lines(item, indent: indent + 4)
                } else if let number = item as? NSNumber, String(cString: number.objCType) == "c" {
                    out += "\(pad)\(shown(key)): \(number.boolValue)\n"
                } else {
                    out += "\(pad)\(shown(key)): \(shown("\(item)"))\n"
                }
            }
            return out
        }
    }
}
