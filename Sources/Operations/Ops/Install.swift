import Foundation
import Host

/// `install PKG,...`: packages installed with the guest's own package manager (dnf, yum, apt or zypper, as
/// inspection found), as virt-customize's `--install`. A name is a package of the guest's repositories, which needs
/// `--network`; a path (`./x.deb`, `/srv/rpms/x.rpm`, or a directory of package files) is a host file copied into
/// the guest's /tmp and installed from there, which works offline. What it changed is unknown; a non-zero exit fails
/// the run with the package manager's output.
public struct Install: RegisteredOperation {
    public static let name = "install"
    public static let sourceFile = #filePath
    public static let summary = "Install packages with the guest's package manager; local package files work offline"
    public static let argumentIsHostFile = true
    public static let argument = OperationArgument.required(syntax: "PKG|FILE|DIR,...",
                                                            example: "cloud-init,qemu-guest-agent")

    /// Names from the guest's repositories.
    public let packages: [String]
    /// Package files on the host, in the order given (a directory's sorted by name).
    public let files: [String]
    public var target: String { (packages + files).joined(separator: ",") }

    public init(_ packages: [String], files: [String] = []) {
        self.packages = packages
        self.files = files
    }

    /// A word with a "/" or ending in .deb or .rpm is a host path: a package file, or a directory of them.
    public static func parse(_ argument: String?) throws -> Install {
        var packages: [String] = []
        var files: [String] = []
        for word in try packageList(argument) {
            guard word.contains("/") || word.hasSuffix(".deb") || word.hasSuffix(".rpm") else {
                packages.append(word)
                continue
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: word, isDirectory: &isDirectory) else {
                throw invalid("no package file or directory \(word) on this host")
            }
            guard isDirectory.boolValue else {
                files.append(word)
                continue
            }
            let found = ((try? FileManager.default.contentsOfDirectory(atPath: word)) ?? [])
                .filter { $0.hasSuffix(".deb") || $0.hasSuffix(".rpm") }.sorted()
            guard !found.isEmpty else { throw invalid("no .deb or .rpm file in the directory \(word)") }
            files += found.map { (word.hasSuffix("/") ? word : word + "/") + $0 }
        }
        return Install(packages, files: files)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let commands = try guest.commands(for: Self.name)
        let manager = try PackageManager.of(context.guest, in: guest.guestDescription, operation: Self.name)
        if let foreign = files.first(where: { !$0.hasSuffix(manager.fileExtension) }) {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: foreign,
                             message: "the guest's package manager is \(manager.rawValue), which installs "
                                + "\(manager.fileExtension) files",
                             hint: "give the \(manager.fileExtension) build of the package")
        }
        var copies: [String] = []
        var directory: String?
        if !files.isEmpty {
            let made = try guestTemporaryPath(guest, prefix: "imgcustomize-packages")
            directory = made
            // 0755, not 0700: apt fetches a local .deb as its sandbox user _apt (every guest debootstrap or the
            // installer made has one), which must be able to enter the directory. Package files are not secret,
            // and the name is fresh and random under /tmp, created here, so nothing else can have put it there.
            try guest.mkdir(made, mode: 0o755, parents: false)
            for file in files {
                let content: [UInt8]
                do {
                    content = try HostFiles.read(file).content
                } catch let error as SystemCallError {
                    try guest.remove(made, recursive: true)
                    throw GuestError(guest: guest.guestDescription, action: "install: read the package file",
                                     path: file, message: error.message)
                }
                let copy = made + "/" + (file.split(separator: "/").last.map(String.init) ?? file)
                try guest.write(copy, content, mode: 0o644)
                copies.append(copy)
            }
        }
        let ran = Result {
            try commands.run(manager.install(packages + copies, network: commands.network), operation: Self.name)
        }
        if let directory { try guest.remove(directory, recursive: true) }
        let result = try ran.get()
        guard result.exitStatus == 0 else {
            throw GuestCommandFailure(guest: guest.guestDescription, operation: Self.name, result: result,
                                      hint: commands.network || packages.isEmpty ? nil
                                        : "the appliance has no network (the default): give --network to install "
                                            + "from the guest's repositories, or give package files")
        }
        return .ran(result, "installed \(target) with \(manager.rawValue)")
    }
}

extension RegisteredOperation {
    /// "a,b,c" as a list of package names or paths, none empty.
    static func packageList(_ argument: String?) throws -> [String] {
        let words = try required(argument).split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmed }
        guard !words.contains(where: \.isEmpty) else { throw invalid("an empty package name in \"\(argument ?? "")\"") }
        return words
    }
}
