import Appliance
import ArgumentParser
import Diagnostics
import Foundation

/// What `apply` and `customize` work on: the image, or a directory tree (`--tree`); and for an image, which of its
/// operating systems (`--root`, virt-customize's meaning, so that a line copied from a virt-customize script means
/// the same here).
struct TargetArguments: ParsableArguments {
    @Option(help: ArgumentHelp("Work on this directory tree instead of an image (no appliance; paths never leave the tree; the guest is not inspected).", valueName: "dir"),
            completion: .directory)
    var tree: String?

    @Option(name: .customLong("root"), help: ArgumentHelp("""
        Which operating system of the image to work on, as virt-customize's --root: all (the default) or single \
        for the only one, first for the first inspection finds, or a root's device (/dev/sda2, /dev/VG/Root); a \
        device that is not a root is refused, naming the roots there are. (A directory given here is read as \
        --tree, with a warning: the old spelling.)
        """, valueName: "all|single|first|device"), completion: .list(["all", "single", "first"]))
    var root: String?

    /// Where the run goes: the tree, or the image with its root selection.
    enum Target {
        case tree(String)
        case image(String, RootSelection)
    }

    /// The target of a run given `image` (the free argument, if any), or the usage error saying what to give.
    func target(image: String?, warn: (String) -> Void) throws -> Target {
        if let tree {
            guard root == nil else {
                throw ValidationError("--root chooses among an image's operating systems, and a directory tree has "
                                      + "one: leave --root out with --tree")
            }
            guard image == nil else { throw ValidationError("give either IMAGE or --tree DIR, not both") }
            return .tree(tree)
        }
        var selection = RootSelection.all
        if let root {
            if let chosen = RootSelection(argument: root) {
                selection = chosen
            } else if isDirectory(root) {
                warn("--root \(root): --root DIR for a directory tree is deprecated, use --tree \(root) "
                     + "(--root now chooses among an image's operating systems, as virt-customize's does)")
                guard image == nil else { throw ValidationError("give either IMAGE or --tree DIR, not both") }
                return .tree(root)
            } else {
                throw UsageError("unknown --root option: \(root)", hint: "give --root all, single, first or a "
                                 + "root's device (/dev/sda2); for a directory tree, --tree DIR")
            }
        }
        guard let image else { throw ValidationError("missing IMAGE (or --tree DIR)") }
        return .image(image, selection)
    }

    private func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
