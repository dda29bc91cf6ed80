import ArgumentParser
import Customize
import Operations

/// The `imgcustomize` command and its subcommands. The executable is a few lines calling `main()`; tests call
/// `parseAsRoot([...])` in-process.
public struct IMGCustomize: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "imgcustomize",
        abstract: "Customize, clean, sparsify and compress VM disk images offline, in one appliance launch.",
        version: IMGCustomize.version,
        subcommands: [Apply.self, CustomizeCommand.self, Sparsify.self, Inspect.self, Convert.self, BootCheckCommand.self,
                      ProfilesCommand.self, OperationsCommand.self]
    )

    static let version = "0.1.0"

    public init() {}

    /// ArgumentParser's main, except that a run cancelled by a signal ends by that signal once it has cleaned up.
    public static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let cancelled as RunCancelled {
            Interruption.finish(cancelled)
        } catch let failure as RunFailure where failure.error is RunCancelled {
            // --json has printed the failure's document by now.
            Interruption.finish(failure.error as! RunCancelled)
        } catch {
            exit(withError: error)
        }
    }
}
