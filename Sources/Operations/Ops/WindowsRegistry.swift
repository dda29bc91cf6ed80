import Foundation
import Host

/// A key of a Windows guest's registry, as users write it: `HKLM\SOFTWARE\Cloudbase Solutions\Cloudbase-Init`
/// (`HKEY_LOCAL_MACHINE\...` too). The hive is a file of the guest, %SYSTEMROOT%\System32\config\<HIVE>;
/// `HKLM\SYSTEM\CurrentControlSet` is the control set the hive's `Select\Current` names, as Windows resolves it at boot.
public struct RegistryKey: Sendable, Equatable, CustomStringConvertible {
    public enum Hive: String, Sendable, CaseIterable {
        case software = "SOFTWARE", system = "SYSTEM", sam = "SAM", security = "SECURITY", defaultUser = "DEFAULT"
    }

    public var hive: Hive
    /// The subkeys below the hive's root.
    public var path: [String]

    /// At most this many levels: Windows allows 512; a path this deep is a mistake, not a key.
    static let depthLimit = 64

    public init(hive: Hive, path: [String]) {
        self.hive = hive
        self.path = path
    }

    /// Nil when `text` does not name a key of a hive a guest keeps under System32\config.
    public init?(_ text: String) {
        var components = text.split(separator: "\\", omittingEmptySubsequences: false).map(String.init)
        guard let root = components.first, ["HKLM", "HKEY_LOCAL_MACHINE"].contains(root.uppercased()),
              components.count >= 2, let hive = Hive(rawValue: components[1].uppercased()) else { return nil }
        components.removeFirst(2)
        if components.last == "" { components.removeLast() }
        guard components.count <= Self.depthLimit, !components.contains(where: \.isEmpty) else { return nil }
        self.init(hive: hive, path: components)
    }

    public var description: String { (["HKLM", hive.rawValue] + path).joined(separator: "\\") }

    /// The name `.reg` text and hivexregedit give it: HKEY_LOCAL_MACHINE\SOFTWARE\...
    var regName: String { (["HKEY_LOCAL_MACHINE", hive.rawValue] + path).joined(separator: "\\") }
    var regPrefix: String { "HKEY_LOCAL_MACHINE\\" + hive.rawValue }
    /// The path below the hive's root, as hivexregedit --export takes it.
    var exportPath: String { path.isEmpty ? "\\" : path.joined(separator: "\\") }
}

/// A registry value's type and data as `.reg` text writes them.
public struct RegistryData: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case sz, expandSz = "expand_sz", multiSz = "multi_sz", dword, qword, binary
    }

    public var kind: Kind
    /// The data as given: text for the string kinds (multi_sz items separated by ';'), a number for dword and qword
    /// (decimal or 0x hex), hex bytes for binary ("01,ff" or "01ff").
    public var text: String

    public init(kind: Kind, text: String) {
        self.kind = kind
        self.text = text
    }

    /// `TYPE:DATA`.
    public init?(_ typed: String) {
        guard let colon = typed.firstIndex(of: ":"), let kind = Kind(rawValue: String(typed[..<colon]).lowercased())
        else { return nil }
        self.kind = kind
        text = String(typed[typed.index(after: colon)...])
        guard regValue != nil else { return nil }
    }

    /// The right-hand side of a `.reg` line: `dword:0000002a`, `hex(2):43,00,...`; nil for data its kind cannot hold.
    var regValue: String? {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined(separator: ",") }
        func utf16(_ string: String) -> [UInt8] { string.utf16.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] } }
        func number(_ limit: UInt64) -> UInt64? {
            let value = text.lowercased().hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            return value.flatMap { $0 <= limit ? $0 : nil }
        }
        switch kind {
        case .sz: return "hex(1):" + hex(utf16(text) + [0, 0])
        case .expandSz: return "hex(2):" + hex(utf16(text) + [0, 0])
        case .multiSz:
            let items = text.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
            return "hex(7):" + hex(items.flatMap { utf16($0) + [0, 0] } + [0, 0])
        case .dword: return number(UInt64(UInt32.max)).map { String(format: "dword:%08x", $0) }
        case .qword:
            guard let value = number(.max) else { return nil }
            return "hex(b):" + hex((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) })
        case .binary:
            let digits = text.filter { $0 != "," && $0 != " " }
            guard digits.count.isMultiple(of: 2), digits.allSatisfy(\.isHexDigit) else { return nil }
            var bytes: [UInt8] = []
            var index = digits.startIndex
            while index < digits.endIndex {
                let next = digits.index(index, offsetBy: 2)
                bytes.append(UInt8(digits[index..<next], radix: 16) ?? 0)
                index = next
            }
            return "hex:" + hex(bytes)
        }
    }
}

