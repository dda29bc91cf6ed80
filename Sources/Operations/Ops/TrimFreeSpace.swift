/// `trim-free-space`: discard the unused blocks of every filesystem, unused swap and free LVM space, so that the
/// rewrite that follows skips them. Reports what the guest filesystem trimmed; a directory tree has nothing to trim.
public struct TrimFreeSpace: RegisteredOperation {
    public static let name = "trim-free-space"
    public static let sourceFile = #filePath
    public static let summary = "Discard unused filesystem, swap and LVM blocks so the rewritten image skips them"
    public static let argument = OperationArgument.none
    public static let phase = OperationPhase.devices

    public init() {}

    public var target: String { "" }

    public static func parse(_ argument: String?) throws -> TrimFreeSpace {
        try noArgument(argument)
        return TrimFreeSpace()
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard let summary = try guest.devices?.trimFreeSpace() else {
            return .unchanged("nothing to trim in \(guest.guestDescription)")
        }
        return .changed(summary)
    }
}
