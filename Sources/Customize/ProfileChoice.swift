import Operations

/// The first step of a profile that picks another for the inspected guest (`cloud`): it changes nothing, and puts
/// in the report which profile runs and for what.
public struct ProfileChoice: GuestOperation {
    public static let name = "profile-choice"
    public static let summary = "Which profile runs on this guest, and why"

    public let profile: String
    public let guest: String
    public var target: String { profile }

    public init(_ profile: String, for guest: GuestFacts) {
        self.profile = profile
        self.guest = [guest.productName, guest.osinfo.map { "(\($0))" }].compactMap { $0 }.joined(separator: " ")
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        .unchanged("chose \(profile) for \(self.guest.isEmpty ? "this guest" : self.guest)")
    }
}
