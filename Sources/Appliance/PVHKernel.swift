import Diagnostics
import Foundation
import Host
import Logging
import Operations

#if canImport(Glibc)
import Glibc
#endif

/// The appliance's kernel booted through its PVH entry point instead of as a bzImage.
///
/// A bzImage is a small decompressor wrapped around the compressed kernel: under software emulation, SeaBIOS loading
/// it and the kernel decompressing itself (xz, 66 MB on Debian 12) take 4-5 s of every launch on a loaded two-core
/// machine. A kernel built with `CONFIG_PVH=y` also carries, in its uncompressed ELF image, a 32-bit entry point
/// (the Xen note PHYS32_ENTRY) that qemu (4.0 and later) jumps to directly when `-kernel` names that ELF file: no
/// firmware boot sector, no decompression. libguestfs refuses `-kernel` in `guestfs_config`, so the hypervisor
/// wrapper of `LaunchWatch` swaps the argument: it replaces the kernel libguestfs passes with the ELF extracted from
/// it, found in the cache under the kernel file's SHA-256, and passes the kernel unchanged when none is cached.
///
/// The ELF is extracted once per kernel (the cache is keyed by the kernel file's content, so a new kernel is a new
/// entry) and kept only if it is an x86-64 ELF with the PVH note;
/// anything doubtful leaves the stock kernel in use. `IMGCUSTOMIZE_APPLIANCE_KERNEL=stock` turns it off.
enum PVHKernel {
    static let environmentVariable = "IMGCUSTOMIZE_APPLIANCE_KERNEL"

