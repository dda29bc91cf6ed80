import Glibc
import Host

/// `ssh-inject USER:KEY`: lets the key log in as USER. ~/.ssh (0700) and ~/.ssh/authorized_keys (0600) are created
/// where missing, owned by the user's uid and gid from the guest's /etc/passwd; the key is appended once.
public struct SSHInject: RegisteredOperation {
    public static let name = "ssh-inject"
    public static let sourceFile = #filePath
    public static let summary = "Add a public key to a user's ~/.ssh/authorized_keys"
    public static let argument = OperationArgument.required(syntax: "USER[:KEYFILE|KEY]", example: "cloud-user:/home/me/.ssh/id_ed25519.pub")

    public var user: String
    /// One authorized_keys line ("ssh-ed25519 AAAA... comment").
    public var key: String

    public var target: String { user }

    public init(user: String, key: String) {
        self.user = user
        self.key = key.trimmed
    }

    /// Parses the command-line form `USER:file:PATH`, `USER:string:KEY`, `USER:PATH-OR-KEY` (a readable host file
    /// is read, anything else is taken as the key itself), or `USER` alone: the newest of the host user's
    /// ~/.ssh/id*.pub (certificates left out), as virt-customize and ssh-copy-id choose. Key files are read on the host.
    public static func parse(_ argument: String?) throws -> SSHInject {
        try parse(argument, home: getenv("HOME").map { String(cString: $0) })
    }

    /// `home` is the host user's home directory, whose .ssh a bare `USER` takes its key from.
    static func parse(_ argument: String?, home: String?) throws -> SSHInject {
        let argument = try required(argument)
        guard argument.first != ":" else { throw invalid("no USER in \"\(argument)\"") }
        guard let colon = argument.firstIndex(of: ":") else {
            guard let home, !home.isEmpty else {
                throw invalid("no KEY given and $HOME is not set, so there is no ~/.ssh to take one from")
            }
            return try parse(argument + ":file:" + defaultKeyFile(in: home.joinedPath(".ssh")))
        }
        let user = String(argument[..<colon])
        var value = String(argument[argument.index(after: colon)...])
        let isFile: Bool
        if value.hasPrefix("file:") {
            value.removeFirst(5)
            isFile = true
        } else if value.hasPrefix("string:") {
            value.removeFirst(7)
            isFile = false
        } else {
            isFile = access(value, R_OK) == 0
        }
        var key = value
        if isFile {
            do {
                key = String(decoding: try HostFiles.read(value).content, as: UTF8.self)
            } catch {
                throw invalid("cannot read the key file \(value) on this host: \(error)")
            }
        }
        let line = key.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        guard line.words.count >= 2 else {
            throw invalid("\(isFile ? "the key file \(value)" : "\"\(value)\"") is not an authorized_keys line "
                          + "(TYPE BASE64 [COMMENT])")
        }
        return SSHInject(user: user, key: line)
    }

    /// The newest `id*.pub` in `directory` that is not a certificate (`*-cert.pub`).
    static func defaultKeyFile(in directory: String) throws -> String {
        let names = (try? HostFiles.list(directory)) ?? []
        let keys = names.filter { $0.hasPrefix("id") && $0.hasSuffix(".pub") && !$0.hasSuffix("-cert.pub") }
            .map { directory.joinedPath($0) }
        let newest = keys.max { HostFiles.modificationTime($0) < HostFiles.modificationTime($1) }
        guard let newest else {
            throw invalid("no KEY given and no public key (id*.pub) in \(directory); "
                          + "create one with ssh-keygen or name a key file")
        }
        return newest
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        let account = try GuestAccount.lookup(user, in: guest)
        let sshDirectory = account.home.joinedPath(".ssh")
        let keysFile = sshDirectory.joinedPath("authorized_keys")
        var done: [String] = []

        if let status = try guest.stat(sshDirectory) {
            guard status.kind == .directory else {
                throw GuestError(guest: guest.guestDescription, action: "inject an SSH key into", path: sshDirectory,
                                 message: "it exists and is not a directory", hint: "remove it first")
            }
        } else {
            try guest.mkdir(sshDirectory, mode: 0o700, parents: true)
            done.append("created \(sshDirectory)")
        }
        try enforce(sshDirectory, mode: 0o700, account, guest, &done)

        let existing = try guest.exists(keysFile) ? try guest.readText(keysFile) : ""
        let present = existing.split(whereSeparator: \.isNewline).contains {
            $0.trimmed == key
        }
        if !present {
            let separator = existing.isEmpty || existing.hasSuffix("\n") ? "" : "\n"
            try guest.writeText(keysFile, existing + separator + key + "\n", mode: 0o600)
            done.append("added the key to \(keysFile)")
        }
        try enforce(keysFile, mode: 0o600, account, guest, &done)

        return done.isEmpty ? .unchanged("key already in \(keysFile)") : .changed(done.joined(separator: "; "))
    }

    /// sshd refuses keys in files other users can write, so mode and owner are set even on existing files.
    private func enforce(_ path: String, mode: UInt32, _ account: GuestAccount, _ guest: GuestFilesystem,
                         _ done: inout [String]) throws {
        guard let status = try guest.stat(path) else { return }
        if status.mode != mode {
            try guest.chmod(path, mode: mode)
            done.append("chmod \(String(mode, radix: 8)) \(path)")
        }
        if status.uid != account.uid || status.gid != account.gid {
            try guest.chown(path, uid: account.uid, gid: account.gid)
            done.append("chown \(account.uid):\(account.gid) \(path)")
        }
    }
}
