import Customize
import Operations

extension BuiltinProfiles {
    /// The profiles `cloud` chooses from, the first whose requirement the guest meets.
    public static let cloudProfiles: [Profile] = [rhel9Cloud, rhel8Cloud, rhel7Cloud, rhel6Cloud, fedoraCloud, debianCloud,
                                                  ubuntuCloud, windowsCloud]

    /// The cloud profile made for `guest`, if there is one.
    public static func cloudProfile(for guest: GuestFacts) -> Profile? {
        cloudProfiles.first { $0.requirement?.mismatch(guest) == nil }
    }

    /// Runs the cloud profile made for the inspected guest, and says which in its first step; a guest none is made
    /// for is refused before anything changes. It takes the parameters of the profiles it chooses from and passes
    /// them on: each is needed only when its profile is chosen (windows-cloud's installers for a Windows guest).
    public static let cloud = Profile(
        "cloud",
        summary: "Prepare any supported guest as an OpenStack cloud image: runs the cloud profile made for it ("
            + cloudProfiles.map(\.name).joined(separator: ", ") + ")",
        requires: .anyOf(cloudProfiles.compactMap(\.requirement),
                         hint: "imgcustomize has no cloud profile for this guest (imgcustomize profiles lists them); "
                            + "prepare it with a profile of your own or `imgcustomize customize`"),
        output: .compressedQCOW2,
        parameters: cloudProfiles.flatMap { profile in profile.parameters.map { $0.passedOn(to: profile.name) } }
    ) { guest, _ in
        if let chosen = cloudProfile(for: guest) {
            ProfileChoice(chosen.name, for: guest)
            chosen
        }
    }
}
