import Customize
import Diagnostics
import Dispatch
import Foundation
import Operations
import Synchronization
import Host

/// SIGINT, SIGTERM and SIGHUP during a command that launches the appliance or writes an image.
///
/// The first signal cancels the run: it kills qemu, unwinds (removing every scratch file and libguestfs's own
/// temporary directories), and the process then ends by that same signal, so that a shell or a pipeline sees what
/// happened. A second signal, or a run that has not unwound within `graceSeconds`, removes the scratch of every open
/// transaction and ends the process at once. The library never touches signal handlers: this is the CLI's job.
enum Interruption {
    static let graceSeconds = 30.0

    private static let state = Mutex<(signal: Int32?, sources: [any DispatchSourceSignal])>((nil, []))

    /// Installs the handlers (once) and returns the cancellation they trigger.
    static func install() -> Cancellation {
        state.withLock { state in
            guard state.sources.isEmpty else { return }
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { received(sig) }
                source.resume()
                state.sources.append(source)
            }
        }
        return cancellation
    }

    static let cancellation = Cancellation()

    private static func received(_ sig: Int32) {
        let first = state.withLock { state -> Bool in
            guard state.signal == nil else { return false }
            state.signal = sig
            return true
        }
        guard first else {
            endNow(sig)
        }
        FileHandle.standardError.write(Data("imgcustomize: \(name(sig)) received: stopping; the image stays as it was\n".utf8))
        cancellation.cancel(reason: "interrupted by \(name(sig))")
        DispatchQueue.global().asyncAfter(deadline: .now() + graceSeconds) { endNow(sig) }
    }

    /// Ends the process by `sig` after removing what open transactions left; nothing waits for the run to unwind,
    /// so with --json the failure's document is printed from here (unless the run printed one already).
    private static func endNow(_ sig: Int32) -> Never {
        Transaction.removeAllScratch()
        if Output.json {
            Output.failure(Diagnostic("interrupted by \(name(sig)); the run did not stop by itself, and was ended",
                                      hint: "nothing was committed: the image stays as it was"),
                           exitCode: 128 + sig)
        }
        die(by: sig)
    }

    /// Ends the process by `sig` with its default action; the signal may be blocked on this thread (dispatch
    /// blocks signals on its own), so it is unblocked first.
    private static func die(by sig: Int32) -> Never {
        signal(sig, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, sig)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        raise(sig)
        _exit(128 + sig)
    }

    /// The signal that cancelled the run (SIGINT when the cancellation came from elsewhere).
    static var signalReceived: Int32 { state.withLock { $0.signal } ?? SIGINT }

    /// After a cancelled run has unwound: says so and ends the process by the signal that cancelled it.
    static func finish(_ cancelled: RunCancelled) -> Never {
        FileHandle.standardError.write(Data("imgcustomize: \(cancelled)\n".utf8))
        die(by: signalReceived)
    }

    private static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        default: "signal \(sig)"
        }
    }
}
