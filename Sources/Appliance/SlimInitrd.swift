import Diagnostics
import Foundation
import Host
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The appliance's initrd without the modules no launch of imgcustomize's uses.
///
/// supermin's mini-initrd loads every module of a fixed list before it mounts the appliance's root: 52 with Debian
/// 12's kernel. Some drive hardware libguestfs never gives the appliance, and their probing costs the launch under
/// software emulation: `ata_piix` probes the i440FX's two empty IDE channels (0.8 s of the guest's clock, 0.3 s of
/// the launch), the NVDIMM and virtio memory, balloon, input, crypto and MMIO drivers each bind or fail in turn.
/// libguestfs gives its drives on virtio-scsi, its channel on virtio-serial, its network as virtio-net and its
/// entropy as virtio-rng: those stay, with everything the mini-initrd needs to mount the root (ext4 and its
/// checksums) and fuse.
///
/// The modules it loads also lose their appended signatures where the kernel does not enforce them (its configuration
/// says `# CONFIG_MODULE_SIG_FORCE is not set`, as Debian's and Fedora's do): the kernel then loads them without
/// hashing each one and checking its signature (0.18 s of a launch; it notes once that it is "tainted", which
/// changes nothing else). Where that configuration cannot be found, the signatures stay.
///
/// The initrd is a `newc` cpio archive whose `modules` member lists the modules to load, one file name a line, in
/// dependency order; the slim copy is the same archive with that list filtered. It is made once per initrd (cached
/// under the initrd's SHA-256, beside the PVH kernels) and the hypervisor wrapper of `LaunchWatch` swaps it in for the
/// initrd libguestfs passes, as it swaps the kernel; an initrd it cannot read, or whose list lacks what the root
/// needs, is left as it is. `IMGCUSTOMIZE_APPLIANCE_INITRD=stock` turns it off, and `IMGCUSTOMIZE_APPLIANCE_KERNEL=stock`
/// both.
enum SlimInitrd {
    /// `stock` boots the initrd as supermin built it (the kernel stays as `PVHKernel`'s variable says).
    static let environmentVariable = "IMGCUSTOMIZE_APPLIANCE_INITRD"

    static func enabled(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        environment[environmentVariable] != "stock"
    }

    /// The modules left out, by file name without ".ko": hardware libguestfs never adds, and nothing else needs.
    static let unused: Set<String> = [
        "ata_piix", "libata", "nfit", "libnvdimm", "nd_btt", "nd_pmem", "nd_virtio", "virtio_pmem",
        "crypto_engine", "virtio_crypto", "virtio_balloon", "virtio_dma_buf", "virtio_input", "virtio_mem",
        "virtio_mmio", "virtiofs",
    ]
    /// What the mini-initrd needs to mount the appliance's root, which must stay listed.
    static let required = ["virtio_pci", "virtio_scsi", "sd_mod", "ext4"]

    static func applianceInitrd(cacheDirectory: String) -> String {
        "\(cacheDirectory)/.guestfs-\(geteuid())/appliance.d/initrd"
    }

    /// What follows "initrd-" in the cache's names: the form of the slim copy ("v2": with unsigned modules), so that
    /// a copy an earlier version made is made again.
    static let cachePrefix = "v2-"

    /// The cache's name of the slim copy of `initrd`: "initrd-v2-" and the SHA-256 the wrapper computes with
    /// `sha256sum`.
    static func cachedName(of initrd: String) -> String? {
        PVHKernel.sha256(ofFile: initrd).map { "initrd-\(cachePrefix)\($0)" }
    }

