/// VMDK: a hosted sparse extent ("KDMV", monolithicSparse and streamOptimized) with an embedded text descriptor,
/// or a text descriptor file whose extents name other files. The descriptor is where the danger lies: an extent
/// or parent that names a path makes qemu open that file on the host.
enum VMDKDetector: FormatDetector {
    static let format = ImageFormat.vmdk
    static let magic: [UInt8] = [0x4B, 0x44, 0x4D, 0x56]  // "KDMV"
    /// VMware Workstation 3's sparse format, which qemu still opens.
    static let cowdMagic = Array("COWD".utf8)
    static let descriptorLimit = 1 << 20
    static let gdAtEnd = UInt64.max
    static let safeCreateTypes: Set<String> = ["monolithicSparse", "streamOptimized"]
    static let extentTypes: Set<String> = ["SPARSE", "FLAT", "ZERO", "VMFS", "VMFSSPARSE", "VMFSRDM", "VMFSRAW",
                                           "SESPARSE"]

    static func matches(_ reader: HeaderReader) -> Bool {
        reader.head.matches(magic, at: 0) || reader.head.matches(cowdMagic, at: 0) || isDescriptorText(reader.head)
    }

    /// A text descriptor starts with its banner, has a createType line among its first lines, or is what qemu's
    /// vmdk probe takes for one.
    static func isDescriptorText(_ head: ByteCursor) -> Bool {
        if head.matches(Array("# Disk DescriptorFile".utf8), at: 0) || qemuProbesDescriptor(head.bytes.prefix(qemuProbeLength)) {
            return true
        }
        let start = head.bytes.prefix(1024)
        guard !start.isEmpty, start.allSatisfy({ $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || (0x20...0x7E).contains($0) })
        else { return false }
        return String(decoding: start, as: UTF8.self).split(separator: "\n").contains {
            $0.trimmingSpaces().hasPrefix("createType")
        }
    }

    /// qemu's vmdk probe on text: comment lines and lines of spaces, then `version=1`, `2` or `3` on a line of its
    /// own.
    static func qemuProbesDescriptor(_ bytes: ArraySlice<UInt8>) -> Bool {
        let hash = UInt8(ascii: "#"), space = UInt8(ascii: " "), newline = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        var p = bytes.startIndex
        let end = bytes.endIndex
        while p < end {
            if bytes[p] == hash {
                while p < end, bytes[p] != newline { p += 1 }
                p += 1
                continue
            }
            if bytes[p] == space {
                while p < end, bytes[p] == space { p += 1 }
                if p < end, bytes[p] == cr { p += 1 }
                guard p < end, bytes[p] == newline else { return false }
                p += 1
                continue
            }
            let rest = bytes[p...]
            return ["1", "2", "3"].contains { digit in
                rest.starts(with: Array("version=\(digit)\n".utf8)) || rest.starts(with: Array("version=\(digit)\r\n".utf8))
            }
        }
        return false
    }

    static func inspect(_ reader: HeaderReader) throws -> Finding {
        if reader.head.matches(magic, at: 0) { return try inspectSparse(reader) }
        if reader.head.matches(cowdMagic, at: 0) {
            let c = try reader.cursor(at: 0, count: 44, what: "vmdk COWD header")
            let sectors = try c.littleEndian(UInt32.self, at: 12)
            let info = VMDKInfo(container: "cowd", createType: nil, adapterType: nil, geometry: nil, virtualHWVersion: nil,
                                cid: nil, parentCID: nil, extents: [], version: try c.littleEndian(UInt32.self, at: 4),
                                grainSize: UInt64(try c.littleEndian(UInt32.self, at: 16)) * 512, compressed: false)
            return Finding(format: .vmdk, virtualSize: UInt64(sectors) * 512, specific: .vmdk(info), violations: [
                Violation(.unsupportedFormat, "the file is a VMware Workstation 3 sparse disk (COWD), an old vmdk variant imgcustomize does not read",
                          hint: "convert it on a trusted host first: `qemu-img convert -f vmdk -O qcow2 IMAGE IMAGE.qcow2`, then inspect the result"),
            ])
        }
        var violations: [Violation] = []
        let length: Int
        if reader.size > Int64(descriptorLimit) {
            violations.append(.vmdk(.vmdkDescriptor, "vmdk descriptor file of \(reader.size) bytes is over 1 MiB"))
            length = reader.head.count
        } else {
            length = Int(reader.size)
        }
        let text = try reader.cursor(at: 0, count: length, what: "vmdk descriptor")
        let descriptor = Descriptor(text.bytes)
        violations += descriptor.violations
        var size: UInt64 = 0
        for extent in descriptor.extents {
            let (sum, overflow) = size.addingReportingOverflow(
                try product(extent.sectors, 512, "extent size", in: reader.name, at: 0))
            guard !overflow else { throw FormatError(file: reader.name, offset: 0, "extent sizes overflow 64 bits") }
            size = sum
        }
        let info = descriptor.info(container: "descriptor", version: nil, grainSize: nil, compressed: nil)
        return Finding(format: .vmdk, virtualSize: size, specific: .vmdk(info), violations: violations)
    }

