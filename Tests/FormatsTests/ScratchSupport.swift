import Foundation
import Testing
import TestSupport

/// A temporary directory holding one test's images, with the real tools (qemu-img, qemu-io, ...) at hand; removed
/// when the test is done with it.
final class Scratch: Sendable {
    let directory: String
    private let temporary: TestDirectory

    struct ToolFailure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    init() throws {
        temporary = try TestDirectory("formats")
        directory = temporary.path
    }

    func path(_ name: String) -> String { directory + "/" + name }

    /// Runs a tool found on PATH; returns its exit status and its output (stdout and stderr together).
    @discardableResult
    func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try launch(tool, arguments)
    }

    /// Runs a tool that must succeed, and returns its output.
    @discardableResult
    func must(_ tool: String, _ arguments: [String]) throws -> String {
        let (status, output) = try run(tool, arguments)
        #expect(status == 0, "\(tool) \(arguments.joined(separator: " ")) failed: \(output)")
        guard status == 0 else { throw ToolFailure(message: "\(tool) exited with \(status): \(output)") }
        return output
    }
}

/// Runs a tool that must succeed, outside any scratch directory; returns its output.
@discardableResult
func run(_ tool: String, _ arguments: [String]) throws -> String {
    let (status, output) = try launch(tool, arguments)
    guard status == 0 else {
        throw Scratch.ToolFailure(message: "\(tool) \(arguments.joined(separator: " ")) exited with \(status): \(output)")
    }
    return output
}

private func launch(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let result = try runProcess("/usr/bin/env", [tool] + arguments, mergingErrors: true)
    return (result.status, result.stdout)
}

/// Overwrites bytes of a file in place: how hostile and corrupt images are made from honest ones.
func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: offset)
    try handle.write(contentsOf: Data(bytes))
}

func bigEndianBytes(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
