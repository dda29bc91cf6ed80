// libFuzzer entry point over the header parsers. Built by scripts/fuzz with `swiftc -sanitize=fuzzer` directly over
// the Formats sources it needs, outside SwiftPM. Each input is inspected as three images, so that footers, far
// offsets and large sizes are reachable from a small input:
//   plain     the input itself;
//   mirrored  a 1 GiB image with the input at its start and again at its end (footers of VHD and VMDK);
//   periodic  a 1 GiB image repeating the input (tables that headers point at land on fuzzed bytes).
// A trap anywhere is a crash; so is reading more than the header budget.

struct MirroredSource: HeaderSource {
    let name = "mirrored"
    let input: [UInt8]
    let size: Int64

    func read(at offset: Int64, count: Int) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset < size else { return [] }
        let length = Int(min(Int64(count), size - offset))
        var bytes = [UInt8](repeating: 0, count: length)
        // Copy the overlap of [offset, offset + length) with each placement of the input.
        for placement in [Int64(0), size - Int64(input.count)] {
            let start = max(offset, placement)
            let end = min(offset + Int64(length), placement + Int64(input.count))
            guard start < end else { continue }
            bytes.replaceSubrange(Int(start - offset)..<Int(end - offset),
                                  with: input[Int(start - placement)..<Int(end - placement)])
        }
        return bytes
    }
}

struct PeriodicSource: HeaderSource {
    let name = "periodic"
    let input: [UInt8]
    let size: Int64

    func read(at offset: Int64, count: Int) throws -> [UInt8] {
        guard !input.isEmpty, offset >= 0, count >= 0, offset < size else { return [] }
        let length = Int(min(Int64(count), size - offset))
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        var position = Int(offset % Int64(input.count))
        while bytes.count < length {
            let take = min(input.count - position, length - bytes.count)
            bytes += input[position..<position + take]
            position = 0
        }
        return bytes
    }
}

/// Far more than any header path reads (the qcow2 cluster 0 cap of 2 MiB plus the shared head and tail).
let readBudget = (2 << 20) + (256 << 10)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: count))
    let sources: [any HeaderSource] = [
        MemoryImageSource(name: "plain", bytes: input),
        MirroredSource(input: input, size: 1 << 30),
        PeriodicSource(input: input, size: 1 << 30),
    ]
    for source in sources {
        guard let inspection = try? ImageInspector.inspect(source: source) else { continue }
        if inspection.bytesRead > readBudget {
            fatalError("\(source.name): read \(inspection.bytesRead) bytes, over the header budget")
        }
        if inspection.format != .raw, inspection.safety.safe, inspection.virtualSize == nil {
            fatalError("\(source.name): a safe \(inspection.format) image without a virtual size")
        }
    }
    return 0
}
