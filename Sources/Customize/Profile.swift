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
/// The body runs once the guest is inspected, so it can depend on what the guest is.
public struct Profile: Sendable {
    public let name: String
    public let summary: String
    public let requirement: GuestRequirement?
    public let output: OutputPolicy
    private let body: @Sendable (GuestFacts) -> [ProfileItem]

    public init(_ name: String, summary: String, requires requirement: GuestRequirement? = nil,
                output: OutputPolicy = .sameFormat,
                @ProfileBuilder _ body: @escaping @Sendable (GuestFacts) -> [ProfileItem]) {
        self.name = name
        self.summary = summary
        self.requirement = requirement
        self.output = output
        self.body = body
    }

    /// This profile with `operations` after its own steps, under the heading `group`: the same name, requirement
    /// and output, as `apply PROFILE IMAGE --OPERATION...` runs it (virt-sysprep's customize operation).
    public func adding(_ operations: [any GuestOperation], as group: String) -> Profile {
        guard !operations.isEmpty else { return self }
        let body = self.body
        let extra = ProfileItem.group(group, operations.map { .operation($0) })
        return Profile(name, summary: summary, requires: requirement, output: output) { body($0) + [extra] }
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
        flatten(body(guest), guest: guest, path: [name])
    }

    private func flatten(_ items: [ProfileItem], guest: GuestFacts, path: [String]) -> [ProfileStep] {
        items.flatMap { item -> [ProfileStep] in
            switch item {
            case .operation(let operation): [ProfileStep(operation: operation, path: path)]
            case .group(let name, let children): flatten(children, guest: guest, path: path + [name])
            case .include(let profile): profile.flatten(profile.body(guest), guest: guest, path: path + [profile.name])
            }
        }
    }
}

/// One operation of a resolved profile, with the groups and included profiles it came from.
public struct ProfileStep: Sendable {
    public let operation: any GuestOperation
    /// ["rhel7-cloud", "sysprep"]: the profile, then nested groups and includes.
    public let path: [String]
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
        GuestFacts(type: "linux", distro: kinds.first?.distros.first, majorVersion: kinds.first?.majorVersion ?? 0,
                   minorVersion: 0)
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
