import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct SetLineTests {
    @Test func appendsAMissingKeyAndKeepsTheRest() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/sysconfig/network", "# Created by anaconda\nNETWORKING=yes\nHOSTNAME=localhost\n", mode: 0o600)
        let (first, second) = try tree.applyTwice(SetLine("/etc/sysconfig/network", key: "NOZEROCONF", value: "yes"))
        #expect(tree.text("/etc/sysconfig/network") == "# Created by anaconda\nNETWORKING=yes\nHOSTNAME=localhost\nNOZEROCONF=yes\n")
        #expect(first.changed == .yes && first.summary == "added NOZEROCONF=yes")
        #expect(second.summary == "NOZEROCONF=yes already set")
        #expect(first.diffs == [FileDiff(path: "/etc/sysconfig/network", unified: """
            --- a/etc/sysconfig/network
            +++ b/etc/sysconfig/network
            @@ -1,3 +1,4 @@
             # Created by anaconda
             NETWORKING=yes
             HOSTNAME=localhost
            +NOZEROCONF=yes

            """)])
        #expect(try tree.hostStatus("/etc/sysconfig/network").mode == 0o600)
    }

    @Test(arguments: [
        ("BOOTPROTO=\"none\"\n", "dhcp", "BOOTPROTO=\"dhcp\"\n"),
        ("BOOTPROTO='none'\n", "dhcp", "BOOTPROTO='dhcp'\n"),
        ("BOOTPROTO=none\n", "dhcp", "BOOTPROTO=dhcp\n"),
        ("OPTS=none\n", "a b", "OPTS=\"a b\"\n"),
        ("OPTS='x'\n", "it's", "OPTS=\"it's\"\n"),
        ("OPTS=x\n", "\"$HOME\"", "OPTS=\"$HOME\"\n"),
        ("OPTS=x\n", "say \"hi\" $now", "OPTS=\"say \\\"hi\\\" \\$now\"\n"),
    ])
    func keepsTheQuotingStyle(before: String, value: String, after: String) throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/sysconfig/x", before)
        let key = String(before.prefix(while: { $0 != "=" }))
        try tree.applyTwice(SetLine("/etc/sysconfig/x", key: key, value: value))
        #expect(tree.text("/etc/sysconfig/x") == after)
    }

    @Test func removesDuplicatesOfTheKey() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/sysconfig/network-scripts/ifcfg-eth0",
                      "DEVICE=eth0\nONBOOT=no\nTYPE=Ethernet\nONBOOT=\"no\"\n")
        let (first, _) = try tree.applyTwice(SetLine("/etc/sysconfig/network-scripts/ifcfg-eth0", key: "ONBOOT",
                                                     value: "yes"))
        #expect(tree.text("/etc/sysconfig/network-scripts/ifcfg-eth0") == "DEVICE=eth0\nONBOOT=yes\nTYPE=Ethernet\n")
        #expect(first.summary == "set ONBOOT=yes; removed 1 duplicate ONBOOT line(s)")
    }

    @Test func createsAMissingFile() throws {
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/etc/sysconfig", mode: 0o755, parents: true)
        let (first, _) = try tree.applyTwice(SetLine("/etc/sysconfig/network", key: "NOZEROCONF", value: "yes"))
        #expect(tree.text("/etc/sysconfig/network") == "NOZEROCONF=yes\n")
        #expect(try tree.hostStatus("/etc/sysconfig/network").mode == 0o644)
        #expect(first.diffs?.first?.unified == "--- /dev/null\n+++ b/etc/sysconfig/network\n@@ -0,0 +1 @@\n+NOZEROCONF=yes\n")
    }

    @Test func pathsWithAugeasSyntaxCharacters() throws {
        let tree = try TemporaryTree()
        let path = "/etc/sysconfig/network-scripts/ifcfg-eth0:1 [alias]"
        try tree.file(path, "DEVICE=eth0:1\n")
        try tree.applyTwice(SetLine(path, key: "ONBOOT", value: "yes"))
        #expect(tree.text(path) == "DEVICE=eth0:1\nONBOOT=yes\n")
    }

    @Test func parsesTheCommandLine() throws {
        let operation = try SetLine.parse("/etc/sysconfig/network:NOZEROCONF=yes")
        #expect(operation.path == "/etc/sysconfig/network" && operation.key == "NOZEROCONF" && operation.value == "yes")
        let error = #expect(throws: ArgumentError.self) { try SetLine.parse("/etc/sysconfig/network:NOZEROCONF") }
        #expect(error?.diagnostic.message == "--set-line: no '=' in \"NOZEROCONF\"")
        #expect(error?.diagnostic.hint == "expected --set-line PATH:KEY=VALUE (e.g. --set-line '/etc/sysconfig/network:NOZEROCONF=yes')")
        #expect(throws: ArgumentError.self) { try SetLine.parse("etc/x:A=b") }
        #expect(throws: ArgumentError.self) { try SetLine.parse("/etc/x:1A=b") }
    }
}
