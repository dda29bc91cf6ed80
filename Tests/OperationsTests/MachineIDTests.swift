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
        #expect(first.summary == "emptied /etc/machine-id, emptied /var/lib/dbus/machine-id")
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

    /// `uninitialized` is what makes systemd's first boot run ConditionFirstBoot= units; the file keeps its mode,
    /// and the empty default turns it back into an empty file.
    @Test func uninitializedOnRequestEmptyByDefault() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/machine-id", "4c4c4544004d3510804bb2c04f4e5931\n", mode: 0o444)
        try tree.file("/var/lib/dbus/machine-id", "4c4c4544004d3510804bb2c04f4e5931\n")
        let (first, second) = try tree.applyTwice(try RemoveMachineID.parse("uninitialized"))
        #expect(tree.text("/etc/machine-id") == "uninitialized\n")
        #expect(tree.text("/var/lib/dbus/machine-id") == "")
        #expect(try tree.hostStatus("/etc/machine-id").mode == 0o444)
        #expect(first.summary == "wrote uninitialized to /etc/machine-id, emptied /var/lib/dbus/machine-id")
        #expect(second.summary == "machine-id already uninitialized")

        try tree.applyTwice(try RemoveMachineID.parse(nil))
        #expect(tree.text("/etc/machine-id") == "")
        #expect(try RemoveMachineID.parse("empty") == RemoveMachineID())
        #expect(throws: ArgumentError.self) { try RemoveMachineID.parse("zero") }
        #expect(sysprepDefaults.compactMap { $0 as? RemoveMachineID } == [RemoveMachineID(.empty)])
    }

    /// A guest without /etc/machine-id already boots as a first boot; nothing is created.
    @Test func aMissingMachineIDStaysMissing() throws {
        let tree = try TemporaryTree()
        let (first, _) = try tree.applyTwice(RemoveMachineID(.uninitialized))
        #expect(first.changed == .no && tree.text("/etc/machine-id") == nil)
    }

    @Test func treeHasNothingToTrim() throws {
        let tree = try TemporaryTree()
        let (first, _) = try tree.applyTwice(TrimFreeSpace())
        #expect(first.changed == .no && first.summary == "nothing to trim in \(tree.path)")
    }
}
