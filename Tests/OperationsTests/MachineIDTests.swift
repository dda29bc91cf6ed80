import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct MachineIDTests {
    @Test func emptiesBothFiles() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/machine-id", "4c4c4544004d3510804bb2c04f4e5931\n", mode: 0o444)
        try tree.file("/var/lib/dbus/machine-id", "4c4c4544004d3510804bb2c04f4e5931\n")
        let (first, second) = try tree.applyTwice(RemoveMachineID())
        #expect(tree.text("/etc/machine-id") == "" && tree.text("/var/lib/dbus/machine-id") == "")
        #expect(try tree.hostStatus("/etc/machine-id").mode == 0o444)
        #expect(first.summary == "emptied /etc/machine-id, /var/lib/dbus/machine-id")
        #expect(second.summary == "machine-id already empty")
    }

    @Test func leavesTheDbusSymlinkAlone() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/machine-id", "4c4c4544004d3510804bb2c04f4e5931\n")
        try tree.symlink("/var/lib/dbus/machine-id", to: "/etc/machine-id")
        try tree.applyTwice(RemoveMachineID())
        #expect(tree.text("/etc/machine-id") == "")
        #expect(try tree.guest.readlink("/var/lib/dbus/machine-id") == "/etc/machine-id")
    }

    @Test func treeHasNothingToTrim() throws {
        let tree = try TemporaryTree()
        let (first, _) = try tree.applyTwice(TrimFreeSpace())
        #expect(first.changed == .no && first.summary == "nothing to trim in \(tree.path)")
    }
}