    /// `${XDG_CACHE_HOME:-~/.cache}/imgcustomize/kernels`, or nil when the PVH entry is turned off.
    static func cacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if environment[environmentVariable] == "stock" { return nil }
        return (ToolCache.directory(environment: environment) as NSString).appendingPathComponent("kernels")
    }

    /// The name the ELF of `kernel` has in the cache: the SHA-256 of the kernel file, as the wrapper computes it
    /// with `sha256sum` (30 ms for a Debian kernel). Not its size and times: libguestfs touches its appliance's files
    /// at every launch so that temporary-file cleaners spare them. Nil when the kernel cannot be read.
    static func cachedName(of kernel: String) -> String? {
        sha256(ofFile: kernel).map { "vmlinux-\($0)" }
    }

    /// The SHA-256 of a regular file as the wrapper computes it, with `sha256sum`; nil when it cannot be read.
    static func sha256(ofFile path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
              let input = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? input.close() }
        guard let result = try? HostCommand("sha256sum", input: .descriptor(input.fileDescriptor),
                                            output: .capture(limit: 4096), errors: .discard).run(),
              result.succeeded, let digest = result.outputText.split(separator: " ").first,
              digest.count == 64, digest.allSatisfy(\.isHexDigit) else { return nil }
        return String(digest)
    }

    /// The kernel supermin built for libguestfs's appliance, where libguestfs keeps it
    /// (`CACHEDIR/.guestfs-UID/appliance.d/kernel`); the launch may rebuild it, which the wrapper's own check covers.
    static func applianceKernel(cacheDirectory: String) -> String {
        "\(cacheDirectory)/.guestfs-\(geteuid())/appliance.d/kernel"
    }

    /// Makes sure the cache holds the PVH ELF of `kernel`; returns why not when it cannot (the stock kernel is used
    /// then). Costs one decompression (about a second) the first time, a stat after.
    @discardableResult
    static func prepare(kernel: String, in directory: String, logger: Logger) -> String? {
        guard let name = cachedName(of: kernel) else { return "\(kernel) is not a readable kernel file" }
        let target = (directory as NSString).appendingPathComponent(name)
        if access(target, R_OK) == 0 { return nil }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            let started = Date()
            try extract(kernel: kernel, to: target, scratchIn: directory)
            logger.info("extracted the appliance kernel's PVH entry to \(target) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s; later launches boot it directly")
            removeStale(in: directory, keeping: name)
            return nil
        } catch {
            let reason = Diagnostic(of: error).message
            logger.debug("booting the stock appliance kernel: \(reason)")
            return reason
        }
    }

    /// Why the stock kernel boots: logged at -vv, never a failure of the run.
    struct ExtractionError: DiagnosticError {
        var message: String
        init(_ message: String) { self.message = message }
        var diagnostic: Diagnostic { Diagnostic(message, hint: "the appliance boots the stock kernel instead") }
    }

    /// Decompresses the bzImage's payload with the host's own decompressor into a file beside `target`, checks it,
    /// and renames it into place: two runs extracting at once each rename a whole file.
    static func extract(kernel: String, to target: String, scratchIn directory: String) throws {
        guard let image = FileManager.default.contents(atPath: kernel) else {
            throw ExtractionError("cannot read \(kernel)")
        }
        let bytes = [UInt8](image)
        let payload = try payloadRange(ofBzImage: bytes, path: kernel)
        let command = try decompressor(for: bytes[payload], path: kernel)

        let base = (directory as NSString).appendingPathComponent(".extract.\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
        let compressed = base + ".in", output = base + ".out"
        defer {
            unlink(compressed)
            unlink(output)
        }
        guard FileManager.default.createFile(atPath: compressed, contents: Data(bytes[payload])),
              FileManager.default.createFile(atPath: output, contents: nil),
              let input = FileHandle(forReadingAtPath: compressed),
              let sink = FileHandle(forWritingAtPath: output) else {
            throw ExtractionError("cannot write in \(directory)")
        }
        defer {
            try? input.close()
            try? sink.close()
        }
        let result = try HostCommand(command[0], Array(command.dropFirst()), input: .descriptor(input.fileDescriptor),
                                     output: .descriptor(sink.fileDescriptor), errors: .discard).run()
        guard result.succeeded else {
            throw ExtractionError("\(command.joined(separator: " ")) failed on the payload of \(kernel) (\(result.failure))")
        }
        try sink.synchronize()
        guard let elf = FileHandle(forReadingAtPath: output) else { throw ExtractionError("cannot read \(output)") }
        defer { try? elf.close() }
        guard try hasPVHEntry(elf) else {
            throw ExtractionError("the kernel in \(kernel) has no PVH entry (a kernel built without CONFIG_PVH)")
        }
        chmod(output, 0o644)
        guard rename(output, target) == 0 else {
            throw ExtractionError("cannot rename into \(target): \(String(cString: strerror(errno)))")
        }
    }

    /// Where the compressed kernel lies in a bzImage, from its boot protocol header (2.08 and later give the
    /// payload's offset and length; see the kernel's Documentation/arch/x86/boot.rst).
    static func payloadRange(ofBzImage bytes: [UInt8], path: String) throws -> Range<Int> {
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        guard bytes.count >= 0x250, bytes[0x202..<0x206].elementsEqual("HdrS".utf8) else {
            throw ExtractionError("\(path) is not a bzImage (no HdrS header)")
        }
        guard u16(0x206) >= 0x0208 else {
            throw ExtractionError("\(path) has boot protocol \(String(u16(0x206), radix: 16)), older than 2.08")
        }
        // 0 setup sectors means 4, for the oldest kernels.
        let setupSectors = bytes[0x1f1] == 0 ? 4 : Int(bytes[0x1f1])
        let start = (setupSectors + 1) * 512 + u32(0x248), length = u32(0x24c)
        guard length > 0, start < bytes.count, length <= bytes.count - start else {
            throw ExtractionError("\(path): its payload (\(length) bytes at \(start)) lies outside the file")
        }
        return start..<start + length
    }

    /// The host command that decompresses the payload, from its magic bytes (the kernel's own
    /// scripts/extract-vmlinux tells the same way). LZ4, LZO, bzip2 and LZMA kernels keep the stock kernel.
    static func decompressor(for payload: ArraySlice<UInt8>, path: String) throws -> [String] {
        let magic = Array(payload.prefix(6))
        switch magic {
        case _ where magic.starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]): return ["xz", "-dc", "--single-stream"]
        case _ where magic.starts(with: [0x28, 0xb5, 0x2f, 0xfd]): return ["zstd", "-dcq"]
        case _ where magic.starts(with: [0x1f, 0x8b]): return ["gzip", "-dc"]
        default:
            throw ExtractionError("\(path) is compressed in a way not handled here (magic \(magic.map { String($0, radix: 16) }.joined(separator: " ")))")
        }
    }

    /// True when `file` is an x86-64 ELF whose note segments hold Xen's PHYS32_ENTRY note: the entry qemu boots.
    static func hasPVHEntry(_ file: FileHandle) throws -> Bool {
        func read(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
            try file.seek(toOffset: offset)
            let data = try file.read(upToCount: count) ?? Data()
            guard data.count == count else { throw ExtractionError("the ELF ends before its header at \(offset)") }
            return [UInt8](data)
        }
        func u16(_ b: [UInt8], _ at: Int) -> UInt64 { UInt64(b[at]) | UInt64(b[at + 1]) << 8 }
        func u32(_ b: [UInt8], _ at: Int) -> UInt64 { u16(b, at) | u16(b, at + 2) << 16 }
        func u64(_ b: [UInt8], _ at: Int) -> UInt64 { u32(b, at) | u32(b, at + 4) << 32 }

        let header = try read(0, 64)
        // ELF, 64-bit, little-endian, EM_X86_64.
        guard header[0..<4].elementsEqual([0x7f, 0x45, 0x4c, 0x46]), header[4] == 2, header[5] == 1,
              u16(header, 18) == 62 else { return false }
        let programHeaders = u64(header, 0x20), entrySize = Int(u16(header, 0x36)), count = Int(u16(header, 0x38))
        guard entrySize >= 56, count <= 64 else { return false }
        for index in 0..<count {
            let (offset, overflow) = programHeaders.addingReportingOverflow(UInt64(index * entrySize))
            guard !overflow else { return false }
            let entry = try read(offset, 56)
            guard u32(entry, 0) == 4 else { continue }  // PT_NOTE
            let size = u64(entry, 32)
            guard size <= 1 << 20 else { continue }
            let notes = try read(u64(entry, 8), Int(size))
            var at = 0
            while at + 12 <= notes.count {
                let nameSize = Int(u32(notes, at)), descSize = Int(u32(notes, at + 4)), type = u32(notes, at + 8)
                let name = at + 12, desc = name + (nameSize + 3) & ~3
                let next = desc + (descSize + 3) & ~3
                guard nameSize <= notes.count, descSize <= notes.count, next <= notes.count else { break }
                // XEN_ELFNOTE_PHYS32_ENTRY
                if type == 18, notes[name..<name + nameSize].elementsEqual(Array("Xen".utf8) + [0]) { return true }
                at = next
            }
        }
        return false
    }

    /// Extracted kernels of other kernel files unused for a week: a kernel upgrade leaves one behind, 60-70 MB.
    static func removeStale(in directory: String, keeping name: String,
                            prefixes: [String] = ["vmlinux-", ".extract."]) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let weekAgo = time(nil) - 7 * 24 * 3600
        for other in names where other != name && prefixes.contains(where: other.hasPrefix) {
            let path = (directory as NSString).appendingPathComponent(other)
            var info = stat()
            if stat(path, &info) == 0, info.st_atim.tv_sec < weekAgo, info.st_mtim.tv_sec < weekAgo { unlink(path) }
        }
    }
}