/// `.reg` text quoting of a value name: backslashes and quotes escaped; "@" is the key's default value.
private func regValueName(_ name: String) -> String {
    name == "@" ? "@" : "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

/// Changes one hive of a Windows guest: copies the hive file out of the guest into a private directory, merges `.reg`
/// text into the copy with hivexregedit (hivex, in a process of its own: a hive is the guest's data and hivex is
/// built to read hostile ones), and writes it back only if the key's exported content changed, so that a second run
/// changes nothing. The diff is the key's `.reg` text before and after.
struct RegistryEdit {
    let key: RegistryKey
    let operation: String

    /// Bounds on what hivexregedit may print and how long it may take: a hive that makes it loop or print without end
    /// is refused, not waited on.
    static let outputLimit = 64 << 20
    static let timeLimit: Double = 120
    /// The largest hive copied out of a guest: a server's SOFTWARE hive is some 100-300 MiB; more is not a hive.
    static let hiveSizeLimit: Int64 = 1 << 30

    /// The hive file's path in the guest, its case as the guest's NTFS has it.
    static func hivePath(_ hive: RegistryKey.Hive, guest: GuestFilesystem, context: OperationContext) throws -> String {
        guard let windows = context.guest.windows else {
            throw GuestError(guest: guest.guestDescription, action: "edit the registry",
                             message: "the guest is not Windows (\(context.guest.productName ?? context.guest.type ?? "not inspected"))",
                             hint: "registry operations apply to Windows guests only")
        }
        let systemRoot = windows.systemRoot ?? "/Windows"
        var directory = "/"
        for component in (systemRoot + "/System32/config/" + hive.rawValue).split(separator: "/") {
            let names = try guest.list(directory)
            guard let match = names.first(where: { $0.lowercased() == component.lowercased() }) else {
                throw GuestError(guest: guest.guestDescription, action: "edit the registry",
                                 path: (directory == "/" ? "" : directory) + "/" + component,
                                 message: "the \(hive.rawValue) hive is not where Windows keeps it",
                                 hint: "is the system root \(systemRoot) right? `inspect --os` shows it")
            }
            directory = (directory == "/" ? "" : directory) + "/" + match
        }
        return directory
    }

    /// The hive file holding the key, checked (a regular file of bounded size), copied into a private directory for
    /// `body`, with the key's CurrentControlSet resolved.
    private func withHiveCopy<T>(guest: GuestFilesystem, context: OperationContext,
                                 _ body: (_ hivePath: String, _ mode: UInt32, _ copy: String, _ key: RegistryKey,
                                          _ directory: TemporaryDirectory, _ failure: (String, String?) -> GuestError) throws -> T)
        throws -> T {
        let hivePath = try Self.hivePath(key.hive, guest: guest, context: context)
        let failure = { (message: String, hint: String?) in
            GuestError(guest: guest.guestDescription, action: operation, path: hivePath, message: message, hint: hint)
        }
        guard let status = try guest.stat(hivePath), status.kind == .regular else {
            throw failure("the hive is not a regular file", "check the guest's System32\\config")
        }
        guard status.size <= Self.hiveSizeLimit else {
            throw failure("the hive is \(status.size) bytes, more than the \(Self.hiveSizeLimit >> 20) MiB a hive is "
                          + "read into memory for", "compact the registry in the guest, or edit it there")
        }
        return try TemporaryDirectory.with(prefix: "imgcustomize-registry") { directory in
            let copy = directory.appending("hive")
            guard FileManager.default.createFile(atPath: copy, contents: Data(try guest.read(hivePath))) else {
                throw failure("cannot copy the hive to \(directory.path)", "check that TMPDIR is writable")
            }
            var key = key
            if key.hive == .system, key.path.first?.lowercased() == "currentcontrolset" {
                key.path[0] = try currentControlSet(copy, context: context, failure: failure)
            }
            return try body(hivePath, status.mode & 0o7777, copy, key, directory, failure)
        }
    }

    /// The key's subtree as exact `.reg` text (every value in hex), nil when the key is not there.
    func read(guest: GuestFilesystem, context: OperationContext) throws -> String? {
        try withHiveCopy(guest: guest, context: context) { _, _, copy, key, _, failure in
            try export(copy, key, printable: false, context: context, failure: failure)
        }
    }

    /// Applies `changes` (`.reg` lines under the key's section, or a whole `[-KEY]` section when `deletesKey`) and
    /// returns whether anything changed, with the `.reg` diff.
    func apply(lines: [String], createsKey: Bool = true, deletesKey: Bool = false, guest: GuestFilesystem,
               context: OperationContext) throws -> (changed: Bool, diff: FileDiff?) {
        try withHiveCopy(guest: guest, context: context) { hivePath, mode, hive, key, directory, failure in
            let before = try export(hive, key, printable: false, context: context, failure: failure)
            // Nothing to delete where the key is not: merging its section would create it.
            if before == nil, deletesKey || !createsKey { return (false, nil) }
            let shownBefore = before == nil ? nil : try export(hive, key, printable: true, context: context, failure: failure)
            var text = "Windows Registry Editor Version 5.00\n\n"
            if deletesKey {
                text += "[-\(key.regName)]\n"
            } else {
                // Every ancestor first: hivexregedit creates a key only under one that exists.
                for depth in 1...max(key.path.count, 1) where depth <= key.path.count {
                    text += "[\(RegistryKey(hive: key.hive, path: Array(key.path.prefix(depth))).regName)]\n\n"
                }
                if key.path.isEmpty { text += "[\(key.regName)]\n" }
                text = String(text.dropLast()) + lines.map { $0 + "\n" }.joined()
            }
            let changes = directory.appending("changes.reg")
            guard FileManager.default.createFile(atPath: changes, contents: Data(text.utf8)) else {
                throw failure("cannot write the changes to \(directory.path)", "check that TMPDIR is writable")
            }
            try hivexregedit(["--merge", "--prefix", key.regPrefix, hive, changes], context: context, failure: failure)
            let after = try export(hive, key, printable: false, context: context, failure: failure)
            guard after != before else { return (false, nil) }
            let shownAfter = deletesKey ? nil : try export(hive, key, printable: true, context: context, failure: failure)
            guard let merged = FileManager.default.contents(atPath: hive) else {
                throw failure("cannot read the edited hive back from \(directory.path)", nil)
            }
            try guest.write(hivePath, [UInt8](merged), mode: mode)
            let diff = UnifiedDiff.make(path: "\(hivePath) (\(key.regName))",
                                        before: shownBefore.map { Array($0.utf8) }, after: shownAfter.map { Array($0.utf8) })
            return (true, FileDiff(path: hivePath, unified: diff))
        }
    }

    /// Whether the key is in the guest's hive.
    static func keyExists(_ key: RegistryKey, guest: GuestFilesystem, context: OperationContext,
                          operation: String) throws -> Bool {
        try RegistryEdit(key: key, operation: operation).read(guest: guest, context: context) != nil
    }

    /// Adds `directory` to HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion's DevicePath (a REG_EXPAND_SZ list
    /// separated by ';', where Plug and Play looks for drivers), unless it is there already, in any case. Returns the
    /// diff, nil when nothing changed.
    static func appendToDevicePath(_ directory: String, guest: GuestFilesystem, context: OperationContext,
                                   operation: String) throws -> FileDiff? {
        let key = RegistryKey(hive: .software, path: ["Microsoft", "Windows", "CurrentVersion"])
        let edit = RegistryEdit(key: key, operation: operation)
        let current = try edit.read(guest: guest, context: context).flatMap { value("DevicePath", in: $0) }
        let entries = (current ?? "%SystemRoot%\\inf").split(separator: ";").map(String.init)
        guard !entries.contains(where: { $0.lowercased() == directory.lowercased() }) else { return nil }
        let updated = (entries + [directory]).joined(separator: ";")
        let line = "\"DevicePath\"=" + (RegistryData(kind: .expandSz, text: updated).regValue ?? "")
        return try edit.apply(lines: [line], guest: guest, context: context).diff
    }

    /// A string value (REG_SZ or REG_EXPAND_SZ) of the key itself in exact `.reg` text as `export` gives it, decoded
    /// from its UTF-16LE hex; nil when absent or of another type.
    static func value(_ name: String, in text: String) -> String? {
        var inKey = false
        for line in text.split(separator: "\n") {
            if line.hasPrefix("[") { if inKey { return nil }; inKey = true; continue }
            for prefix in ["\"\(name)\"=hex(1):", "\"\(name)\"=hex(2):"] where line.hasPrefix(prefix) {
                let bytes = line.dropFirst(prefix.count).split(separator: ",").compactMap { UInt8($0, radix: 16) }
                var units = stride(from: 0, to: bytes.count - 1, by: 2).map { UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8 }
                while units.last == 0 { units.removeLast() }
                return String(decoding: units, as: UTF16.self)
            }
        }
        return nil
    }

    /// The key's subtree as `.reg` text, nil when the key is not there. `printable` shows strings as text (for
    /// diffs); otherwise every value is exact hex, which is what idempotence compares.
    private func export(_ hive: String, _ key: RegistryKey, printable: Bool, context: OperationContext,
                        failure: (String, String?) -> GuestError) throws -> String? {
        let result = try run(["--export", "--prefix", key.regPrefix] + (printable ? ["--unsafe-printable-strings"] : [])
                             + [hive, key.exportPath], context: context, failure: failure)
        if result.succeeded { return result.outputText }
        if result.errorText.contains("path not found") { return nil }
        throw failure("hivexregedit cannot read the hive (\(result.failure)): \(result.errorText)",
                      "the hive may be damaged; check it with hivexsh on a copy")
    }

    private func hivexregedit(_ arguments: [String], context: OperationContext,
                              failure: (String, String?) -> GuestError) throws {
        let result = try run(arguments, context: context, failure: failure)
        guard result.succeeded else {
            throw failure("hivexregedit cannot change the hive (\(result.failure)): \(result.errorText)",
                          "the hive may be damaged; check it with hivexsh on a copy")
        }
    }

    private func run(_ arguments: [String], context: OperationContext,
                     failure: (String, String?) -> GuestError) throws -> CommandResult {
        do {
            return try HostCommand("hivexregedit", arguments, environment: ["LC_ALL": "C.UTF-8"],
                                   output: .capture(limit: Self.outputLimit), timeout: Self.timeLimit,
                                   cancellation: context.cancellation).run()
        } catch let error as ProcessStartError where error.notFound {
            throw failure("the host has no hivexregedit, which edits Windows registry hives",
                          "install libwin-hivex-perl (Debian) or perl-hivex (Fedora)")
        }
    }

    /// "ControlSet001" from the SYSTEM hive's Select\Current, read from the hive's copy.
    private func currentControlSet(_ hive: String, context: OperationContext,
                                   failure: (String, String?) -> GuestError) throws -> String {
        let select = RegistryKey(hive: .system, path: ["Select"])
        guard let text = try export(hive, select, printable: false, context: context, failure: failure),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("\"Current\"=dword:") }),
              let number = UInt32(line.split(separator: ":").last ?? "", radix: 16), (1...999).contains(number)
        else {
            throw failure("the SYSTEM hive has no Select\\Current naming the current control set",
                          "name the control set (HKLM\\SYSTEM\\ControlSet001\\...) instead of CurrentControlSet")
        }
        return String(format: "ControlSet%03u", number)
    }
}

