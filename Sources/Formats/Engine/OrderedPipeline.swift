import Dispatch
import Foundation
import Synchronization

/// Runs `work` for the indices `0..<count` on `threads` threads, each with its own state from `makeState`, and
/// hands the results to `consume` on the calling thread in index order. At most `window` results exist at once
/// (being computed or waiting), which bounds memory whatever `count` is. The first error stops the workers and is
/// rethrown once they have all finished.
func runOrdered<State, Output: Sendable>(
    count: Int, threads: Int, window: Int,
    makeState: @escaping @Sendable () throws -> State,
    work: @escaping @Sendable (inout State, Int) throws -> Output,
    consume: (Int, Output) throws -> Void
) throws {
    guard count > 0 else { return }
    let threads = max(1, min(threads, count))
    let shared = PipelineShared<Output>(window: max(window, threads))
    let finished = DispatchGroup()
    for _ in 0..<threads {
        finished.enter()
        Thread.detachNewThread {
            defer { finished.leave() }
            shared.serve(count: count, makeState: makeState, work: work)
        }
    }
    defer {
        shared.cancel(threads: threads)
        finished.wait()
        shared.releaseUnconsumed()
    }
    for index in 0..<count {
        let result = shared.take(index)
        // The result's token goes back whether it is consumed, failed, or its consumer throws (a full disk).
        defer { shared.slots.signal() }
        try consume(index, try result.get())
    }
}

private final class PipelineShared<Output: Sendable>: Sendable {
    struct State {
        var next = 0
        var cancelled = false
        var results: [Int: Result<Output, any Error>] = [:]
        /// A worker that could not start; the consumer reports it instead of waiting.
        var failure: (any Error)?
    }

    let state = Mutex(State())
    /// One token per result allowed to exist; a worker takes one before starting an index.
    let slots: DispatchSemaphore
    /// Signalled once per result stored.
    let ready = DispatchSemaphore(value: 0)

    init(window: Int) {
        // libdispatch traps when a semaphore goes away below the value it was made with, which is where a failed
        // or cancelled run leaves `slots`: made at zero and raised to the window, it may end anywhere.
        slots = DispatchSemaphore(value: 0)
        for _ in 0..<window { slots.signal() }
    }

    func serve<State>(count: Int, makeState: () throws -> State, work: (inout State, Int) throws -> Output) {
        var local: State
        do {
            local = try makeState()
        } catch {
            let failure = error
            state.withLock { $0.failure = failure }
            ready.signal()
            return
        }
        while true {
            slots.wait()
            let claimed = state.withLock { s -> Int? in
                guard !s.cancelled, s.next < count else { return nil }
                s.next += 1
                return s.next - 1
            }
            guard let index = claimed else {
                slots.signal()
                return
            }
            let result = Result { try work(&local, index) }
            state.withLock { $0.results[index] = result }
            ready.signal()
        }
    }

    func take(_ index: Int) -> Result<Output, any Error> {
        while true {
            let found = state.withLock { s -> Result<Output, any Error>? in
                if let result = s.results.removeValue(forKey: index) { return result }
                return s.failure.map { .failure($0) }
            }
            if let found { return found }
            ready.wait()
        }
    }

    /// Gives back the tokens of results that were computed and never consumed. libdispatch traps when a semaphore
    /// is released holding less than it was created with, so every token must be back before `slots` goes away.
    func releaseUnconsumed() {
        let unconsumed = state.withLock { s -> Int in
            defer { s.results.removeAll() }
            return s.results.count
        }
        for _ in 0..<unconsumed { slots.signal() }
    }

    func cancel(threads: Int) {
        state.withLock { $0.cancelled = true }
        for _ in 0..<threads { slots.signal() }
    }
}
