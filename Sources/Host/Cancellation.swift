import Diagnostics
import Synchronization

/// Stops a run from another thread: a signal the CLI caught, a library caller's own timeout or button.
///
/// Cancelling is cooperative and prompt: the run checks it between stages and steps and throws `RunCancelled`,
/// so every scratch file is removed on the way out as for any other failure, and the image stays as it was.
/// What cannot check (an appliance call waiting on qemu) registers a stop action here: cancelling kills that qemu,
/// the waiting call fails at once, and the unwinding closes the handle, which removes libguestfs's own
/// temporary directories.
public final class Cancellation: Sendable {
    private struct State {
        var reason: String?
        var actions: [Int: @Sendable () -> Void] = [:]
        var nextKey = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Asks the run to stop; `reason` ends up in the error the run throws ("interrupted by SIGINT"). Only the first
    /// call counts; the stop actions run on the calling thread.
    public func cancel(reason: String = "cancelled") {
        let actions = state.withLock { state -> [@Sendable () -> Void] in
            guard state.reason == nil else { return [] }
            state.reason = reason
            defer { state.actions.removeAll() }
            return Array(state.actions.values)
        }
        for action in actions { action() }
    }

    public var isCancelled: Bool { reason != nil }

    /// What `cancel` was given; nil until it is called.
    public var reason: String? { state.withLock { $0.reason } }

    /// Throws `RunCancelled` once `cancel` was called.
    public func check(image: String) throws {
        if let reason { throw RunCancelled(image: image, reason: reason) }
    }

    /// The error a failed call stands for: once the run is cancelled, what it waited on (the appliance's qemu, a host
    /// tool) was stopped, so the call fails with an error of its own; the cancellation is what happened.
    public func explain(_ error: any Error, image: String) -> any Error {
        guard !(error is RunCancelled), let reason else { return error }
        return RunCancelled(image: image, reason: reason)
    }

    /// Runs `action` when the run is cancelled (at once if it already is) until the returned registration is
    /// ended.
    public func onCancel(_ action: @escaping @Sendable () -> Void) -> Registration {
        let key = state.withLock { state -> Int? in
            guard state.reason == nil else { return nil }
            state.nextKey += 1
            state.actions[state.nextKey] = action
            return state.nextKey
        }
        guard let key else {
            action()
            return Registration(cancellation: self, key: nil)
        }
        return Registration(cancellation: self, key: key)
    }

    /// A stop action's lifetime: `end()` (or the value going away) forgets it.
    public final class Registration {
        private let cancellation: Cancellation
        private var key: Int?

        fileprivate init(cancellation: Cancellation, key: Int?) {
            self.cancellation = cancellation
            self.key = key
        }

        public func end() {
            guard let key else { return }
            _ = cancellation.state.withLock { $0.actions.removeValue(forKey: key) }
            self.key = nil
        }

        deinit { end() }
    }
}

/// The error a cancelled run throws: nothing was committed, the image is as it was.
public struct RunCancelled: DiagnosticError, Sendable {
    public var image: String
    public var reason: String

    public init(image: String, reason: String) {
        self.image = image
        self.reason = reason
    }

    public var diagnostic: Diagnostic { Diagnostic("\(image): \(reason); the image is unchanged", image: image) }
}
