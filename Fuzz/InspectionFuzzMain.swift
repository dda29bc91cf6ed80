// libFuzzer entry point over what inspection parses from a guest's files, built by scripts/fuzz inside the Appliance
// module (so that the internal parsers are reachable): the release files (LinuxRelease), /etc/fstab
// (QuickInspection.mountpoints, UUID=, LABEL=, /dev/ names and btrfs subvol= options), the hostname files and the
// ELF header of /bin/bash, through QuickInspection.verdict over a tree held in memory. The input is that tree:
// records of a big-endian u16 length and a PATH, then a u16 length and its CONTENT, a PATH ending in "@" being a
// symlink whose CONTENT is its target (Fuzz/make-reader-seeds writes the fixtures' own files so). A trap is a crash;
// a hang, libFuzzer's -timeout.
import Operations

struct MemoryTree: InspectedTree {
    struct Missing: Error {}
    var files: [String: [UInt8]] = [:]
    var links: [String: String] = [:]
    var directories: Set<String> = ["/"]

    init(_ input: [UInt8]) {
        var rest = input[...]
        func field() -> ArraySlice<UInt8>? {
            guard rest.count >= 2 else { return nil }
            let length = Int(rest[rest.startIndex]) << 8 | Int(rest[rest.startIndex + 1])
            let field = rest.dropFirst(2).prefix(length)
            rest = rest.dropFirst(2 + field.count)
            return field
        }
        while let name = field(), let content = field().map(Array.init) {
            var path = String(decoding: name, as: UTF8.self)
            guard path.hasPrefix("/") else { continue }
            if path.hasSuffix("@") {
                path.removeLast()
                links[path] = String(decoding: content, as: UTF8.self)
            } else {
                files[path] = content
            }
            var parent = path
            while let slash = parent.lastIndex(of: "/"), slash != parent.startIndex {
                parent = String(parent[..<slash])
                directories.insert(parent)
            }
        }
    }

    /// `path` with symlinks in its last component followed (at most 8), relative targets from its directory.
    func followed(_ path: String) -> String? {
        var current = path
        for _ in 0..<8 {
            guard let target = links[current] else { return current }
            if target.hasPrefix("/") {
                current = target
            } else {
                let directory = current[..<(current.lastIndex(of: "/") ?? current.startIndex)]
                current = directory + "/" + target
            }
        }
        return nil
    }

    func kind(_ path: String) throws -> FileStatus.Kind? {
        guard let path = followed(path) else { return nil }
        return files[path] != nil ? .regular : directories.contains(path) ? .directory : nil
    }

    func linkKind(_ path: String) throws -> FileStatus.Kind? {
        links[path] != nil ? .symlink : try kind(path)
    }

    func readlink(_ path: String) throws -> String {
        guard let target = links[path] else { throw Missing() }
        return target
    }

    func bytes(_ path: String, count: Int) throws -> [UInt8] {
        guard let path = followed(path), let content = files[path] else { throw Missing() }
        return Array(content.prefix(max(0, count)))
    }

    func text(_ path: String) throws -> String? {
        guard let path = followed(path), let content = files[path] else { return nil }
        return String(validating: content, as: UTF8.self)
    }
}

/// Devices as the fixtures name them, for fstab entries to resolve against.
func fixtureDevices() -> QuickInspection.Devices {
    QuickInspection.Devices(
        disks: ["/dev/sda"], partitions: ["/dev/sda1", "/dev/sda2"],
        volumes: ["/dev/VolGroup/lv_root", "/dev/VolGroup/lv_swap"],
        subvolumes: ["btrfsvol:/dev/sda2/root", "btrfsvol:/dev/sda2/home"],
        uuids: [("6d0a5f3c-2b1e-4c9d-8a7f-3e2d1c0b9a87", "/dev/sda2"), ("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "/dev/sda1"),
                ("263660ea-4c53-4dd4-9280-bfc4ee51f9e3", "/dev/VolGroup/lv_root")],
        labels: [("cloudimg-rootfs", "/dev/sda1")])
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let tree = MemoryTree(Array(UnsafeBufferPointer(start: data, count: count)))
    let devices = fixtureDevices()
    _ = try? QuickInspection.verdict(tree, device: "/dev/sda2", devices: devices)
    _ = try? LinuxRelease.detect(isFile: { try tree.kind($0) == .regular }, read: { try tree.text($0) })
    if let fstab = try? tree.text("/etc/fstab") {
        _ = QuickInspection.mountpoints(fstab: fstab, root: "btrfsvol:/dev/sda2/root", devices: devices)
    }
    return 0
}