    /// Makes sure the cache holds the slim copy of `initrd`; returns why not when it cannot (the stock initrd is
    /// used then).
    @discardableResult
    static func prepare(initrd: String, in directory: String, logger: Logger) -> String? {
        guard let name = cachedName(of: initrd) else { return "\(initrd) is not readable" }
        let target = (directory as NSString).appendingPathComponent(name)
        if access(target, R_OK) == 0 { return nil }
        do {
            guard let contents = FileManager.default.contents(atPath: initrd) else {
                throw ExtractionError("cannot read \(initrd)")
            }
            let slim = try slimmed([UInt8](contents), path: initrd,
                                   unsigned: { signaturesOptional(kernelRelease: $0, logger: logger) })
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            // Written beside the target and renamed into place: two runs at once each rename a whole file.
            let scratch = (directory as NSString)
                .appendingPathComponent(".initrd.\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
            defer { unlink(scratch) }
            try Data(slim).write(to: URL(fileURLWithPath: scratch))
            guard rename(scratch, target) == 0 else {
                throw ExtractionError("cannot rename \(scratch) to \(target): \(String(cString: strerror(errno)))")
            }
            logger.info("wrote the appliance's initrd without the modules no launch uses to \(target)")
            PVHKernel.removeStale(in: directory, keeping: name, prefixes: ["initrd-", ".initrd."])
            return nil
        } catch {
            let reason = Diagnostic(of: error).message
            logger.debug("booting the stock appliance initrd: \(reason)")
            return reason
        }
    }

    /// `archive` with its `modules` list filtered; fails where it is not a `newc` archive this reads whole, has no
    /// list, or the list lacks a module the root needs. The modules lose their signatures where `unsigned`, given
    /// the kernel release the modules were built for (their `vermagic`), says the kernel loads them so.
    static func slimmed(_ archive: [UInt8], path: String, unsigned: (String) -> Bool = { _ in false }) throws -> [UInt8] {
        var members = try CPIO.members(of: archive, path: path)
        guard let index = members.firstIndex(where: { $0.name == "modules" }) else {
            throw ExtractionError("\(path) has no modules list")
        }
        let lines = String(decoding: members[index].data, as: UTF8.self).split(separator: "\n")
        func module(_ line: Substring) -> String {
            String((line.split(separator: "/").last ?? line).split(separator: ".").first ?? "")
                .replacingOccurrences(of: "-", with: "_")
        }
        let kept = lines.filter { !unused.contains(module($0)) }
        for needed in required where !kept.contains(where: { module($0) == needed }) {
            throw ExtractionError("\(path) does not load \(needed)")
        }
        members[index].data = Array((kept.joined(separator: "\n") + "\n").utf8)
        let listed = Set(kept.map { String($0) })
        if let release = members.lazy.filter({ listed.contains($0.name) }).compactMap({ ModuleSignature.release(of: $0.data) }).first,
           unsigned(release) {
            for member in members.indices where listed.contains(members[member].name) {
                members[member].data = ModuleSignature.unsigned(members[member].data)
            }
        }
        return CPIO.archive(members)
    }

    /// Whether the kernel `release` loads unsigned modules: its configuration in /boot says it does not enforce
    /// signatures. Any doubt (no configuration, or one that enforces them) keeps them.
    static func signaturesOptional(kernelRelease release: String, configurations: String = "/boot",
                                   logger: Logger) -> Bool {
        guard !release.contains("/"),
              let text = try? String(contentsOfFile: "\(configurations)/config-\(release)", encoding: .utf8) else {
            logger.debug("the initrd's modules keep their signatures: no \(configurations)/config-\(release)")
            return false
        }
        let optional = text.split(separator: "\n").contains("# CONFIG_MODULE_SIG_FORCE is not set")
        if !optional {
            logger.debug("the initrd's modules keep their signatures: \(configurations)/config-\(release) may enforce them")
        }
        return optional
    }

    struct ExtractionError: DiagnosticError {
        var message: String
        init(_ message: String) { self.message = message }
        var diagnostic: Diagnostic { Diagnostic(message, hint: "the appliance boots the stock initrd instead") }
    }
}

/// The `newc` cpio format ("070701"): each member a 110-byte header of hexadecimal fields, its name with a NUL, padded
/// to four bytes, then its data, padded to four bytes; "TRAILER!!!" ends the archive.
enum CPIO {
    struct Member {
        /// The header's thirteen fields after the magic, as read (ino, mode, uid, gid, nlink, mtime, filesize,
        /// devmajor, devminor, rdevmajor, rdevminor, namesize, check); filesize and namesize are rewritten.
        var fields: [UInt32]
        var name: String
        var data: [UInt8]
    }

