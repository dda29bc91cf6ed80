import Foundation

/// Draws progress on stderr: a redrawn bar on a terminal, a plain line every 10% otherwise (logs, pipes, CI).
final class ProgressBar: @unchecked Sendable {
    // Only called from the thread that reports progress, one at a time.
    private let title: String
    private let terminal = isatty(STDERR_FILENO) == 1
    private let enabled: Bool
    private var lastDecile = -1
    private var lastDraw = Date.distantPast

    init(_ title: String, enabled: Bool) {
        self.title = title
        self.enabled = enabled
    }

    func update(done: Int64, total: Int64) {
        guard enabled, total > 0 else { return }
        let fraction = min(1, Double(done) / Double(total))
        if terminal {
            let now = Date()
            guard fraction >= 1 || now.timeIntervalSince(lastDraw) > 0.1 else { return }
            lastDraw = now
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            write("\r\(title) [\(bar)] \(Int(fraction * 100))%" + (fraction >= 1 ? "\n" : ""))
        } else {
            let decile = Int(fraction * 10)
            guard decile > lastDecile else { return }
            lastDecile = decile
            write("imgcustomize: \(title): \(decile * 10)%\n")
        }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
