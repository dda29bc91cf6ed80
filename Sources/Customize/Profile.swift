import Diagnostics
import Foundation
import Operations

/// A named recipe of operations, written in Swift:
///
/// ```swift
/// Profile("rhel7-cloud", summary: "...", requires: .distro("rhel", major: 7)) { guest in
///     SetLine("/etc/sysconfig/network", key: "NOZEROCONF", value: "yes")
///     if guest.majorVersion >= 7 { AppendGrubArgs(["console=tty0"]) }
///     Group("subscription clean-up") { DisableRepos() }
///     BuiltinProfiles.sysprep
/// }
/// ```
///
/// The body runs once the guest is inspected, so it can depend on what the guest is. A profile that needs values
/// from whoever runs it (the path of an installer on the host) declares them as `parameters`, and its body reads
/// them from its second argument; `binding` gives them values (`apply --param NAME=VALUE`).
public struct Profile: Sendable {
    public let name: String
    public let summary: String
    public let requirement: GuestRequirement?
    public let output: OutputPolicy
    public let parameters: [ProfileParameter]
    /// The values given for its parameters, defaults included once bound; empty until then, when the body sees
    /// each parameter as its placeholder (`${virtio-win}`), as `profiles show` prints it.
    public let arguments: [String: String]
    /// Whether `binding` gave it its values: the profiles it includes then get their defaults too.
    private let isBound: Bool
    private let body: @Sendable (GuestFacts, ProfileArguments) -> [ProfileItem]

    public init(_ name: String, summary: String, requires requirement: GuestRequirement? = nil,
                output: OutputPolicy = .sameFormat,
                @ProfileBuilder _ body: @escaping @Sendable (GuestFacts) -> [ProfileItem]) {
        self.init(name, summary: summary, requires: requirement, output: output, parameters: []) { guest, _ in body(guest) }
    }

    public init(_ name: String, summary: String, requires requirement: GuestRequirement? = nil,
                output: OutputPolicy = .sameFormat, parameters: [ProfileParameter],
                @ProfileBuilder _ body: @escaping @Sendable (GuestFacts, ProfileArguments) -> [ProfileItem]) {
        self.init(name, summary: summary, requirement: requirement, output: output, parameters: parameters,
                  arguments: [:], isBound: false, body: body)
    }

    private init(_ name: String, summary: String, requirement: GuestRequirement?, output: OutputPolicy,
                 parameters: [ProfileParameter], arguments: [String: String], isBound: Bool,
                 body: @escaping @Sendable (GuestFacts, ProfileArguments) -> [ProfileItem]) {
        self.name = name
        self.summary = summary
        self.requirement = requirement
        self.output = output
        self.parameters = parameters
        self.arguments = arguments
        self.isBound = isBound
        self.body = body
    }

    /// This profile with `given` values for its parameters and the defaults of the others; refused, before anything
    /// is launched, for a name it does not declare, a required parameter not given, a host path that does not exist.
    public func binding(_ given: [String: String]) throws -> Profile {
        let how = "`imgcustomize profiles show \(name)` lists its parameters"
        for key in given.keys.sorted() where !parameters.contains(where: { $0.name == key }) {
            throw UsageError("profile \(name) has no parameter '\(key)'"
                             + (parameters.isEmpty ? "; it takes none" : "; its parameters are "
                                + parameters.map(\.name).joined(separator: ", ")), hint: how)
        }
        let missing = parameters.filter { $0.isRequired && given[$0.name] == nil }
        guard missing.isEmpty else {
            throw UsageError("profile \(name) needs " + Self.naming(missing),
                             hint: "give " + missing.map { "--param \($0.usage)" }.joined(separator: " ") + "; " + how)
        }
        var values: [String: String] = [:]
        for parameter in parameters {
            guard let value = given[parameter.name] ?? parameter.defaultValue else { continue }
            if parameter.isHostPath, given[parameter.name] != nil, !FileManager.default.fileExists(atPath: value) {
                throw UsageError("--param \(parameter.name)=\(value): no such file or directory on this host",
                                 hint: "give the path of \(parameter.name) (\(parameter.summary)) on this host")
            }
            values[parameter.name] = value
        }
        return Profile(name, summary: summary, requirement: requirement, output: output, parameters: parameters,
                       arguments: values, isBound: true, body: body)
    }

    /// "its parameter virtio-win (The virtio-win ISO...)", or "its parameters A (...) and B (...)".
    public static func naming(_ parameters: [ProfileParameter]) -> String {
        let each = parameters.map { "\($0.name) (\($0.summary))" }
        let list = each.count > 1 ? each.dropLast().joined(separator: ", ") + " and " + (each.last ?? "") : each.joined()
        return (each.count > 1 ? "its parameters " : "its parameter ") + list
    }

