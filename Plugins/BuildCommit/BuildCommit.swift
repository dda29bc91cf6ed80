import Foundation
import PackagePlugin

/// Writes `BuildCommit.swift`, the commit the tool is built from, before every build of the target that uses it,
/// so that `--version` names it: the checkout's HEAD, with `-modified` when tracked files differ from it; in a
/// tarball made by `git archive`, the commit that `archive-commit` was filled with (export-subst); otherwise none.
/// The file is rewritten only when that changes, so an unchanged commit recompiles nothing. SwiftPM skips the
/// command when no source of the package changed (a commit of nothing but scripts leaves the old commit in an
/// incremental build): scripts/package checks the binary's commit and reruns the plugin; a fresh clone is right.
@main
struct BuildCommit: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let script = context.package.directoryURL.appending(path: "Plugins/BuildCommit/build-commit.sh")
        return [.prebuildCommand(displayName: "Recording the commit \(target.name) is built from",
                                 executable: URL(filePath: "/bin/sh"),
                                 arguments: [script.path, context.package.directoryURL.path, output.path],
                                 outputFilesDirectory: output)]
    }
}
