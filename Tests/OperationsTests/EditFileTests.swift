import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct EditFileTests {
    static let sshd = "#PermitRootLogin yes\nPermitRootLogin yes\nPasswordAuthentication yes\n"

    @Test func substitutionAppliesToEachLine() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/ssh/sshd_config", Self.sshd, mode: 0o600)
        let operation = try EditFile.parse("/etc/ssh/sshd_config:s/^PermitRootLogin yes/PermitRootLogin no/")
        let (first, second) = try tree.applyTwice(operation)
        #expect(tree.text("/etc/ssh/sshd_config") == "#PermitRootLogin yes\nPermitRootLogin no\nPasswordAuthentication yes\n")
        #expect(first.summary == "applied s/^PermitRootLogin yes/PermitRootLogin no/")
        #expect(second.summary == "s/^PermitRootLogin yes/PermitRootLogin no/: nothing to change")
        #expect(try tree.hostStatus("/etc/ssh/sshd_config").mode == 0o600)
    }

    @Test(arguments: [
        ("s/(\\w+)=(\\w+)/\\2=\\1/", "a=b c=d\n", "b=a c=d\n"),
        ("s/(\\w+)=(\\w+)/$2=$1/g", "a=b c=d\n", "b=a d=c\n"),
        ("s/YES/no/i", "x=yes\n", "x=no\n"),
        ("s|/usr/bin|/bin|g", "PATH=/usr/bin:/usr/bin/x\n", "PATH=/bin:/bin/x\n"),
        ("s/a\\/b/c/", "a/b\n", "c\n"),
        ("s/^x\\ny$/joined/m", "x\ny\nz\n", "joined\nz\n"),
        ("s/\\$HOME/\\\\home/", "$HOME\n", "\\home\n"),
    ])
    func substitutions(expression: String, before: String, after: String) throws {
        let tree = try TemporaryTree()
        try tree.file("/f", before)
        _ = try OperationRunner(guest: tree.guest).run(try EditFile.parse("/f:" + expression))
        #expect(tree.text("/f") == after)
    }

    @Test func crlfFilesStayCRLF() throws {
        let tree = try TemporaryTree()
        try tree.file("/boot/efi/startup.nsh", "fs0:\r\nPermitRootLogin yes\r\nend\r\n")
        try tree.applyTwice(try EditFile.parse("/boot/efi/startup.nsh:s/^PermitRootLogin yes$/PermitRootLogin no/"))
        #expect(tree.text("/boot/efi/startup.nsh") == "fs0:\r\nPermitRootLogin no\r\nend\r\n")
    }

    @Test func closureEdit() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/motd", "hello\n")
        let operation = EditFile("/etc/motd", description: "uppercase") { $0.uppercased() }
        let (first, _) = try tree.applyTwice(operation)
        #expect(tree.text("/etc/motd") == "HELLO\n")
        #expect(first.summary == "applied uppercase")
    }

    @Test func refusesBinaryAndMissingFiles() throws {
        let tree = try TemporaryTree()
        try tree.guest.mkdir("/bin", mode: 0o755, parents: false)
        try tree.guest.write("/bin/true", [0x7f, 0x45, 0x4c, 0x46, 0, 0], mode: 0o755)
        let operation = try EditFile.parse("/bin/true:s/a/b/")
        let error = #expect(throws: GuestError.self) { try operation.apply(to: tree.guest, context: OperationContext()) }
        #expect(error?.description == "\(tree.path): edit-file /bin/true: binary file (NUL bytes or invalid UTF-8)\n  hint: only text files can be edited; replace it with upload or write")
        #expect(throws: GuestError.self) {
            try EditFile.parse("/missing:s/a/b/").apply(to: tree.guest, context: OperationContext())
        }
    }

    @Test(arguments: ["/f:x/a/b/", "/f:s/a/b", "/f:s/a/b/q", "/f:s/(/b/"])
    func badExpressionsNameTheOption(argument: String) {
        let error = #expect(throws: ArgumentError.self) { try EditFile.parse(argument) }
        #expect(error?.description.hasPrefix("--edit-file: ") == true)
        #expect(error?.description.contains("expected --edit-file PATH:s/REGEX/REPLACEMENT/FLAGS") == true)
    }
}
