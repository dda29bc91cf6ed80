import Foundation
import Formats
import Testing
import TestSupport
@testable import Appliance
@testable import Customize
import Operations
import Profiles

/// The dry run with no appliance (the image read natively, the writes kept in memory) against the appliance's dry
/// run, step by step, on every fixture (the real Debian guests too) and every built-in profile that applies to it: the profiles run one after
/// another on one opening of each image on each side, and every fixture is a drive of one appliance launch, as in a
/// batch (so the native side names each image's disk as that launch does: /dev/sda, /dev/sdb, ...).
@Suite(.fixtures(guestFixtures, debianFixtures), .serialized, .tags(.appliance)) struct NativeDryRunTests {
    /// What the native dry run does not try: the labels come from the image's SELinux attributes, which the
    /// reader does not read. Every other step must show the same plan and the same diffs.
    static let wouldRun: Set<String> = ["selinux-relabel"]

    /// The guest images, then the real Debian guests (Fixtures/build-debian).
    static let files = ["rhel7.qcow2", "rhel6.qcow2", "rhel7-single.raw", "rhel9.qcow2", "rocky9.qcow2",
                        "ubuntu2404.qcow2", "fedora40.qcow2", "debian12-bios.qcow2", "debian12-uefi.qcow2"]

    @Test func samePlanAndDiffsAsTheApplianceOnEveryFixture() throws {
        let pipeline = Pipeline(options: RunOptions(diffs: true))
        var compared: [(file: String, image: String, before: String, profiles: [Profile], native: [RunReport])] = []
        for (index, file) in Self.files.enumerated() {
            let image = file.hasPrefix("debian") ? try debianFixture(file) : try fixture(file)
            let format = try ImageInspector.check(path: image, policy: SafetyPolicy()).inspection.format
            let disk = ApplianceDrive.deviceName(index: index)
            let guest = try #require(try NativeInspection.mount(image: image, format: format, disk: disk),
                                     "\(file): the native reader reads every fixture")
            let profiles = BuiltinProfiles.all.filter { $0.requirement?.mismatch(guest.facts) == nil }
            #expect(profiles.contains { $0.name == "sysprep" } && profiles.contains { $0.name == "cloud" }, "\(file)")
            compared.append((file, image, try sha256(image), profiles,
                             try pipeline.dryRuns(of: profiles, on: image, inAppliance: false, disk: disk)))
        }
        let appliance = try pipeline.applianceDryRuns(compared.map { ($0.image, $0.profiles) })
        for (entry, theirs) in zip(compared, appliance) {
            #expect(try sha256(entry.image) == entry.before, "\(entry.file): a dry run leaves the image byte-identical")
            #expect(theirs.count == entry.profiles.count, "\(entry.file)")
            for (profile, (ours, theirs)) in zip(entry.profiles, zip(entry.native, theirs)) {
                compare(ours, theirs, "\(entry.file) \(profile.name)")
            }
        }
    }

    private func compare(_ ours: RunReport, _ theirs: RunReport, _ what: String) {
        #expect(ours.guest == theirs.guest, "\(what): the guest's facts")
        #expect(ours.steps.map(\.operation) == theirs.steps.map(\.operation), "\(what): the plan")
        for (step, expected) in zip(ours.steps, theirs.steps) {
            let name = "\(what): \(step.operation) \(step.target)"
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
