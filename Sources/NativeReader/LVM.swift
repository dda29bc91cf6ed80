import Formats

/// An LVM2 physical volume found on a device: its label (`LABELONE` in one of the first four sectors), PV header
/// and the newest metadata of its first usable metadata area (lvm2's `lib/label/label.h`,
/// `lib/format_text/layout.h`). The label's and the metadata area's checksums are not verified (reading needs
/// none; damaged metadata fails its parse or its consistency checks).
public struct PhysicalVolumeLabel {
    /// As the metadata spells it: "Zx0RQb-Ve9k-...".
    public var uuid: String
    public var device: any BlockDevice
    /// The metadata text, nil when the PV has no metadata area (`--metadatacopies 0`).
    public var metadata: [UInt8]?

    static let sector: UInt64 = 512
    static let mdaMagic: [UInt8] = Array(" LVM2 x[5A%r0N*>".utf8)
    static let maximumMetadata = 16 << 20
    static let maximumAreas = 16

    /// The PV on `device`, or nil when it carries no LVM2 label.
    public static func read(_ device: any BlockDevice) throws -> PhysicalVolumeLabel? {
        guard device.size >= 4 * sector else { return nil }
        let head = try device.read(at: 0, count: Int(4 * sector))
        for index in 0..<4 {
            let base = index * Int(sector)
            guard head[base..<base + 8].elementsEqual("LABELONE".utf8),
                  head[base + 24..<base + 32].elementsEqual("LVM2 001".utf8) else { continue }
            let site = Site(device.name, "LVM label", at: UInt64(base))
            return try parsing(site) {
                let label = site.cursor(Array(head[base..<base + Int(sector)]))
                guard try label.littleEndian(UInt64.self, at: 8) == UInt64(index) else {
                    throw site.error("names another sector as its own")
                }
                let headerOffset = Int(try label.littleEndian(UInt32.self, at: 20))
                guard headerOffset >= 32, headerOffset <= Int(sector) - 48 else {
                    throw site.error("PV header offset \(headerOffset) is outside the label sector")
                }
                let headerSite = Site(device.name, "PV header", at: UInt64(base + headerOffset))
                let header = headerSite.cursor(Array(head[(base + headerOffset)..<(base + Int(sector))]))
                // Grouped as bytes: the 32 bytes need not be 32 characters of UTF-8.
                let raw = Array(try header.slice(0, 32))
                let uuid = [0..<6, 6..<10, 10..<14, 14..<18, 18..<22, 22..<26, 26..<32]
                    .map { String(decoding: raw[$0], as: UTF8.self) }.joined(separator: "-")
                // Data areas, then metadata areas, each list ended by a zero entry.
                var position = 40
                var lists: [[(offset: UInt64, size: UInt64)]] = [[], []]
                for list in 0..<2 {
                    while true {
                        let offset = try header.littleEndian(UInt64.self, at: position)
                        let size = try header.littleEndian(UInt64.self, at: position + 8)
                        position += 16
                        if offset == 0 && size == 0 { break }
                        guard lists[list].count < maximumAreas else {
                            throw headerSite.error(.limit, "more than \(maximumAreas) areas")
                        }
                        lists[list].append((offset, size))
                    }
                }
                var metadata: [UInt8]?
                for area in lists[1] {
                    if let text = try metadataText(device, area: area) { metadata = text; break }
                }
                return PhysicalVolumeLabel(uuid: uuid, device: device, metadata: metadata)
            }
        }
        return nil
    }