    struct SparseHeader {
        var version: UInt32
        var capacity: UInt64
        var grainSize: UInt64
        var descriptorOffset: UInt64
        var descriptorSize: UInt64
        var gdOffset: UInt64
        var compression: UInt16

        /// The header fields at `at` (the magic's offset) in `c`.
        init(_ c: ByteCursor, at base: Int) throws(FormatError) {
            version = try c.littleEndian(UInt32.self, at: base + 4)
            guard (1...3).contains(version) else { throw c.error(at: base + 4, "sparse header version \(version) is not 1...3") }
            capacity = try c.littleEndian(UInt64.self, at: base + 12)
            guard capacity <= UInt64(1) << 47 else { throw c.error(at: base + 12, "capacity \(capacity) sectors is absurd") }
            grainSize = try c.littleEndian(UInt64.self, at: base + 20)
            guard grainSize.nonzeroBitCount == 1, grainSize <= 1 << 20 else {
                throw c.error(at: base + 20, "grain size \(grainSize) sectors is not a power of two up to 2^20")
            }
            descriptorOffset = try c.littleEndian(UInt64.self, at: base + 28)
            descriptorSize = try c.littleEndian(UInt64.self, at: base + 36)
            let gtes = try c.littleEndian(UInt32.self, at: base + 44)
            guard (1...512).contains(gtes) else { throw c.error(at: base + 44, "\(gtes) entries per grain table is not 1...512") }
            gdOffset = try c.littleEndian(UInt64.self, at: base + 56)
            compression = try c.littleEndian(UInt16.self, at: base + 77)
            guard compression <= 1 else { throw c.error(at: base + 77, "unknown compression algorithm \(compression)") }
        }
    }

    static func inspectSparse(_ reader: HeaderReader) throws -> Finding {
        let c = try reader.cursor(at: 0, count: 512, what: "vmdk sparse header")
        var header = try SparseHeader(c, at: 0)
        var violations: [Violation] = []

        var descriptor = Descriptor([])
        // Every writer puts the embedded descriptor right after the header; elsewhere it may be data made to look
        // like one.
        if header.descriptorOffset != 1 {
            violations.append(.vmdk(.vmdkDescriptor,
                "vmdk descriptor offset (header byte 28) is sector \(header.descriptorOffset); an embedded descriptor starts at sector 1"))
        }
        if header.descriptorSize > 0 {
            guard header.descriptorSize <= UInt64(descriptorLimit / 512) else {
                throw c.error(at: 36, "embedded descriptor of \(header.descriptorSize) sectors is over 1 MiB")
            }
            let offset = try product(header.descriptorOffset, 512, "descriptor offset", in: reader.name, at: 28)
            guard offset <= UInt64(Int64.max) else { throw c.error(at: 28, "descriptor offset \(offset) is absurd") }
            let text = try reader.cursor(at: Int64(offset), count: Int(header.descriptorSize) * 512,
                                         what: "vmdk embedded descriptor")
            descriptor = Descriptor(text.bytes.prefix { $0 != 0 })
            violations += descriptor.violations
        } else {
            violations.append(.vmdk(.vmdkDescriptor, "vmdk sparse extent has no embedded descriptor"))
        }

        if header.gdOffset == gdAtEnd {
            // streamOptimized writes the real header as a footer: marker, header sector, end-of-stream marker.
            do {
                let (footer, problems) = try checkFooter(reader, header: header)
                violations += problems
                header = footer
            } catch let error as FormatError {
                violations.append(.vmdk(.vmdkFooter, "vmdk header defers to a footer but \(error)"))
            }
        }

        let info = descriptor.info(container: "sparse", version: header.version,
                                   grainSize: header.grainSize * 512, compressed: header.compression == 1)
        return Finding(format: .vmdk, virtualSize: header.capacity * 512, specific: .vmdk(info), violations: violations)
    }

