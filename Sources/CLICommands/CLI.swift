import ArgumentParser
import Customize
import Diagnostics
import Foundation
import Operations
import Synchronization
import Host

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

    /// The release, the one place it is written (CHANGELOG.md's newest heading and the package follow it).
    static let release = "0.2.1"
    /// What `--version` prints: the release and the commit built from (Plugins/BuildCommit).
    static let version = "\(release) (commit \(buildCommit ?? "unknown: not built from a git checkout"))"

    public init() {}

    /// ArgumentParser's main, except that every failure is printed in one shape (`imgcustomize: error: ...` and its
    /// hint on stderr; with --json also one document on stdout, usage errors included), and that a run cancelled
    /// by a signal ends by that signal once it has cleaned up.
    public static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // ArgumentParser's own scripts know no operation: ours add them (see CompletionScripts).
        if let script = requestedCompletionScript(arguments) {
            print(script)
            return
        }
        // Before parsing, which may itself fail: --json promises a document whatever goes wrong.
        Output.json = Output.asksForJSON(arguments)
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            let code = exitCode(for: error)
            if Output.json, !code.isSuccess {
                Output.failure(Diagnostic(message(for: error), hint: usageHint(arguments)), exitCode: code.rawValue)
            }
            // Its usage line and `--help` pointer are ArgumentParser's, and right here: the parse knew the command.
            exit(withError: error)
        }
        do {
            try command.run()
        } catch {
            fail(error, arguments: arguments)
        }
    }

    /// Prints `error` as every failure is printed and ends the process with its exit status: 64 for a command line
    /// that cannot be used, 128+N (by the signal itself) for a run a signal cancelled, 1 otherwise.
    static func fail(_ error: any Error, arguments: [String]) -> Never {
        let cancelled = error as? RunCancelled ?? (error as? RunFailure)?.error as? RunCancelled
        if let cancelled {
            if Output.json {
                Output.failure(Diagnostic(of: error), run: error as? RunFailure,
                               exitCode: 128 + Interruption.signalReceived)
            }
            Interruption.finish(cancelled)
        }
        if let exit = error as? ExitCode {
            // The command printed its result (an unsafe image's report, a failed boot check's) before saying so.
            if Output.json, !exit.isSuccess {
                Output.failure(Diagnostic("the command failed (exit status \(exit.rawValue))"), exitCode: exit.rawValue)
            }
            Self.exit(withError: exit)
        }
        // Help asked for through `imgcustomize help apply` comes as an error too: ArgumentParser prints it.
        if exitCode(for: error).isSuccess { Self.exit(withError: error) }
        let diagnostic: Diagnostic
        let code: Int32
        switch error {
        case let usage as ValidationError:
            diagnostic = Diagnostic(usage.message, hint: usageHint(arguments))
            code = ExitCode.validationFailure.rawValue
        case let usage as UsageError:
            var given = usage.diagnostic
            given.hint = given.hint ?? usageHint(arguments)
            diagnostic = given
            code = ExitCode.validationFailure.rawValue
        case let error as any DiagnosticError:
            diagnostic = error.diagnostic
            code = ExitCode.failure.rawValue
        default:
            // ArgumentParser's own errors read best in its words.
            diagnostic = Diagnostic(message(for: error))
            code = exitCode(for: error).rawValue
        }
        if Output.json { Output.failure(diagnostic, run: error as? RunFailure, exitCode: code) }
        FileHandle.standardError.write(Data((diagnostic.text(program: "imgcustomize") + "\n").utf8))
        Foundation.exit(code)
    }

    /// The completion script `--generate-completion-script SHELL` asks for; nil for any other command line (and for
    /// a shell ArgumentParser does not know, which it refuses itself).
    static func requestedCompletionScript(_ arguments: [String]) -> String? {
        let option = "--generate-completion-script"
        guard let first = arguments.first else { return nil }
        if first == option, arguments.count == 2 { return CompletionScripts.script(for: arguments[1]) }
        if first.hasPrefix(option + "="), arguments.count == 1 {
            return CompletionScripts.script(for: String(first.dropFirst(option.count + 1)))
        }
        return nil
    }

    /// Where the usage of the command the arguments name is: `imgcustomize apply --help`.
    static func usageHint(_ arguments: [String]) -> String {
        var names = ["imgcustomize"]
        var commands = configuration.subcommands
        for argument in arguments {
            guard let next = commands.first(where: { $0._commandName == argument }) else { break }
            names.append(argument)
            commands = next.configuration.subcommands
        }
        return "see `\(names.joined(separator: " ")) --help` for the usage"
    }
}

/// What goes on stdout as the command's one JSON document under --json: the result, or the failure, never both
/// and never twice, whichever part of the program (the command, the failure path, a signal's deadline) gets there
/// first.
enum Output {
    private static let state = Mutex<(json: Bool, printed: Bool)>((false, false))

    /// --json was among the arguments.
    static var json: Bool {
        get { state.withLock { $0.json } }
        set { state.withLock { $0.json = newValue } }
    }

    /// Whether the arguments ask for JSON: `--json` before any `--` (after which every word is an argument).
    static func asksForJSON(_ arguments: [String]) -> Bool {
        arguments.prefix { $0 != "--" }.contains("--json")
    }

    /// Prints `text` as the run's document unless one was printed already; false when it was.
    @discardableResult
    static func document(_ text: String) -> Bool {
        state.withLock { state in
            guard !state.printed else { return false }
            state.printed = true
            // Written at once, not through stdio's buffer: a run a signal ends dies by it, and a buffer would die too.
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
            return true
        }
    }

    /// The document of a failure: `error` (message, hint, image, path) and `exit-code`, and for a run that had
    /// started, the run's own keys (the steps done, the stage, whether the image is unchanged).
    static func failure(_ diagnostic: Diagnostic, run: RunFailure? = nil, exitCode: Int32) {
        document(jsonDocument(FailureDocument(diagnostic: diagnostic, run: run, exitCode: exitCode)))
    }

    struct FailureDocument: Encodable {
        var diagnostic: Diagnostic
        var run: RunFailure?
        var exitCode: Int32

        enum CodingKeys: String, CodingKey {
            case error
            case exitCode = "exit-code"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            if let run {
                try run.encode(to: encoder)
            } else {
                try container.encode(diagnostic, forKey: .error)
            }
            try container.encode(exitCode, forKey: .exitCode)
        }
    }
}
