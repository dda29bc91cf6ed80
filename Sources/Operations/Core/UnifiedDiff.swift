/// Unified diffs of text files, as `diff -u` and `git diff` print them: `--- a/path`, `+++ b/path`, `@@` hunks with
/// three lines of context, `/dev/null` for a file that is created or removed.
public enum UnifiedDiff {
    public static let contextLines = 3
    /// Beyond this many differing lines the diff stops looking for common lines and replaces the whole file,
    /// which keeps Myers' trace small on pathological inputs (a rewritten 100 000-line log).
    static let maximumEditDistance = 4000

    /// Text of the diff from `before` to `after` (nil: the file does not exist); "" when they are equal.
    public static func make(path: String, before: [UInt8]?, after: [UInt8]?) -> String {
        guard before != after else { return "" }
        if isBinary(before ?? []) || isBinary(after ?? []) { return "binary file changed\n" }
        let old = lines(before ?? []), new = lines(after ?? [])
        var text = before == nil ? "--- /dev/null\n" : "--- a\(path)\n"
        text += after == nil ? "+++ /dev/null\n" : "+++ b\(path)\n"
        for hunk in hunks(edits(old, new), oldCount: old.count, newCount: new.count) {
            text += "@@ -\(range(hunk.oldStart, hunk.oldCount)) +\(range(hunk.newStart, hunk.newCount)) @@\n"
            for edit in hunk.edits {
                let line: [UInt8]
                let marker: String
                switch edit {
                case .keep(let index, _): (marker, line) = (" ", old[index])
                case .delete(let index): (marker, line) = ("-", old[index])
                case .insert(let index): (marker, line) = ("+", new[index])
                }
                if line.last == UInt8(ascii: "\n") {
                    text += marker + String(decoding: line.dropLast(), as: UTF8.self) + "\n"
                } else {
                    text += marker + String(decoding: line, as: UTF8.self) + "\n\\ No newline at end of file\n"
                }
            }
        }
        return text
    }

    /// NUL bytes or invalid UTF-8: what `git diff` and the edit operations treat as not text.
    public static func isBinary(_ content: [UInt8]) -> Bool {
        content.contains(0) || String(validating: content, as: UTF8.self) == nil
    }

    /// Lines with their terminators, so that a missing final newline or a CRLF is a difference like any other.
    static func lines(_ content: [UInt8]) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var start = 0
        for (index, byte) in content.enumerated() where byte == UInt8(ascii: "\n") {
            lines.append(Array(content[start...index]))
            start = index + 1
        }
        if start < content.count { lines.append(Array(content[start...])) }
        return lines
    }

    enum Edit: Equatable {
        case keep(Int, Int)  // old index, new index
        case delete(Int)
        case insert(Int)
    }

    /// The shortest edit script (Myers, "An O(ND) Difference Algorithm").
    static func edits(_ old: [[UInt8]], _ new: [[UInt8]]) -> [Edit] {
        let n = old.count, m = new.count
        let limit = min(n + m, maximumEditDistance)
        let offset = limit + 1
        var frontier = [Int](repeating: 0, count: 2 * limit + 3)
        var trace: [[Int]] = []
        var found = false
        search: for d in 0...limit {
            trace.append(frontier)
            for k in stride(from: -d, through: d, by: 2) {
                var x = (k == -d || (k != d && frontier[offset + k - 1] < frontier[offset + k + 1]))
                    ? frontier[offset + k + 1] : frontier[offset + k - 1] + 1
                var y = x - k
                while x < n && y < m && old[x] == new[y] {
                    x += 1
                    y += 1
                }
                frontier[offset + k] = x
                if x >= n && y >= m {
                    found = true
                    break search
                }
            }
        }
        guard found else {
            return (0..<n).map { .delete($0) } + (0..<m).map { .insert($0) }
        }
        var script: [Edit] = []
        var x = n, y = m
        for d in stride(from: trace.count - 1, through: 0, by: -1) {
            let previous = trace[d]
            let k = x - y
            let down = k == -d || (k != d && previous[offset + k - 1] < previous[offset + k + 1])
            let previousK = down ? k + 1 : k - 1
            let previousX = d == 0 ? 0 : previous[offset + previousK]
            let previousY = previousX - previousK
            while x > previousX && y > previousY {
                x -= 1
                y -= 1
                script.append(.keep(x, y))
            }
            if d > 0 {
                script.append(down ? .insert(previousY) : .delete(previousX))
            }
            x = previousX
            y = previousY
        }
        return script.reversed()
    }

    struct Hunk {
        var oldStart: Int, oldCount: Int, newStart: Int, newCount: Int
        var edits: [Edit]
    }

    static func hunks(_ script: [Edit], oldCount: Int, newCount: Int) -> [Hunk] {
        let changed = script.indices.filter { if case .keep = script[$0] { false } else { true } }
        guard let first = changed.first else { return [] }
        // Runs of changes closer than twice the context share one hunk, as in diff -u.
        var groups: [ClosedRange<Int>] = []
        var start = first, end = first
        for index in changed.dropFirst() {
            if index - end > 2 * contextLines {
                groups.append(start...end)
                start = index
            }
            end = index
        }
        groups.append(start...end)
        return groups.map { group in
            let lower = max(0, group.lowerBound - contextLines)
            let upper = min(script.count - 1, group.upperBound + contextLines)
            let edits = Array(script[lower...upper])
            var oldLines = 0, newLines = 0
            var oldStart: Int?, newStart: Int?
            // Where the hunk begins in each file: the first line it shows, or the line it follows when it shows none.
            var oldBefore = 0, newBefore = 0
            for edit in script[..<lower] {
                switch edit {
                case .keep: oldBefore += 1; newBefore += 1
                case .delete: oldBefore += 1
                case .insert: newBefore += 1
                }
            }
            for edit in edits {
                switch edit {
                case .keep(let o, let n):
                    oldLines += 1; newLines += 1
                    oldStart = oldStart ?? o; newStart = newStart ?? n
                case .delete(let o): oldLines += 1; oldStart = oldStart ?? o
                case .insert(let n): newLines += 1; newStart = newStart ?? n
                }
            }
            return Hunk(oldStart: oldStart.map { $0 + 1 } ?? oldBefore, oldCount: oldLines,
                        newStart: newStart.map { $0 + 1 } ?? newBefore, newCount: newLines, edits: edits)
        }
    }

    private static func range(_ start: Int, _ count: Int) -> String {
        count == 1 ? "\(start)" : "\(start),\(count)"
    }
}