    /// The footer of a streamOptimized extent: a footer marker, a copy of the header whose grain directory offset
    /// is real, and an end-of-stream marker, each a sector at the end of the file. Every field that can disagree
    /// with the header is compared, as oslo's format_inspector does: a footer is the header qemu uses.
    static func checkFooter(_ reader: HeaderReader, header: SparseHeader) throws -> (SparseHeader, [Violation]) {
        let end = reader.size / 512 * 512
        let f = try reader.cursor(at: end - 1536, count: 1536, what: "streamOptimized footer")
        guard f.matches(magic, at: 512) else {
            throw f.error(at: 512, "no footer (KDMV) in the second-to-last sector")
        }
        let footer = try SparseHeader(f, at: 512)
        var problems: [String] = []
        func at(_ offset: Int) -> String { "byte \(f.base + Int64(offset))" }
        func marker(_ base: Int, _ name: String, type expected: UInt32, checkValue: Bool) throws {
            if checkValue, try f.littleEndian(UInt64.self, at: base) != 0 {
                problems.append("\(name) value at \(at(base)) is not 0")
            }
            let size = try f.littleEndian(UInt32.self, at: base + 8)
            if size != 0 { problems.append("\(name) size at \(at(base + 8)) is \(size), not 0") }
            let type = try f.littleEndian(UInt32.self, at: base + 12)
            if type != expected { problems.append("\(name) type at \(at(base + 12)) is \(type), not \(expected)") }
            if let stray = try f.slice(base + 16, 496).firstIndex(where: { $0 != 0 }) {
                problems.append("\(name) padding is not zero at \(at(stray))")
            }
        }
        try marker(0, "footer marker", type: 3, checkValue: false)
        try marker(1024, "end-of-stream marker", type: 0, checkValue: true)
        let fields: [(String, Int, UInt64, UInt64)] = [
            ("version", 4, UInt64(footer.version), UInt64(header.version)),
            ("capacity", 12, footer.capacity, header.capacity),
            ("grain size", 20, footer.grainSize, header.grainSize),
            ("descriptor offset", 28, footer.descriptorOffset, header.descriptorOffset),
            ("descriptor size", 36, footer.descriptorSize, header.descriptorSize),
        ]
        for (name, offset, inFooter, inHeader) in fields where inFooter != inHeader {
            problems.append("footer \(name) at \(at(512 + offset)) is \(inFooter) but the header says \(inHeader)")
        }
        if footer.gdOffset == gdAtEnd {
            problems.append("footer grain directory offset at \(at(512 + 56)) defers to yet another footer")
        }
        let violations = problems.map { Violation.vmdk(.vmdkFooter, "vmdk streamOptimized \($0)") }
        return (footer, violations)
    }

    /// A parsed text descriptor and what is wrong with it.
    struct Descriptor {
        var keys: [String: String] = [:]
        var extents: [VMDKInfo.Extent] = []
        var violations: [Violation] = []

