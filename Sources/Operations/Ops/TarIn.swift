import Diagnostics
import Foundation
import Host

/// `tar-in TARBALL:REMOTEDIR` (virt-customize's --tar-in): a host tarball (plain, gzip, xz, bzip2, zstd: the host's
/// tar tells) unpacked into the existing guest directory REMOTEDIR, modes and numeric owners kept. The host's tar
/// unpacks it into a private temporary directory, and copy-in's copier takes its top-level entries into REMOTEDIR,
/// so that only what differs is written and a second run changes nothing. A tarball with an absolute or `..` member
/// is refused before anything is unpacked.
public struct TarIn: RegisteredOperation {
    public static let name = "tar-in"
    public static let sourceFile = #filePath
    public static let summary = "Unpack a host tarball into a guest directory"
    public static let argumentIsHostFile = true
    public static let argument = OperationArgument.required(syntax: "TARBALL:REMOTEDIR", example: "./overlay.tar.gz:/")

    public let tarball: String
    public let remoteDirectory: String
    public var target: String { remoteDirectory }

    public init(_ tarball: String, into remoteDirectory: String) {
        self.tarball = tarball
        self.remoteDirectory = remoteDirectory
    }

    public static func parse(_ argument: String?) throws -> TarIn {
        let (tarball, remote) = try hostAndGuestPath(argument)
        return TarIn(tarball, into: remote)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        try checkDirectory(guest, remoteDirectory, action: Self.name)
        func failure(_ message: String, hint: String? = nil) -> GuestError {
            GuestError(guest: guest.guestDescription, action: Self.name, path: tarball, message: message, hint: hint)
        }
        // Opened once and checked (a FIFO is refused, not waited on); tar reads that very file through its stdin,
        // reopened as /dev/stdin so that it still finds the compression itself, so a path swapped meanwhile
        // changes nothing.
        let fd: Int32
        do {
            fd = try HostFiles.openRegular(tarball).fd
        } catch let error as SystemCallError {
            throw failure("cannot read the tarball: \(error.message)", hint: "check the path on the host")
        }
        defer { close(fd) }
        let listing = try runTar(["-tf", "/dev/stdin"], input: fd, context.cancellation, failure)
        let unsafe = listing.split(separator: "\n").map(String.init).filter { member in
            member.hasPrefix("/") || member.split(separator: "/").contains("..")
        }
        if let first = unsafe.first {
            throw failure("member \"\(first)\" is absolute or goes up with ..\(unsafe.count > 1 ? " (and \(unsafe.count - 1) more)" : "")",
                          hint: "make the tarball with relative paths inside it (tar -C DIR -cf TARBALL .)")
        }
        var copier = HostTreeCopier(guest: guest, action: Self.name)
        do {
            try TemporaryDirectory.with(prefix: "imgcustomize-tar-in") { directory in
                _ = try runTar(["--same-owner", "--same-permissions", "--numeric-owner", "-xf", "/dev/stdin",
                                "-C", directory.path], input: fd, context.cancellation, failure)
                let names: [String]
                do { names = try HostFiles.list(directory.path) } catch let error as SystemCallError {
                    throw failure("cannot list what it unpacked: \(error.message)")
                }
                for name in names.sorted() {
                    try copier.copy(directory.appending(name), to: remoteDirectory.hasSuffix("/")
                        ? remoteDirectory + name : remoteDirectory + "/" + name)
                }
            }
        } catch let error as TemporaryDirectoryError {
            throw failure(Diagnostic(of: error).message, hint: "set TMPDIR to a writable directory")
        }
        return copier.outcome(done: "unpacked \(tarball) into \(remoteDirectory)",
                              already: "\(remoteDirectory) already holds what \(tarball) has")
    }
}

/// Runs the host's tar on the tarball open as `input`; its standard output, or an error carrying what tar printed.
private func runTar(_ arguments: [String], input: Int32, _ cancellation: Cancellation?,
                    _ failure: (String, String?) -> GuestError) throws -> String {
    let result: CommandResult
    do {
        result = try HostCommand("tar", arguments, input: .descriptor(input), cancellation: cancellation).run()
    } catch let error as ProcessStartError {
        throw failure(Diagnostic(of: error).message, "install GNU tar on the host")
    }
    guard result.succeeded else {
        throw failure("tar \(arguments.first ?? "") \(result.explanation)", "check that it is a tarball tar can read")
    }
    return result.outputText
}
