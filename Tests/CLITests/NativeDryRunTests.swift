import Foundation
import Formats
import Testing
import TestSupport
@testable import Appliance
@testable import Customize
import Operations
import Profiles

/// The dry run with no appliance (the image read natively, the writes kept in memory) against the appliance's dry
/// run, step by step, on every fixture and every built-in profile that applies to it: the profiles run one after
/// another on one opening of the image on each side, one appliance launch per fixture in all.
@Suite(.serialized, .tags(.appliance)) struct NativeDryRunTests {
    /// What the native dry run does not try: the labels come from the image's SELinux attributes, which the
    /// reader does not read. Every other step must show the same plan and the same diffs.
    static let wouldRun: Set<String> = ["selinux-relabel"]

    @Test(arguments: ["rhel7.qcow2", "rhel6.qcow2", "rhel7-single.raw", "rhel9.qcow2", "rocky9.qcow2",
                      "ubuntu2404.qcow2", "fedora40.qcow2"])
    func samePlanAndDiffsAsTheAppliance(file: String) throws {
        let image = try fixture(file)
        let before = try sha256(image)
        let format = try ImageInspector.check(path: image, policy: SafetyPolicy()).inspection.format
        let pipeline = Pipeline(options: RunOptions(diffs: true))
        guard let guest = try NativeInspection.mount(image: image, format: format) else {
            // btrfs (fedora40) is not read natively: the native dry run declines, and `apply --dry-run` goes
            // through the appliance instead.
            #expect {
                try pipeline.dryRuns(of: [BuiltinProfiles.sysprep], on: image, inAppliance: false)
            } throws: { error in
                ((error as? RunFailure)?.error as? NativeDryRunDeclined)?.wouldRun == false
            }
            return
        }
        let profiles = BuiltinProfiles.all.filter { $0.requirement?.mismatch(guest.facts) == nil }
        #expect(profiles.contains { $0.name == "sysprep" } && profiles.contains { $0.name == "cloud" })

        let native = try pipeline.dryRuns(of: profiles, on: image, inAppliance: false)
        let appliance = try pipeline.dryRuns(of: profiles, on: image, inAppliance: true)
        #expect(try sha256(image) == before, "a dry run leaves the image byte-identical")
        for (profile, (ours, theirs)) in zip(profiles, zip(native, appliance)) {
            #expect(ours.guest == theirs.guest, "\(file) \(profile.name): the guest's facts")
            #expect(ours.steps.map(\.operation) == theirs.steps.map(\.operation), "\(file) \(profile.name): the plan")
            for (step, expected) in zip(ours.steps, theirs.steps) {
                let name = "\(file) \(profile.name): \(step.operation) \(step.target)"
                #expect(step.target == expected.target, "\(name)")
                if Self.wouldRun.contains(step.operation) {
                    #expect(step.changed == .unknown && step.summary.hasPrefix("would run ("), "\(name): \(step.summary)")
                    #expect(step.diffs == nil || step.diffs == [], "\(name)")
                    continue
                }
                #expect(step.changed == expected.changed, "\(name): \(step.summary) / \(expected.summary)")
                #expect(step.summary == expected.summary, "\(name)")
                #expect(step.warning == expected.warning, "\(name)")
                #expect(step.diffs == expected.diffs, "\(name): \(step.diffs ?? []) / \(expected.diffs ?? [])")
            }
        }
    }
}
