/// The violations the detectors raise, worded in one place so every format says the same thing the same way.
extension Violation {
    static func backingFile(_ what: String, _ name: String?) -> Violation {
        let named = name.map { " '\($0)'" } ?? ""
        return Violation(.backingFile, "\(what) names a backing file\(named) (CVE-2024-32498)",
                         hint: "qemu would open that file on this host; flatten it with `qemu-img convert` on a trusted host only if you trust the chain, or get the image from a trusted source")
    }

    static func dataFile(_ name: String?) -> Violation {
        let named = name.map { " '\($0)'" } ?? ""
        return Violation(.dataFile, "qcow2 keeps its data in an external data file\(named) (CVE-2024-32498)",
                         hint: "qemu would open that file on this host; get a self-contained image from a trusted source")
    }

    static func unknownIncompatible(_ what: String, bits: UInt64) -> Violation {
        Violation(.unknownIncompatibleFeatures,
                  "\(what) sets unknown incompatible feature bits 0x\(String(bits, radix: 16))",
                  hint: "nothing here can read it safely; convert it with a qemu-img that knows those features on a trusted host")
    }

    static func vmdk(_ code: Code, _ message: String) -> Violation {
        Violation(code, message,
                  hint: "convert it to a single-file image with `qemu-img convert -O qcow2` on a trusted host after checking its descriptor")
    }

    static func partitionTable(_ code: Code, _ message: String) -> Violation {
        Violation(code, message,
                  hint: "check and repair the partition table (`sgdisk --verify`) on a trusted host, or rebuild the image")
    }

    static func malformed(_ format: String, _ error: FormatError) -> Violation {
        Violation(.malformedHeader, "malformed \(format) header: \(error)",
                  hint: "the file is damaged, truncated or not what it claims to be; download or rebuild it")
    }

    static func unsupportedFormat(_ format: ImageFormat, _ what: String) -> Violation {
        Violation(.unsupportedFormat,
                  "the file is \(what), which qemu opens as '\(format.rawValue)' but imgcustomize does not read",
                  hint: "convert it on a trusted host first: `qemu-img convert -f \(format.rawValue) -O qcow2 IMAGE IMAGE.qcow2`, then inspect the result")
    }
}
