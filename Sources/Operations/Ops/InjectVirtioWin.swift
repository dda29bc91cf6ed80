import Foundation
import Host

/// `inject-virtio-win PATH`: the virtio drivers of virtio-win (its ISO, or a directory with the ISO's layout or
/// /usr/share/virtio-win's) for the guest's Windows version and architecture, as virt-v2v installs them offline
/// (libguestfs-common's inject_virtio_win.ml):
///
/// - every matching driver file (not the .pdb debugging files, not the sriov ones that conflict with netkvm) is
///   copied to %SYSTEMROOT%\Drivers\VirtIO, and that directory is added to the SOFTWARE hive's DevicePath, where
///   Plug and Play looks for drivers of new devices at boot: netkvm, balloon, vioserial and the rest are installed
///   when Windows first sees their device;
/// - the boot-critical storage driver (viostor, else vioscsi) is also copied to System32\drivers and registered as a
///   boot-start service, with the PCI ids of its legacy and modern virtio devices bound to it (the DriverDatabase on
///   Windows 8 / Server 2012 and later, the CriticalDeviceDatabase before), so that the guest boots from a virtio
///   disk it has never seen.
///
/// Refused when no driver matches the guest, naming what was looked for. Files already in place with the same
/// content and registry values already set are left alone: a second run changes nothing.
public struct InjectVirtioWin: RegisteredOperation {
    public static let name = "inject-virtio-win"
    public static let sourceFile = #filePath
    public static let summary = "Add virtio-win's drivers for the Windows guest (ISO or directory); the storage driver boots"
    public static let argument = OperationArgument.required(syntax: "PATH", example: "/usr/share/virtio-win/virtio-win.iso")
    public static let argumentIsHostFile = true

    public let source: String
    public var target: String { source }

    public init(_ source: String) {
        self.source = source
    }

    public static func parse(_ argument: String?) throws -> InjectVirtioWin {
        InjectVirtioWin(try required(argument))
    }

    /// The most files taken from the source and the largest one: virtio-win's ISO holds some 2000 files, the
    /// largest a few MiB.
    static let fileLimit = 20_000
    static let fileSizeLimit: Int64 = 64 << 20

    static let scsiClassGUID = "{4D36E97B-E325-11CE-BFC1-08002BE10318}"
    /// The boot-critical storage drivers in order of preference, with the PCI ids of their legacy and modern devices.
    static let storageDrivers: [(name: String, pciIDs: [String])] = [
        ("viostor", ["VEN_1AF4&DEV_1001&REV_00", "VEN_1AF4&DEV_1042&REV_01"]),
        ("vioscsi", ["VEN_1AF4&DEV_1004&REV_00", "VEN_1AF4&DEV_1048&REV_01"]),
    ]

    /// virtio-win's directory name for a Windows release, from libosinfo's id as inspection gives it.
    static func releaseDirectory(osinfo: String) -> String? {
        [
            "winxp": "xp", "win2k3": "2k3", "win2k3r2": "2k3", "winvista": "2k8", "win2k8": "2k8", "win7": "w7",
            "win2k8r2": "2k8r2", "win8": "w8", "win2k12": "2k12", "win8.1": "w8.1", "win2k12r2": "2k12r2",
            "win10": "w10", "win11": "w11", "win2k16": "2k16", "win2k19": "2k19", "win2k22": "2k22", "win2k25": "2k25",
        ][osinfo]
    }

