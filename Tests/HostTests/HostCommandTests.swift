import Dispatch
import Foundation
import Glibc
import Host
import TestSupport
import Testing

/// The process runner with real programs: what they print, how they end, and that stopping them works.
/// Each test is bounded by `finishing(within:)`, from when it starts (not `.timeLimit`, which counts the wait for a thread).
@Suite struct HostCommandTests {
    /// Neither stream can stall the program: 8 MiB on stderr before 8 MiB on stdout (a runner reading stdout to its
    /// end first would wait forever on a program blocked writing stderr), and 16 MiB through cat while it is written.
    @Test func drainsBothStreamsAndFeedsInputTogether() throws {
        try finishing(within: 60) {
            let both = try HostCommand("sh", ["-c", "head -c 8388608 /dev/zero >&2; head -c 8388608 /dev/zero; echo done >&2"],
                                       errors: .tail(1 << 20)).run()
            #expect(both.succeeded)
            #expect(both.output.count == 8 << 20 && both.output.allSatisfy { $0 == 0 })
            #expect(both.errors.count >= 1 << 20 && both.errors.count <= 2 << 20)
            #expect(both.errorText.hasSuffix("done"))

            let input = (0..<(16 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
            let echoed = try HostCommand("cat", input: .bytes(input), output: .capture(limit: 32 << 20)).run()
            #expect(echoed.succeeded)
            #expect(echoed.output == input)
        }
    }

    @Test func anOutputPastItsLimitStopsTheProgram() throws {
        try finishing(within: 60) {
            let result = try HostCommand("yes", output: .capture(limit: 1 << 20)).run()
            #expect(result.stop == .outputLimit(stream: "standard output", limit: 1 << 20))
            #expect(result.termination == .signalled(SIGTERM))
            #expect(result.output.count <= 1 << 20)
            #expect(!result.succeeded)
            #expect(result.failure == "wrote more than 1.0 MiB on its standard output and was stopped")
        }
    }

    @Test func reportsTheExitStatusAndWhatWasSaid() throws {
        try finishing(within: 60) {
            let result = try HostCommand("sh", ["-c", "echo out; echo first >&2; echo oops >&2; exit 3"],
                                         environment: ["LC_ALL": "C"]).run()
            #expect(result.termination == .exited(3))
            #expect(result.outputText == "out\n")
            #expect(result.errorText == "first\noops")
            #expect(result.explanation == "exited with status 3: first\noops")
            #expect(try HostCommand("true").run().succeeded)
            #expect(try HostCommand("sh", ["-c", "printf %s \"$GREETING\""], environment: ["GREETING": "hi there"])
                .run().outputText == "hi there")
        }
    }

    @Test func aSignalDeathIsReportedAsSuch() throws {
        try finishing(within: 60) {
            let result = try HostCommand("sh", ["-c", "kill -KILL $$"]).run()
            #expect(result.termination == .signalled(SIGKILL))
            #expect(result.stop == nil && !result.succeeded)
            #expect(result.failure == "was killed by signal 9")
        }
    }

    @Test func aMissingProgramIsAStartError() {
        finishing(within: 60) {
            let error = #expect(throws: ProcessStartError.self) { try HostCommand("imgcustomize-no-such-program").run() }
            #expect(error?.notFound == true)
        }
    }

    /// A program that ignores SIGTERM gets SIGKILL after the grace period; one that does not ends at SIGTERM.
    @Test func cancellingSendsSIGTERMThenSIGKILL() throws {
        try finishing(within: 60) {
            let cancellation = Cancellation()
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { cancellation.cancel(reason: "test over") }
            let started = Date()
            // The trap says it saw SIGTERM and goes on; `sleep` in its group dies of it, and the loop starts another.
            let stubborn = try HostCommand("sh", ["-c", "trap 'echo got TERM >&2' TERM; while :; do sleep 0.1; done"],
                                           cancellation: cancellation, grace: 1.5).run()
            let took = Date().timeIntervalSince(started)
            #expect(stubborn.stop == .cancelled("test over"))
            #expect(stubborn.termination == .signalled(SIGKILL))
            #expect(stubborn.errorText.contains("got TERM"))
            #expect(took >= 2 && took < 10, "\(took) s")
            #expect(noProcess(stubborn.pid))

            let polite = try HostCommand("sleep", ["30"], cancellation: cancellation, grace: 20).run()
            #expect(polite.stop == .cancelled("test over"))
            #expect(polite.termination == .signalled(SIGTERM))
            #expect(noProcess(polite.pid))
        }
    }

    @Test func aTimeoutStopsTheProgram() throws {
        try finishing(within: 60) {
            let started = Date()
            let result = try HostCommand("sleep", ["30"], timeout: 0.5).run()
            #expect(result.stop == .timedOut(0.5))
            #expect(result.termination == .signalled(SIGTERM))
            #expect(Date().timeIntervalSince(started) < 5)
            #expect(result.failure == "took over 0.5 s and was stopped")
        }
    }

    /// A started program is reaped however it goes: stopped, or its handle dropped while it runs.
    @Test func noZombieIsLeft() throws {
        try finishing(within: 60) {
            let process = try HostCommand("sleep", ["30"]).start()
            #expect(process.isRunning)
            #expect(process.stop(grace: 5) == .signalled(SIGTERM))
            #expect(noProcess(process.pid))

            var dropped: HostProcess? = try HostCommand("sleep", ["30"]).start()
            let pid = try #require(dropped?.pid)
            #expect(!noProcess(pid))
            dropped = nil
            #expect(noProcess(pid))

            let finished = try HostCommand("true").run()
            #expect(noProcess(finished.pid))
        }
    }

    /// Not a child of ours any more (reaped, so no zombie) and gone from the process table.
    private func noProcess(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD && !FileManager.default.fileExists(atPath: "/proc/\(pid)")
    }
}

@Suite struct ShellQuotingTests {
    /// What the shell makes of a quoted word is the word, quotes, dollars and backquotes included.
    @Test(arguments: ["plain", "it's", "$HOME `id` \"x\" \\ *", "", "'", "a\nb"])
    func theShellReadsBackTheWord(_ word: String) throws {
        let result = try HostCommand("sh", ["-c", "printf %s " + shellQuoted(word)]).run()
        #expect(result.succeeded)
        #expect(result.outputText == word)
    }
}

@Suite struct TemporaryDirectoryTests {
    @Test func aScopedDirectoryGoesEvenWhenTheScopeThrows() throws {
        struct Thrown: Error {}
        var made = ""
        #expect(throws: Thrown.self) {
            try TemporaryDirectory.with(prefix: "imgcustomize-test-scoped") { directory in
                made = directory.path
                #expect(FileManager.default.createFile(atPath: directory.appending("file"), contents: Data("x".utf8)))
                throw Thrown()
            }
        }
        #expect(!made.isEmpty && !FileManager.default.fileExists(atPath: made))
    }

    /// A process ending at once removes what it has not removed yet (`ScratchRegistry.removeAll`, not called here:
    /// the other suites' directories are in it too), but not what it kept for the user.
    @Test func directoriesAreRegisteredUntilRemovedOrKept() throws {
        let live = try TemporaryDirectory(prefix: "imgcustomize-test-live")
        let kept = try TemporaryDirectory(prefix: "imgcustomize-test-kept")
        #expect(ScratchRegistry.shared.holds(live.path) && ScratchRegistry.shared.holds(kept.path))
        kept.keep()
        live.remove()
        #expect(!ScratchRegistry.shared.holds(live.path) && !FileManager.default.fileExists(atPath: live.path))
        #expect(!ScratchRegistry.shared.holds(kept.path) && FileManager.default.fileExists(atPath: kept.path))
        try FileManager.default.removeItem(atPath: kept.path)
    }
}
