import Appliance
import Formats
import Operations

/// An image read natively from its file (`NativeOverlayFilesystem`): a dry run with no appliance. The steps run on
/// the guest's filesystems with their writes kept in memory, so the plan and the diffs are those the appliance's
/// dry run shows, in a fraction of a second. Steps that need the guest's programs or what the reader does not read
/// (guest commands, SELinux labels) are listed as ones that would run; the block-device steps are skipped as in
/// any dry run. What the reader declines (`NativeDryRunDeclined`) sends the whole dry run to the appliance.
final class NativeDryRunTarget: RunTarget {
    let image: String
    private let policy: OutputPolicy
    /// The name the reports give the image's disk: /dev/sda, as in an appliance launched for the image alone.
    private let disk: String
    private var filesystem: NativeOverlayFilesystem?
    private var facts: GuestFacts?

    var hasBlockDevices: Bool { true }
    var relabels: Bool { true }

    init(image: String, policy: OutputPolicy, disk: String = "/dev/sda") {
        self.image = image
        self.policy = policy
        self.disk = disk
    }

    /// Whether a dry run of `options` reads the image natively: as native inspection, unless the user asked for
    /// the appliance (`--appliance`, or an inspection other than automatic or native), gave LUKS keys, or attached
    /// disks (for guest commands, which a native dry run does not run).
    static func applies(to options: RunOptions) -> Bool {
        guard options.dryRun, !options.dryRunInAppliance, options.appliance.keys.isEmpty, options.attachments.isEmpty,
              let method = try? InspectionMethod.resolve(options.appliance.inspection) else { return false }
        return method == .automatic || method == .native
    }

    func open(in run: Run) throws {
        let checked = try run.during(.check) {
            try ImageInspector.check(path: image, policy: SafetyPolicy(allowedFormats: run.options.allowedFormats,
                                                                       access: run.options.access))
        }
        // The output the run would write is refused here as the appliance's dry run refuses it.
        try ImageTarget(image: image, destination: image, policy: policy).checkOutput(format: checked.inspection.format,
                                                                                       options: run.options)
        let guest = try run.during(.open) { () throws -> NativeGuest in
            let mounted: NativeGuest?
            do {
                mounted = try NativeInspection.mount(image: checked.inspection.resolvedPath,
                                                     format: checked.inspection.format, disk: disk)
            } catch {
                throw NativeDryRunDeclined(image: image, reason: "the native reader failed: \(error)", wouldRun: false)
            }
            guard let mounted else {
                throw NativeDryRunDeclined(image: image, reason: "the native reader does not handle this guest",
                                           wouldRun: false)
            }
            return mounted
        }
        // --root as the appliance's run takes it: a device that is not the one root the reader found is refused.
        if let root = guest.facts.root {
            _ = try run.during(.inspect) { try run.options.appliance.root.choose(among: [root], guest: image) }
        }
        facts = guest.facts
        filesystem = NativeOverlayFilesystem(guest, image: image)
    }

    func inspect(in run: Run) throws -> (filesystem: any GuestFilesystem, guest: GuestFacts?) {
        guard let filesystem else { throw CustomizeError(image: image, "the image is not open") }
        return (filesystem, facts)
    }

    /// A step that needs the guest's programs is undone (what it wrote before it asked for them is not guessed
    /// at either) and listed; the labels come from the guest's policy and the image's labels, which the reader
    /// does not read.
    func step(_ operation: any GuestOperation, _ body: () throws -> StepReport) throws -> StepReport {
        if operation.phase == .labels {
            return Self.wouldRun(operation, "labels come from the image's SELinux attributes, which the native reader "
                                 + "does not read")
        }
        guard let filesystem else { throw CustomizeError(image: image, "the image is not open") }
        let saved = filesystem.snapshot
        do {
            return try body()
        } catch let failure as OperationFailure {
            guard let declined = failure.underlying as? NativeDryRunDeclined, declined.wouldRun else { throw failure }
            filesystem.restore(saved)
            return Self.wouldRun(operation, declined.reason)
        }
    }

    /// How the summary of a step listed instead of run begins.
    static let wouldRun = "would run ("

    static func wouldRun(_ operation: any GuestOperation, _ reason: String) -> StepReport {
        StepReport(operation: operation.name, target: operation.target, changed: .unknown,
                   summary: "\(wouldRun)\(reason)): not tried without the appliance")
    }

    func finish(in run: Run) throws {}

    func failureState(of run: Run, after error: any Error) -> (unchanged: Bool, changes: [String]) { (true, []) }

    func close() { filesystem = nil }
}
