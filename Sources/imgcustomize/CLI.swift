import ArgumentParser

@main
struct IMGCustomize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imgcustomize",
        abstract: "Customize, clean, sparsify and compress VM disk images offline, in one appliance launch.",
        version: IMGCustomize.version,
        subcommands: [Apply.self, CustomizeCommand.self, Sparsify.self, Inspect.self, Convert.self,
                      ProfilesCommand.self, OperationsCommand.self]
    )

    static let version = "0.1.0"
}
