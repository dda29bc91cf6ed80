import CLinux
import Diagnostics
import Foundation
import Glibc
import Synchronization

/// A host program to run (qemu-img, tar, perl, ssh, qemu): the one way the project starts a process.
///
/// `run` drains standard output and standard error together while the program runs (neither can fill its pipe and
/// stall it), each within a limit, and stops the program, SIGTERM first and SIGKILL after `grace` seconds, when the
/// run is cancelled, the timeout passes or an output exceeds its limit. `start` gives a program that runs beside the
/// caller (a guest's qemu) as a `HostProcess` to watch and stop.
///
/// The program gets a process group of its own, so that stopping it stops what it started too (the shell of
/// `sh -c`, ssh's proxy), every signal at its default action and none blocked (the CLI ignores SIGINT and friends and
/// dispatch blocks them on its threads), and no descriptor of ours but the three it is given.
///
/// Synchronous on purpose: every caller is (operations run inside a blocking appliance session), and swift-subprocess,
/// the toolchain's package for this, is async only; waiting on it from a synchronous caller would block a thread of
/// the cooperative pool on work that needs one, which on a 2-core machine is a deadlock.
package struct HostCommand: Sendable {
    /// Looked up in PATH when it has no slash.
    package var program: String
    package var arguments: [String]
    /// Added to this process's environment (or replacing a variable of it).
    package var environment: [String: String] = [:]
    package var input: Input = .none
    package var output: Output = .capture(limit: 64 << 20)
    package var errors: Output = .tail(64 << 10)
    /// Seconds the program may run; past them it is stopped and the result says so.
    package var timeout: Double?
    /// Cancelling stops the program; the result says so and the caller's error is then explained by
    /// `Cancellation.explain`.
    package var cancellation: Cancellation?
    /// Seconds between SIGTERM and SIGKILL when the program is stopped.
    package var grace: Double = 5

    package enum Input: Sendable {
        /// /dev/null.
        case none
        /// A descriptor the caller keeps open (a file it checked).
        case descriptor(Int32)
        /// Written to the program while it runs, then end of file.
        case bytes([UInt8])
    }

    package enum Output: Sendable {
        /// /dev/null.
        case discard
        /// A descriptor the caller keeps open (a log file).
        case descriptor(Int32)
        /// Everything, up to `limit` bytes: past it the program is stopped (`Stop.outputLimit`).
        case capture(limit: Int)
        /// The last `bytes` bytes, however much is written (what a failing program said last).
        case tail(Int)
    }

    package init(_ program: String, _ arguments: [String] = [], environment: [String: String] = [:],
                 input: Input = .none, output: Output = .capture(limit: 64 << 20), errors: Output = .tail(64 << 10),
                 timeout: Double? = nil, cancellation: Cancellation? = nil, grace: Double = 5) {
        self.program = program
        self.arguments = arguments
        self.environment = environment
        self.input = input
        self.output = output
        self.errors = errors
        self.timeout = timeout
        self.cancellation = cancellation
        self.grace = grace
    }

    /// "tar -tf /dev/stdin", for messages.
    package var commandLine: String { ([program] + arguments).joined(separator: " ") }

    /// Runs the program to its end (or until it is stopped) and reaps it.
    package func run() throws -> CommandResult {
        var ours: [Int32] = []
        var theirs: [Int32] = []
        defer {
            ours.forEach { close($0) }
            theirs.forEach { close($0) }
        }
        func pipePair() throws -> (read: Int32, write: Int32) {
            var ends: [Int32] = [-1, -1]
            guard pipe2(&ends, O_CLOEXEC) == 0 else { throw ProcessStartError(program: program, code: errno) }
            return (ends[0], ends[1])
        }
        // Standard input to write is a socket, not a pipe: send(MSG_NOSIGNAL) to a program that stopped reading
        // fails with EPIPE instead of raising SIGPIPE in this process.
        var writer: Int32 = -1
        let stdinFD: Int32
        switch input {
        case .none: stdinFD = -1
        case .descriptor(let fd): stdinFD = fd
        case .bytes:
            var ends: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
                throw ProcessStartError(program: program, code: errno)
            }
            writer = ends[0]
            ours.append(ends[0])
            theirs.append(ends[1])
            stdinFD = ends[1]
        }
        var streams: [Stream] = []
        func target(_ output: Output, index: Int) throws -> Int32 {
            switch output {
            case .discard: return -1
            case .descriptor(let fd): return fd
            case .capture(let limit), .tail(let limit):
                let (read, write) = try pipePair()
                ours.append(read)
                theirs.append(write)
                var keepsTail = false
                if case .tail = output { keepsTail = true }
                streams.append(Stream(fd: read, index: index, limit: limit, keepsTail: keepsTail))
                return write
            }
        }
        let stdoutFD = try target(output, index: 1)
        let stderrFD = try target(errors, index: 2)
        let process = try HostProcess(spawning: self, stdin: stdinFD, stdout: stdoutFD, stderr: stderrFD)
        // Our copies of the program's ends go now: end of file comes when the program (and what it started) closes
        // its own.
        theirs.forEach { close($0) }
        theirs = []
        for fd in ours { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }

        var pending: ArraySlice<UInt8> = []
        if case .bytes(let bytes) = input { pending = bytes[...] }
        if writer >= 0, pending.isEmpty { shutdown(writer, Int32(SHUT_WR)) }
        let clock = ContinuousClock()
        let started = clock.now
        var stop: CommandResult.Stop?
        var stoppedAt: ContinuousClock.Instant?
        var killed = false

        while true {
            var polled = streams.filter { $0.open }.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            if writer >= 0, !pending.isEmpty { polled.append(pollfd(fd: writer, events: Int16(POLLOUT), revents: 0)) }
            if polled.isEmpty {
                usleep(20_000)
            } else {
                _ = poll(&polled, nfds_t(polled.count), 100)
            }
            for index in streams.indices where streams[index].open { streams[index].drain() }
            if writer >= 0, !pending.isEmpty, polled.last.map({ $0.fd == writer && $0.revents != 0 }) == true {
                let sent = pending.withUnsafeBytes { send(writer, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if sent > 0 {
                    pending = pending.dropFirst(sent)
                    if pending.isEmpty { shutdown(writer, Int32(SHUT_WR)) }
                } else if sent < 0, errno != EAGAIN, errno != EINTR {
                    // The program stopped reading (EPIPE): what it did not read is its business, its status says.
                    pending = []
                }
            }
            if stop == nil {
                if let reason = cancellation?.reason {
                    stop = .cancelled(reason)
                } else if let timeout, seconds(clock.now - started) > timeout {
                    stop = .timedOut(timeout)
                } else if let full = streams.first(where: \.exceeded) {
                    stop = .outputLimit(stream: full.index == 1 ? "standard output" : "standard error", limit: full.limit)
                }
                if stop != nil {
                    stoppedAt = clock.now
                    process.signal(SIGTERM)
                }
            }
            if let stoppedAt, !killed, seconds(clock.now - stoppedAt) > grace {
                killed = true
                process.signal(SIGKILL)
            }
            if process.status() != nil {
                // What the program wrote before it ended is in the pipes; what something it started (and left
                // running with the pipe) writes later is not waited for.
                for index in streams.indices where streams[index].open { streams[index].drain() }
                break
            }
        }
        let capture = { (index: Int) in streams.first { $0.index == index }?.bytes ?? [] }
        return CommandResult(pid: process.pid, termination: process.wait(), stop: stop, output: capture(1),
                             errors: capture(2))
    }

    /// Starts the program beside the caller, its standard streams on the descriptors given (-1: /dev/null).
    package func start(stdin: Int32 = -1, stdout: Int32 = -1, stderr: Int32 = -1) throws -> HostProcess {
        try HostProcess(spawning: self, stdin: stdin, stdout: stdout, stderr: stderr)
    }

    /// One captured output: read while the program runs.
    private struct Stream {
        let fd: Int32
        /// 1 for standard output, 2 for standard error.
        let index: Int
        let limit: Int
        let keepsTail: Bool
        var bytes: [UInt8] = []
        var open = true
        var exceeded = false

        init(fd: Int32, index: Int, limit: Int, keepsTail: Bool) {
            self.fd = fd
            self.index = index
            self.limit = limit
            self.keepsTail = keepsTail
        }

        /// Reads what is there now, without waiting.
        mutating func drain() {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while open {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    take(buffer[0..<count])
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    open = false
                } else if errno == EAGAIN {
                    return
                }
            }
        }

        private mutating func take(_ chunk: ArraySlice<UInt8>) {
            if keepsTail {
                bytes.append(contentsOf: chunk)
                // Trimmed in steps, not at every read: the tail stays between `limit` and twice that.
                if bytes.count > 2 * limit { bytes.removeFirst(bytes.count - limit) }
            } else if !exceeded {
                // Past the limit the program is stopped; what it writes meanwhile is read and dropped.
                if bytes.count + chunk.count > limit {
                    exceeded = true
                } else {
                    bytes.append(contentsOf: chunk)
                }
            }
        }
    }
}

