/// Header-only inspection: runs every detector over the first 64 KiB and the last 2 KiB of the file (plus the few
/// regions a matched format points at), picks the format, and applies the safety checks. Nothing is trusted and
/// nothing is read in proportion to the image size.
public enum ImageInspector {
    /// Detectors of formats that are something other than raw bytes to qemu, in the order the format is chosen.
    static var containerDetectors: [any FormatDetector.Type] {
        [QCOW2Detector.self, QCOWDetector.self, QEDDetector.self, VMDKDetector.self, VDIDetector.self,
         VHDXDetector.self, VHDDetector.self, LUKSDetector.self, ISODetector.self, BochsDetector.self,
         CloopDetector.self, ParallelsDetector.self, DMGDetector.self]
    }
    /// Raw underneath, but a different thing to Glance; they still count towards "more than one format".
    static var amazonDetectors: [any FormatDetector.Type] { [KernelDetector.self, RamdiskDetector.self] }

    /// Inspects the image file at `path`. Throws an `InspectionError` when the file cannot be read at all (missing,
    /// a directory, unreadable); a file that can be read always yields an inspection, unsafe ones included.
    public static func inspect(path: String, policy: SafetyPolicy = .init()) throws -> ImageInspection {
        let file = try HeaderFile(path: path, access: policy.access)
        defer { file.close() }
        var inspection = try inspect(source: file, actualSize: UInt64(max(file.allocatedSize, 0)), policy: policy)
        inspection.linkTarget = file.linkTarget
        return inspection
    }

    /// Inspects and refuses in one step: what apply, customize, sparsify and convert call before anything else.
    @discardableResult
    public static func requireSafe(path: String, policy: SafetyPolicy = .init()) throws -> ImageInspection {
        let inspection = try inspect(path: path, policy: policy)
        try inspection.requireSafe()
        return inspection
    }

    public static func inspect(source: HeaderSource, actualSize: UInt64? = nil,
                               policy: SafetyPolicy = .init()) throws -> ImageInspection {
        let reader = try HeaderReader(source)
        let fileSize = UInt64(max(source.size, 0))
        var violations: [Violation] = []
        if fileSize == 0 {
            violations.append(Violation(.emptyImage, "the image is empty (0 bytes)",
                                        hint: "check that the download or copy finished"))
        }

        var matched = (containerDetectors + amazonDetectors).filter { $0.matches(reader) }
        // qemu's dmg probe goes by the name alone, and every other probe beats it.
        if matched.isEmpty, DMGDetector.matchesByName(reader) { matched = [DMGDetector.self] }
        var detected = matched.map { $0.name }
        if matched.count > 1 {
            violations.append(Violation(.multipleFormats,
                "more than one format matches: \(detected.joined(separator: ", ")) (a polyglot file)",
                hint: "the file means different things to different readers; rebuild it from its source"))
        }

        var format = ImageFormat.raw
        var virtualSize: UInt64? = roundedToSector(fileSize)
        var specific: FormatSpecific?
        if let detector = matched.first {
            format = detector.format
            virtualSize = nil
            do {
                let finding = try detector.inspect(reader)
                virtualSize = finding.virtualSize
                specific = finding.specific
                violations += finding.violations
            } catch let error as FormatError {
                violations.append(.malformed(detector.name, error))
                if !detector.format.isRead {
                    violations.append(.unsupportedFormat(detector.format, "a damaged \(detector.format.rawValue) image"))
                }
            }
        } else {
            let (table, tableViolations) = try PartitionTableReader.read(reader)
            violations += tableViolations
            specific = .raw(RawInfo(partitionTable: table, amazonKind: table == nil ? nil : .ami))
        }
        if case .raw(let info)? = specific, let table = info.partitionTable {
            detected.append(table.kind.rawValue)
        } else if case .iso(let info)? = specific, let table = info.partitionTable {
            detected.append(table.kind.rawValue)
        }

        if let allowed = policy.allowedFormats, !isAllowed(format, specific, allowed) {
            let names = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            violations.append(Violation(.formatNotAllowed, "format \(format.rawValue) is not in the allowed formats (\(names))",
                                        hint: "convert it to one of the allowed formats, or allow \(format.rawValue)"))
        }
        if policy.allowBackingFile, format == .qcow2 {
            violations.removeAll { $0.code == .backingFile }
        }

        return ImageInspection(filename: source.name, format: format, virtualSize: virtualSize,
                               actualSize: actualSize ?? fileSize, fileSize: fileSize, formatSpecific: specific,
                               safety: SafetyReport(violations: violations), formatsDetected: detected,
                               bytesRead: reader.bytesRead)
    }

    /// A partitioned raw disk is also an AMI, so an allow-list naming ami accepts it.
    static func isAllowed(_ format: ImageFormat, _ specific: FormatSpecific?, _ allowed: Set<ImageFormat>) -> Bool {
        if allowed.contains(format) { return true }
        if case .raw(let info)? = specific, info.amazonKind == .ami { return allowed.contains(.ami) }
        return false
    }
}
