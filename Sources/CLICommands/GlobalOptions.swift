import ArgumentParser
import Formats
import Foundation
import Logging

/// Options every subcommand takes: how much to say on stderr, and which kinds of path it may open.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Say more on stderr (-v: progress details, -vv: debug, -vvv: libguestfs trace).")
    var verbose: Int

    @Flag(name: .shortAndLong, help: "Say only warnings and errors on stderr.")
    var quiet = false

    @Flag(help: "Read the image through a symbolic link (refused otherwise); results are never written through one.")
    var followSymlinks = false

    @Flag(help: "Read a block device as the image (refused otherwise); a result over it needs --output.")
    var allowDevice = false

    var access: FileAccess { FileAccess(followSymlinks: followSymlinks, allowBlockDevices: allowDevice) }

    var logLevel: Logger.Level {
        if quiet { return .warning }
        switch verbose {
        case 0: return .notice
        case 1: return .info
        case 2: return .debug
        default: return .trace
        }
    }

    /// A logger writing plain `imgcustomize: ...` lines to stderr; stdout stays for results (and JSON).
    func makeLogger() -> Logger {
        var logger = Logger(label: "imgcustomize") { label in PlainStderrHandler(label: label) }
        logger.logLevel = logLevel
        return logger
    }
}

struct PlainStderrHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .notice
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = event.message
        let prefix = switch event.level {
        case .warning: "warning: "
        case .error, .critical: "error: "
        case .debug, .trace: "debug: "
        default: ""
        }
        // A batch's launches log at once: each one's appliance says which it is.
        let launch = metadata["launch"].map { "[launch \($0)] " } ?? ""
        FileHandle.standardError.write(Data("imgcustomize: \(launch)\(prefix)\(message)\n".utf8))
    }
}