/// `registry-set KEY:NAME=TYPE:DATA`: one value of a Windows guest's registry, creating the key (and its parents) if
/// missing. TYPE is sz, expand_sz, multi_sz (items separated by ';'), dword, qword (decimal or 0x hex) or binary
/// (hex bytes); NAME "@" is the key's default value. A value that already holds the data is left alone.
public struct RegistrySet: RegisteredOperation {
    public static let name = "registry-set"
    public static let sourceFile = #filePath
    public static let summary = "Set a value in a Windows guest's registry (HKLM\\SOFTWARE, SYSTEM, ...), creating its key"
    public static let argument = OperationArgument.required(
        syntax: "KEY:NAME=TYPE:DATA",
        example: "HKLM\\SOFTWARE\\Cloudbase Solutions\\Cloudbase-Init:LoggingSerialPortSettings=sz:COM1,115200,N,8")

    public let key: RegistryKey
    public let valueName: String
    public let data: RegistryData
    public var target: String { "\(key):\(valueName)" }

    public init(key: RegistryKey, valueName: String, data: RegistryData) {
        self.key = key
        self.valueName = valueName
        self.data = data
    }

    public static func parse(_ argument: String?) throws -> RegistrySet {
        let argument = try required(argument)
        guard let colon = argument.firstIndex(of: ":") else { throw invalid("no ':' after the key in \"\(argument)\"") }
        guard let key = RegistryKey(String(argument[..<colon])) else {
            throw invalid("\"\(argument[..<colon])\" is not a key of HKLM\\SOFTWARE, SYSTEM, SAM, SECURITY or DEFAULT")
        }
        let assignment = argument[argument.index(after: colon)...]
        guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
            throw invalid("no NAME= in \"\(assignment)\"")
        }
        let typed = String(assignment[assignment.index(after: equals)...])
        guard let data = RegistryData(typed) else {
            throw invalid("\"\(typed)\" is not TYPE:DATA with TYPE one of "
                          + RegistryData.Kind.allCases.map(\.rawValue).joined(separator: ", ") + " and data it can hold")
        }
        return RegistrySet(key: key, valueName: String(assignment[..<equals]), data: data)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard let value = data.regValue else { throw Self.invalid("\"\(data.text)\" is not \(data.kind.rawValue) data") }
        let edit = RegistryEdit(key: key, operation: Self.name)
        let result = try edit.apply(lines: ["\(regValueName(valueName))=\(value)"], guest: guest, context: context)
        let shown = "\(key)\\\(valueName) = \(data.kind.rawValue):\(data.text)"
        return result.changed ? OperationOutcome(changed: .yes, summary: "set \(shown)", diffs: result.diff.map { [$0] })
            : .unchanged("\(shown) already set")
    }
}