/// How a program ended, and what it printed.
package struct CommandResult: Sendable, Equatable {
    package enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
    }

    /// Why the runner stopped the program before it ended by itself.
    package enum Stop: Sendable, Equatable {
        case cancelled(String)
        case timedOut(Double)
        case outputLimit(stream: String, limit: Int)
    }

    package var pid: pid_t
    package var termination: Termination
    package var stop: Stop?
    /// Captured standard output (empty unless captured).
    package var output: [UInt8]
    /// Captured standard error, or its tail.
    package var errors: [UInt8]

    /// Exited with status 0, by itself.
    package var succeeded: Bool { termination == .exited(0) && stop == nil }

    package var outputText: String { String(decoding: output, as: UTF8.self) }

    /// What it said on standard error, trimmed.
    package var errorText: String {
        String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// How it ended, for a message: "exited with status 2", "took over 120 s and was stopped".
    package var failure: String {
        switch stop {
        case .cancelled(let reason): "was stopped (\(reason))"
        case .timedOut(let seconds): "took over \(String(format: "%g", seconds)) s and was stopped"
        case .outputLimit(let stream, let limit): "wrote more than \(formatBytes(limit)) on its \(stream) and was stopped"
        case nil:
            switch termination {
            case .exited(let status): "exited with status \(status)"
            case .signalled(let signal): "was killed by signal \(signal)"
            }
        }
    }

    /// `failure` and what it said on standard error: "exited with status 2: tar: ...: Cannot open".
    package var explanation: String { errorText.isEmpty ? failure : "\(failure): \(errorText)" }
}

