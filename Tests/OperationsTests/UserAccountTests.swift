import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

private let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@laptop"

private func guestWithUsers() throws -> TemporaryTree {
    let tree = try TemporaryTree()
    try tree.file("/etc/passwd", """
        root:x:0:0:root:/root:/bin/bash
        cloud-user:x:1000:1001:Cloud User:/home/cloud-user:/bin/bash

        """)
    try tree.file("/etc/shadow", """
        root:$6$rounds=5000$oldsalt$oldhash:19000:0:99999:7:::
        bin:*:18000:0:99999:7:::
        cloud-user::19000:0:99999:7:::

        """, mode: 0o000)
    try FileManager.default.createDirectory(atPath: tree.path + "/home/cloud-user", withIntermediateDirectories: true)
    return tree
}

/// The password field of `user` in the tree's /etc/shadow.
private func shadowField(_ tree: TemporaryTree, _ user: String) -> String? {
    tree.text("/etc/shadow")?.split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false) }
        .first { $0.first.map(String.init) == user }.map { String($0[1]) }
}

@Suite struct UserSSHInjectTests {
    @Test func keyLandsOnceWithSSHsModesAndTheUsersOwnership() throws {
        let tree = try guestWithUsers()
        let first = try SSHInject(user: "cloud-user", key: key).apply(to: tree.guest, context: OperationContext())
        #expect(first.changed == .yes)
        #expect(tree.text("/home/cloud-user/.ssh/authorized_keys") == key + "\n")
        let directory = try tree.hostStatus("/home/cloud-user/.ssh")
        #expect(directory.mode == 0o700 && directory.uid == 1000 && directory.gid == 1001)
        let file = try tree.hostStatus("/home/cloud-user/.ssh/authorized_keys")
        #expect(file.mode == 0o600 && file.uid == 1000 && file.gid == 1001)

        let second = try SSHInject(user: "cloud-user", key: key + "\n")
            .apply(to: tree.guest, context: OperationContext())
        #expect(second == .unchanged("key already in /home/cloud-user/.ssh/authorized_keys"))
        #expect(tree.text("/home/cloud-user/.ssh/authorized_keys") == key + "\n")
    }

    @Test func otherKeysStayAndLooseModesAreFixed() throws {
        let tree = try guestWithUsers()
        try tree.file("/root/.ssh/authorized_keys", "ssh-rsa AAAAB3Nza other@host", mode: 0o664)
        let outcome = try SSHInject(user: "root", key: key).apply(to: tree.guest, context: OperationContext())
        #expect(outcome.changed == .yes)
        #expect(tree.text("/root/.ssh/authorized_keys") == "ssh-rsa AAAAB3Nza other@host\n" + key + "\n")
        #expect(try tree.hostStatus("/root/.ssh/authorized_keys").mode == 0o600)
    }

    @Test func argumentsReadKeyFilesOrTakeKeysAndRejectTheRest() throws {
        let tree = try guestWithUsers()
        let hostKey = tree.path + "/host-key.pub"
        try Data((key + "\n").utf8).write(to: URL(fileURLWithPath: hostKey))
        #expect(try SSHInject.parse("cloud-user:" + hostKey) == SSHInject(user: "cloud-user", key: key))
        #expect(try SSHInject.parse("cloud-user:file:" + hostKey).key == key)
        #expect(try SSHInject.parse("root:string:" + key).key == key)
        #expect(try SSHInject.parse("root:" + key).user == "root")
        #expect(throws: ArgumentError.self) { try SSHInject.parse("root") }
        #expect(throws: ArgumentError.self) { try SSHInject.parse("root:file:/nonexistent/key.pub") }
        #expect(throws: ArgumentError.self) { try SSHInject.parse("root:notakey") }
    }

    @Test func anUnknownUserIsAnErrorNamingTheGuest() throws {
        let tree = try guestWithUsers()
        let error = try #require(throws: GuestError.self) {
            try SSHInject(user: "nobody", key: key).apply(to: tree.guest, context: OperationContext())
        }
        #expect(error.description.contains(tree.path) && error.description.contains("nobody"))
    }
}

extension SSHInject: Equatable {
    public static func == (lhs: SSHInject, rhs: SSHInject) -> Bool { lhs.user == rhs.user && lhs.key == rhs.key }
}

@Suite struct UserPasswordTests {
    @Test func aPlainPasswordBecomesASHA512HashThatCryptVerifies() throws {
        let tree = try guestWithUsers()
        let outcome = try Password(user: "cloud-user", selector: .plain("correct horse"))
            .apply(to: tree.guest, context: OperationContext())
        #expect(outcome == .changed("set cloud-user's password (sha512)"))
        let hash = try #require(shadowField(tree, "cloud-user"))
        #expect(hash.hasPrefix("$6$") && hash.count > 90)
        #expect(try PasswordHash.hash("correct horse", setting: hash) == hash)
        #expect(try PasswordHash.hash("wrong horse", setting: hash) != hash)
        // Other users and other fields are untouched, and the file keeps its mode.
        #expect(tree.text("/etc/shadow")?.contains("root:$6$rounds=5000$oldsalt$oldhash:19000:0:99999:7:::\n") == true)
        #expect(tree.text("/etc/shadow")?.contains("bin:*:18000:0:99999:7:::\n") == true)
        #expect(tree.text("/etc/shadow")?.contains(":19000:0:99999:7:::\n\n") == false)
        #expect(try tree.hostStatus("/etc/shadow").mode == 0o000)

        let again = try Password(user: "cloud-user", selector: .plain("correct horse"))
            .apply(to: tree.guest, context: OperationContext())
        #expect(again == .unchanged("cloud-user already has this password (sha512)"))
        #expect(shadowField(tree, "cloud-user") == hash)
    }

