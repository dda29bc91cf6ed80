/// `user-account[=USERS]`: virt-sysprep's user-account. Every account whose uid is in /etc/login.defs'
/// UID_MIN..UID_MAX (1000..60000 where the file says nothing) is removed from /etc/passwd and /etc/shadow, with its
/// own group from /etc/group and /etc/gshadow, its name from other groups' member lists, its home directory and its
/// mail spool. root and system accounts are outside that range, so they stay.
///
/// USERS narrows it as virt-sysprep's --remove-user-accounts and --keep-user-accounts do: `bob,eve` removes only
/// bob and eve, `-mary` removes every user but mary; both kinds may be mixed.
public struct UserAccount: RegisteredOperation, Equatable {
    public static let name = "user-account"
    public static let sourceFile = #filePath
    public static let summary = "Remove user accounts (uid UID_MIN..UID_MAX of login.defs), their groups, homes and mail; =bob,eve only those, =-mary all but mary"
    public static let argument = OperationArgument.optional(syntax: "USERS", example: "-cloud-user")
    public static let sysprep = SysprepDefault.virtSysprepOnRequest(as: name)

    /// Users to remove; empty means every user in the range.
    public var removing: Set<String>
    /// Users to keep whatever `removing` says.
    public var keeping: Set<String>

    public var target: String {
        (removing.sorted() + keeping.sorted().map { "-" + $0 }).joined(separator: ",")
    }

    public init(removing: Set<String> = [], keeping: Set<String> = []) {
        self.removing = removing
        self.keeping = keeping
    }

    public static func parse(_ argument: String?) throws -> UserAccount {
        guard let argument else { return UserAccount() }
        var account = UserAccount()
        for item in argument.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            let kept = item.hasPrefix("-")
            let user = kept ? String(item.dropFirst()) : item
            guard Self.isPlainName(user) else { throw invalid("\"\(item)\" is not a user name") }
            if kept { account.keeping.insert(user) } else { account.removing.insert(user) }
        }
        return account
    }

    /// A name Augeas path expressions can carry as it is; what useradd accepts is narrower still.
    static func isPlainName(_ user: String) -> Bool {
        !user.isEmpty && !user.hasPrefix("-") && !user.contains(where: { "/[]:'\", *+@".contains($0) || $0.isNewline })
    }

    func removes(_ user: String) -> Bool {
        !keeping.contains(user) && (removing.isEmpty || removing.contains(user))
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard context.guest.isLinuxOrUnknown else {
            return .unchanged("does not apply to \(context.guest.distro ?? "this guest")")
        }
        guard try guest.lstat("/etc/passwd")?.kind == .regular else { return .unchanged("no /etc/passwd") }
        let range = try uidRange(guest)
        let (removed, keptHomes, keptGroups) = try guest.withAugeas(lens: "Passwd.lns", path: "/etc/passwd") { edit in
            var removed: [GuestAccount] = [], keptHomes: Set<String> = [], keptGroups: Set<Int> = []
            for entry in try edit.match("\(edit.root)/*") {
                guard let user = try edit.label(entry), Self.isPlainName(user),
                      let uid = try edit.get("\(entry)/uid").flatMap({ Int($0) }) else { continue }
                let gid = try edit.get("\(entry)/gid").flatMap { Int($0) } ?? -1
                let home = try edit.get("\(entry)/home") ?? ""
                if range.contains(uid), removes(user) {
                    removed.append(GuestAccount(name: user, uid: uid, gid: gid, home: home))
                    try edit.remove(entry)
                } else {
                    keptHomes.insert(home)
                    keptGroups.insert(gid)
                }
            }
            return (removed, keptHomes, keptGroups)
        }
        guard !removed.isEmpty else { return .unchanged("no user account to remove") }
        let names = removed.map(\.name)
        try removeEntries(names, from: "/etc/shadow", lens: "Shadow.lns", guest)
        // A user's own group goes with it, unless an account that stays has it as its primary group.
        let ownGroups = removed.filter { !keptGroups.contains($0.gid) }.map(\.name)
        try removeEntries(ownGroups, from: "/etc/group", lens: "Group.lns", members: ["user"], memberNames: names, guest)
        try removeEntries(ownGroups, from: "/etc/gshadow", lens: "Gshadow.lns", members: ["admin", "member"],
                          memberNames: names, guest)
        for account in removed {
            // A home another account still uses, or "/", is not this user's to take.
            if account.home.hasPrefix("/"), account.home != "/", !keptHomes.contains(account.home) {
                try guest.remove(account.home, recursive: true)
            }
            for spool in ["/var/spool/mail/", "/var/mail/"] where try guest.lstat(spool + account.name) != nil {
                try guest.remove(spool + account.name, recursive: true)
            }
        }
        return .changed("removed user\(names.count == 1 ? "" : "s") " + names.joined(separator: ", "))
    }

    /// UID_MIN..UID_MAX from /etc/login.defs, shadow-utils' defaults where it does not say.
    private func uidRange(_ guest: GuestFilesystem) throws -> ClosedRange<Int> {
        var low = 1000, high = 60000
        if try guest.lstat("/etc/login.defs")?.kind == .regular {
            try guest.withAugeas(lens: "Login_defs.lns", path: "/etc/login.defs") { edit in
                if let value = try edit.get("\(edit.root)/UID_MIN").flatMap({ Int($0) }) { low = value }
                if let value = try edit.get("\(edit.root)/UID_MAX").flatMap({ Int($0) }) { high = value }
            }
        }
        guard low <= high else {
            throw GuestError(guest: guest.guestDescription, action: "read the user id range from",
                             path: "/etc/login.defs", message: "UID_MIN \(low) is above UID_MAX \(high)",
                             hint: "fix UID_MIN and UID_MAX in the guest's /etc/login.defs")
        }
        return low...high
    }

    /// Removes the entries named `entries` and, from every entry's `members` lists, the names `memberNames`.
    private func removeEntries(_ entries: [String], from path: String, lens: String, members: [String] = [],
                               memberNames: [String] = [], _ guest: GuestFilesystem) throws {
        guard try guest.lstat(path)?.kind == .regular else { return }
        try guest.withAugeas(lens: lens, path: path) { edit in
            for entry in entries { try edit.remove("\(edit.root)/\(entry)") }
            for member in members {
                for name in memberNames { try edit.remove("\(edit.root)/*/\(member)[. = '\(name)']") }
            }
        }
    }
}

extension UserAccount: CommandLineRepresentable {
    public func commandLines() throws -> [String] {
        let users = removing.sorted() + keeping.sorted().map { "-" + $0 }
        return [users.isEmpty ? Self.name : "\(Self.name):\(users.joined(separator: ","))"]
    }
}