    /// The live metadata of one metadata area: its header's first raw location, which may wrap around the end
    /// of the circular buffer to just after the header.
    static func metadataText(_ device: any BlockDevice, area: (offset: UInt64, size: UInt64)) throws -> [UInt8]? {
        let site = Site(device.name, "LVM metadata area header", at: area.offset)
        guard area.size > sector, area.offset <= device.size, area.size <= device.size - area.offset else {
            throw site.error("the area (\(area.size) bytes at \(area.offset)) does not fit the device")
        }
        let header = try device.read(at: area.offset, count: Int(sector))
        return try parsing(site) { () throws -> [UInt8]? in
            let c = site.cursor(header)
            guard c.matches(mdaMagic, at: 4) else { throw site.error("has no LVM2 metadata magic") }
            guard try c.littleEndian(UInt64.self, at: 24) == area.offset else {
                throw site.error("names another offset as its start")
            }
            let size = try c.littleEndian(UInt64.self, at: 32)
            guard size == area.size else { throw site.error("its size \(size) is not the PV header's \(area.size)") }
            let offset = try c.littleEndian(UInt64.self, at: 40)
            let length = try c.littleEndian(UInt64.self, at: 48)
            let flags = try c.littleEndian(UInt32.self, at: 60)
            guard offset != 0, length != 0, flags & 1 == 0 else { return nil }
            guard offset >= sector, offset < size, length <= size - sector,
                  length <= UInt64(maximumMetadata) else {
                throw site.error("metadata of \(length) bytes at \(offset) does not fit the area of \(size)")
            }
            let first = min(length, size - offset)
            var text = try device.read(at: area.offset + offset, count: Int(first))
            if first < length {
                text += try device.read(at: area.offset + sector, count: Int(length - first))
            }
            return text
        }
    }
}

/// A logical volume of a volume group: its segments, or why this reader does not read it.
public struct LogicalVolume: Sendable {
    public var group: String
    public var name: String
    public var visible: Bool
    public var segments: [Segment]
    /// Why it cannot be read ("thin", "raid1", "snapshot", "a missing physical volume"); nil when it can.
    public var notHandled: String?

    /// /dev/VG/LV.
    public var path: String { "/dev/\(group)/\(name)" }

    public struct Segment: Sendable {
        public var startExtent: UInt64
        public var extentCount: UInt64
        /// Stripe size in bytes (unused with one stripe).
        public var stripeSize: UInt64
        /// Each stripe's physical volume (by its name in the metadata) and first extent on it.
        public var stripes: [(pv: String, extent: UInt64)]
    }
}

/// A volume group read from its newest metadata, with the physical volumes that were found.
public struct VolumeGroup {
    public var name: String
    /// The group's UUID, as the metadata spells it ("Zx0RQb-Ve9k-...").
    public var id: String
    public var sequence: Int64
    /// Bytes.
    public var extentSize: UInt64
    /// The metadata's name of each PV ("pv0") to its device, the byte offset of its first extent, its UUID and its
    /// extent count.
    public var physicalVolumes: [String: (device: (any BlockDevice)?, start: UInt64, id: String, extents: UInt64)]
    public var logicalVolumes: [LogicalVolume]

    /// The extents no volume uses, as `vgs` counts them (vg_free_count), or nil when a volume's segments are of a
    /// type whose extents this reader does not count (thin, RAID, a snapshot).
    public var freeExtents: UInt64? {
        guard logicalVolumes.allSatisfy({ $0.notHandled == nil }) else { return nil }
        let total = physicalVolumes.values.reduce(UInt64(0)) { $0 + $1.extents }
        let used = logicalVolumes.reduce(UInt64(0)) { sum, volume in
            volume.segments.reduce(sum) { $0 + $1.extentCount }
        }
        return used <= total ? total - used : nil
    }

    static let supportedSegment = "striped"
    static let maximumSegments = 4096
    static let maximumStripes = 128

    /// The volume groups whose physical volumes are among `devices`, each from the newest metadata (highest
    /// seqno) any of its PVs carries.
    public static func scan(_ devices: [any BlockDevice]) throws -> [VolumeGroup] {
        var labels: [PhysicalVolumeLabel] = []
        for device in devices {
            if let label = try PhysicalVolumeLabel.read(device) { labels.append(label) }
        }
        var groups: [String: VolumeGroup] = [:]
        for label in labels {
            guard let text = label.metadata else { continue }
            let group = try VolumeGroup(metadata: text, site: Site(label.device.name, "LVM metadata"), labels: labels)
            if let known = groups[group.name], known.sequence >= group.sequence { continue }
            groups[group.name] = group
        }
        return groups.values.sorted { $0.name < $1.name }
    }

