import Foundation
import Host
import TestSupport
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

/// `edit FILE:EXPR`, virt-customize's --edit: the host's perl over each line of a guest file.
@Suite struct PerlEditTests {
    @Test func perlExpressionsEditEachLineAndASecondRunChangesNothing() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/ssh/sshd_config", "# sshd\n#PermitRootLogin yes\nPasswordAuthentication yes\n", mode: 0o600)
        // Perl's own syntax: a lookbehind, a statement modifier, $. (the line number).
        let steps = [
            try PerlEdit.parse("/etc/ssh/sshd_config:s/^#?PermitRootLogin.*/PermitRootLogin no/"),
            try PerlEdit.parse("/etc/ssh/sshd_config:s/(?<=PasswordAuthentication )yes/no/"),
            try PerlEdit.parse("/etc/ssh/sshd_config:$_ = \"\" if /^# sshd/; $_ .= \"# prepared\\n\" if eof"),
        ]
        let runner = OperationRunner(guest: tree.guest)
        #expect(try steps.map { try runner.run($0).changed } == [.yes, .yes, .yes])
        #expect(tree.text("/etc/ssh/sshd_config") == "PermitRootLogin no\nPasswordAuthentication no\n# prepared\n")
        #expect(try tree.hostStatus("/etc/ssh/sshd_config").mode == 0o600)
        let again = try steps.dropLast().map { try runner.run($0) }
        #expect(again.map(\.changed) == [.no, .no])
        #expect(again[0].summary == "s/^#?PermitRootLogin.*/PermitRootLogin no/: nothing to change")
    }

    /// The bytes go through as they are: a Latin-1 file stays Latin-1, a CRLF file keeps its line endings.
    @Test func bytesThatAreNotUTF8PassThrough() throws {
        let tree = try TemporaryTree()
        let host = tree.path + "/etc/motd"
        try FileManager.default.createDirectory(atPath: tree.path + "/etc", withIntermediateDirectories: true)
        try Data([0x63, 0x61, 0x66, 0xE9, 0x0D, 0x0A, 0x78, 0x0D, 0x0A]).write(to: URL(fileURLWithPath: host))
        _ = try OperationRunner(guest: tree.guest).run(try PerlEdit.parse("/etc/motd:s/x/y/"))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: host))) == [0x63, 0x61, 0x66, 0xE9, 0x0D, 0x0A, 0x79,
                                                                            0x0D, 0x0A])
    }

    /// A cancelled run stops the host's perl (SIGTERM, then SIGKILL) instead of waiting for the expression to end.
    /// Bounded from its start by `finishing(within:)`, not `.timeLimit`, which counts the wait for a thread.
    @Test func cancellingTheRunStopsPerl() {
        finishing(within: 60) {
            let cancellation = Cancellation()
            let started = Date()
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { cancellation.cancel(reason: "interrupted by SIGTERM") }
            #expect(throws: GuestError.self) {
                _ = try PerlEdit.perl("sleep 120", over: Array("x\n".utf8), guest: "tree", path: "/f", cancellation: cancellation)
            }
            #expect(Date().timeIntervalSince(started) < 30)
        }
    }

    @Test func aBadExpressionOrAMissingFileNamesTheGuestAndThePath() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/motd", "hello\n")
        let runner = OperationRunner(guest: tree.guest)
        let bad = #expect(throws: (any Error).self) { try runner.run(try PerlEdit.parse("/etc/motd:s/(unclosed/x/")) }
        let text = "\(bad.map { "\($0)" } ?? "")"
        #expect(text.contains(tree.path) && text.contains("/etc/motd"), "\(text)")
        #expect(text.contains("the Perl expression \"s/(unclosed/x/\" failed (perl exited with status 255): "
                              + "Unmatched ( in regex"), "\(text)")
        #expect(tree.text("/etc/motd") == "hello\n")
        let missing = #expect(throws: (any Error).self) { try runner.run(try PerlEdit.parse("/etc/nope:s/a/b/")) }
        #expect("\(missing.map { "\($0)" } ?? "")".contains("no such file"))
        #expect(throws: ArgumentError.self) { try PerlEdit.parse("/etc/motd:") }
        #expect(throws: ArgumentError.self) { try PerlEdit.parse("etc/motd:s/a/b/") }
    }
}