    /// Whether a file of the source (its path below the source's root) is a driver for the guest: a path element
    /// names the release and another the architecture, as in both of virtio-win's layouts
    /// (viostor/2k19/amd64/viostor.sys on the ISO, drivers/by-os/amd64/2k19/viostor.sys installed).
    static func matches(_ path: String, release: String, architecture: String) -> Bool {
        let elements = path.lowercased().split(separator: "/").map(String.init)
        let name = elements.last ?? ""
        return elements.dropLast().contains(release) && elements.dropLast().contains(architecture)
            && !name.hasSuffix(".pdb") && !name.contains("vioprot.") && !elements.contains("sriov")
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let facts = context.guest
        func refuse(_ message: String, _ hint: String) -> GuestError {
            GuestError(guest: guest.guestDescription, action: Self.name, path: source, message: message, hint: hint)
        }
        guard let windows = facts.windows else {
            throw refuse("the guest is not Windows (\(facts.productName ?? facts.type ?? "not inspected"))",
                         "virtio-win's drivers are for Windows guests")
        }
        let architecture: String
        switch facts.arch {
        case "x86_64": architecture = "amd64"
        case "i386", "i686": architecture = "x86"
        default: throw refuse("virtio-win has no drivers for the guest's architecture (\(facts.arch ?? "unknown"))",
                              "only x86_64 and i386 Windows guests are handled")
        }
        guard let osinfo = facts.osinfo, let release = Self.releaseDirectory(osinfo: osinfo) else {
            throw refuse("virtio-win has no directory for this Windows (\(facts.productName ?? "?"), osinfo "
                         + "\(facts.osinfo ?? "unknown"))", "`inspect --os` shows what inspection found")
        }
        let systemRoot = windows.systemRoot ?? "/Windows"
        return try VirtioWinSource.withFiles(at: source, operation: Self.name, guest: guest.guestDescription,
                                             cancellation: context.cancellation,
                                             matching: { Self.matches($0, release: release, architecture: architecture) }) { files in
            guard !files.isEmpty else {
                throw refuse("no driver for \(release)/\(architecture) in it (\(facts.productName ?? osinfo))",
                             "is this virtio-win's ISO or directory? a release older than the guest may lack it")
            }
            // Lowercased names, as virt-v2v copies them; where both layouts are in one tree the first copy wins.
            var byName: [String: String] = [:]
            for file in files.sorted(by: { $0.path < $1.path }) {
                let name = (file.path.split(separator: "/").last.map(String.init) ?? file.path).lowercased()
                if byName[name] == nil { byName[name] = file.host }
            }
            // Nothing is changed unless the guest can boot from what goes in.
            guard let storage = Self.storageDrivers.first(where: { byName[$0.name + ".sys"] != nil }) else {
                throw refuse("no virtio storage driver (viostor or vioscsi) for \(release)/\(architecture) in it",
                             "the guest could not boot from a virtio disk; use virtio-win's ISO of a matching release")
            }
            let drivers = Set(byName.keys.filter { $0.hasSuffix(".inf") }.map { String($0.dropLast(4)) }).sorted()
            var changes: [String] = []
            var diffs: [FileDiff] = []
            // 1. Every driver file into %SYSTEMROOT%\Drivers\VirtIO.
            let driverDirectory = try Self.directoryIgnoringCase(systemRoot + "/Drivers/VirtIO", in: guest)
            var copied = 0
            for (name, host) in byName.sorted(by: { $0.key < $1.key }) {
                if try Self.install(host, at: driverDirectory + "/" + name, in: guest) { copied += 1 }
            }
            if copied > 0 { changes.append("copied \(copied) driver file(s) to \(driverDirectory)") }

            // 2. Plug and Play looks in DevicePath for drivers of the devices it meets.
            if let diff = try RegistryEdit.appendToDevicePath("%SystemRoot%\\Drivers\\VirtIO", guest: guest,
                                                              context: context, operation: Self.name) {
                changes.append("added %SystemRoot%\\Drivers\\VirtIO to DevicePath")
                diffs.append(diff)
            }

            // 3. The storage driver the guest boots from.
            let systemDrivers = try Self.directoryIgnoringCase(systemRoot + "/System32/drivers", in: guest)
            if try Self.install(byName[storage.name + ".sys"] ?? "", at: systemDrivers + "/" + storage.name + ".sys", in: guest) {
                changes.append("copied \(storage.name).sys to \(systemDrivers)")
            }
            for (key, lines) in try Self.bootRegistration(storage.name, pciIDs: storage.pciIDs, architecture: architecture,
                                                          guest: guest, context: context) {
                let result = try RegistryEdit(key: key, operation: Self.name).apply(lines: lines, guest: guest, context: context)
                if let diff = result.diff { diffs.append(diff) }
                if result.changed { changes.append("registered \(key)") }
            }
            let summary = "\(storage.name) boots; \(drivers.joined(separator: ", ")) for \(release)/\(architecture)"
            guard !changes.isEmpty else { return .unchanged("already in place: \(summary)") }
            // One diff per hive, its keys' .reg texts one after another.
            return OperationOutcome(changed: .yes, summary: summary + " (" + changes.joined(separator: "; ") + ")",
                                    diffs: Self.merged(diffs))
        }
    }