    /// --password-crypto: each method's hash, which crypt verifies; a password set again with another method is
    /// rehashed; yescrypt is refused on a guest whose libcrypt predates it.
    @Test(arguments: [(PasswordCrypto.md5, "$1$"), (.sha256, "$5$"), (.sha512, "$6$"), (.yescrypt, "$y$")])
    func passwordCryptoChoosesTheHash(method: PasswordCrypto, prefix: String) throws {
        let tree = try guestWithUsers()
        let debian12 = OperationContext(guest: GuestFacts(distro: "debian", majorVersion: 12), passwordCrypto: method)
        let set = Password(user: "cloud-user", selector: .plain("correct horse"))
        #expect(try set.apply(to: tree.guest, context: debian12).changed == .yes)
        let hash = try #require(shadowField(tree, "cloud-user"))
        #expect(hash.hasPrefix(prefix), "\(hash)")
        #expect(try PasswordHash.hash("correct horse", setting: hash) == hash)
        #expect(try set.apply(to: tree.guest, context: debian12).changed == .no)
        let other = OperationContext(guest: debian12.guest, passwordCrypto: method == .sha512 ? .sha256 : .sha512)
        #expect(try set.apply(to: tree.guest, context: other) == .changed("set cloud-user's password (\(other.passwordCrypto))"))
    }

    @Test func yescryptIsRefusedOnAnOlderGuest() throws {
        let tree = try guestWithUsers()
        let rhel8 = OperationContext(guest: GuestFacts(distro: "rhel", majorVersion: 8), passwordCrypto: .yescrypt)
        let error = try #require(throws: GuestError.self) {
            try RootPassword(.plain("x")).apply(to: tree.guest, context: rhel8)
        }
        #expect("\(error)".contains("the guest (rhel 8) may not read yescrypt hashes"), "\(error)")
        #expect(error.hint == "use --password-crypto sha512, which every RHEL 6+ and Debian guest reads")
        #expect(shadowField(tree, "root") == "$6$rounds=5000$oldsalt$oldhash")
    }

    @Test func lockedAndDisabled() throws {
        let tree = try guestWithUsers()
        _ = try RootPassword(.locked).apply(to: tree.guest, context: OperationContext())
        #expect(shadowField(tree, "root") == "!$6$rounds=5000$oldsalt$oldhash")
        #expect(try RootPassword(.locked).apply(to: tree.guest, context: OperationContext()).changed == .no)
        _ = try Password(user: "cloud-user", selector: .locked).apply(to: tree.guest, context: OperationContext())
        #expect(shadowField(tree, "cloud-user") == "!!")
        _ = try Password(user: "cloud-user", selector: .disabled).apply(to: tree.guest, context: OperationContext())
        #expect(shadowField(tree, "cloud-user") == "*")
        #expect(try Password(user: "cloud-user", selector: .disabled)
            .apply(to: tree.guest, context: OperationContext()) == .unchanged("cloud-user already disabled"))
    }

    @Test func randomPasswordIsShownOnceAndVerifies() throws {
        let tree = try guestWithUsers()
        let outcome = try RootPassword(.random).apply(to: tree.guest, context: OperationContext())
        let password = try #require(outcome.summary.split(separator: " ").last.map(String.init))
        #expect(password.count == 16)
        let hash = try #require(shadowField(tree, "root"))
        #expect(try PasswordHash.hash(password, setting: hash) == hash)
    }

    @Test func selectorsParseFromTheCommandLine() throws {
        let tree = try guestWithUsers()
        let file = tree.path + "/password.txt"
        try Data("from a file\nsecond line\n".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try Password.parse("cloud-user:file:" + file).selector == .plain("from a file"))
        #expect(try Password.parse("cloud-user:password:a:b").selector == .plain("a:b"))
        #expect(try RootPassword.parse("locked").selector == .locked)
        #expect(try RootPassword.parse("disabled").selector == .disabled)
        #expect(throws: ArgumentError.self) { try RootPassword.parse("hunter2") }
        #expect(throws: ArgumentError.self) { try Password.parse("root:file:/nonexistent") }
        let error = try #require(throws: GuestError.self) {
            try Password(user: "nobody", selector: .locked).apply(to: tree.guest, context: OperationContext())
        }
        #expect(error.description.contains("/etc/shadow") && error.description.contains("nobody"))
    }
}
