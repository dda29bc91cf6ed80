import Formats
import Operations
import Profiles
import Customize

/// What `convert --json` prints: what was read and written, in bytes, and how long it took.
struct ConvertDocument: Encodable {
    var input: String
    var output: String
    var format: String
    var virtualSize: UInt64
    var bytesRead: UInt64
    var bytesWritten: UInt64
    var seconds: Double

    init(input: String, output: String, format: OutputFormat, virtualSize: UInt64, stats: WriteStats) {
        self.input = input
        self.output = output
        self.format = format.rawValue
        self.virtualSize = virtualSize
        bytesRead = stats.bytesRead
        bytesWritten = stats.outputSize
        seconds = stats.seconds
    }

    enum CodingKeys: String, CodingKey {
        case input, output, format, seconds
        case virtualSize = "virtual-size", bytesRead = "bytes-read", bytesWritten = "bytes-written"
    }
}

/// What `profiles --json` prints: each built-in profile with what it does besides its steps.
struct ProfileListDocument: Encodable {
    struct Entry: Encodable {
        var name: String
        var summary: String
        var effects: String
    }

    var profiles: [Entry] = BuiltinProfiles.all.map { Entry(name: $0.name, summary: $0.summary, effects: $0.effects) }
}

/// What `profiles show NAME --json` prints: the profile and its steps on a typical guest of its kind, each with the
/// groups it is under.
struct ProfileStepsDocument: Encodable {
    struct Step: Encodable {
        var path: [String]
        var operation: String
        var target: String
    }

    /// A parameter the profile takes (`--param NAME=VALUE`): required when it has no default and no `needed-by`.
    struct Parameter: Encodable {
        var name: String
        var summary: String
        var `default`: String?
        var hostPath: Bool
        var neededBy: String?
        var required: Bool

        init(_ parameter: ProfileParameter) {
            name = parameter.name
            summary = parameter.summary
            `default` = parameter.defaultValue
            hostPath = parameter.isHostPath
            neededBy = parameter.neededBy
            required = parameter.isRequired
        }

        enum CodingKeys: String, CodingKey {
            case name, summary, `default`, required, hostPath = "host-path", neededBy = "needed-by"
        }
    }

    var name: String
    var summary: String
    var requires: String?
    var output: String
    var parameters: [Parameter]
    var steps: [Step]

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(summary, forKey: .summary)
        try container.encode(requires, forKey: .requires)
        try container.encode(output, forKey: .output)
        try container.encode(parameters, forKey: .parameters)
        try container.encode(steps, forKey: .steps)
    }

    enum CodingKeys: String, CodingKey { case name, summary, requires, output, parameters, steps }
}

/// What `operations --json` prints: every operation with its usage; with --sysprep, the sysprep choices.
struct OperationsDocument: Encodable {
    struct Entry: Encodable {
        var name: String
        var summary: String
        var usage: String
        var example: String?
        /// With --where: the file that defines it.
        var source: String?
        /// With --sysprep: whether the sysprep profile runs it when nothing is chosen.
        var sysprepDefault: Bool?

        enum CodingKeys: String, CodingKey {
            case name, summary, usage, example, source
            case sysprepDefault = "sysprep-default"
        }
    }

    var operations: [Entry]
}
