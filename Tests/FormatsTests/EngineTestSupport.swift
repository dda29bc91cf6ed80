import Foundation
import Testing
@testable import Formats

extension Scratch {
    /// A raw guest disk of `size` bytes that looks like one: runs of real machine code, of text, of patterned
    /// bytes and of zeros, in 4 KiB pieces chosen by a seeded generator. Compressible but not trivially.
    func guestDisk(_ name: String, size: Int, seed: UInt64 = 1) throws -> String {
        let code = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/usr/bin/qemu-img")))
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        let words = Array("the quick brown fox jumps over the lazy dog qcow2 cluster refcount table\n".utf8)
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let piece = min(4096, size - offset)
            switch next() % 8 {
            case 0, 1, 2:
                let from = Int(next() % UInt64(code.count - 4096))
                bytes.replaceSubrange(offset..<offset + piece, with: code[from..<from + piece])
            case 3:
                for i in 0..<piece { bytes[offset + i] = words[(i + Int(next() % 7)) % words.count] }
            case 4:
                let value = UInt8(truncatingIfNeeded: next())
                for i in 0..<piece { bytes[offset + i] = value &+ UInt8(truncatingIfNeeded: i / 512) }
            case 5:
                for i in 0..<piece { bytes[offset + i] = UInt8(truncatingIfNeeded: next()) }
            default:
                break  // zeros
            }
            offset += piece
        }
        let path = self.path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The guest bytes of an image as qemu sees them.
    func qemuContents(_ image: String, format: String = "qcow2") throws -> [UInt8] {
        let raw = image + ".qemu.raw"
        try run("qemu-img", ["convert", "-f", format, "-O", "raw", image, raw])
        defer { try? FileManager.default.removeItem(atPath: raw) }
        return try [UInt8](Data(contentsOf: URL(fileURLWithPath: raw)))
    }
}

/// All guest bytes of `source`, read in pieces of `chunk` bytes (odd sizes exercise partial clusters).
func readAll(_ source: any ImageSource, chunk: Int = 1 << 20) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0xEE, count: Int(source.virtualSize))
    try bytes.withUnsafeMutableBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            try source.read(at: UInt64(offset), into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + n]))
            offset += n
        }
    }
    return bytes
}
