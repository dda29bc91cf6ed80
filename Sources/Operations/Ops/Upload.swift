import Host
/// `upload LOCALFILE:PATH`: a host file copied into the guest (into PATH when PATH is a directory). A new file gets
/// the local file's mode; an existing one keeps its own mode and owner.
public struct Upload: RegisteredOperation {
    public static let name = "upload"
    public static let sourceFile = #filePath
    public static let summary = "Copy a host file into the guest"
    public static let argumentIsHostFile = true
    public static let argument = OperationArgument.required(syntax: "LOCALFILE:PATH", example: "./motd:/etc/motd")

    public let localFile: String
    public let path: String
    public var target: String { path }

    public init(_ localFile: String, to path: String) {
        self.localFile = localFile
        self.path = path
    }

    public static func parse(_ argument: String?) throws -> Upload {
        let argument = try required(argument)
        guard let colon = argument.lastIndex(of: ":") else { throw invalid("no ':' in \"\(argument)\"") }
        let local = String(argument[..<colon]), path = String(argument[argument.index(after: colon)...])
        try checkPath(path)
        guard !local.isEmpty else { throw invalid("no local file") }
        return Upload(local, to: path)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let file: (content: [UInt8], mode: UInt32)
        do {
            file = try HostFiles.read(localFile)
        } catch let error as SystemCallError {
            throw GuestError(guest: guest.guestDescription, action: "upload: read host file", path: localFile,
                             message: error.message, hint: "give the path of a readable regular file on this host")
        }
        var destination = path
        if try guest.isDirectory(path) {
            let name = localFile.split(separator: "/").last.map(String.init) ?? localFile
            destination = (path.hasSuffix("/") ? path : path + "/") + name
        }
        return try ensureContent(guest, destination, file.content, mode: file.mode)
    }
}
