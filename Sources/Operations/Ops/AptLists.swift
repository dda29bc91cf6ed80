/// apt's package lists (`apt-get update` downloads them again) and the binary caches built from them: what
/// `rm -rf /var/lib/apt/lists/*` and `apt-get clean` leave out of a Debian or Ubuntu cloud image. The downloaded
/// packages themselves are package-manager-cache's.
public struct AptLists: CleanupOperation {
    public static let name = "apt-lists"
    public static let sourceFile = #filePath
    public static let sysprep = SysprepDefault.cloudImages
    public static let summary = "Remove apt's package lists and its binary caches (apt-get update rebuilds them)"
    public static let steps: [CleanupStep] = [
        .removeFilesBelow("/var/lib/apt/lists", keeping: ["lock"]),
        .removeFiles("/var/cache/apt/*.bin"),
    ]
    public static func applies(to guest: GuestFacts) -> Bool { guest.isDebianFamily }
    public init() {}
}
