import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree
import TestSupport

/// A guest tree in a fresh host directory, removed when the test lets go of it.
final class TemporaryTree {
    let path: String
    let guest: TreeFilesystem
    private let directory: TestDirectory

    init() throws {
        directory = try TestDirectory("imgcustomize-tree")
        path = directory.path
        guest = try TreeFilesystem(root: path)
    }

    /// Writes a file from the host side, creating its directories.
    func file(_ guestPath: String, _ text: String, mode: Int = 0o644) throws {
        let host = path + guestPath
        try FileManager.default.createDirectory(atPath: (host as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: host))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: host)
    }

    func symlink(_ guestPath: String, to target: String) throws {
        let host = path + guestPath
        try FileManager.default.createDirectory(atPath: (host as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: host, withDestinationPath: target)
    }

    /// The file's text as the host sees it, nil when missing.
    func text(_ guestPath: String) -> String? {
        FileManager.default.contents(atPath: path + guestPath).map { String(decoding: $0, as: UTF8.self) }
    }

    func hostStatus(_ guestPath: String) throws -> (mode: Int, uid: Int, gid: Int) {
        let attributes = try FileManager.default.attributesOfItem(atPath: path + guestPath)
        return ((attributes[.posixPermissions] as? Int) ?? -1, (attributes[.ownerAccountID] as? Int) ?? -1,
                (attributes[.groupOwnerAccountID] as? Int) ?? -1)
    }
}

extension TemporaryTree {
    /// Runs `operation` twice through one recording runner and checks the second run changed nothing, said so, and
    /// left no diff. Returns both reports.
    @discardableResult
    func applyTwice(_ operation: any GuestOperation, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> (first: StepReport, second: StepReport) {
        let runner = OperationRunner(guest: guest, recordDiffs: true)
        let first = try runner.run(operation)
        let second = try runner.run(operation)
        #expect(second.changed == .no, "second run: \(second.summary)", sourceLocation: sourceLocation)
        #expect(second.diffs == [], sourceLocation: sourceLocation)
        return (first, second)
    }
}
