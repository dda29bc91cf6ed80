/// The Amazon kinds of the source document: an AKI is a Linux kernel, recognised by the x86 boot protocol's "HdrS"
/// at 0x202 (bzImage); an ARI is an initramfs, a newc cpio archive, usually compressed.
enum KernelDetector: FormatDetector {
    static let format = ImageFormat.aki
    static let magic = Array("HdrS".utf8)

    static func matches(_ reader: HeaderReader) -> Bool { reader.head.matches(magic, at: 0x202) }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let c = try reader.cursor(at: 0, count: 0x210, what: "linux boot header")
        let version = try c.littleEndian(UInt16.self, at: 0x206)
        var kernelVersion: String?
        // The setup header's kernel_version field points (from 0x200) at a NUL-terminated string in the setup code.
        let pointer = Int(try c.littleEndian(UInt16.self, at: 0x20E))
        if version >= 0x0200, pointer > 0 {
            let start = pointer + 0x200
            if start < reader.head.count {
                let text = reader.head.bytes[start..<min(start + 256, reader.head.count)].prefix { $0 != 0 }
                if !text.isEmpty, text.allSatisfy({ (0x20...0x7E).contains($0) }) {
                    kernelVersion = String(decoding: text, as: UTF8.self)
                }
            }
        }
        let info = KernelInfo(amazonKind: .aki, bootProtocol: "\(version >> 8).\(version & 0xFF)",
                              kernelVersion: kernelVersion)
        return Finding(format: .aki, virtualSize: roundedToSector(UInt64(max(reader.size, 0))), specific: .aki(info))
    }
}

enum RamdiskDetector: FormatDetector {
    static let format = ImageFormat.ari
    static let magics: [(String, [UInt8])] = [
        ("none", Array("070701".utf8)), ("none", Array("070702".utf8)),
        ("gzip", [0x1F, 0x8B, 0x08]),
        ("xz", [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]),
        ("zstd", [0x28, 0xB5, 0x2F, 0xFD]),
        ("lz4", [0x02, 0x21, 0x4C, 0x18]), ("lz4", [0x04, 0x22, 0x4D, 0x18]),
        ("bzip2", Array("BZh".utf8)),
        ("lzma", [0x5D, 0x00, 0x00]),
    ]

    static func compression(_ head: ByteCursor) -> String? {
        magics.first { head.matches($0.1, at: 0) }?.0
    }

    static func matches(_ reader: HeaderReader) -> Bool { compression(reader.head) != nil }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        guard let kind = compression(reader.head) else { throw reader.head.error(at: 0, "no ramdisk magic") }
        let info = RamdiskInfo(amazonKind: .ari, compression: kind)
        return Finding(format: .ari, virtualSize: roundedToSector(UInt64(max(reader.size, 0))), specific: .ari(info))
    }
}
