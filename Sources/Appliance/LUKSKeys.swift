import Diagnostics
import Foundation

/// The keys that open a guest's LUKS devices, given as virt-customize takes them (`--key DEVICE:key:PASSPHRASE`,
/// `--key DEVICE:file:PATH`, `--keys-from-stdin`).
///
/// Secret by construction: its `description`, `debugDescription` and mirror show how many keys there are and which
/// devices they name, never a passphrase, so that no log line, dump or report can carry one.
public struct LUKSKeys: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public struct Key: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        public enum Source: Sendable {
            case passphrase(String)
            /// A file on the host, read when a device it is for is opened; its first line is the passphrase.
            case file(String)
        }

        /// A device name inside the appliance (/dev/sda2) or a LUKS UUID.
        public var device: String
        public var source: Source

        public init(device: String, source: Source) {
            self.device = device
            self.source = source
        }

        /// `DEVICE:key:PASSPHRASE` or `DEVICE:file:PATH`. The passphrase or path is everything after the second
        /// colon, colons included (virt-customize refuses those; nothing is lost by accepting them).
        public init(selector: String) throws {
            let fields = selector.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, !fields[0].isEmpty, !fields[2].isEmpty else {
                throw LUKSKeyError.invalidSelector(device: fields.first.map(String.init) ?? "")
            }
            device = String(fields[0])
            switch fields[1] {
            case "key": source = .passphrase(String(fields[2]))
            case "file": source = .file(String(fields[2]))
            default: throw LUKSKeyError.invalidSelector(device: device)
            }
        }

        /// Whether this key is for the LUKS device `device` whose header carries `uuid`.
        func applies(to device: String, uuid: String?) -> Bool {
            self.device == device || (uuid.map { self.device.lowercased() == $0.lowercased() } ?? false)
        }

        public var description: String {
            switch source {
            case .passphrase: return "\(device):key:<hidden>"
            case .file(let path): return "\(device):file:\(path)"
            }
        }

        public var debugDescription: String { description }
        public var customMirror: Mirror { Mirror(self, children: ["key": description]) }
    }

    public var keys: [Key]
    /// Asked once for each LUKS device no key is for, in the order the devices are found, with the device's name:
    /// the next passphrase, or nil when there is none (`--keys-from-stdin` reads a line of stdin).
    public var prompt: (@Sendable (_ device: String) -> String?)?

    public init(_ keys: [Key] = [], prompt: (@Sendable (_ device: String) -> String?)? = nil) {
        self.keys = keys
        self.prompt = prompt
    }

    public var isEmpty: Bool { keys.isEmpty && prompt == nil }

    public var description: String {
        let named = keys.map(\.device).joined(separator: ", ")
        return "\(keys.count) LUKS key(s)\(named.isEmpty ? "" : " for \(named)")\(prompt == nil ? "" : ", more on request")"
    }

    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["keys": description]) }
}

/// A --key that cannot be used. Never carries the passphrase.
public enum LUKSKeyError: DiagnosticError {
    case invalidSelector(device: String)

    public var diagnostic: Diagnostic {
        switch self {
        case .invalidSelector(let device):
            return Diagnostic("invalid --key for '\(device)'",
                              hint: "use DEVICE:key:PASSPHRASE or DEVICE:file:PATH, where DEVICE is a device name "
                                + "inside the appliance (/dev/sda2) or the LUKS UUID")
        }
    }
}
