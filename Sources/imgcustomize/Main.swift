import CLICommands

/// The commands live in CLICommands, where the tests parse them in-process; `IMGCustomize.main` is
/// ArgumentParser's, except that a run cancelled by a signal ends by that signal once it has cleaned up.
@main
enum Main {
    static func main() { IMGCustomize.main() }
}