    init(metadata text: [UInt8], site: Site, labels: [PhysicalVolumeLabel]) throws {
        let top = try LVMValue.parse(text, site: site)
        guard let (name, group) = top.items.first(where: { if case .section = $0.value { true } else { false } }) else {
            throw site.error("names no volume group")
        }
        let groupSite = Site(site.device, "LVM metadata of VG \(name)")
        self.name = name
        guard let id = group["id"]?.string else { throw groupSite.error("has no id") }
        self.id = id
        sequence = group["seqno"]?.number ?? 0
        guard let extentSectors = group["extent_size"]?.number, extentSectors > 0, extentSectors <= 1 << 32 else {
            throw groupSite.error("has no valid extent_size")
        }
        extentSize = UInt64(extentSectors) * 512
        var pvs: [String: (device: (any BlockDevice)?, start: UInt64, id: String, extents: UInt64)] = [:]
        for (pvName, pv) in group["physical_volumes"]?.items ?? [] {
            guard let id = pv["id"]?.string, let peStart = pv["pe_start"]?.number, peStart >= 0,
                  peStart <= Int64(1) << 40, let peCount = pv["pe_count"]?.number, peCount >= 0,
                  peCount <= Int64(1) << 40 else {
                throw groupSite.error("physical volume \(pvName) has no valid id, pe_start or pe_count")
            }
            let device = labels.first { $0.uuid == id }?.device
            pvs[pvName] = (device, UInt64(peStart) * 512, id, UInt64(peCount))
        }
        physicalVolumes = pvs
        var volumes: [LogicalVolume] = []
        // A snapshot's visible LV holds its copy-on-write store, which read raw is not the snapshot's contents.
        var cowStores: Set<String> = []
        for (lvName, lv) in group["logical_volumes"]?.items ?? [] {
            let status = (lv["status"]?.array ?? []).compactMap(\.string)
            var volume = LogicalVolume(group: name, name: lvName, visible: status.contains("VISIBLE"), segments: [])
            let segments = lv.items.filter { $0.key.hasPrefix("segment") && $0.key != "segment_count" }
            guard segments.count <= Self.maximumSegments else {
                throw groupSite.error(.limit, "LV \(lvName) has more than \(Self.maximumSegments) segments")
            }
            for (_, segment) in segments {
                let type = segment["type"]?.string ?? "?"
                if type == "snapshot", let store = segment["cow_store"]?.string { cowStores.insert(store) }
                guard type == Self.supportedSegment else { volume.notHandled = type; break }
                guard let start = segment["start_extent"]?.number, start >= 0,
                      let count = segment["extent_count"]?.number, count > 0,
                      let stripeList = segment["stripes"]?.array, !stripeList.isEmpty, stripeList.count % 2 == 0,
                      stripeList.count / 2 <= Self.maximumStripes else {
                    throw groupSite.error("LV \(lvName) has a segment without valid extents or stripes")
                }
                var stripes: [(pv: String, extent: UInt64)] = []
                for pair in stride(from: 0, to: stripeList.count, by: 2) {
                    guard let pv = stripeList[pair].string, let extent = stripeList[pair + 1].number, extent >= 0 else {
                        throw groupSite.error("LV \(lvName) has a malformed stripe list")
                    }
                    guard let known = pvs[pv] else { throw groupSite.error("LV \(lvName) names an unknown PV \(pv)") }
                    if known.device == nil { volume.notHandled = "a missing physical volume" }
                    stripes.append((pv, UInt64(extent)))
                }
                let stripeSectors = segment["stripe_size"]?.number ?? 0
                guard stripes.count == 1 || (stripeSectors > 0 && stripeSectors <= 1 << 32) else {
                    throw groupSite.error("LV \(lvName) has a striped segment without a valid stripe_size")
                }
                volume.segments.append(LogicalVolume.Segment(
                    startExtent: UInt64(start), extentCount: UInt64(count), stripeSize: UInt64(stripeSectors) * 512,
                    stripes: stripes))
            }
            volume.segments.sort { $0.startExtent < $1.startExtent }
            volumes.append(volume)
        }
        for index in volumes.indices where cowStores.contains(volumes[index].name) {
            volumes[index].notHandled = "a snapshot"
        }
        logicalVolumes = volumes
    }