    /// This profile with `operations` after its own steps, under the heading `group`: the same name, requirement
    /// and output, as `apply PROFILE IMAGE --OPERATION...` runs it (virt-sysprep's customize operation).
    public func adding(_ operations: [any GuestOperation], as group: String) -> Profile {
        guard !operations.isEmpty else { return self }
        let body = self.body
        let extra = ProfileItem.group(group, operations.map { .operation($0) })
        return Profile(name, summary: summary, requirement: requirement, output: output, parameters: parameters,
                       arguments: arguments, isBound: isBound) { body($0, $1) + [extra] }
    }

    /// What a run of this profile does besides its file steps, in a few words ("trims free space, writes compressed
    /// qcow2"), judged on a representative guest of its kind.
    public var effects: String {
        let guest = requirement?.exampleGuest ?? GuestFacts(type: "linux")
        let trims = steps(for: guest).contains { $0.operation.phase == .devices }
        return (trims ? "trims free space, " : "no trimming, ")
            + (output == .compressedQCOW2 ? "writes compressed qcow2" : "keeps the image's format")
    }

    /// The operations this profile runs on `guest`, in order, includes and groups flattened.
    public func steps(for guest: GuestFacts) -> [ProfileStep] {
        var missing: [(String, ProfileParameter)] = []
        return resolve(guest: guest, path: [name], passedOn: [:], bound: isBound, missing: &missing)
    }

    /// The required parameters without a value of this profile and of those it includes on `guest`: `cloud` passes
    /// its values on to the profile it chooses, and a Windows guest's needs the virtio-win ISO. Checked once the
    /// guest is inspected, before any change (`binding` has checked this profile's own before the launch).
    public func missingParameters(for guest: GuestFacts) -> [(profile: String, parameter: ProfileParameter)] {
        var missing: [(String, ProfileParameter)] = []
        _ = resolve(guest: guest, path: [name], passedOn: [:], bound: isBound, missing: &missing)
        return missing.map { (profile: $0.0, parameter: $0.1) }
    }

    /// The steps of this profile, included under `path` with the values of the profile including it; the defaults
    /// of its parameters where the run's profile is `bound`, placeholders otherwise.
    private func resolve(guest: GuestFacts, path: [String], passedOn: [String: String], bound: Bool,
                         missing: inout [(String, ProfileParameter)]) -> [ProfileStep] {
        var values = arguments
        for parameter in parameters {
            if let value = passedOn[parameter.name] ?? (bound ? parameter.defaultValue : nil), values[parameter.name] == nil {
                values[parameter.name] = value
            }
        }
        missing += parameters.filter { $0.isRequired && values[$0.name] == nil }.map { (name, $0) }
        func flatten(_ items: [ProfileItem], path: [String]) -> [ProfileStep] {
            items.flatMap { item -> [ProfileStep] in
                switch item {
                case .operation(let operation): [ProfileStep(operation: operation, path: path)]
                case .group(let name, let children): flatten(children, path: path + [name])
                case .include(let profile):
                    profile.resolve(guest: guest, path: path + [profile.name], passedOn: values, bound: bound,
                                    missing: &missing)
                }
            }
        }
        return flatten(body(guest, ProfileArguments(values: values)), path: path)
    }
}

/// One operation of a resolved profile, with the groups and included profiles it came from.
public struct ProfileStep: Sendable {
    public let operation: any GuestOperation
    /// ["rhel7-cloud", "sysprep"]: the profile, then nested groups and includes.
    public let path: [String]
}

/// A value a profile takes from whoever runs it (`apply PROFILE IMAGE --param NAME=VALUE`): what the profile cannot
/// know, such as where the installers it puts in the guest are on the host.
public struct ProfileParameter: Sendable, Equatable {
    public let name: String
    public let summary: String
    /// Nil for a parameter without which the profile cannot run.
    public let defaultValue: String?
    /// A path on the host: checked before anything is launched, completed as a file by the shells.
    public let isHostPath: Bool
    /// The profile that needs it, when the one declaring it only passes it on (`cloud` for the profile it
    /// chooses): required only when that one runs.
    public let neededBy: String?

    public init(_ name: String, summary: String, default defaultValue: String? = nil, hostPath: Bool = false,
                neededBy: String? = nil) {
        self.name = name
        self.summary = summary
        self.defaultValue = defaultValue
        self.isHostPath = hostPath
        self.neededBy = neededBy
    }

    public var isRequired: Bool { defaultValue == nil && neededBy == nil }

    /// This parameter, declared by a profile that passes it on to `profile`.
    public func passedOn(to profile: String) -> ProfileParameter {
        ProfileParameter(name, summary: summary, default: defaultValue, hostPath: isHostPath, neededBy: profile)
    }

    /// `NAME=PATH` or `NAME=VALUE`: how it is given.
    public var usage: String { "\(name)=\(isHostPath ? "PATH" : "VALUE")" }

    /// What a body sees for a parameter named `name` with no value, and what a profile file writes to use it.
    public static func placeholder(_ name: String) -> String { "${\(name)}" }

