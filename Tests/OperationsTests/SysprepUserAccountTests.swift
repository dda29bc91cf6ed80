import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

/// A guest with root, a system account, two users (uid 1000 and 1001), a user above UID_MAX and login.defs.
private func guestWithAccounts(loginDefs: String? = "UID_MIN                  1000\nUID_MAX                 60000\n")
    throws -> TemporaryTree {
    let tree = try TemporaryTree()
    try tree.file("/etc/passwd", """
        root:x:0:0:root:/root:/bin/bash
        chrony:x:994:991::/var/lib/chrony:/sbin/nologin
        bob:x:1000:1000:Bob:/home/bob:/bin/bash
        mary:x:1001:1001:Mary:/home/mary:/bin/bash
        nfsnobody:x:65534:65534:Anonymous NFS User:/var/lib/nfs:/sbin/nologin

        """)
    try tree.file("/etc/shadow", """
        root:!!:19000:0:99999:7:::
        chrony:!!:19000::::::
        bob:$6$salt$hash:19000:0:99999:7:::
        mary:$6$salt$hash2:19000:0:99999:7:::
        nfsnobody:!!:19000::::::

        """, mode: 0o000)
    try tree.file("/etc/group", """
        root:x:0:
        wheel:x:10:bob,mary
        chrony:x:991:
        bob:x:1000:
        mary:x:1001:
        nfsnobody:x:65534:

        """)
    try tree.file("/etc/gshadow", """
        root:::
        wheel:::bob,mary
        chrony:!::
        bob:!::
        mary:!::
        nfsnobody:!::

        """, mode: 0o000)
    if let loginDefs { try tree.file("/etc/login.defs", "# shadow-utils\n" + loginDefs) }
    for user in ["bob", "mary"] {
        try tree.file("/home/\(user)/.bashrc", "# \(user)\n")
        try tree.file("/var/spool/mail/\(user)", "From root\n")
    }
    try tree.file("/var/lib/chrony/drift", "0.0\n")
    return tree
}

private func names(_ tree: TemporaryTree, _ path: String) -> [String] {
    (tree.text(path) ?? "").split(separator: "\n").map { String($0.prefix { $0 != ":" }) }
}

@Suite struct SysprepUserAccountTests {
    @Test func removesEveryUserInTheRangeWithGroupsHomesAndMail() throws {
        let tree = try guestWithAccounts()
        let (first, second) = try tree.applyTwice(UserAccount())
        #expect(first.changed == .yes && first.summary == "removed users bob, mary")
        #expect(second.summary == "no user account to remove")
        #expect(names(tree, "/etc/passwd") == ["root", "chrony", "nfsnobody"])
        #expect(names(tree, "/etc/shadow") == ["root", "chrony", "nfsnobody"])
        #expect(names(tree, "/etc/group") == ["root", "wheel", "chrony", "nfsnobody"])
        #expect(names(tree, "/etc/gshadow") == ["root", "wheel", "chrony", "nfsnobody"])
        #expect(tree.text("/etc/group")?.contains("wheel:x:10:\n") == true)
        #expect(tree.text("/etc/gshadow")?.contains("wheel:::\n") == true)
        #expect(try tree.hostStatus("/etc/shadow").mode == 0o000)
        for user in ["bob", "mary"] {
            #expect(try tree.guest.lstat("/home/\(user)") == nil)
            #expect(try tree.guest.lstat("/var/spool/mail/\(user)") == nil)
        }
        #expect(tree.text("/var/lib/chrony/drift") == "0.0\n")
        #expect(try tree.guest.isDirectory("/home"))
    }

    @Test func keepsAndRemovesAsTheArgumentSays() throws {
        let keepMary = try guestWithAccounts()
        let kept = try keepMary.applyTwice(try UserAccount.parse("-mary"))
        #expect(kept.first.summary == "removed user bob")
        #expect(names(keepMary, "/etc/passwd") == ["root", "chrony", "mary", "nfsnobody"])
        #expect(keepMary.text("/etc/group")?.contains("wheel:x:10:mary\n") == true)
        #expect(keepMary.text("/home/mary/.bashrc") == "# mary\n")
        #expect(try keepMary.guest.lstat("/home/bob") == nil)

        let onlyMary = try guestWithAccounts()
        try onlyMary.applyTwice(try UserAccount.parse("mary"))
        #expect(names(onlyMary, "/etc/shadow") == ["root", "chrony", "bob", "nfsnobody"])
        #expect(onlyMary.text("/var/spool/mail/bob") == "From root\n")
        #expect(try onlyMary.guest.lstat("/var/spool/mail/mary") == nil)

        #expect(try UserAccount.parse("bob,-mary") == UserAccount(removing: ["bob"], keeping: ["mary"]))
        #expect(try UserAccount.parse(nil) == UserAccount())
        #expect(throws: ArgumentError.self) { try UserAccount.parse("bob,,eve") }
        #expect(throws: ArgumentError.self) { try UserAccount.parse("bob']") }
    }

    /// UID_MIN and UID_MAX come from the guest's login.defs (old RHEL used 500), and default to shadow-utils'.
    @Test func theRangeIsTheGuestsLoginDefs() throws {
        let rhel6 = try guestWithAccounts(loginDefs: "UID_MIN 1001\nUID_MAX 60000\n")
        let first = try rhel6.applyTwice(UserAccount()).first
        #expect(first.summary == "removed user mary")
        #expect(names(rhel6, "/etc/passwd").contains("bob"))

        let noDefs = try guestWithAccounts(loginDefs: nil)
        #expect(try noDefs.applyTwice(UserAccount()).first.summary == "removed users bob, mary")
        #expect(names(noDefs, "/etc/passwd").contains("nfsnobody"))
    }

    @Test func isOffInVirtSysprepAndNotInTheDefaults() throws {
        #expect(OperationRegistry.named("user-account")?.sysprep == .virtSysprepOnRequest(as: "user-account"))
        #expect(!sysprepDefaults.map(\.name).contains("user-account"))
    }
}

