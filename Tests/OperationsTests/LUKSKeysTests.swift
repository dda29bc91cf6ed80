import Foundation
import Synchronization
@testable import Operations
@testable import Appliance
import Testing
import TestSupport

@Suite struct LUKSKeysTests {
    @Test func selectorsAsVirtCustomizeTakesThem() throws {
        let key = try LUKSKeys.Key(selector: "/dev/sda2:key:pass:with:colons")
        #expect(key.device == "/dev/sda2")
        guard case .passphrase(let secret) = key.source else { Issue.record("not a passphrase"); return }
        #expect(secret == "pass:with:colons")
        let file = try LUKSKeys.Key(selector: "5f2b8a4e-1c3d-4e6f-8a9b-0c1d2e3f4a5b:file:/root/key")
        guard case .file(let path) = file.source else { Issue.record("not a file"); return }
        #expect(path == "/root/key")
        #expect(file.applies(to: "/dev/sda2", uuid: "5F2B8A4E-1C3D-4E6F-8A9B-0C1D2E3F4A5B"))
        #expect(!file.applies(to: "/dev/sda2", uuid: "00000000-1c3d-4e6f-8a9b-0c1d2e3f4a5b"))
        #expect(key.applies(to: "/dev/sda2", uuid: nil))
    }

    @Test(arguments: ["/dev/sda2", "/dev/sda2:key", "/dev/sda2:key:", ":key:secret", "/dev/sda2:clevis:x"])
    func invalidSelectorsAreRefused(selector: String) {
        #expect(throws: LUKSKeyError.self) { try LUKSKeys.Key(selector: selector) }
    }

    /// However keys are printed, dumped or interpolated, the passphrase stays out.
    @Test func descriptionsHideThePassphrase() throws {
        let keys = LUKSKeys([try LUKSKeys.Key(selector: "/dev/sda2:key:s3cret-value")], prompt: { _ in nil })
        var dumped = ""
        dump(keys, to: &dumped)
        var options = ApplianceOptions()
        options.keys = keys
        var dumpedOptions = ""
        dump(options, to: &dumpedOptions)
        for text in ["\(keys)", String(reflecting: keys), "\(keys.keys[0])", String(reflecting: keys.keys),
                     dumped, dumpedOptions, "\(options)"] {
            #expect(!text.contains("s3cret"), "\(text)")
        }
        #expect("\(keys)".contains("/dev/sda2"))
    }

    @Test func keyFileFirstLine() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("luks-key-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data("first\nsecond\n".utf8).write(to: url)
        #expect(try LUKSUnlock.firstLine(ofKeyFile: url.path, for: "/dev/sda2", guest: "disk.raw") == "first")
        #expect(throws: GuestError.self) {
            try LUKSUnlock.firstLine(ofKeyFile: url.path + ".missing", for: "/dev/sda2", guest: "disk.raw")
        }
    }
}

extension LUKSKeysTests {
    /// `--key DEVICE:file:FIFO`: refused at once, naming the file, where reading it used to wait for a writer forever.
    @Test func aKeyFileThatIsAFIFOIsRefusedAtOnce() throws {
        let directory = try TestDirectory()
        let fifo = directory.path("key-fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        // A read that waits for a writer is given one after 2 s, so that a hang fails the test instead of blocking
        // the run.
        let state = Mutex((finished: false, unblocked: false))
        DispatchQueue.global().asyncAfter(deadline: .now() + 2) {
            state.withLock { state in
                guard !state.finished else { return }
                state.unblocked = true
                let writer = open(fifo, O_WRONLY | O_NONBLOCK)
                if writer >= 0 { close(writer) }
            }
        }
        let error = try #require(throws: GuestError.self) {
            defer { state.withLock { $0.finished = true } }
            return try LUKSUnlock.firstLine(ofKeyFile: fifo, for: "/dev/sda2", guest: "disk.qcow2")
        }
        #expect(!state.withLock { $0.unblocked }, "reading the key file waited for a writer")
        #expect(error.path == fifo)
        #expect(error.message == "it is a FIFO, not a regular file")
        #expect(error.hint == "give a readable file: --key /dev/sda2:file:PATH")
    }
}