    /// One line for `profiles show`: `virtio-win=PATH (required): The virtio-win ISO...`.
    public var listing: String {
        let need = switch (neededBy, defaultValue) {
        case (let profile?, let value?): "for \(profile), default \(value)"
        case (let profile?, nil): "needed when \(profile) runs"
        case (nil, let value?): "default \(value)"
        case (nil, nil): "required"
        }
        return "\(usage) (\(need)): \(summary)"
    }
}

/// A profile's parameter values as its body reads them: `arguments["virtio-win"]`, the placeholder `${virtio-win}`
/// where none is given (the profile shown rather than run).
public struct ProfileArguments: Sendable {
    let values: [String: String]

    public subscript(_ name: String) -> String { values[name] ?? ProfileParameter.placeholder(name) }
}

public indirect enum ProfileItem: Sendable {
    case operation(any GuestOperation)
    case group(String, [ProfileItem])
    case include(Profile)
}

/// Operations under a heading, shown as such by `profiles show` and in reports.
public struct Group: Sendable {
    let name: String
    let items: [ProfileItem]

    public init(_ name: String, @ProfileBuilder _ body: () -> [ProfileItem]) {
        self.name = name
        self.items = body()
    }
}

@resultBuilder
public enum ProfileBuilder {
    public static func buildExpression(_ operation: any GuestOperation) -> [ProfileItem] { [.operation(operation)] }
    public static func buildExpression(_ group: Group) -> [ProfileItem] { [.group(group.name, group.items)] }
    public static func buildExpression(_ profile: Profile) -> [ProfileItem] { [.include(profile)] }
    /// Items made elsewhere, spliced in as they are (another profile's body, as `Profile.adding` does).
    public static func buildExpression(_ items: [ProfileItem]) -> [ProfileItem] { items }
    public static func buildBlock(_ parts: [ProfileItem]...) -> [ProfileItem] { parts.flatMap { $0 } }
    public static func buildOptional(_ part: [ProfileItem]?) -> [ProfileItem] { part ?? [] }
    public static func buildEither(first part: [ProfileItem]) -> [ProfileItem] { part }
    public static func buildEither(second part: [ProfileItem]) -> [ProfileItem] { part }
    public static func buildArray(_ parts: [[ProfileItem]]) -> [ProfileItem] { parts.flatMap { $0 } }
}

/// What a profile needs the guest to be; checked after inspection, before any change (`--force` overrides).
public struct GuestRequirement: Sendable, CustomStringConvertible {
    /// One kind of guest the profile is for: any of these distributions (libguestfs's names), of this major version.
    public struct Kind: Sendable, CustomStringConvertible {
        public let distros: [String]
        public let majorVersion: Int?

        func accepts(_ guest: GuestFacts) -> Bool {
            guard let distro = guest.distro, distros.contains(distro) else { return false }
            return majorVersion.map { $0 == guest.majorVersion } ?? true
        }

        public var description: String {
            let names = distros.count > 1
                ? distros.dropLast().joined(separator: ", ") + " or " + distros[distros.count - 1] : distros.joined()
            return majorVersion.map { "\(names) \($0)" } ?? names
        }
    }

    /// The guest qualifies when it is any of these.
    public let kinds: [Kind]
    /// What to do when no kind fits; nil for the usual advice.
    public let hint: String?

    public static func distro(_ distro: String, major: Int? = nil) -> GuestRequirement {
        .distros([distro], major: major)
    }

    /// One of several distributions of the same major version: RHEL and its rebuilds.
    public static func distros(_ distros: [String], major: Int? = nil) -> GuestRequirement {
        GuestRequirement(kinds: [Kind(distros: distros, majorVersion: major)], hint: nil)
    }

    /// Any of `requirements`' guests (a profile that picks another for each guest).
    public static func anyOf(_ requirements: [GuestRequirement], hint: String) -> GuestRequirement {
        GuestRequirement(kinds: requirements.flatMap(\.kinds), hint: hint)
    }

    /// Nil when `guest` qualifies, otherwise why it does not.
    public func mismatch(_ guest: GuestFacts) -> String? {
        guard !kinds.contains(where: { $0.accepts(guest) }) else { return nil }
        var found = "\(guest.distro ?? "unknown distro") \(guest.majorVersion).\(guest.minorVersion)"
        if let product = guest.productName, product != guest.distro { found += " (\(product))" }
        return "needs a \(self) guest, found \(found)"
    }

    /// A representative guest for showing the profile's steps without an image.
    public var exampleGuest: GuestFacts {
        let distro = kinds.first?.distros.first
        return GuestFacts(type: distro == "windows" ? "windows" : "linux", distro: distro,
                          majorVersion: kinds.first?.majorVersion ?? 0, minorVersion: 0)
    }

    public var description: String { kinds.map(\.description).joined(separator: "; ") }
}

/// What the rewrite at the end of a run produces.
public enum OutputPolicy: Sendable, Equatable {
    /// The input's format: qcow2 stays qcow2 (compressed as the input's compressed clusters were, if it had any),
    /// raw stays sparse raw.
    case sameFormat
    /// Compressed qcow2, as a cloud image is uploaded.
    case compressedQCOW2
}
