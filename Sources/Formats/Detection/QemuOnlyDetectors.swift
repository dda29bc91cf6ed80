/// Formats qemu 7.2 opens when it probes a file but imgcustomize does not read: bochs, cloop, dmg, parallels and
/// qcow (version 1). Each matches exactly what the probe of qemu's block driver accepts, so that nothing qemu
/// would open as a container is taken for raw bytes; each is refused with how to convert it.
///
/// qemu probes the first 512 bytes (BLOCK_PROBE_BUF_SIZE), so the magic tests look no further.
let qemuProbeLength = 512

/// What qemu's probes see: the first 512 bytes, with zeros past the end of a shorter file (qemu reads a whole
/// buffer and a read past the end gives zeros); nil for an empty file, which qemu takes for raw unprobed.
func probeCursor(_ reader: HeaderReader) -> ByteCursor? {
    guard reader.size > 0 else { return nil }
    var bytes = Array(reader.head.bytes.prefix(qemuProbeLength))
    bytes += [UInt8](repeating: 0, count: qemuProbeLength - bytes.count)
    return ByteCursor(bytes, file: reader.name)
}

/// Bochs growing redolog images: magic, type and subtype as NUL-terminated strings (qemu compares them with
/// strcmp), version 1 or 2, and the disk size in bytes.
enum BochsDetector: FormatDetector {
    static let format = ImageFormat.bochs
    static let versions: [UInt32: String] = [0x0001_0000: "1", 0x0002_0000: "2"]

    static func field(_ c: ByteCursor, _ offset: Int, _ text: String) -> Bool {
        c.matches(Array(text.utf8) + [0], at: offset)
    }

    static func matches(_ reader: HeaderReader) -> Bool {
        guard let c = probeCursor(reader), field(c, 0, "Bochs Virtual HD Image"), field(c, 32, "Redolog"),
              field(c, 48, "Growing"), let version = try? c.littleEndian(UInt32.self, at: 64) else { return false }
        return versions[version] != nil
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let c = try reader.cursor(at: 0, count: 512, what: "bochs header")
        let version = try c.littleEndian(UInt32.self, at: 64)
        // Version 1 has no reserved word before the disk size.
        let disk = try c.littleEndian(UInt64.self, at: version == 0x0001_0000 ? 84 : 88)
        let extent = try c.littleEndian(UInt32.self, at: 80)
        let info = QemuOnlyInfo(version: versions[version], blockSize: UInt64(extent))
        return Finding(format: .bochs, virtualSize: disk / 512 * 512, specific: .qemuOnly(.bochs, info),
                       violations: [.unsupportedFormat(.bochs, "a Bochs growing disk image")])
    }
}

/// cloop compressed loopback images (Knoppix): a shell-script banner, then the block size and block count.
enum CloopDetector: FormatDetector {
    static let format = ImageFormat.cloop
    static let banner = Array("#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n".utf8)
    static let maxBlockSize: UInt32 = 64 << 20

    static func matches(_ reader: HeaderReader) -> Bool { probeCursor(reader)?.matches(banner, at: 0) ?? false }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let c = try reader.cursor(at: 128, count: 8, what: "cloop header")
        let blockSize = try c.bigEndian(UInt32.self, at: 0)
        guard blockSize != 0, blockSize % 512 == 0, blockSize <= maxBlockSize else {
            throw c.error(at: 0, "block size \(blockSize) is not a multiple of 512 from 512 to 64 MiB")
        }
        let blocks = try c.bigEndian(UInt32.self, at: 4)
        guard blocks <= (UInt32.max - 1) / 8 else { throw c.error(at: 4, "\(blocks) blocks is more than qemu accepts") }
        // qemu multiplies in 32 bits; the size it reports is that product.
        let sectors = blocks &* (blockSize / 512)
        return Finding(format: .cloop, virtualSize: UInt64(sectors) * 512,
                       specific: .qemuOnly(.cloop, QemuOnlyInfo(version: "2.0", blockSize: UInt64(blockSize))),
                       violations: [.unsupportedFormat(.cloop, "a cloop compressed image")])
    }
}

/// Apple disk images (UDIF), which end in a 512-byte "koly" trailer. qemu's own probe goes by the name alone
/// (".dmg", with a score every other probe beats): the inspector falls back to `matchesByName` when nothing
/// else matched.
enum DMGDetector: FormatDetector {
    static let format = ImageFormat.dmg
    static let magic = Array("koly".utf8)

    static func hasTrailer(_ reader: HeaderReader) -> Bool {
        reader.size >= 512 && reader.tail.matches(magic, at: reader.tail.count - 512)
    }

