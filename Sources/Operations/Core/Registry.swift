import Diagnostics
/// An operation the command line, `imgcustomize operations` and the built-in profiles know by name.
///
/// Each operation type conforms and is listed once, in `OperationRegistry.types`; the CLI turns every entry into an
/// option `--NAME ARG` (or the flag `--NAME`). A test fails when an operation type is left out.
public protocol RegisteredOperation: GuestOperation {
    /// The file that defines it (`#filePath`, beside its name): `imgcustomize operations --where NAME` prints it,
    /// so that an operation is found by its name in one step wherever it lives (the sysprep cleanups share a file).
    static var sourceFile: String { get }
    /// What the operation takes on the command line.
    static var argument: OperationArgument { get }
    /// Whether its argument starts with a file on the host (`--upload ./motd:/etc/motd`, `--run ./setup.sh`), which
    /// the shells' completion then offers; false unless the operation says so.
    static var argumentIsHostFile: Bool { get }
    /// Whether the `sysprep` profile runs it, and where (`.no` unless the operation says otherwise).
    static var sysprep: SysprepDefault { get }
    /// Builds the operation from its command-line argument (nil for a flag, or an optional argument left out).
    static func parse(_ argument: String?) throws -> Self
}

extension RegisteredOperation {
    public static var sysprep: SysprepDefault { .no }
    public static var argumentIsHostFile: Bool { false }
}

/// An operation that can be written back as the lines of a command file that make it again (`name:argument`), so
/// that `profiles show NAME --as-file` prints a profile in that form. A flag needs no conformance: its line is its
/// name.
public protocol CommandLineRepresentable {
    /// The command-file lines (`set-line:/etc/sysconfig/network:NOZEROCONF=yes`); an error where the value has no
    /// such form (a file content a command file cannot hold).
    func commandLines() throws -> [String]
}

/// The argument of an operation's option.
public enum OperationArgument: Sendable, Equatable {
    /// A flag: `--lock-root`.
    case none
    /// `--write PATH:CONTENT`: `syntax` as users write it, `example` a complete argument.
    case required(syntax: String, example: String)
    /// `--disable-repos[=GLOB]`: left out, the operation uses its default. Given, it is attached with "=", so that
    /// the word after the option (the image, say) is never taken for it.
    case optional(syntax: String, example: String)

    /// "PATH:KEY=VALUE"; "" for a flag.
    public var syntax: String {
        switch self {
        case .none: ""
        case .required(let syntax, _), .optional(let syntax, _): syntax
        }
    }

    /// A complete argument, e.g. "/etc/sysconfig/network:NOZEROCONF=yes"; "" for a flag.
    public var example: String {
        switch self {
        case .none: ""
        case .required(_, let example), .optional(_, let example): example
        }
    }

    /// How the option is written with its argument: "--write PATH:CONTENT", "--disable-repos[=GLOB]", "--lock-root".
    public func usage(_ option: String) -> String {
        switch self {
        case .none: option
        case .required(let syntax, _): "\(option) \(syntax)"
        case .optional(let syntax, _): "\(option)[=\(syntax)]"
        }
    }

    /// The option with its example argument, as help shows it.
    public func exampleUsage(_ option: String) -> String {
        switch self {
        case .none: option
        case .required(_, let example): "\(option) '\(example)'"
        case .optional(_, let example): "\(option)='\(example)'"
        }
    }
}

/// Whether the `sysprep` profile runs an operation by default, and in which order.
public enum SysprepDefault: Sendable, Equatable {
    case no
    /// One of virt-sysprep's default operations, which virt-sysprep knows by this name and runs sorted by name.
    case virtSysprep(as: String)
    /// One of virt-sysprep's operations that it runs only when asked (`--enable`, `--operations`), known by this name.
    case virtSysprepOnRequest(as: String)
    /// Not a virt-sysprep operation: what cloud images need on top, run after virt-sysprep's, in registry order.
    case cloudImages
    /// What virt-sysprep does in every run without an operation of its own (its customize step, which it runs last,
    /// writes a random seed): on by default, run after everything else, in registry order.
    case virtSysprepImplicit
}

/// One operation as the command line presents it.
public struct OperationDescriptor: Sendable {
    public var name: String
    public var summary: String
    public var argument: OperationArgument
    /// The argument starts with a host file (see `RegisteredOperation.argumentIsHostFile`).
    public var argumentIsHostFile: Bool
    public var phase: OperationPhase
    public var sysprep: SysprepDefault
    /// Where it is defined, from the package's root: "Sources/Operations/Ops/SetLine.swift".
    public var sourceFile: String
    public var parse: @Sendable (String?) throws -> any GuestOperation
    /// The Swift type, for the test that every operation type is registered.
    var typeName: String

