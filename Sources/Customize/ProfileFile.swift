import Diagnostics
import Foundation
import Host
import Operations

/// A profile written as text: virt-customize's command-file syntax (what `--commands-from-file` reads: one
/// `operation[:argument]` a line, `#` comments, a final backslash continuing a line), so that a KubeVirt
/// `customizeCommands` block is a profile as it is, plus header lines, before the first command, for what a
/// profile declares. virt-customize reads the headers as comments.
///
/// ```
/// #@ name: web
/// #@ summary: A RHEL 9 web server for the cloud
/// #@ requires: rhel, centos, rocky 9
/// #@ output: compressed-qcow2
/// #@ include: rhel9-cloud
/// #@ param: site (host path): The site's files, a tar archive
/// #@ param: port=80: The port httpd listens on
/// install:httpd
/// tar-in:${site}:/srv/www
/// run-command:systemctl enable httpd
/// ```
///
/// `requires` may be repeated (any of them qualifies); an `include`d built-in profile runs first, then the file's
/// operations, and gives the file its requirement and output where the file states none, and its parameters.
/// `param` declares a parameter (`NAME[=DEFAULT] [(host path)]: SUMMARY`, required without a default), given as
/// `apply FILE IMAGE --param NAME=VALUE`; `${NAME}` in an operation's argument is its value.
public enum ProfileFile {
    static let marker = "#@"
    static let hostPathMark = "(host path)"

    /// The profile the file `path` describes, `${NAME}` in its operations replaced by `parameters`' values or the
    /// defaults (binding the profile to the same values refuses a required one not given); `builtin` finds the
    /// profiles it may include. Errors name the file and the line.
    public static func read(_ path: String, parameters given: [String: String] = [:],
                            builtin: (String) -> Profile?) throws -> Profile {
        let bytes: [UInt8]
        do {
            bytes = try HostFiles.read(path).content
        } catch let error as SystemCallError {
            throw CommandFileError(file: path, line: nil, problem: "cannot read it: \(error.message)",
                                   hint: "give the path of a readable profile file (`imgcustomize profiles show NAME "
                                      + "--as-file` prints one to start from)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CommandFileError(file: path, line: nil, problem: "is not UTF-8 text",
                                   hint: "a profile file is text: `#@ name: NAME` headers, then one operation a line")
        }
        let header = try Header(text, file: path, builtin: builtin)
        let included = header.include
        let parameters = header.parameters
            + (included?.parameters ?? []).filter { inherited in !header.parameters.contains { $0.name == inherited.name } }
        var values: [String: String] = [:]
        for parameter in parameters {
            values[parameter.name] = given[parameter.name] ?? parameter.defaultValue
        }
        let operations = try CommandFile.read(path, substituting: values)
        let name = header.name ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        return Profile(name, summary: header.summary ?? "the profile file \(path)",
                       requires: header.requirement ?? included?.requirement,
                       output: header.output ?? included?.output ?? .sameFormat, parameters: parameters) { _, _ in
            if let included { included }
            for operation in operations { operation }
        }
    }

    /// What the `#@` lines declare.
    struct Header {
        var name: String?
        var summary: String?
        var requirement: GuestRequirement?
        var output: OutputPolicy?
        var include: Profile?
        var parameters: [ProfileParameter] = []

