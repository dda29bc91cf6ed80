/// An operation the command line and `imgcustomize operations` know by name.
///
/// Each operation type conforms and lists itself in `OperationCatalog.entries`; the CLI turns every entry into an
/// option `--NAME ARG` (or the flag `--NAME` when `syntax` is empty).
public protocol CatalogEntry: Operation {
    /// The argument as users write it, e.g. "PATH:KEY=VALUE"; "" for a flag such as --lock-root.
    static var syntax: String { get }
    /// A complete argument, e.g. "/etc/sysconfig/network:NOZEROCONF=yes"; "" for a flag.
    static var example: String { get }
    /// Builds the operation from its command-line argument (nil for a flag).
    static func parse(_ argument: String?) throws -> Self
}

/// One operation as the command line presents it.
public struct OperationDescriptor: Sendable {
    public var name: String
    public var summary: String
    public var syntax: String
    public var example: String
    public var parse: @Sendable (String?) throws -> any Operation

    public var isFlag: Bool { syntax.isEmpty }

    public init<Entry: CatalogEntry>(_ entry: Entry.Type) {
        name = Entry.name
        summary = Entry.summary
        syntax = Entry.syntax
        example = Entry.example
        parse = { try Entry.parse($0) }
    }
}

public enum OperationCatalog {
    /// The customize operations, in the order `imgcustomize operations` lists them.
    static let customizeEntries: [any CatalogEntry.Type] = [
        EditFile.self, SetLine.self, AppendGrubArgs.self, LockRoot.self, LockPassword.self, DisableRepos.self,
        RemoveMachineID.self, TrimFreeSpace.self,
        WriteFile.self, WriteLines.self, AppendLine.self, YAMLListAdd.self, Upload.self, Delete.self,
        MakeDirectory.self, Chmod.self, Chown.self, Link.self, Touch.self, Truncate.self, Copy.self, Move.self,
    ]

    /// The virt-sysprep operations; their files are Sources/Operations/Ops/Sysprep*.swift and friends.
    static let sysprepEntries: [any CatalogEntry.Type] = sysprepCatalogEntries

    public static let all: [OperationDescriptor] = (customizeEntries + sysprepEntries).map { $0.descriptor }

    public static func named(_ name: String) -> OperationDescriptor? {
        all.first { $0.name == name }
    }
}

extension CatalogEntry {
    static var descriptor: OperationDescriptor { OperationDescriptor(Self.self) }

    /// A command-line argument error for this operation, showing the expected syntax.
    static func invalid(_ problem: String) -> ArgumentError {
        ArgumentError(option: "--\(name)", problem: problem, syntax: syntax, example: example)
    }

    /// The argument of an option that takes one.
    static func required(_ argument: String?) throws -> String {
        guard let argument, !argument.isEmpty else { throw invalid("an argument is required") }
        return argument
    }

    /// Splits "PATH:REST" at the first colon and checks PATH is an absolute guest path.
    static func pathAndRest(_ argument: String?) throws -> (path: String, rest: String) {
        let argument = try required(argument)
        guard let colon = argument.firstIndex(of: ":") else { throw invalid("no ':' in \"\(argument)\"") }
        let path = String(argument[..<colon])
        try checkPath(path)
        return (path, String(argument[argument.index(after: colon)...]))
    }

    /// The argument of an option that takes one absolute guest path.
    static func guestPath(_ argument: String?) throws -> String {
        let path = try required(argument)
        try checkPath(path)
        return path
    }

    static func checkPath(_ path: String) throws {
        guard path.hasPrefix("/") else { throw invalid("\"\(path)\" is not an absolute guest path") }
    }

    /// For flags: refuses an argument.
    static func noArgument(_ argument: String?) throws {
        if let argument { throw invalid("takes no argument, got \"\(argument)\"") }
    }
}

/// A command-line argument an operation cannot use.
public struct ArgumentError: Error, CustomStringConvertible, Sendable {
    public var option: String
    public var problem: String
    public var syntax: String
    public var example: String

    public var description: String {
        var text = "\(option): \(problem)"
        if !syntax.isEmpty { text += "; expected \(option) \(syntax) (e.g. \(option) '\(example)')" }
        return text
    }
}
