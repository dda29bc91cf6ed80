import Diagnostics
import Foundation
import Host

/// `edit FILE:EXPR`: virt-customize's `--edit`, the Perl expression EXPR run over each line of the guest file by
/// the host's perl (`perl -p -e EXPR`, `$_` the line with its newline), so that any expression written for
/// virt-customize or virt-edit works unchanged: `s/^#?PermitRootLogin.*/PermitRootLogin no/`, `$_ = "" if /^foo/`,
/// `$_ .= "extra\n" if $. == 1`. The file's bytes go through perl as they are, mode, owner and label kept; a file the
/// expression leaves as it was is not written and the step says nothing changed, so that a second run changes
/// nothing. The guest's own perl is never run: the host's does the edit, on a private copy.
/// `edit-file` does the common substitutions without perl, and takes a Swift closure in profiles.
public struct PerlEdit: RegisteredOperation {
    public static let name = "edit"
    public static let sourceFile = #filePath
    public static let summary = "Edit a file with a Perl expression over each line, as virt-customize's --edit (host perl)"
    public static let argument = OperationArgument.required(syntax: "FILE:EXPR",
                                                            example: "/etc/ssh/sshd_config:s/^#?PermitRootLogin.*/PermitRootLogin no/")

    public let path: String
    public let expression: String
    public var target: String { path }

    public init(_ path: String, expression: String) {
        self.path = path
        self.expression = expression
    }

    public static func parse(_ argument: String?) throws -> PerlEdit {
        let (path, expression) = try pathAndRest(argument)
        guard !expression.allSatisfy(\.isWhitespace) else { throw invalid("an empty Perl expression") }
        return PerlEdit(path, expression: expression)
    }

    public func apply(to guest: GuestFilesystem, context: OperationContext) throws -> OperationOutcome {
        guard try guest.isFile(path) else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path,
                             message: try guest.exists(path) ? "not a regular file" : "no such file",
                             hint: "create it first with write or append-line")
        }
        let original = try guest.read(path)
        let edited = try Self.perl(expression, over: original, guest: guest.guestDescription, path: path,
                                   cancellation: context.cancellation)
        guard edited != original else { return .unchanged("\(expression): nothing to change") }
        try guest.write(path, edited, mode: 0o644)
        return .changed("applied \(expression)")
    }

    /// The most perl may print: a file made this large by one expression is a mistake, not an edit.
    static let outputLimit = 1 << 30

    /// `content` through `perl -p -e expression` on the host: the edited bytes, or an error with what perl said.
    static func perl(_ expression: String, over content: [UInt8], guest: String, path: String,
                     cancellation: Cancellation? = nil) throws -> [UInt8] {
        func failure(_ message: String, _ hint: String?) -> GuestError {
            GuestError(guest: guest, action: name, path: path, message: message, hint: hint)
        }
        let result: CommandResult
        do {
            result = try TemporaryDirectory.with(prefix: "imgcustomize-edit") { directory in
                let input = directory.appending("input")
                guard FileManager.default.createFile(atPath: input, contents: Data(content)) else {
                    throw failure("cannot make the private copy the edit runs on in \(directory.path)",
                                  "check that TMPDIR is writable")
                }
                // LC_ALL=C: the bytes are bytes, whatever the host's locale; the file is perl's argument, not its
                // stdin, so that `$ARGV` and `eof` mean what they mean for virt-customize's edit.
                return try HostCommand("perl", ["-p", "-e", expression, input], environment: ["LC_ALL": "C"],
                                       output: .capture(limit: outputLimit), cancellation: cancellation).run()
            }
        } catch let error as ProcessStartError {
            throw failure(error.notFound ? "the host has no perl, which runs the expression" : Diagnostic(of: error).message,
                          "install perl on the host")
        } catch let error as TemporaryDirectoryError {
            throw failure(Diagnostic(of: error).message, "check that TMPDIR is writable")
        }
        guard result.succeeded else {
            throw failure("the Perl expression \(expression.debugDescription) failed (perl \(result.failure))"
                          + (result.errorText.isEmpty ? "" : ": \(result.errorText)"),
                          "check the expression with `perl -p -e EXPR FILE` on a copy of the file")
        }
        return result.output
    }
}