    static func matches(_ reader: HeaderReader) -> Bool { hasTrailer(reader) }

    static func matchesByName(_ reader: HeaderReader) -> Bool {
        reader.name.count > 4 && reader.name.hasSuffix(".dmg")
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        guard hasTrailer(reader) else {
            throw FormatError(file: reader.name, offset: max(reader.size - 512, 0),
                              "the name ends in .dmg, which makes qemu open it as a dmg, but there is no koly trailer in the last 512 bytes")
        }
        let koly = try reader.cursor(at: reader.size - 512, count: 512, what: "dmg koly trailer")
        let version = try koly.bigEndian(UInt32.self, at: 4)
        let sectors = try koly.bigEndian(UInt64.self, at: 0x1EC)
        let size = try product(sectors, 512, "dmg sector count", in: reader.name, at: koly.base + 0x1EC)
        return Finding(format: .dmg, virtualSize: size, specific: .qemuOnly(.dmg, QemuOnlyInfo(version: String(version))),
                       violations: [.unsupportedFormat(.dmg, "an Apple disk image (UDIF)")])
    }
}

/// Parallels (ploop) images: one of two 16-byte magics, version 2, and the size in sectors; the older magic
/// keeps only 32 bits of it, as qemu does.
enum ParallelsDetector: FormatDetector {
    static let format = ImageFormat.parallels
    static let magic = Array("WithoutFreeSpace".utf8)
    static let extendedMagic = Array("WithouFreSpacExt".utf8)

    static func matches(_ reader: HeaderReader) -> Bool {
        guard let c = probeCursor(reader), c.matches(magic, at: 0) || c.matches(extendedMagic, at: 0) else { return false }
        return (try? c.littleEndian(UInt32.self, at: 16)) == 2
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let c = try reader.cursor(at: 0, count: 64, what: "parallels header")
        let tracks = try c.littleEndian(UInt32.self, at: 28)
        guard tracks != 0, tracks <= UInt32(Int32.max) / 513 else {
            throw c.error(at: 28, "\(tracks) sectors per cluster is not what qemu accepts (1...\(Int32.max / 513))")
        }
        var sectors = try c.littleEndian(UInt64.self, at: 36)
        if c.matches(magic, at: 0) { sectors &= 0xFFFF_FFFF }
        let size = try product(sectors, 512, "parallels sector count", in: reader.name, at: 36)
        let info = QemuOnlyInfo(version: "2", blockSize: UInt64(tracks) * 512)
        return Finding(format: .parallels, virtualSize: size, specific: .qemuOnly(.parallels, info),
                       violations: [.unsupportedFormat(.parallels, "a Parallels (ploop) image")])
    }
}

/// qcow version 1, qemu's predecessor of qcow2: the same magic with version 1. Its backing file name makes qemu
/// open a host file like qcow2's does.
enum QCOWDetector: FormatDetector {
    static let format = ImageFormat.qcow
    static let headerSize = 48

    static func matches(_ reader: HeaderReader) -> Bool {
        guard let c = probeCursor(reader) else { return false }
        return c.matches(QCOW2Header.magic, at: 0) && (try? c.bigEndian(UInt32.self, at: 4)) == 1
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        let c = try reader.cursor(at: 0, count: headerSize, what: "qcow header")
        let size = try c.bigEndian(UInt64.self, at: 24)
        let clusterBits = try c.u8(32)
        guard (9...16).contains(clusterBits) else { throw c.error(at: 32, "cluster_bits \(clusterBits) is not 9...16") }
        let crypt = try c.bigEndian(UInt32.self, at: 36)
        var violations = [Violation.unsupportedFormat(.qcow, "a qcow version 1 image")]
        var backing: String?
        let backingOffset = try c.bigEndian(UInt64.self, at: 8)
        if backingOffset != 0 {
            let length = try c.bigEndian(UInt32.self, at: 16)
            guard length <= 1023, backingOffset <= UInt64(Int64.max) else {
                throw c.error(at: 8, "backing file name of \(length) bytes at \(backingOffset) is not what qemu accepts")
            }
            backing = try reader.cursor(at: Int64(backingOffset), count: Int(length), what: "qcow backing file name")
                .string(0, Int(length))
            violations.append(.backingFile("qcow", backing))
        }
        let info = QemuOnlyInfo(version: "1", blockSize: UInt64(1) << clusterBits, backingFile: backing, encrypted: crypt != 0)
        return Finding(format: .qcow, virtualSize: size / 512 * 512, specific: .qemuOnly(.qcow, info), violations: violations)
    }
}
