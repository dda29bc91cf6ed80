import Foundation
import Operations
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The host tools a boot check runs: qemu-img, ssh-keygen, xorriso, ssh.
enum Tool {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `tool`; a failure throws with its stderr.
    static func run(_ tool: String, _ arguments: [String], image: String) throws {
        let result = try capture(tool, arguments, timeout: 120)
        guard result.status == 0 else {
            throw GuestError(guest: image, action: "boot-check", message: "\(tool) \(arguments.joined(separator: " ")) failed: "
                                 + result.stderr.trimmingCharacters(in: .whitespacesAndNewlines),
                                 hint: "run scripts/install-deps")
        }
    }

    /// Runs `tool` with `input` on its standard input and returns what it printed; killed after `timeout` seconds
    /// (status -1).
    static func capture(_ tool: String, _ arguments: [String], input: String? = nil, timeout: Double) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let inputPipe = input.map { _ in Pipe() }
        process.standardInput = inputPipe ?? FileHandle.nullDevice
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        if let inputPipe, let input {
            inputPipe.fileHandleForWriting.write(Data(input.utf8))
            try? inputPipe.fileHandleForWriting.close()
        }
        // Read both pipes while the tool runs, so that a chatty one never blocks on a full pipe.
        let collected = DispatchGroup()
        let read = Mutex((out: Data(), err: Data()))
        collected.enter()
        DispatchQueue.global().async {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            read.withLock { $0.out = data }
            collected.leave()
        }
        collected.enter()
        DispatchQueue.global().async {
            let data = errors.fileHandleForReading.readDataToEndOfFile()
            read.withLock { $0.err = data }
            collected.leave()
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let timedOut = process.isRunning
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        collected.wait()
        let (out, err) = read.withLock { ($0.out, $0.err) }
        return Result(status: timedOut ? -1 : process.terminationStatus,
                      stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }
}