/// A started program: its status, signals to its process group, and stopping it. Reaped exactly once; until then
/// its process id cannot be another's, so a signal never reaches a stranger. A value dropped before its program
/// ended kills and reaps it: no zombie is left.
package final class HostProcess: Sendable {
    package let pid: pid_t
    /// Set, under the lock, when the program is reaped; signals are sent under the same lock.
    private let ended = Mutex<CommandResult.Termination?>(nil)

    fileprivate init(spawning command: HostCommand, stdin: Int32, stdout: Int32, stderr: Int32) throws {
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        for (fd, target) in [(stdin, Int32(0)), (stdout, 1), (stderr, 2)] {
            if fd >= 0 {
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            }
        }
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        var environment = ProcessInfo.processInfo.environment
        environment.merge(command.environment) { _, new in new }
        let argv = ([command.program] + command.arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let code = posix_spawnp(&pid, command.program, &actions, &attributes, argv, envp)
        guard code == 0 else { throw ProcessStartError(program: command.program, code: code) }
        self.pid = pid
    }

    deinit {
        if status() == nil {
            signal(SIGKILL)
            _ = wait()
        }
    }

    /// How it ended; nil while it runs. Never waits.
    package func status() -> CommandResult.Termination? {
        if let ended = ended.withLock({ $0 }) { return ended }
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else { return reap() }
        return info._sifields._sigchld.si_pid == pid ? reap() : nil
    }

    package var isRunning: Bool { status() == nil }

    /// Waits for it to end.
    @discardableResult
    package func wait() -> CommandResult.Termination {
        if let ended = ended.withLock({ $0 }) { return ended }
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0, errno == EINTR {}
        return reap()
    }

    /// Sends `signal` to its process group, unless it has been reaped.
    package func signal(_ signal: Int32) {
        ended.withLock { ended in
            if ended == nil { kill(-pid, signal) }
        }
    }

    /// SIGTERM, then SIGKILL when it has not ended within `grace` seconds; waits for it.
    @discardableResult
    package func stop(grace: Double) -> CommandResult.Termination {
        signal(SIGTERM)
        let deadline = ContinuousClock.now + .milliseconds(Int(grace * 1000))
        while status() == nil, ContinuousClock.now < deadline { usleep(20_000) }
        if status() == nil { signal(SIGKILL) }
        return wait()
    }

    /// Collects its status (it has ended: the wait is immediate) and forgets the process id.
    private func reap() -> CommandResult.Termination {
        ended.withLock { ended in
            if let ended { return ended }
            var status: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
            // <sys/wait.h>'s WIFEXITED and friends are macros Swift does not import: the low 7 bits are the signal
            // that killed it, 0 when it exited, with its status in the next byte. ECHILD (someone else reaped it,
            // which nothing here does) reads as killed by signal 0.
            let termination: CommandResult.Termination = result < 0 ? .signalled(0)
                : status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
            ended = termination
            return termination
        }
    }
}

/// A program that could not be started at all.
package struct ProcessStartError: DiagnosticError {
    package var program: String
    package var code: Int32

    /// ENOENT: no such program (in PATH).
    package var notFound: Bool { code == ENOENT }

    package var diagnostic: Diagnostic {
        Diagnostic(notFound ? "cannot run \(program): it is not installed (not found in PATH)"
                            : "cannot run \(program): \(String(cString: strerror(code)))",
                   hint: "install \(program) on the host (scripts/install-deps installs what imgcustomize runs)")
    }
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
