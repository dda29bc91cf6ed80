import Foundation
import Testing
@testable import Formats

/// A shell script run in the scratch directory, for the corpus files that need a pipeline (cpio | gzip) or a tool
/// outside /usr/bin (sgdisk, sfdisk, mkudffs).
@discardableResult
func shell(_ script: String, in scratch: Scratch) throws -> String {
    try scratch.must("bash", ["-euo", "pipefail", "-c", "cd '\(scratch.directory)' && \(script)"])
}

/// What `qemu-img info -f FORMAT --output=json` says: the oracle every virtual size is compared with.
func qemuInfo(_ path: String, format: String, in scratch: Scratch) throws -> (format: String, virtualSize: UInt64) {
    let json = try scratch.must("qemu-img", ["info", "-f", format, "--output=json", path])
    let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
    let size = (object?["virtual-size"] as? NSNumber)?.uint64Value
    let name = object?["format"] as? String
    guard let size, let name else { throw Scratch.ToolFailure(message: "qemu-img info \(path): \(json)") }
    return (name, size)
}

func bytes(of path: String, count: Int? = nil) throws -> [UInt8] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return Array(count.map { data.prefix($0) } ?? data)
}

func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Every kind of image the corpus builds: how to make it with the real tools, and its expected format.
struct CorpusImage: Sendable, CustomTestStringConvertible {
    let name: String
    let file: String
    let format: ImageFormat
    let make: @Sendable (String, Scratch) throws -> Void

    var testDescription: String { name }

    static func qemu(_ name: String, _ file: String, _ format: ImageFormat, _ arguments: [String]) -> CorpusImage {
        CorpusImage(name: name, file: file, format: format) { path, scratch in
            try scratch.must("qemu-img", ["create", "-q"] + arguments.map { $0 == "FILE" ? path : $0 })
        }
    }

    static func script(_ name: String, _ file: String, _ format: ImageFormat, _ script: String) -> CorpusImage {
        CorpusImage(name: name, file: file, format: format) { _, scratch in try shell(script, in: scratch) }
    }

    static let all: [CorpusImage] = [
        .qemu("qcow2 v2", "v2.qcow2", .qcow2, ["-f", "qcow2", "-o", "compat=0.10", "FILE", "1G"]),
        .qemu("qcow2 v3 deflate", "v3.qcow2", .qcow2,
              ["-f", "qcow2", "-o", "compat=1.1,lazy_refcounts=on,cluster_size=2M", "FILE", "3G"]),
        .qemu("qcow2 v3 zstd", "zstd.qcow2", .qcow2, ["-f", "qcow2", "-o", "compression_type=zstd", "FILE", "10G"]),
        .qemu("qed", "a.qed", .qed, ["-f", "qed", "FILE", "2G"]),
        .qemu("vmdk monolithicSparse", "sparse.vmdk", .vmdk,
              ["-f", "vmdk", "-o", "adapter_type=lsilogic,hwversion=6", "FILE", "5G"]),
        .qemu("vmdk streamOptimized", "stream.vmdk", .vmdk,
              ["-f", "vmdk", "-o", "subformat=streamOptimized", "FILE", "1G"]),
        .qemu("vmdk descriptor-only", "flat.vmdk", .vmdk, ["-f", "vmdk", "-o", "subformat=monolithicFlat", "FILE", "10M"]),
        .qemu("vdi dynamic", "dynamic.vdi", .vdi, ["-f", "vdi", "FILE", "3G"]),
        .qemu("vdi static", "static.vdi", .vdi, ["-f", "vdi", "-o", "static=on", "FILE", "10M"]),
        .qemu("vhd dynamic", "dynamic.vhd", .vpc, ["-f", "vpc", "FILE", "2G"]),
        .qemu("vhd fixed", "fixed.vhd", .vpc, ["-f", "vpc", "-o", "subformat=fixed", "FILE", "100M"]),
        .qemu("vhdx", "disk.vhdx", .vhdx, ["-f", "vhdx", "FILE", "7G"]),
        CorpusImage(name: "luks", file: "disk.luks", format: .luks) { path, scratch in
            // qemu times PBKDF2 with the thread's CPU clock, which on a loaded machine can read 0 ms and make it
            // give up ("Unable to get accurate CPU usage"); that is the host's noise, so try again.
            let arguments = ["create", "-q", "-f", "luks", "--object", "secret,id=sec0,data=hunter2",
                             "-o", "key-secret=sec0,iter-time=100", path, "16M"]
            for _ in 0..<5 {
                let (status, output) = try scratch.run("qemu-img", arguments)
                if status == 0 { return }
                if !output.contains("accurate CPU usage") { break }
            }
            try scratch.must("qemu-img", arguments)
        },
        .qemu("raw", "disk.raw", .raw, ["-f", "raw", "FILE", "1G"]),
        .script("raw gpt", "gpt.raw", .raw,
                "truncate -s 64M gpt.raw && sgdisk -n 1:2048:+8M -c 1:EFI -t 1:ef00 -n 2:0:0 -c 2:root -t 2:8300 gpt.raw >/dev/null"),
        .script("raw mbr", "mbr.raw", .raw,
                "truncate -s 32M mbr.raw && printf 'label: dos\\n,8M,83,*\\n,,82\\n' | sfdisk -q mbr.raw"),
        .script("iso 9660", "cd.iso", .iso,
                "mkdir -p tree && echo hello > tree/a.txt && xorriso -as mkisofs -quiet -V CIDATA -o cd.iso tree"),
        .script("udf", "disk.udf", .iso, "truncate -s 4M disk.udf && mkudffs --media-type=hd --label=UDFDISK disk.udf >/dev/null"),
        .script("aki kernel", "vmlinuz", .aki, "cp \"$(ls /boot/vmlinuz-* | head -1)\" vmlinuz"),
        .script("ari gzip cpio", "initrd.gz", .ari,
                "mkdir -p root && echo x > root/init && (cd root && echo init | cpio -o -H newc --quiet) | gzip > initrd.gz"),
        .script("ari xz cpio", "initrd.xz", .ari,
                "mkdir -p root && echo x > root/init && (cd root && echo init | cpio -o -H newc --quiet) | xz --check=crc32 > initrd.xz"),
        .script("ari zstd cpio", "initrd.zst", .ari,
                "mkdir -p root && echo x > root/init && (cd root && echo init | cpio -o -H newc --quiet) | zstd -q > initrd.zst"),
        .script("ari lz4 cpio", "initrd.lz4", .ari,
                "mkdir -p root && echo x > root/init && (cd root && echo init | cpio -o -H newc --quiet) | lz4 -l -q > initrd.lz4"),
        .script("ari plain cpio", "initrd.cpio", .ari,
                "mkdir -p root && echo x > root/init && (cd root && echo init | cpio -o -H newc --quiet) > initrd.cpio"),
    ]

    /// Builds the image in `scratch` and returns its path.
    func build(in scratch: Scratch) throws -> String {
        let path = scratch.path(file)
        try make(path, scratch)
        return path
    }
}