    /// The device of visible volume `volume`; fails ("not handled") for a volume this reader does not read.
    public func device(_ volume: LogicalVolume) throws -> LogicalVolumeDevice {
        if let reason = volume.notHandled {
            throw ReaderError(.notHandled, device: volume.path, structure: "LVM logical volume",
                              "is \(reason): not handled")
        }
        return try LogicalVolumeDevice(volume, group: self)
    }
}

/// A linear or striped logical volume as a device.
public final class LogicalVolumeDevice: BlockDevice {
    public let name: String
    public let size: UInt64
    let extentSize: UInt64
    /// Each segment with its byte range on the volume and, per stripe, the device and the byte offset where the
    /// stripe starts.
    let segments: [(start: UInt64, end: UInt64, stripeSize: UInt64, stripes: [(device: any BlockDevice, start: UInt64)])]

    init(_ volume: LogicalVolume, group: VolumeGroup) throws {
        name = volume.path
        extentSize = group.extentSize
        let site = Site(volume.path, "LVM logical volume")
        var mapped: [(start: UInt64, end: UInt64, stripeSize: UInt64, stripes: [(device: any BlockDevice, start: UInt64)])] = []
        var next: UInt64 = 0
        for segment in volume.segments {
            guard segment.startExtent == next else {
                throw site.error("its segments leave a gap or overlap at extent \(segment.startExtent)")
            }
            let stripeCount = UInt64(segment.stripes.count)
            guard segment.extentCount % stripeCount == 0 else {
                throw site.error("\(segment.extentCount) extents do not divide into \(stripeCount) stripes")
            }
            let start = try site.multiply(segment.startExtent, extentSize)
            let length = try site.multiply(segment.extentCount, extentSize)
            var stripes: [(device: any BlockDevice, start: UInt64)] = []
            for stripe in segment.stripes {
                guard let pv = group.physicalVolumes[stripe.pv], let device = pv.device else {
                    throw site.error(.notHandled, "its physical volume \(stripe.pv) is missing")
                }
                let offset = try site.add(pv.start, try site.multiply(stripe.extent, extentSize))
                let perStripe = length / stripeCount
                guard offset <= device.size, perStripe <= device.size - offset else {
                    throw site.error("its extents run past the end of \(device.name)")
                }
                stripes.append((device, offset))
            }
            mapped.append((start, try site.add(start, length), segment.stripeSize, stripes))
            next = try site.add(segment.startExtent, segment.extentCount)
        }
        segments = mapped
        size = mapped.last?.end ?? 0
    }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        var result: [UInt8] = []
        result.reserveCapacity(count)
        var position = offset
        let end = offset + UInt64(count)
        while position < end {
            guard let segment = segments.first(where: { $0.start <= position && position < $0.end }) else {
                throw ReaderError(.malformed, device: name, structure: "LVM logical volume", offset: position,
                                  "no segment maps this byte")
            }
            let within = position - segment.start
            var piece = min(end, segment.end) - position
            let target: (device: any BlockDevice, offset: UInt64)
            if segment.stripes.count == 1 {
                target = (segment.stripes[0].device, segment.stripes[0].start + within)
            } else {
                let chunk = within / segment.stripeSize, into = within % segment.stripeSize
                let stripe = segment.stripes[Int(chunk % UInt64(segment.stripes.count))]
                let row = chunk / UInt64(segment.stripes.count)
                target = (stripe.device, stripe.start + row * segment.stripeSize + into)
                piece = min(piece, segment.stripeSize - into)
            }
            result += try target.device.read(at: target.offset, count: Int(piece))
            position += piece
        }
        return result
    }
}
