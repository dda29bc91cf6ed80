import Foundation
import Testing
@testable import Operations

@Suite struct UnifiedDiffTests {
    private func diff(_ old: String?, _ new: String?) -> String {
        UnifiedDiff.make(path: "/etc/f", before: old.map { Array($0.utf8) }, after: new.map { Array($0.utf8) })
    }

    @Test func changedLineWithContext() {
        let old = (1...10).map { "line \($0)\n" }.joined()
        let new = old.replacingOccurrences(of: "line 5\n", with: "line five\n")
        #expect(diff(old, new) == """
            --- a/etc/f
            +++ b/etc/f
            @@ -2,7 +2,7 @@
             line 2
             line 3
             line 4
            -line 5
            +line five
             line 6
             line 7
             line 8

            """)
    }

    @Test func distantChangesMakeTwoHunks() {
        let old = (1...20).map { "\($0)\n" }.joined()
        let new = old.replacingOccurrences(of: "\n2\n", with: "\ntwo\n")
            .replacingOccurrences(of: "\n19\n", with: "\n19\nnew\n")
        #expect(diff(old, new) == """
            --- a/etc/f
            +++ b/etc/f
            @@ -1,5 +1,5 @@
             1
            -2
            +two
             3
             4
             5
            @@ -17,4 +17,5 @@
             17
             18
             19
            +new
             20

            """)
    }

    @Test func createdRemovedAndNoFinalNewline() {
        #expect(diff(nil, "a\nb") == "--- /dev/null\n+++ b/etc/f\n@@ -0,0 +1,2 @@\n+a\n+b\n\\ No newline at end of file\n")
        #expect(diff("a\n", nil) == "--- a/etc/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n")
        #expect(diff("", "x\n") == "--- a/etc/f\n+++ b/etc/f\n@@ -0,0 +1 @@\n+x\n")
        #expect(diff("same\n", "same\n") == "")
    }

    @Test func binaryContentIsNotDiffed() {
        #expect(UnifiedDiff.make(path: "/bin/x", before: [0, 1, 2], after: [0, 1, 3]) == "binary file changed\n")
        #expect(UnifiedDiff.make(path: "/bin/x", before: [0xff], after: [0x41]) == "binary file changed\n")
    }

    @Test(arguments: [("a\nb\nc\n", "a\nc\n"), ("", "a\nb\n"), ("x\ny\nz\n", "z\ny\nx\n"), ("a\r\nb\r\n", "a\nb\r\n")])
    func scriptReproducesTheNewText(old: String, new: String) {
        let oldLines = UnifiedDiff.lines(Array(old.utf8)), newLines = UnifiedDiff.lines(Array(new.utf8))
        var rebuilt: [[UInt8]] = []
        for edit in UnifiedDiff.edits(oldLines, newLines) {
            switch edit {
            case .keep(let index, _): rebuilt.append(oldLines[index])
            case .insert(let index): rebuilt.append(newLines[index])
            case .delete: break
            }
        }
        #expect(rebuilt == newLines)
    }
}