        init(_ text: String, file: String, builtin: (String) -> Profile?) throws {
            let firstCommand = CommandFile.parse(text).first?.line ?? Int.max
            let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            var kinds: [GuestRequirement] = []
            for (index, line) in lines.enumerated() {
                let content = line.drop(while: \.isWhitespace)
                guard content.hasPrefix(ProfileFile.marker) else { continue }
                func fail(_ problem: String, _ hint: String) -> CommandFileError {
                    CommandFileError(file: file, line: index + 1, problem: problem, hint: hint)
                }
                guard index + 1 < firstCommand else {
                    throw fail("a header line after the first operation", "move the `#@` lines to the top of the file")
                }
                let declaration = content.dropFirst(ProfileFile.marker.count)
                guard let colon = declaration.firstIndex(of: ":") else {
                    throw fail("no ':' in the header line", "write `#@ KEY: VALUE` (name, summary, requires, output, include, param)")
                }
                let key = declaration[..<colon].trimmingCharacters(in: .whitespaces)
                let value = declaration[declaration.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                guard !value.isEmpty else { throw fail("`\(key)` has no value", "write `#@ \(key): VALUE`") }
                switch key {
                case "name": name = value
                case "summary": summary = value
                case "requires":
                    // "rhel, centos, rocky 9": distributions as libguestfs names them, then an optional major version.
                    var words = value.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
                    let major = words.count > 1 ? words.last.flatMap { Int($0) } : nil
                    if major != nil { words.removeLast() }
                    guard !words.isEmpty, words.allSatisfy({ $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" } }) else {
                        throw fail("`requires: \(value)` names no distribution",
                                   "write `#@ requires: DISTRO[, DISTRO...] [MAJOR]`, e.g. `rhel, rocky 9`")
                    }
                    kinds.append(.distros(words, major: major))
                case "output":
                    switch value {
                    case "compressed-qcow2": output = .compressedQCOW2
                    case "same-format": output = .sameFormat
                    default: throw fail("unknown output \"\(value)\"", "write `#@ output: compressed-qcow2` or `same-format`")
                    }
                case "include":
                    guard include == nil else { throw fail("a second include", "include one built-in profile") }
                    guard let profile = builtin(value) else {
                        throw fail("no built-in profile named '\(value)'", "`imgcustomize profiles` lists them")
                    }
                    include = profile
                case "param":
                    // "virtio-win (host path): The virtio-win ISO", "admin-user=Admin: The account": the summary
                    // after the first ": ", so that a default may hold a drive letter.
                    let usage = "write `#@ param: NAME[=DEFAULT] [(host path)]: SUMMARY`"
                    guard let separator = value.range(of: ": ") else { throw fail("`param: \(value)` has no summary", usage) }
                    var declaration = value[..<separator.lowerBound].trimmingCharacters(in: .whitespaces)
                    let summary = value[separator.upperBound...].trimmingCharacters(in: .whitespaces)
                    let hostPath = declaration.hasSuffix(ProfileFile.hostPathMark)
                    if hostPath { declaration = declaration.dropLast(ProfileFile.hostPathMark.count).trimmingCharacters(in: .whitespaces) }
                    let equals = declaration.firstIndex(of: "=")
                    let parameterName = String(declaration[..<(equals ?? declaration.endIndex)])
                    guard !parameterName.isEmpty, !summary.isEmpty,
                          parameterName.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                        throw fail("`param: \(value)` names no parameter (letters, digits, - and _)", usage)
                    }
                    guard !parameters.contains(where: { $0.name == parameterName }) else {
                        throw fail("a second parameter named \(parameterName)", "declare each parameter once")
                    }
                    parameters.append(ProfileParameter(parameterName, summary: summary,
                                                       default: equals.map { String(declaration[declaration.index(after: $0)...]) },
                                                       hostPath: hostPath))
                default:
                    throw fail("unknown header `\(key)`", "the headers are name, summary, requires, output, include and param")
                }
            }
            if kinds.count == 1 { requirement = kinds[0] }
            if kinds.count > 1 {
                requirement = .anyOf(kinds, hint: "the profile file \(file) is for \(GuestRequirement.anyOf(kinds, hint: "")) guests")
            }
        }
    }

    /// `profile` as a profile file: its headers, then its steps on `guest` (a profile may choose its steps by the
    /// guest), one command a line under its groups as comments. Applying it gives what the profile gives on such a
    /// guest. Steps that change nothing (notes, a profile's choice) are comments.
    public static func text(of profile: Profile, guest: GuestFacts) throws -> String {
        var lines = ["# The \(profile.name) profile as a profile file (`imgcustomize profiles show \(profile.name) --as-file`),",
                     "# its steps as they run on a \(guest.distro ?? "linux") \(guest.majorVersion == 0 ? "" : "\(guest.majorVersion) ")guest.",
                     "# Apply it with `imgcustomize apply FILE IMAGE`; virt-customize --commands-from-file reads it too",
                     "# (the #@ headers are comments to it).",
                     "\(marker) name: \(profile.name)", "\(marker) summary: \(profile.summary)"]
        // Parameters a profile only passes on (cloud's) are the chosen profile's business: not this file's.
        for parameter in profile.parameters where parameter.neededBy == nil {
            let declaration = parameter.name + (parameter.defaultValue.map { "=" + $0 } ?? "")
                + (parameter.isHostPath ? " " + hostPathMark : "")
            lines.append("\(marker) param: \(declaration): \(parameter.summary)")
        }
        let steps = profile.steps(for: guest)
        var kinds = profile.requirement?.kinds ?? []
        if steps.contains(where: { $0.operation is ProfileChoice }) {
            // A profile that picks its steps by the guest (cloud): the file holds one guest's, and is for such guests.
            kinds = kinds.filter { $0.accepts(guest) }
            lines.insert("# \(profile.name) chooses its steps by the guest: these, and the requirement, are for this one.",
                         at: 2)
        }
        for kind in kinds {
            lines.append("\(marker) requires: \(kind.distros.joined(separator: ", "))\(kind.majorVersion.map { " \($0)" } ?? "")")
        }
        lines.append("\(marker) output: \(profile.output == .compressedQCOW2 ? "compressed-qcow2" : "same-format")")
        var previous: [String] = []
        for step in steps {
            if step.path != previous {
                lines += ["", "# " + step.path.joined(separator: " / ")]
                previous = step.path
            }
            let operation = step.operation
            if let representable = operation as? any CommandLineRepresentable {
                lines += try representable.commandLines()
            } else if let registered = operation as? any RegisteredOperation, type(of: registered).argument == .none {
                lines.append(operation.name)
            } else if operation is Note || operation is ProfileChoice {
                lines.append("# \(operation.name): \(operation.target)")
            } else {
                throw CustomizeError(image: profile.name, "the \(operation.name) step has no command-file form yet")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
