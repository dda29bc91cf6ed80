/// `copy SRC:DEST` inside the guest (cp -a): a file, or a directory with everything under it, keeping modes,
/// owners and symlinks. A file goes into DEST when DEST is a directory; a directory becomes DEST itself (cp -aT),
/// since with cp's own rule a second run would nest a new copy inside the first. Only what differs is written again.
public struct Copy: RegisteredOperation {
    public static let name = "copy"
    public static let sourceFile = #filePath
    public static let summary = "Copy a file or directory inside the guest"
    public static let argument = OperationArgument.required(syntax: "SRC:DEST", example: "/etc/skel/.bashrc:/root/.bashrc")

    public let source: String
    public let destination: String
    public var target: String { destination }

    public init(_ source: String, to destination: String) {
        self.source = source
        self.destination = destination
    }

    public static func parse(_ argument: String?) throws -> Copy {
        let (source, destination) = try pathAndRest(argument)
        try checkPath(destination)
        return Copy(source, to: destination)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard try guest.lstat(source) != nil else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: source, message: "no such file")
        }
        let landing = try guest.isDirectory(source) ? destination : try landingPath(guest, source, destination)
        let written = try copyEntry(guest, from: source, to: landing)
        if written == 0 { return .unchanged("\(destination) already a copy of \(source)") }
        return .changed("copied \(source) to \(destination) (\(written) entries written)")
    }
}

/// Where `source` lands given `destination`: inside it when it is a directory (and not the source itself).
func landingPath(_ guest: GuestFilesystem, _ source: String, _ destination: String) throws -> String {
    guard try guest.isDirectory(destination) else { return destination }
    let name = source.split(separator: "/").last.map(String.init) ?? ""
    return destination.hasSuffix("/") ? destination + name : destination + "/" + name
}

/// Copies one entry, recursively; returns how many entries it had to write.
private func copyEntry(_ guest: GuestFilesystem, from source: String, to destination: String) throws -> Int {
    guard let status = try guest.lstat(source) else { return 0 }
    let existing = try guest.lstat(destination)
    var written = 0
    switch status.kind {
    case .regular:
        let content = try guest.read(source)
        if try existing?.kind != .regular || !guest.holds(destination, exactly: content) {
            if let existing, existing.kind != .regular { try guest.remove(destination, recursive: true) }
            try guest.write(destination, content, mode: status.mode)
            written += 1
        }
    case .directory:
        if existing?.kind != .directory {
            if existing != nil { try guest.remove(destination, recursive: true) }
            try guest.mkdir(destination, mode: status.mode, parents: false)
            written += 1
        }
        for name in try guest.list(source) {
            written += try copyEntry(guest, from: source + "/" + name, to: destination + "/" + name)
        }
    case .symlink:
        let link = try guest.readlink(source)
        if try existing?.kind != .symlink || guest.readlink(destination) != link {
            if existing != nil { try guest.remove(destination, recursive: true) }
            try guest.symlink(target: link, at: destination)
            written += 1
        }
        return written
    case .other:
        throw GuestError(guest: guest.guestDescription, action: Copy.name, path: source,
                         message: "cannot copy a device, socket or FIFO")
    }
    let now = try guest.lstat(destination)
    if now?.mode != status.mode {
        try guest.chmod(destination, mode: status.mode)
        written += existing == nil ? 0 : 1
    }
    if now?.uid != status.uid || now?.gid != status.gid {
        try guest.chown(destination, uid: status.uid, gid: status.gid)
        written += existing == nil ? 0 : 1
    }
    return written
}
