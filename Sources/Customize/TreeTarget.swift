import DirectoryTree
import Host
import Operations

/// A directory tree (`--tree`), changed in place: no appliance, every path resolved inside the tree. A dry run
/// works on a copy, so the tree stays as it was. A tree is not inspected: what the steps know of the guest is what
/// the caller said (nil: nothing).
final class TreeTarget: RunTarget {
    let root: String
    private let guest: GuestFacts?
    private var workRoot: String
    private var tree: TreeFilesystem?

    var hasBlockDevices: Bool { false }
    var relabels: Bool { false }

    init(root: String, guest: GuestFacts?) {
        self.root = root
        self.guest = guest
        workRoot = root
    }

    func open(in run: Run) throws {
        try run.during(.check) {
            guard run.options.attachments.isEmpty else {
                throw CustomizeError(image: root, "disks are attached for guest commands, which a directory tree does not run",
                                     hint: "leave --attach out, or run on an image")
            }
            // A tree is changed in place: a result "written elsewhere" would silently be the tree itself.
            guard run.options.output == nil else {
                throw CustomizeError(image: root, "--output does not apply to a directory tree, which is changed in place",
                                     hint: "leave --output out, or copy the tree (cp -a) and run on the copy; --dry-run shows the changes without making them")
            }
            try TreeFilesystem.refuseHostRoot(root)
        }
        if run.options.dryRun {
            try run.during(.prepare) {
                workRoot = try run.dryRunDirectory(prefix: "imgcustomize-dry-run", for: "copy").appending("tree")
                try runTool("cp", ["-a", "--reflink=auto", "--", root, workRoot], image: root,
                            cancellation: run.options.cancellation)
            }
        }
        tree = try run.during(.open) { try TreeFilesystem(root: workRoot) }
    }

    func inspect(in run: Run) throws -> (filesystem: any GuestFilesystem, guest: GuestFacts?) {
        guard let tree else { throw CustomizeError(image: root, "the tree is not open") }
        return (tree, guest)
    }

    func finish(in run: Run) throws {}

    /// Every change goes through the runner's recording filesystem: the steps that changed something, and the
    /// paths the failing step had changed before it failed, are what the tree now differs in; none, and it is as
    /// the run found it.
    func failureState(of run: Run, after error: any Error) -> (unchanged: Bool, changes: [String]) {
        let changes = run.report.steps.filter { $0.changed != .no }.map { step in
            step.target.isEmpty ? step.operation : "\(step.operation) \(step.target)"
        } + ((error as? OperationFailure).map { failed in failed.changedPaths.map { "\(failed.operation): \($0)" } } ?? [])
        return (changes.isEmpty, changes)
    }

    func close() {}
}