    /// The registry keys that make `driver` start at boot and bind it to its PCI devices, with their values as `.reg`
    /// lines. Windows 8 / Server 2012 and later (a SYSTEM hive with a DriverDatabase) bind devices there; earlier
    /// ones through the CriticalDeviceDatabase.
    static func bootRegistration(_ driver: String, pciIDs: [String], architecture: String, guest: GuestFilesystem,
                                 context: OperationContext) throws -> [(RegistryKey, [String])] {
        func key(_ path: [String]) -> RegistryKey { RegistryKey(hive: .system, path: path) }
        func string(_ value: String) -> String { RegistryData(kind: .sz, text: value).regValue ?? "" }
        var edits: [(RegistryKey, [String])] = [
            (key(["CurrentControlSet", "Services", driver]), [
                "\"Type\"=dword:00000001", "\"Start\"=dword:00000000", "\"Group\"=\(string("SCSI miniport"))",
                "\"ErrorControl\"=dword:00000001",
                "\"ImagePath\"=\(RegistryData(kind: .expandSz, text: "system32\\drivers\\\(driver).sys").regValue ?? "")",
            ]),
        ]
        let hasDriverDatabase = try RegistryEdit.keyExists(key(["DriverDatabase"]), guest: guest, context: context,
                                                           operation: name)
        let inf = "guestor.inf"
        let label = "\(inf)_\(architecture)_0000000000000000"
        let configuration = "guestor_conf"
        for pciID in pciIDs {
            if hasDriverDatabase {
                edits += [
                    (key(["DriverDatabase", "DriverInfFiles", inf]), [
                        "@=\(RegistryData(kind: .multiSz, text: label).regValue ?? "")",
                        "\"Active\"=\(string(label))",
                        "\"Configurations\"=\(RegistryData(kind: .multiSz, text: configuration).regValue ?? "")",
                    ]),
                    (key(["DriverDatabase", "DeviceIds", "PCI", pciID]), ["\"\(inf)\"=hex:01,ff,00,00"]),
                    (key(["DriverDatabase", "DriverPackages", label]), [
                        // The version blob Windows-Kernel-Pnp wants on Windows 10 / Server 2016 (virt-v2v's).
                        "\"Version\"=hex:00,ff,09,00,00,00,00,00,7b,e9,36,4d,25,e3,ce,11,bf,c1,08,00,2b,e1,03,18,"
                            + Array(repeating: "00", count: 24).joined(separator: ","),
                    ]),
                    (key(["DriverDatabase", "DriverPackages", label, "Configurations", configuration]),
                     ["\"ConfigFlags\"=dword:00000000", "\"Service\"=\(string(driver))"]),
                    (key(["DriverDatabase", "DriverPackages", label, "Descriptors", "PCI", pciID]),
                     ["\"Configuration\"=\(string(configuration))"]),
                ]
            } else {
                edits.append((key(["CurrentControlSet", "Control", "CriticalDeviceDatabase", "PCI#" + pciID]),
                              ["\"Service\"=\(string(driver))", "\"ClassGUID\"=\(string(scsiClassGUID))"]))
            }
        }
        // The same key for both devices: once.
        var seen: Set<String> = []
        return edits.filter { seen.insert($0.0.description + $0.1.joined()).inserted }
    }

    /// Writes the host file `host` at `path` unless the guest has it with that content already. True when written.
    static func install(_ host: String, at path: String, in guest: GuestFilesystem) throws -> Bool {
        guard let content = FileManager.default.contents(atPath: host) else {
            throw GuestError(guest: guest.guestDescription, action: name, path: host, message: "cannot read the driver file",
                             hint: "check that the source is readable")
        }
        let bytes = [UInt8](content)
        if let status = try guest.stat(path), status.kind == .regular, status.size == Int64(bytes.count),
           try guest.read(path) == bytes {
            return false
        }
        try guest.write(path, bytes, mode: 0o644)
        return true
    }

    /// `path` with each existing component in the case the guest has it (NTFS names are case-insensitive to
    /// Windows); missing components are created as written.
    static func directoryIgnoringCase(_ path: String, in guest: GuestFilesystem) throws -> String {
        var directory = ""
        for component in path.split(separator: "/").map(String.init) {
            let parent = directory.isEmpty ? "/" : directory
            let match = try guest.isDirectory(parent)
                ? try guest.list(parent).first { $0.lowercased() == component.lowercased() } : nil
            directory += "/" + (match ?? component)
            if match == nil { try guest.mkdir(directory, mode: 0o755, parents: true) }
        }
        return directory.isEmpty ? "/" : directory
    }

    /// The diffs of several registry edits, one per hive file: the `.reg` texts of each hive's keys together.
    static func merged(_ diffs: [FileDiff]) -> [FileDiff] {
        var order: [String] = []
        var texts: [String: String] = [:]
        for diff in diffs {
            if texts[diff.path] == nil { order.append(diff.path) }
            texts[diff.path, default: ""] += diff.unified
        }
        return order.map { FileDiff(path: $0, unified: texts[$0] ?? "") }
    }
}

