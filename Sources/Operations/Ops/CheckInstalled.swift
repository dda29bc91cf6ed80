/// Verifies that the guest carries software a step of the recipe installs inside a running guest (which an
/// offline tool cannot do): it changes nothing, and says clearly, in the step's report and as a warning of the run,
/// what is missing.
public struct CheckInstalled: RegisteredOperation {
    public static let name = "check-installed"
    public static let sourceFile = #filePath
    public static let summary = "Check that the guest has a package's files; warn clearly when it does not"
    public static let argument = OperationArgument.required(syntax: "PACKAGE:PATH[,PATH...]", example: "cloud-init:/usr/bin/cloud-init")

    public let package: String
    public let paths: [String]
    /// What the user should do when the package is missing.
    public let hint: String

    public var target: String { package }

    public init(_ package: String, paths: [String], hint: String? = nil) {
        self.package = package
        self.paths = paths
        self.hint = hint ?? "install it in the guest (yum install -y \(package)) before customizing"
    }

    public static func parse(_ argument: String?) throws -> CheckInstalled {
        let argument = try required(argument)
        guard let colon = argument.firstIndex(of: ":") else { throw invalid("no ':' in \"\(argument)\"") }
        let paths = argument[argument.index(after: colon)...].split(separator: ",").map(String.init)
        for path in paths { try checkPath(path) }
        guard !paths.isEmpty else { throw invalid("no path to look for") }
        return CheckInstalled(String(argument[..<colon]), paths: paths)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let missing = try paths.filter { try !guest.exists($0) }
        guard missing.isEmpty else {
            return .warning("\(package) is NOT installed (missing \(missing.joined(separator: ", "))): \(hint)")
        }
        return .unchanged("\(package) is installed")
    }
}

/// A step of a recipe that needs a running guest or a network (registering, updating packages): an offline tool
/// cannot do it, and does not drop it silently either. It changes nothing and puts its note in the report.
public struct Note: GuestOperation {
    public static let name = "note"
    public static let summary = "A step imgcustomize cannot do offline, reported rather than silently dropped"

    public let text: String
    public var target: String { text }

    public init(_ text: String) { self.text = text }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        .unchanged("not done offline")
    }
}

extension CheckInstalled: CommandLineRepresentable {
    public func commandLines() throws -> [String] { ["\(Self.name):\(package):\(paths.joined(separator: ","))"] }
}