    public var isFlag: Bool { argument == .none }

    public init<Entry: RegisteredOperation>(_ entry: Entry.Type) {
        name = Entry.name
        summary = Entry.summary
        argument = Entry.argument
        argumentIsHostFile = Entry.argumentIsHostFile
        phase = Entry.phase
        sysprep = Entry.sysprep
        sourceFile = Entry.sourceFile.ranges(of: "/Sources/").last
            .map { "Sources/" + Entry.sourceFile[$0.upperBound...] } ?? Entry.sourceFile
        parse = { try Entry.parse($0) }
        typeName = String(describing: Entry.self)
    }
}

public enum OperationRegistry {
    /// Every operation, in the order `imgcustomize operations` lists them: customize's, then sysprep's.
    static let types: [any RegisteredOperation.Type] = [
        EditFile.self, SetLine.self, AppendGrubArgs.self, LockRoot.self, LockPassword.self, DisableRepos.self,
        RemoveMachineID.self, TrimFreeSpace.self, FilesystemUUIDs.self, LVMUUIDs.self,
        WriteFile.self, WriteLines.self, AppendLine.self, PerlEdit.self, YAMLListAdd.self, Upload.self, Delete.self,
        MakeDirectory.self, Chmod.self, Chown.self, Link.self, Touch.self, Truncate.self, TruncateRecursive.self,
        Scrub.self, Copy.self, Move.self, CopyIn.self, TarIn.self,
        CheckInstalled.self, RunCommand.self, RunScript.self, Install.self, Uninstall.self, Update.self,
        Firstboot.self, FirstbootCommand.self, FirstbootInstall.self, InjectQemuGA.self,
        SMRegister.self, SMAttach.self, SMRemove.self, SMUnregister.self,
        RegistrySet.self, RegistryDelete.self, InjectVirtioWin.self,

        Hostname.self, Timezone.self, SSHInject.self, Password.self, RootPassword.self, CommandsFromFile.self,
        SELinuxRelabel.self,
        AbrtData.self, BackupFiles.self, BashHistory.self, BlkidTab.self, CrashData.self, CronSpool.self,
        DHCPClientState.self, DHCPServerState.self, DovecotData.self, IPAClient.self, KerberosHostKeytab.self,
        LogFiles.self, LVMSystemDevices.self, MailSpool.self, NetHostname.self, NetHWAddr.self, NetNMConn.self,
        PacctLog.self, PackageManagerCache.self, PAMData.self, PasswdBackups.self, PuppetDataLog.self,
        RHSubscriptionManager.self, RHNSystemID.self, RPMDB.self, SambaDBLog.self, SmoltUUID.self, SSHHostKeys.self,
        SSHUserDir.self, SSSDDBLog.self, TmpFiles.self, UdevPersistentNet.self, UTmp.self, YumUUID.self,
        ZshHistory.self, CACertificates.self, FirewallRules.self, FlagReconfiguration.self, KerberosData.self,
        Script.self, UserAccount.self, CloudInitState.self, NetUUID.self, AptLists.self, DHCPLeases.self, CloudInitNetwork.self,
        RandomSeed.self,
    ]

    public static let all: [OperationDescriptor] = types.map { $0.descriptor }

    public static func named(_ name: String) -> OperationDescriptor? {
        all.first { $0.name == name }
    }

    /// The operations of `phase` that take no argument, ready to run: what a run of only that phase applies
    /// (`sparsify` runs the devices phase).
    public static func flags(in phase: OperationPhase) -> [any GuestOperation] {
        all.filter { $0.phase == phase && $0.isFlag }.compactMap { try? $0.parse(nil) }
    }
}

extension RegisteredOperation {
    static var descriptor: OperationDescriptor { OperationDescriptor(Self.self) }

    /// A command-line argument error for this operation, showing the expected syntax.
    static func invalid(_ problem: String) -> ArgumentError {
        ArgumentError(option: "--\(name)", problem: problem, argument: argument)
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
public struct ArgumentError: DiagnosticError, Sendable {
    public var option: String
    public var problem: String
    public var argument: OperationArgument

    /// The problem names the option once; the hint shows the usage.
    public var diagnostic: Diagnostic {
        Diagnostic("\(option): \(problem)", hint: argument == .none ? nil
                   : "expected \(argument.usage(option)) (e.g. \(argument.exampleUsage(option)))")
    }
}