extension InjectVirtioWin: CommandLineRepresentable {
    public func commandLines() throws -> [String] { ["\(Self.name):\(source)"] }
}

/// The files of virtio-win, from its ISO (read with xorriso, which lists the ISO and extracts only the files
/// wanted into a private directory) or from a directory.
enum VirtioWinSource {
    struct File {
        /// Below the source's root, with "/" separators: viostor/2k19/amd64/viostor.sys.
        var path: String
        /// Where it can be read on the host.
        var host: String
    }

    static func withFiles<T>(at source: String, operation: String, guest: String, cancellation: Cancellation?,
                             matching wanted: (String) -> Bool, _ body: ([File]) throws -> T) throws -> T {
        func failure(_ message: String, _ hint: String) -> GuestError {
            GuestError(guest: guest, action: operation, path: source, message: message, hint: hint)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
            throw failure("no such file or directory", "give virtio-win's ISO or a directory holding its drivers")
        }
        if isDirectory.boolValue {
            guard let walker = FileManager.default.enumerator(atPath: source) else {
                throw failure("cannot list the directory", "check that it is readable")
            }
            var files: [File] = []
            var seen = 0
            while let relative = walker.nextObject() as? String {
                seen += 1
                guard seen <= InjectVirtioWin.fileLimit else {
                    throw failure("more than \(InjectVirtioWin.fileLimit) entries: not virtio-win's layout",
                                  "give the directory that holds virtio-win's drivers")
                }
                let host = source + "/" + relative
                guard let attributes = try? FileManager.default.attributesOfItem(atPath: host),
                      attributes[.type] as? FileAttributeType == .typeRegular, wanted(relative) else { continue }
                guard (attributes[.size] as? Int64 ?? 0) <= InjectVirtioWin.fileSizeLimit else {
                    throw failure("\(relative) is larger than \(InjectVirtioWin.fileSizeLimit >> 20) MiB: not a driver file",
                                  "give virtio-win's ISO or directory")
                }
                files.append(File(path: relative, host: host))
            }
            return try body(files)
        }
        // An ISO: list it, then extract the wanted files only.
        func xorriso(_ arguments: [String]) throws -> CommandResult {
            do {
                return try HostCommand("xorriso", arguments, output: .capture(limit: 16 << 20), timeout: 600,
                                       cancellation: cancellation).run()
            } catch let error as ProcessStartError where error.notFound {
                throw failure("the host has no xorriso, which reads virtio-win's ISO", "install xorriso, or give a directory")
            }
        }
        let listing = try xorriso(["-indev", source, "-find", "/", "-type", "f"])
        guard listing.succeeded else {
            throw failure("xorriso cannot read it as an ISO (\(listing.failure)): \(listing.errorText)",
                          "give virtio-win's ISO or a directory holding its drivers")
        }
        let paths = listing.outputText.split(separator: "\n").compactMap { line -> String? in
            // xorriso quotes each path: '/viostor/2k19/amd64/viostor.sys'
            guard line.hasPrefix("'"), line.hasSuffix("'"), line.count > 2 else { return nil }
            return String(line.dropFirst(2).dropLast())
        }
        guard paths.count <= InjectVirtioWin.fileLimit else {
            throw failure("more than \(InjectVirtioWin.fileLimit) files: not virtio-win's ISO", "give virtio-win's ISO")
        }
        let chosen = paths.filter(wanted)
        return try TemporaryDirectory.with(prefix: "imgcustomize-virtio-win") { directory in
            if !chosen.isEmpty {
                let extracted = try xorriso(["-osirrox", "on", "-indev", source, "-extract_l", "/", directory.path]
                                            + chosen.map { "/" + $0 } + ["--"])
                guard extracted.succeeded else {
                    throw failure("xorriso cannot extract the drivers (\(extracted.failure)): \(extracted.errorText)",
                                  "check the ISO with `xorriso -indev ISO -find /`")
                }
            }
            var files: [File] = []
            for path in chosen {
                let host = directory.path + "/" + path
                let size = (try? FileManager.default.attributesOfItem(atPath: host)[.size] as? Int64) ?? nil
                guard let size, size <= InjectVirtioWin.fileSizeLimit else {
                    throw failure("\(path) was not extracted, or is larger than \(InjectVirtioWin.fileSizeLimit >> 20) MiB",
                                  "check the ISO with `xorriso -indev ISO -find /`")
                }
                files.append(File(path: path, host: host))
            }
            return try body(files)
        }
    }
}
