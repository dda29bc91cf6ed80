import ArgumentParser
import Customize
import Operations
import Profiles

extension IMGCustomize {
    struct ProfilesCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "profiles",
            abstract: "List the built-in profiles, or show the steps of one.",
            discussion: """
            EXAMPLES:
              imgcustomize profiles
              imgcustomize profiles rhel7-cloud
              imgcustomize profiles show rhel7-cloud
              imgcustomize profiles show rhel7-cloud --as-file > my-rhel7.profile
            """,
            subcommands: [List.self, Show.self],
            defaultSubcommand: List.self)

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List the built-in profiles, with what each does besides its steps.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "A profile's name: print its steps, as `profiles show NAME` does.",
                      completion: .profiles) var name: String?
            @Flag(help: "Print one JSON document on stdout.") var json = false

            func run() throws {
                if let name {
                    try Show.print(name, json: json)
                } else if json {
                    Output.document(jsonDocument(ProfileListDocument()))
                } else {
                    print(Self.listing())
                }
            }

            static func listing() -> String {
                let width = BuiltinProfiles.all.map(\.name.count).max() ?? 0
                return BuiltinProfiles.all.map { profile in
                    profile.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + profile.summary + "\n"
                        + String(repeating: " ", count: width + 2) + profile.effects
                }.joined(separator: "\n")
            }
        }

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print the steps of a profile, as they would run on a typical guest of its kind.",
                discussion: "EXAMPLE:\n  imgcustomize profiles show rhel6-cloud")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The profile's name.", completion: .profiles) var name: String
            @Flag(help: "Print one JSON document on stdout.") var json = false
            @Flag(help: "Print the profile as a profile file (virt-customize's command-file syntax with #@ headers), to copy, edit and apply: `imgcustomize apply ./FILE IMAGE`.")
            var asFile = false

            func validate() throws {
                if json && asFile { throw ValidationError("give either --json or --as-file, not both") }
            }

            func run() throws {
                guard asFile else { return try Self.print(name, json: json) }
                let profile = try Self.named(name)
                Swift.print(try ProfileFile.text(of: profile, guest: profile.requirement?.exampleGuest ?? GuestFacts(type: "linux")),
                            terminator: "")
            }

            static func print(_ name: String, json: Bool) throws {
                guard json else {
                    Swift.print(try steps(of: name))
                    return
                }
                let profile = try named(name)
                let guest = profile.requirement?.exampleGuest ?? GuestFacts(type: "linux")
                let steps = profile.steps(for: guest).map {
                    ProfileStepsDocument.Step(path: $0.path, operation: $0.operation.name, target: $0.operation.target)
                }
                Output.document(jsonDocument(ProfileStepsDocument(
                    name: profile.name, summary: profile.summary, requires: profile.requirement.map { "\($0)" },
                    output: profile.output == .compressedQCOW2 ? "compressed qcow2" : "the input's format",
                    parameters: profile.parameters.map(ProfileStepsDocument.Parameter.init), steps: steps)))
            }

            static func named(_ name: String) throws -> Profile {
                guard let profile = BuiltinProfiles.named(name) else {
                    throw ValidationError("no profile named '\(name)'; the profiles are: "
                                          + BuiltinProfiles.all.map(\.name).joined(separator: ", "))
                }
                return profile
            }

            /// The profile's heading lines and its steps, indented under their groups and includes.
            static func steps(of name: String) throws -> String {
                let profile = try named(name)
                var lines = ["\(profile.name): \(profile.summary)"]
                if let requirement = profile.requirement { lines.append("requires: \(requirement) guest") }
                lines.append("output: \(profile.output == .compressedQCOW2 ? "compressed qcow2" : "the input's format")")
                if !profile.parameters.isEmpty {
                    lines.append("parameters (apply \(profile.name) IMAGE --param NAME=VALUE):")
                    lines += profile.parameters.map { "  " + $0.listing }
                }
                let guest = profile.requirement?.exampleGuest ?? GuestFacts(type: "linux")
                var previous: [String] = [profile.name]
                for step in profile.steps(for: guest) {
                    for (depth, heading) in step.path.enumerated().dropFirst() where depth >= previous.count || previous[depth] != heading {
                        lines.append(String(repeating: "  ", count: depth) + heading + ":")
                    }
                    previous = step.path
                    let target = step.operation.target.isEmpty ? "" : " \(step.operation.target)"
                    lines.append(String(repeating: "  ", count: step.path.count) + step.operation.name + target)
                }
                return lines.joined(separator: "\n")
            }
        }
    }
}

extension CompletionKind {
    /// The built-in profiles' names, for the shells' completion of a profile argument.
    static var profiles: CompletionKind { .list(BuiltinProfiles.all.map(\.name)) }

    /// The built-in profiles' parameters as `NAME=`, for the shells' completion of `--param`.
    static var profileParameters: CompletionKind {
        .list(Set(BuiltinProfiles.all.flatMap(\.parameters).map { $0.name + "=" }).sorted())
    }
}
