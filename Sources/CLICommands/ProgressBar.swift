import Foundation
import Synchronization

/// Draws progress on stderr: a redrawn bar on a terminal, a plain line every 10% otherwise (logs, pipes, CI).
final class ProgressBar: Sendable {
    private let title: String
    private let terminal = isatty(STDERR_FILENO) == 1
    private let enabled: Bool
    /// What was drawn last; progress may be reported from any thread.
    private let drawn = Mutex<(decile: Int, time: Date)>((-1, .distantPast))

    init(_ title: String, enabled: Bool) {
        self.title = title
        self.enabled = enabled
    }

    func update(done: Int64, total: Int64) {
        guard enabled, total > 0 else { return }
        let fraction = min(1, Double(done) / Double(total))
        if terminal {
            let now = Date()
            let due = drawn.withLock { drawn in
                guard fraction >= 1 || now.timeIntervalSince(drawn.time) > 0.1 else { return false }
                drawn.time = now
                return true
            }
            guard due else { return }
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            write("\r\(title) [\(bar)] \(Int(fraction * 100))%" + (fraction >= 1 ? "\n" : ""))
        } else {
            let decile = Int(fraction * 10)
            let due = drawn.withLock { drawn in
                guard decile > drawn.decile else { return false }
                drawn.decile = decile
                return true
            }
            guard due else { return }
            write("imgcustomize: \(title): \(decile * 10)%\n")
        }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