        init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
            guard !bytes.isEmpty else { return }
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            var bad: [String] = []
            for (index, raw) in lines.enumerated() {
                let line = raw.trimmingSpaces()
                if line.isEmpty || line.hasPrefix("#") { continue }
                // The disk database: qemu and oslo skip every ddb line, whether or not it is a key = value pair.
                if line.hasPrefix("ddb"), Self.keyValue(line) == nil { continue }
                if let extent = Self.extent(line) {
                    extents.append(extent)
                } else if let (key, value) = Self.keyValue(line) {
                    keys[key] = value
                } else {
                    bad.append("line \(index + 1) '\(line.prefix(60))'")
                }
            }
            if !bad.isEmpty {
                violations.append(.vmdk(.vmdkDescriptor,
                    "vmdk descriptor has lines that are neither comments, key = value pairs nor extents: \(bad.prefix(3).joined(separator: ", "))"))
            }
            let createType = keys["createType"]
            if let createType, !safeCreateTypes.contains(createType) {
                violations.append(.vmdk(.vmdkCreateType,
                    "vmdk createType '\(createType)' keeps its data in other files (only monolithicSparse and streamOptimized are accepted)"))
            } else if createType == nil {
                violations.append(.vmdk(.vmdkCreateType, "vmdk descriptor has no createType"))
            }
            if extents.isEmpty {
                violations.append(.vmdk(.vmdkDescriptor, "vmdk descriptor lists no extent"))
            }
            for extent in extents {
                if let name = extent.filename, name.contains("/") {
                    violations.append(.vmdk(.vmdkExtentPath, "vmdk extent names a path '\(name)' (CVE-2024-32498)"))
                }
            }
            if let parent = keys["parentFileNameHint"] {
                violations.append(.backingFile("vmdk", parent))
            } else if let parentCID = keys["parentCID"], parentCID.lowercased() != "ffffffff" {
                violations.append(.backingFile("vmdk (parentCID \(parentCID))", nil))
            }
        }

        /// `ACCESS SECTORS TYPE ["FILENAME" [OFFSET]]`, with ACCESS one of RW, RDONLY, NOACCESS.
        static func extent(_ line: Substring) -> VMDKInfo.Extent? {
            let head = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
            guard head.count >= 3, ["RW", "RDONLY", "NOACCESS"].contains(head[0]),
                  let sectors = UInt64(head[1]), extentTypes.contains(String(head[2])) else { return nil }
            var extent = VMDKInfo.Extent(access: String(head[0]), sectors: sectors, type: String(head[2]))
            guard head.count == 4 else { return extent }
            let rest = head[3]
            guard rest.first == "\"", let close = rest.dropFirst().firstIndex(of: "\"") else { return nil }
            extent.filename = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...].trimmingSpaces()
            if !after.isEmpty {
                guard let offset = UInt64(after) else { return nil }
                extent.offset = offset
            }
            return extent
        }

        /// `key = value` or `key = "value"`, with a key of letters, digits, dots and underscores.
        static func keyValue(_ line: Substring) -> (String, String)? {
            guard let equals = line.firstIndex(of: "=") else { return nil }
            let key = line[..<equals].trimmingSpaces()
            guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_") })
            else { return nil }
            var value = line[line.index(after: equals)...].trimmingSpaces()
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
            return (String(key), String(value))
        }

        func info(container: String, version: UInt32?, grainSize: UInt64?, compressed: Bool?) -> VMDKInfo {
            var geometry: VMDKInfo.Geometry?
            if let c = keys["ddb.geometry.cylinders"].flatMap({ UInt64($0) }),
               let h = keys["ddb.geometry.heads"].flatMap({ UInt64($0) }),
               let s = keys["ddb.geometry.sectors"].flatMap({ UInt64($0) }) {
                geometry = VMDKInfo.Geometry(cylinders: c, heads: h, sectors: s)
            }
            return VMDKInfo(container: container, createType: keys["createType"], adapterType: keys["ddb.adapterType"],
                            geometry: geometry, virtualHWVersion: keys["ddb.virtualHWVersion"], cid: keys["CID"],
                            parentCID: keys["parentCID"], extents: extents, version: version, grainSize: grainSize,
                            compressed: compressed)
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and carriage returns.
    func trimmingSpaces() -> SubSequence {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return self[endIndex...]
        }
        return self[first...last]
    }
}
