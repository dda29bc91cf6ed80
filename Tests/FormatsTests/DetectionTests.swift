import Foundation
import Testing
@testable import Formats

/// Malformed input of every kind, in memory: never a trap, never an unbounded read, always an answer.
@Suite struct DetectionTests {
    /// Header bytes of each seed in Fuzz/seeds, which Fuzz/make-seeds cut from real images.
    static let seeds: [(String, [UInt8])] = {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/seeds").standardized
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.sorted().compactMap { name in
            (try? Data(contentsOf: directory.appendingPathComponent(name))).map { (name, Array($0)) }
        }
    }()

    @Test func seedsCoverEveryHeaderParser() {
        let formats = Set(Self.seeds.compactMap { seed in
            try? ImageInspector.inspect(source: MemoryImageSource(name: seed.0, bytes: seed.1)).formatsDetected.first
        })
        #expect(formats.isSuperset(of: ["qcow2", "qed", "vmdk", "vdi", "vpc", "luks", "iso", "aki", "ari", "gpt", "mbr",
                                         "bochs", "cloop", "dmg", "parallels", "qcow"]))
    }

    /// Every prefix length around the fields parsers read: an answer each time, and an unsafe one whenever the
    /// format was recognised but its header could not be read whole.
    @Test func truncatedHeadersAreAnsweredNotTrapped() throws {
        for (name, bytes) in Self.seeds {
            for length in Set([0, 1, 4, 8, 20, 24, 50, 72, 100, 104, 200, 511, 512, 513, 1024, 1536, 4096, bytes.count - 1])
            where length >= 0 && length <= bytes.count {
                let inspection = try ImageInspector.inspect(source: MemoryImageSource(name: name, bytes: Array(bytes.prefix(length))))
                if inspection.format != .raw && inspection.virtualSize == nil {
                    #expect(!inspection.safety.safe, "\(name) cut at \(length)")
                }
                #expect(inspection.bytesRead <= 256 << 10)
            }
        }
    }

    /// A deterministic slice of what the fuzz target does, so that plain `swift test` exercises it too.
    @Test func mutatedHeadersAreAnsweredNotTrapped() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        let interesting: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF]
        for (name, bytes) in Self.seeds {
            for _ in 0..<300 {
                var mutated = bytes
                for _ in 0..<Int(next() % 8 + 1) {
                    let position = Int(next() % UInt64(min(mutated.count, 1024)))
                    mutated[position] = next() % 2 == 0 ? interesting[Int(next() % 5)] : UInt8(truncatingIfNeeded: next())
                }
                let inspection = try ImageInspector.inspect(source: MemoryImageSource(name: name, bytes: mutated))
                #expect(inspection.bytesRead <= 256 << 10)
            }
        }
    }

    @Test func polyglotOfTwoMagicsIsRefused() throws {
        // A VDI signature at 0x40 inside a qcow2 header's unused bytes.
        var bytes = try #require(Self.seeds.first { $0.0 == "qcow2-v2.seed" }?.1)
        bytes.replaceSubrange(0x40..<0x44, with: [0x7F, 0x10, 0xDA, 0xBE])
        let inspection = try ImageInspector.inspect(source: MemoryImageSource(name: "poly", bytes: bytes))
        #expect(inspection.formatsDetected == ["qcow2", "vdi"])
        #expect(inspection.safety.has(.multipleFormats))
    }

    @Test func fatBootSectorIsNotAPartitionTable() throws {
        var sector = [UInt8](repeating: 0, count: 512)
        sector.replaceSubrange(0..<3, with: [0xEB, 0x3C, 0x90])
        sector.replaceSubrange(11..<13, with: [0x00, 0x02])  // 512 bytes per sector
        sector[16] = 2  // two FATs
        sector[21] = 0xF8  // fixed disk
        sector.replaceSubrange(510..<512, with: [0x55, 0xAA])
        let inspection = try ImageInspector.inspect(source: MemoryImageSource(name: "fat", bytes: sector))
        #expect(inspection.format == .raw && inspection.formatsDetected.isEmpty && inspection.safety.safe)
    }

    @Test func formatNamesIncludeGlanceSpelling() {
        #expect(ImageFormat(name: "VHD") == .vpc)
        #expect(ImageFormat(name: "qcow2") == .qcow2)
        #expect(ImageFormat(name: "ploop") == .parallels)  // Glance's default disk_formats list it
        #expect(ImageFormat(name: "qcow3") == nil)
        #expect(ImageFormat.iso.qemuFormat == "raw" && ImageFormat.vpc.qemuFormat == "vpc")
    }
}
