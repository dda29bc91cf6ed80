import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree
import TestSupport

/// The subscription-manager operations without a guest's programs: their selectors, the commands they would run,
/// and what they decide from the guest's files before running anything. Registering for real needs Red Hat's
/// subscription service, which this project's machines cannot reach.
@Suite struct SubscriptionManagerTests {
    @Test func credentialsTakeAPasswordOrTheFirstLineOfAFileAndNeverShowIt() throws {
        let inline = try SubscriptionCredentials(selector: "builder@example.com:password:pa:ss:word")
        #expect(inline == SubscriptionCredentials(user: "builder@example.com", password: "pa:ss:word"))
        #expect(inline.description == "builder@example.com (password hidden)")

        let directory = try TestDirectory()
        let file = directory.path("rhsm.password")
        try "s3cret\nsecond line\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try SubscriptionCredentials(selector: "builder:file:\(file)").password == "s3cret")

        for (selector, problem) in [
            ("builder", "expected USER:password:PASSWORD or USER:file:FILE"),
            (":password:x", "expected USER:password:PASSWORD or USER:file:FILE"),
            ("builder:token:x", "unknown kind \"token\" after the user: use password or file"),
            ("builder:password:", "the password is empty"),
        ] {
            let error = #expect(throws: ArgumentError.self) { try SubscriptionCredentials(selector: selector) }
            #expect(error?.problem == problem, "\(selector)")
            #expect(error?.description.contains("expected --sm-credentials USER:password:PASSWORD|USER:file:FILE")
                    == true)
        }
        let missing = #expect(throws: ArgumentError.self) {
            try SubscriptionCredentials(selector: "builder:file:\(directory.path("absent"))")
        }
        #expect(missing?.problem.hasPrefix("cannot read the password file \(directory.path("absent")) on this host")
                == true)
    }

    @Test func attachTakesAutoAPoolOrAPoolFile() throws {
        #expect(try SMAttach.parse("auto").pool == .auto)
        #expect(try SMAttach.parse("pool:8a85f98c6").pool == .id("8a85f98c6"))
        let directory = try TestDirectory()
        let file = directory.path("pool")
        try "8a85f98c6 \n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try SMAttach.parse("file:\(file)").target == "pool:8a85f98c6")
        for selector in ["pool:", "everything", ""] {
            #expect(throws: ArgumentError.self) { try SMAttach.parse(selector) }
        }
        #expect(throws: ArgumentError.self) { try SMRegister.parse("x") }
    }

    /// The command line refuses sm-register without an account before anything launches, and gives the account to
    /// every sm-register, those of command files included.
    @Test func registerGetsTheCredentialsOrTheCommandLineIsRefused() throws {
        let credentials = SubscriptionCredentials(user: "builder", password: "s3cret")
        let operations: [any GuestOperation] = [
            SMRegister(), CommandsFromFile(file: "f", operations: [SMRegister(), SMUnregister()]),
        ]
        let error = #expect(throws: ArgumentError.self) { try operations.supplyingSubscriptionCredentials(nil) }
        #expect(error?.description == "--sm-register: needs the account to register with: give --sm-credentials "
                + "USER:password:PASSWORD|USER:file:FILE")
        let supplied = try operations.supplyingSubscriptionCredentials(credentials).expandingCommandFiles
        #expect(supplied.map(\.name) == ["sm-register", "sm-register", "sm-unregister"])
        #expect(supplied.compactMap { ($0 as? SMRegister)?.credentials } == [credentials, credentials])
        #expect(supplied[0].target == "builder")
    }

    @Test func theShownCommandHidesThePasswordAndQuotesOnlyWhatNeedsIt() {
        #expect(SubscriptionManager.word("--username=builder@example.com") == "--username=builder@example.com")
        #expect(SubscriptionManager.word("--password=it's a secret") == #"'--password=it'\''s a secret'"#)
        #expect(SubscriptionManager.word("--password=<hidden>") == "'--password=<hidden>'")
    }

    /// A tree whose guest has the client: /usr/sbin/subscription-manager, as RHEL's package installs it.
    func rhelTree(registered: Bool) throws -> TemporaryTree {
        let tree = try TemporaryTree()
        try tree.file("/usr/sbin/subscription-manager", "#!/usr/bin/python3\n", mode: 0o755)
        if registered { try tree.file("/etc/pki/consumer/cert.pem", "-----BEGIN CERTIFICATE-----\n") }
        return tree
    }

    @Test func aGuestWithoutTheClientIsRefusedByEveryStep() throws {
        let tree = try TemporaryTree()
        let runner = OperationRunner(guest: tree.guest)
        let steps: [any GuestOperation] = [
            SMRegister(credentials: SubscriptionCredentials(user: "builder", password: "s3cret")), SMAttach(.auto),
            SMRemove(), SMUnregister(),
        ]
        for step in steps {
            let error = #expect(throws: (any Error).self) { try runner.run(step) }
            let text = "\(error.map { "\($0)" } ?? "")"
            #expect(text.contains("the guest has no subscription-manager (neither /usr/sbin/subscription-manager "
                                  + "nor /usr/bin/subscription-manager)"), "\(step.name): \(text)")
            #expect(text.contains("install it first (--network --install subscription-manager)"))
            #expect(!text.contains("s3cret"))
        }
    }

    /// What the guest's files decide: an unregistered guest has nothing to remove or unregister and nothing to
    /// attach to; a registered one is not registered again. Only the steps that must talk to the subscription
    /// service run the guest's client, which a tree cannot.
    @Test func theConsumerCertificateDecidesWhatRuns() throws {
        let unregistered = try rhelTree(registered: false)
        let runner = OperationRunner(guest: unregistered.guest)
        #expect(try runner.run(SMUnregister()).summary == "not registered (/etc/pki/consumer/cert.pem does not exist)")
        #expect(try runner.run(SMRemove()).changed == .no)
        let attach = #expect(throws: (any Error).self) { try runner.run(SMAttach(.auto)) }
        #expect("\(attach.map { "\($0)" } ?? "")".contains("the guest is not registered"))
        let noAccount = #expect(throws: (any Error).self) { try runner.run(SMRegister()) }
        #expect("\(noAccount.map { "\($0)" } ?? "")".contains("no account to register with"))
        let register = #expect(throws: (any Error).self) {
            try runner.run(SMRegister(credentials: SubscriptionCredentials(user: "builder", password: "s3cret")))
        }
        #expect("\(register.map { "\($0)" } ?? "")".contains("a directory tree cannot run the guest's programs"))

        let registered = try rhelTree(registered: true)
        let again = try OperationRunner(guest: registered.guest)
            .run(SMRegister(credentials: SubscriptionCredentials(user: "builder", password: "s3cret")))
        #expect(again.changed == .no)
        #expect(again.summary == "registered already (/etc/pki/consumer/cert.pem exists): --sm-unregister first to "
                + "register anew")
        let unregister = #expect(throws: (any Error).self) {
            try OperationRunner(guest: registered.guest).run(SMUnregister())
        }
        #expect("\(unregister.map { "\($0)" } ?? "")".contains("a directory tree cannot run the guest's programs"))
    }
}