/// `registry-delete KEY[:NAME]`: a value of a Windows guest's registry, or with no NAME the whole key and its
/// subkeys. Nothing to delete is no change.
public struct RegistryDelete: RegisteredOperation {
    public static let name = "registry-delete"
    public static let sourceFile = #filePath
    public static let summary = "Delete a value, or a whole key, from a Windows guest's registry"
    public static let argument = OperationArgument.required(
        syntax: "KEY[:NAME]", example: "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\RunOnce:Setup")

    public let key: RegistryKey
    public let valueName: String?
    public var target: String { valueName.map { "\(key):\($0)" } ?? key.description }

    public init(key: RegistryKey, valueName: String?) {
        self.key = key
        self.valueName = valueName
    }

    public static func parse(_ argument: String?) throws -> RegistryDelete {
        let argument = try required(argument)
        let colon = argument.firstIndex(of: ":")
        let keyText = String(argument[..<(colon ?? argument.endIndex)])
        guard let key = RegistryKey(keyText) else {
            throw invalid("\"\(keyText)\" is not a key of HKLM\\SOFTWARE, SYSTEM, SAM, SECURITY or DEFAULT")
        }
        let name = colon.map { String(argument[argument.index(after: $0)...]) }
        if name == "" { throw invalid("an empty value name after ':' (leave out ':' to delete the whole key)") }
        if name == nil, key.path.isEmpty { throw invalid("refusing to delete the root key of the \(key.hive.rawValue) hive") }
        return RegistryDelete(key: key, valueName: name)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let edit = RegistryEdit(key: key, operation: Self.name)
        let result: (changed: Bool, diff: FileDiff?)
        if let valueName {
            result = try edit.apply(lines: ["\(regValueName(valueName))=-"], createsKey: false, guest: guest,
                                    context: context)
        } else {
            result = try edit.apply(lines: [], deletesKey: true, guest: guest, context: context)
        }
        return result.changed ? OperationOutcome(changed: .yes, summary: "deleted \(target)", diffs: result.diff.map { [$0] })
            : .unchanged("\(target) is not there")
    }
}
