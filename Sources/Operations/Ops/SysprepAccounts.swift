/// A user as the guest's /etc/passwd describes it.
struct GuestAccount: Equatable, Sendable {
    var name: String
    var uid: Int
    var gid: Int
    var home: String

    /// Looks `user` up in the guest's /etc/passwd; a user that is not there is an error naming the guest.
    static func lookup(_ user: String, in guest: GuestFilesystem) throws -> GuestAccount {
        let passwd = try guest.readText("/etc/passwd")
        for (number, line) in passwd.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, fields[0] == user else { continue }
            guard let uid = Int(fields[2]), let gid = Int(fields[3]), fields[5].hasPrefix("/") else {
                throw GuestError(guest: guest.guestDescription, action: "read user \(user) from", path: "/etc/passwd",
                                 message: "line \(number + 1) has no numeric uid/gid or absolute home directory",
                                 hint: "fix the line in the guest's /etc/passwd")
            }
            return GuestAccount(name: user, uid: uid, gid: gid, home: String(fields[5]))
        }
        throw GuestError(guest: guest.guestDescription, action: "find user \(user) in", path: "/etc/passwd",
                         message: "no such user", hint: "create the user first, or name one the guest has")
    }
}
