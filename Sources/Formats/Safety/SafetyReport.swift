import Diagnostics
/// What an inspection found that makes the image unsafe to hand to qemu or the appliance.
public struct Violation: Sendable, Encodable, Equatable {
    /// Stable identifiers: scripts and tests match on these, so never rename one.
    public enum Code: String, Sendable, Codable, CaseIterable {
        case emptyImage = "empty-image"
        case malformedHeader = "malformed-header"
        case backingFile = "backing-file"
        case dataFile = "data-file"
        case unknownIncompatibleFeatures = "unknown-incompatible-features"
        case vmdkCreateType = "vmdk-create-type"
        case vmdkExtentPath = "vmdk-extent-path"
        case vmdkDescriptor = "vmdk-descriptor"
        case vmdkFooter = "vmdk-footer"
        case gptInvalid = "gpt-invalid"
        case mbrInvalid = "mbr-invalid"
        case multipleFormats = "multiple-formats"
        case luksVersion = "luks-version"
        case qedUnsupported = "qed-unsupported"
        case formatNotAllowed = "format-not-allowed"
        case unsupportedFormat = "unsupported-format"
        case vhdxLog = "vhdx-log"
    }

    public var code: Code
    /// What is wrong, in the image's own terms.
    public var message: String
    /// What the user can do about it.
    public var hint: String

    public init(_ code: Code, _ message: String, hint: String) {
        self.code = code
        self.message = message
        self.hint = hint
    }
}

public struct SafetyReport: Sendable, Encodable, Equatable {
    public var violations: [Violation]
    public var safe: Bool { violations.isEmpty }

    public init(violations: [Violation]) { self.violations = violations }

    public func has(_ code: Violation.Code) -> Bool { violations.contains { $0.code == code } }

    private enum CodingKeys: String, CodingKey { case safe, violations }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(safe, forKey: .safe)
        try container.encode(violations, forKey: .violations)
    }
}

/// What the caller accepts. The defaults refuse everything that makes qemu open a second file.
public struct SafetyPolicy: Sendable, Equatable {
    /// Formats accepted, like Glance's `disk_formats`; nil accepts every format imgcustomize can inspect.
    public var allowedFormats: Set<ImageFormat>?
    /// Accept a qcow2 backing file. Only the pipeline sets this, for overlays it created itself.
    public var allowBackingFile: Bool
    /// Whether a symlink is followed and a block device read (both refused by default).
    public var access: FileAccess
    /// Read an image another process (a running qemu) has open for writing, as `qemu-img -U` does; refused by
    /// default, as qemu-img refuses it, since the copy may be torn (see `QemuImageLock`).
    public var forceShare: Bool

    public init(allowedFormats: Set<ImageFormat>? = nil, allowBackingFile: Bool = false, access: FileAccess = .init(),
                forceShare: Bool = false) {
        self.allowedFormats = allowedFormats
        self.allowBackingFile = allowBackingFile
        self.access = access
        self.forceShare = forceShare
    }
}

/// An image refused by the safety checks. The message names the image, every problem and what to do.
public struct UnsafeImageError: DiagnosticError, Sendable {
    public var path: String
    public var violations: [Violation]

    /// One problem reads on one line with its hint apart; several are listed, and their hints (each said once)
    /// make the hint.
    public var diagnostic: Diagnostic {
        let problems = violations.map { "\($0.message) [\($0.code.rawValue)]" }
        var hints: [String] = []
        for violation in violations where !hints.contains(violation.hint) { hints.append(violation.hint) }
        let message = problems.count == 1 ? "refusing \(path): \(problems[0])"
            : "refusing \(path):" + problems.map { "\n  - \($0)" }.joined()
        return Diagnostic(message, hint: hints.isEmpty ? nil : hints.joined(separator: "; "), image: path)
    }
}

extension ImageInspection {
    /// Throws an `UnsafeImageError` unless the image passed every check. The policy is the one the inspection
    /// ran with; call this first in every command that hands the image on.
    public func requireSafe() throws {
        guard safety.safe else { throw UnsafeImageError(path: filename, violations: safety.violations) }
    }
}
