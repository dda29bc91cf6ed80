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
              imgcustomize profiles show rhel7-cloud
            """,
            subcommands: [List.self, Show.self],
            defaultSubcommand: List.self)

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the built-in profiles.")
            @OptionGroup var global: GlobalOptions

            func run() {
                let width = BuiltinProfiles.all.map(\.name.count).max() ?? 0
                for profile in BuiltinProfiles.all {
                    print(profile.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + profile.summary)
                }
            }
        }

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print the steps of a profile, as they would run on a typical guest of its kind.",
                discussion: "EXAMPLE:\n  imgcustomize profiles show rhel6-cloud")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The profile's name.") var name: String

            func run() throws {
                guard let profile = BuiltinProfiles.named(name) else {
                    throw ValidationError("no profile named '\(name)'; the profiles are: "
                                          + BuiltinProfiles.all.map(\.name).joined(separator: ", "))
                }
                print("\(profile.name): \(profile.summary)")
                if let requirement = profile.requirement { print("requires: \(requirement) guest") }
                print("output: \(profile.output == .compressedQCOW2 ? "compressed qcow2" : "the input's format")")
                let guest = profile.requirement?.exampleGuest ?? GuestFacts(type: "linux")
                var previous: [String] = [profile.name]
                for step in profile.steps(for: guest) {
                    for (depth, heading) in step.path.enumerated().dropFirst() where depth >= previous.count || previous[depth] != heading {
                        print(String(repeating: "  ", count: depth) + heading + ":")
                    }
                    previous = step.path
                    let target = step.operation.target.isEmpty ? "" : " \(step.operation.target)"
                    print(String(repeating: "  ", count: step.path.count) + step.operation.name + target)
                }
            }
        }
    }
}
