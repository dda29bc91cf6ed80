import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct LockPasswordTests {
    static let shadow = """
        root:$6$salt$hash:19000:0:99999:7:::
        bin:*:17834:0:99999:7:::
        nopass::19000:0:99999:7:::
        cloud-user:!!:19000:0:99999:7:::

        """

    @Test func lockRootPrefixesTheHash() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/shadow", Self.shadow, mode: 0o000)
        let (first, second) = try tree.applyTwice(LockRoot())
        #expect(tree.text("/etc/shadow") == Self.shadow.replacingOccurrences(of: "root:$6", with: "root:!$6"))
        #expect(first.summary == "locked root's password")
        #expect(second.summary == "root's password already locked")
        #expect(try tree.hostStatus("/etc/shadow").mode == 0o000)
    }

    @Test(arguments: [("nopass", "nopass:!!:"), ("bin", "bin:!*:"), ("cloud-user", "cloud-user:!!:")])
    func lockPassword(user: String, expectedPrefix: String) throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/shadow", Self.shadow)
        try tree.applyTwice(LockPassword(user: user))
        let lines = tree.text("/etc/shadow")?.split(separator: "\n") ?? []
        #expect(lines.filter { $0.hasPrefix(user + ":") }.map { $0.hasPrefix(expectedPrefix) } == [true])
        #expect(lines.filter { !$0.hasPrefix(user + ":") }
            == Self.shadow.split(separator: "\n").filter { !$0.hasPrefix(user + ":") })
    }

    @Test func unknownUserIsAnError() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/shadow", Self.shadow)
        let error = #expect(throws: GuestError.self) {
            try LockPassword(user: "nobody").apply(to: tree.guest, context: OperationContext())
        }
        #expect(error?.message == "no user nobody in /etc/shadow")
        #expect(tree.text("/etc/shadow") == Self.shadow)
    }
}
