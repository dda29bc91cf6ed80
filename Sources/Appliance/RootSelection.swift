import Diagnostics
import Operations

/// Which of the guest's operating systems a run works on, as virt-customize's `--root` chooses among the roots
/// inspection finds (guestfs-tools' test-virt-customize-root.sh): with one operating system, `all`, `single`,
/// `first` and that root's device all select it. With several, `first` takes the first inspection lists and a
/// device that root; `all`, which virt-customize answers by customizing each in turn, and `single` are refused
/// here, naming the roots, since a run customizes one operating system.
public enum RootSelection: Sendable, Equatable, CustomStringConvertible {
    case all, single, first
    /// A root's device as inspection names it: /dev/sda2, /dev/VG/Root.
    case device(String)

    /// `all`, `single`, `first` or a device (/dev/...); nil for anything else.
    public init?(argument: String) {
        switch argument {
        case "all": self = .all
        case "single": self = .single
        case "first": self = .first
        default:
            guard argument.hasPrefix("/dev/"), argument.count > 5 else { return nil }
            self = .device(argument)
        }
    }

    public var description: String {
        switch self {
        case .all: "all"
        case .single: "single"
        case .first: "first"
        case .device(let device): device
        }
    }

    /// The root to work on among `roots`, in inspection's order (never empty), or the refusal naming them.
    public func choose(among roots: [String], guest: String, describe: (String) -> String = { $0 }) throws -> String {
        let named = roots.map(describe).joined(separator: ", ")
        switch self {
        case .device(let device):
            guard let root = roots.first(where: { $0 == device }) else {
                throw GuestError(guest: guest, action: "inspect",
                                 message: "root device \(device) not found: the operating system\(roots.count == 1 ? " is on" : "s are on") \(named)",
                                 hint: "give --root one of \(roots.joined(separator: ", ")) (or all, single, first)")
            }
            return root
        case .first:
            if let root = roots.first { return root }
        case .all, .single:
            if roots.count == 1, let root = roots.first { return root }
        }
        throw GuestError(guest: guest, action: "inspect", message: "several operating systems found: \(named)",
                         hint: "choose one with --root DEVICE (one of \(roots.joined(separator: ", "))) or --root "
                            + "first; a run customizes one operating system")
    }
}
