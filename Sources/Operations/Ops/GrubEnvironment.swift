/// GRUB's environment block (grubenv): `KEY=value` lines padded with "#" to exactly 1024 bytes, which GRUB reads
/// before the disk driver can write more. RHEL 8 keeps its kernel arguments there (`kernelopts`), and its BLS
/// entries say `options $kernelopts`.
struct GrubEnvironment {
    static let size = 1024
    static let header = "# GRUB Environment Block\n"

    var lines: [String]

    /// Nil when `bytes` is not an environment block (GRUB would not read it either).
    init?(_ bytes: [UInt8]) {
        guard let text = String(validating: bytes, as: UTF8.self), text.hasPrefix(Self.header) else { return nil }
        // The padding is "#" to the end; comment lines end with a newline.
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while let last = lines.last, last.isEmpty || last.allSatisfy({ $0 == "#" }) { lines.removeLast() }
    }

    subscript(key: String) -> String? {
        get { lines.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) } }
        set {
            let index = lines.firstIndex { $0.hasPrefix(key + "=") }
            switch (index, newValue) {
            case (let index?, let value?): lines[index] = "\(key)=\(value)"
            case (nil, let value?): lines.append("\(key)=\(value)")
            case (let index?, nil): lines.remove(at: index)
            case (nil, nil): break
            }
        }
    }

    /// The block, padded to its size; nil when the lines do not fit.
    var bytes: [UInt8]? {
        let text = Array(lines.map { $0 + "\n" }.joined().utf8)
        guard text.count <= Self.size else { return nil }
        return text + [UInt8](repeating: UInt8(ascii: "#"), count: Self.size - text.count)
    }
}

extension AppendGrubArgs {
    static let grubEnvironments = ["/boot/grub2/grubenv", "/boot/efi/EFI/*/grubenv"]

    /// Merges the arguments into `kernelopts` of a grubenv that has it; nil when it has none.
    func editGrubEnvironment(_ guest: GuestFilesystem, _ path: String) throws -> Bool? {
        guard var environment = GrubEnvironment(try guest.read(path)), let options = environment["kernelopts"] else {
            return nil
        }
        let words = options.words
        let merged = Self.merge(words, arguments)
        guard merged != words else { return false }
        environment["kernelopts"] = merged.joined(separator: " ")
        guard let bytes = environment.bytes else {
            throw GuestError(guest: guest.guestDescription, action: Self.name, path: path,
                             message: "kernelopts with \(target) does not fit in the 1024 bytes of GRUB's environment block",
                             hint: "remove variables from it (grub2-editenv \(path) unset NAME) and run again")
        }
        try guest.write(path, bytes, mode: 0o644)
        return true
    }
}
