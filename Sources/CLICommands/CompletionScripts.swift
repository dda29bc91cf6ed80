import ArgumentParser
import Operations

/// The shells' completion scripts: ArgumentParser's, plus the operations it cannot see. `customize` and `apply`
/// parse their operations themselves from one free argument (their order matters), so ArgumentParser lists none of
/// the ~95 options; each is added to those two commands' completions here, from the registry, with its argument:
/// none for a flag, a host file where the operation reads one (`--upload`, `--run`...), nothing to complete but
/// the argument's syntax otherwise.
enum CompletionScripts {
    /// The commands that take operations.
    static let commands = ["customize", "apply"]

    /// ArgumentParser's script for `shell`, with the operations of `commands` added; nil for a shell it does not know.
    static func script(for shell: String) -> String? {
        guard let known = CompletionShell(rawValue: shell) else { return nil }
        var script = IMGCustomize.completionScript(for: known)
        for command in commands {
            switch known {
            case .bash: script = bash(script, command: command)
            case .zsh: script = zsh(script, command: command)
            case .fish: script = fish(script, command: command)
            default: break
            }
        }
        return script
    }

    /// Flags, and options whose argument is optional (attached with "="): nothing to complete after them.
    static var flags: [OperationDescriptor] { OperationRegistry.all.filter { !isRequired($0) } }
    static var options: [OperationDescriptor] { OperationRegistry.all.filter(isRequired) }

    private static func isRequired(_ descriptor: OperationDescriptor) -> Bool {
        if case .required = descriptor.argument { return true }
        return false
    }

    /// `text` with `addition` inserted after the first line of `function`'s body that starts with `anchor`.
    private static func inserting(_ addition: String, in text: String, function: String, after anchor: String,
                                  atLineEnd: Bool = true) -> String {
        guard let start = text.range(of: "\n\(function)() {\n"),
              // From the body's first line on: the newline that ends the function's first line starts it.
              let line = text.range(of: "\n" + anchor, range: text.index(before: start.upperBound)..<text.endIndex)
        else { return text }
        var result = text
        if atLineEnd {
            guard let end = text.range(of: "\n", range: line.upperBound..<text.endIndex) else { return text }
            result.insert(contentsOf: addition, at: end.upperBound)
        } else {
            result.insert(contentsOf: addition, at: line.upperBound)
        }
        return result
    }

    // bash: the operations join the command's repeating flags and options, and the options' arguments get a case.
    static func bash(_ script: String, command: String) -> String {
        let function = "_imgcustomize_\(command)"
        var script = inserting(flags.map { "--\($0.name) " }.joined(), in: script, function: function,
                               after: "    repeating_flags=(", atLineEnd: false)
        script = inserting(options.map { "--\($0.name) " }.joined(), in: script, function: function,
                           after: "    repeating_options=(", atLineEnd: false)
        let files = options.filter(\.argumentIsHostFile), others = options.filter { !$0.argumentIsHostFile }
        let cases = """
                \(files.map { "'--\($0.name)'" }.joined(separator: "|")))
                    __imgcustomize_add_completions -f
                    return
                    ;;
                \(others.map { "'--\($0.name)'" }.joined(separator: "|")))
                    return
                    ;;

            """
        return inserting(cases, in: script, function: function, after: "    case \"${prev}\" in")
    }

    // zsh: one _arguments spec an operation, repeatable, with its syntax as the argument's message.
    static func zsh(_ script: String, command: String) -> String {
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "[", with: "\\[")
                .replacingOccurrences(of: "]", with: "\\]").replacingOccurrences(of: ":", with: "\\:")
                .replacingOccurrences(of: "'", with: "'\\''")
        }
        let specs = OperationRegistry.all.map { descriptor -> String in
            let option = "*--\(descriptor.name)"
            let summary = "[\(escaped(descriptor.summary))]"
            let syntax = escaped(descriptor.argument.syntax)
            switch descriptor.argument {
            case .none: return "        '\(option)\(summary)'\n"
            case .optional: return "        '\(option)=-\(summary):\(syntax):'\n"
            case .required:
                return "        '\(option)\(summary):\(syntax):\(descriptor.argumentIsHostFile ? "_files" : "")'\n"
            }
        }
        return inserting(specs.joined(), in: script, function: "_imgcustomize_\(command)",
                         after: "    local -ar arg_specs=(")
    }

    // fish: the token parser learns the options (argparse stops at an option it does not know), and each gets a
    // `complete` line under the command's condition.
    static func fish(_ script: String, command: String) -> String {
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
        }
        let specs = OperationRegistry.all.map { descriptor -> String in
            switch descriptor.argument {
            case .none: " '\(descriptor.name)'"
            case .optional: " '\(descriptor.name)=?'"
            case .required: " '\(descriptor.name)=+'"
            }
        }.joined()
        var script = script
        let parser = "    case '\(command)'\n"
        if let parse = script.range(of: parser), let end = script.range(of: "\n", range: parse.upperBound..<script.endIndex) {
            script.insert(contentsOf: specs, at: end.lowerBound)
        }
        let condition = "__imgcustomize_should_offer_completions_for_flags_or_options \"imgcustomize \(command)\""
        let lines = OperationRegistry.all.map { descriptor -> String in
            var line = "complete -c 'imgcustomize' -n '\(escaped(condition))' -l '\(descriptor.name)' "
                + "-d '\(escaped(descriptor.summary))'"
            if case .required = descriptor.argument { line += descriptor.argumentIsHostFile ? " -rF" : " -rfka ''" }
            return line + "\n"
        }
        return script + lines.joined()
    }
}
