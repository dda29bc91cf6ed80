import Diagnostics
/// The `sysprep` profile's operations, in order: virt-sysprep's default Linux clean-ups in the order it runs them
/// (sorted by its names; its machine-id is remove-machine-id), then what cloud images need on top (cloud-init state,
/// UUID= in ifcfg files), then what virt-sysprep does in every run (a fresh random seed), as each operation declares
/// in its `sysprep` property. Nothing here writes /etc/machine-id after remove-machine-id empties it.
public let sysprepDefaults: [any GuestOperation] = SysprepSelection.defaults.operations

/// The sysprep operations that mean something on `guest`: all of them on Linux, the ifcfg and subscription ones
/// only on Red Hat's distributions; none on other operating systems.
public func sysprepOperations(for guest: GuestFacts, selection: SysprepSelection = .defaults) -> [any GuestOperation] {
    selection.operations.filter { operation in
        guard let cleanup = operation as? any CleanupOperation else { return guest.isLinuxOrUnknown }
        return type(of: cleanup).applies(to: guest)
    }
}

/// Which sysprep operations a run does, chosen as virt-sysprep's `--enable` and `--operations` choose them. Names are
/// virt-sysprep's (`machine-id`) or this tool's (`remove-machine-id`).
public struct SysprepSelection: Sendable, Equatable {
    /// The chosen operations' names (this tool's).
    public var names: Set<String>

    /// Every operation the selection can name: virt-sysprep's, on by default or not, sorted by virt-sysprep's
    /// names as it runs them, then the cloud-image extras, then what virt-sysprep does in every run (it runs its
    /// customize step last), each in registry order.
    public static let known: [OperationDescriptor] = {
        let virtSysprep = OperationRegistry.all.compactMap { descriptor -> (String, OperationDescriptor)? in
            switch descriptor.sysprep {
            case .virtSysprep(let name), .virtSysprepOnRequest(let name): (name, descriptor)
            case .no, .cloudImages, .virtSysprepImplicit: nil
            }
        }.sorted { $0.0 < $1.0 }.map(\.1)
        return virtSysprep + OperationRegistry.all.filter { $0.sysprep == .cloudImages }
            + OperationRegistry.all.filter { $0.sysprep == .virtSysprepImplicit }
    }()

    /// What the `sysprep` profile runs when nothing is chosen: virt-sysprep's defaults, the cloud-image extras and
    /// the random seed.
    public static let defaults = SysprepSelection(names: Set(known.filter(\.isSysprepDefault).map(\.name)))
    /// Every known operation that runs without an argument (`script` needs one, which only `customize` gives).
    public static let all = SysprepSelection(names: Set(known.filter(\.runsWithoutArgument).map(\.name)))

    /// The chosen operations with their default arguments, in the order they run.
    public var operations: [any GuestOperation] {
        Self.known.filter { names.contains($0.name) }.compactMap { try? $0.parse(nil) }
    }

    /// `--enable LIST`: exactly these operations.
    public static func enable(_ list: String) throws -> SysprepSelection {
        SysprepSelection(names: Set(try items(list, option: "--enable").map { try resolve($0, option: "--enable") }))
    }

    /// `--operations LIST`: from nothing, `defaults` and `all` add those sets, `NAME` adds and `-NAME` removes an
    /// operation, left to right.
    public static func operations(_ list: String) throws -> SysprepSelection {
        var names = Set<String>()
        for item in try items(list, option: "--operations") {
            switch item {
            case "defaults": names.formUnion(defaults.names)
            case "all": names.formUnion(all.names)
            case _ where item.hasPrefix("-"):
                names.remove(try resolve(String(item.dropFirst()), option: "--operations", adding: false))
            default: names.insert(try resolve(item, option: "--operations"))
            }
        }
        return SysprepSelection(names: names)
    }

    private static func items(_ list: String, option: String) throws -> [String] {
        let items = list.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmed }
        guard !items.contains("") else {
            throw SysprepSelectionError(option: option, problem: "empty operation name in \"\(list)\"")
        }
        return items
    }

    /// This tool's name for `name`, which may be virt-sysprep's. An operation that needs an argument cannot be added.
    private static func resolve(_ name: String, option: String, adding: Bool = true) throws -> String {
        let match = known.first { descriptor in
            if descriptor.name == name { return true }
            switch descriptor.sysprep {
            case .virtSysprep(let alias), .virtSysprepOnRequest(let alias): return alias == name
            case .no, .cloudImages, .virtSysprepImplicit: return false
            }
        }
        guard let match else {
            throw SysprepSelectionError(option: option, problem: "no sysprep operation named \"\(name)\"; "
                                        + "`imgcustomize operations --sysprep` lists them")
        }
        guard match.runsWithoutArgument || !adding else {
            throw SysprepSelectionError(option: option, problem: "\(match.name) needs an argument, which a sysprep "
                                        + "list cannot give: give it as an operation, `imgcustomize apply "
                                        + "sysprep IMAGE \(match.argument.usage("--" + match.name))`")
        }
        return match.name
    }
}

/// A `--enable` or `--operations` list that names no known sysprep operation, or adds one that needs an argument.
public struct SysprepSelectionError: DiagnosticError, Sendable {
    public var option: String
    public var problem: String
    /// Each problem says where the choices are listed.
    public var diagnostic: Diagnostic { Diagnostic("\(option): \(problem)") }
}

extension OperationDescriptor {
    /// Whether the `sysprep` profile runs it when nothing is chosen.
    public var isSysprepDefault: Bool {
        switch sysprep {
        case .virtSysprep, .cloudImages, .virtSysprepImplicit: true
        case .virtSysprepOnRequest, .no: false
        }
    }

    /// Whether a sysprep list can choose it: a flag, or an argument it can leave out.
    var runsWithoutArgument: Bool {
        if case .required = argument { false } else { true }
    }
}