    static let magic = Array("070701".utf8)
    static let headerSize = 110

    /// Every member up to the trailer (not included).
    static func members(of archive: [UInt8], path: String) throws -> [Member] {
        var members: [Member] = []
        var offset = 0
        func padded(_ value: Int) -> Int { (value + 3) & ~3 }
        while true {
            guard offset + headerSize <= archive.count, Array(archive[offset..<offset + 6]) == magic else {
                throw SlimInitrd.ExtractionError("\(path) is not a newc cpio archive at byte \(offset)")
            }
            var fields: [UInt32] = []
            for field in 0..<13 {
                let start = offset + 6 + field * 8
                guard let value = UInt32(String(decoding: archive[start..<start + 8], as: UTF8.self), radix: 16) else {
                    throw SlimInitrd.ExtractionError("\(path) has a malformed cpio header at byte \(offset)")
                }
                fields.append(value)
            }
            let nameSize = Int(fields[11]), fileSize = Int(fields[6])
            let nameStart = offset + headerSize
            let dataStart = padded(nameStart + nameSize)
            let end = dataStart + fileSize
            guard nameSize > 0, nameStart + nameSize <= archive.count, end <= archive.count else {
                throw SlimInitrd.ExtractionError("\(path) has a cpio member running past its end at byte \(offset)")
            }
            let name = String(decoding: archive[nameStart..<nameStart + nameSize - 1], as: UTF8.self)
            if name == "TRAILER!!!" { return members }
            members.append(Member(fields: fields, name: name, data: Array(archive[dataStart..<end])))
            offset = padded(end)
        }
    }

    /// The archive of `members`, with its trailer.
    static func archive(_ members: [Member]) -> [UInt8] {
        var output: [UInt8] = []
        func append(_ fields: [UInt32], _ name: String, _ data: [UInt8]) {
            var fields = fields
            let nameBytes = Array(name.utf8) + [0]
            fields[6] = UInt32(data.count)
            fields[11] = UInt32(nameBytes.count)
            output += magic
            for field in fields { output += Array(String(format: "%08X", field).utf8) }
            output += nameBytes
            while output.count % 4 != 0 { output.append(0) }
            output += data
            while output.count % 4 != 0 { output.append(0) }
        }
        for member in members { append(member.fields, member.name, member.data) }
        append([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], "TRAILER!!!", [])
        return output
    }
}

/// The signature the kernel's build appends to a module: the module, a PKCS#7 signature, a 12-byte
/// `struct module_signature` whose last field is the signature's length (big-endian), and a fixed marker.
enum ModuleSignature {
    static let marker = Array("~Module signature appended~\n".utf8)
    static let informationSize = 12

    /// `module` without its appended signature; unchanged when it has none or its lengths do not add up.
    static func unsigned(_ module: [UInt8]) -> [UInt8] {
        let trailer = marker.count + informationSize
        guard module.count >= trailer, Array(module.suffix(marker.count)) == marker else { return module }
        let lengthAt = module.count - marker.count - 4
        let length = module[lengthAt..<lengthAt + 4].reduce(0) { $0 << 8 | Int($1) }
        guard length <= module.count - trailer else { return module }
        return Array(module.prefix(module.count - trailer - length))
    }

    /// The kernel release a module was built for: the first word of its "vermagic=" string ("6.1.0-57-amd64").
    static func release(of module: [UInt8]) -> String? {
        let key = Array("vermagic=".utf8)
        guard let start = module.firstRange(of: key)?.upperBound else { return nil }
        let word = module[start...].prefix { $0 != 0 && $0 != 0x20 }.prefix(256)
        return word.isEmpty ? nil : String(decoding: word, as: UTF8.self)
    }
}
