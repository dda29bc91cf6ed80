import Diagnostics
import CAugeas
import Glibc
import Host

/// A failure reported by host libaugeas, in its own words.
struct AugeasError: DiagnosticError {
    var message: String
    var hint: String?
    var diagnostic: Diagnostic { Diagnostic(message, hint: hint) }

    init(description: String, hint: String? = nil) {
        message = description
        self.hint = hint
    }
}

/// A host libaugeas handle that never touches the host's files: it is opened with no load path search beyond the
/// lens directory, loads no files, autoloads no modules, and is only used through `aug_text_store` /
/// `aug_text_retrieve`, which parse and print text held in the tree, not files.
package final class Augeas {
    static let lensDirectory = "/usr/share/augeas/lenses/dist"

    private var handle: OpaquePointer?
    /// aug_init wants a root; an empty private directory makes sure that even a stray load or save finds nothing.
    private let emptyRoot: TemporaryDirectory

    package init(lensDirectory: String = Augeas.lensDirectory) throws {
        do {
            emptyRoot = try TemporaryDirectory(prefix: "imgcustomize-augeas")
        } catch {
            throw AugeasError(description: "cannot create an empty Augeas root: \(Diagnostic(of: error).message)",
                              hint: "set TMPDIR to a writable directory")
        }
        let flags = AUG_NO_LOAD.rawValue | AUG_NO_MODL_AUTOLOAD.rawValue | AUG_NO_STDINC.rawValue
            | AUG_NO_ERR_CLOSE.rawValue
        handle = aug_init(emptyRoot.path, lensDirectory, flags)
        guard let handle else {
            emptyRoot.remove()
            throw AugeasError(description: "aug_init failed (out of memory)")
        }
        if aug_error(handle) != AUG_NOERROR.rawValue {
            let error = Self.error(handle, "aug_init")
            close()
            throw error
        }
    }

    package func close() {
        if let handle {
            aug_close(handle)
            emptyRoot.remove()
        }
        handle = nil
    }

    deinit { close() }

    private func open() throws -> OpaquePointer {
        guard let handle else { throw AugeasError(description: "Augeas handle used after close") }
        return handle
    }

    /// The error of the call that just failed, with Augeas's major, minor and detail messages.
    private static func error(_ handle: OpaquePointer, _ call: String) -> AugeasError {
        var parts: [String] = []
        for message in [aug_error_message(handle), aug_error_minor_message(handle), aug_error_details(handle)] {
            if let message { parts.append(String(cString: message)) }
        }
        return AugeasError(description: "\(call): " + (parts.isEmpty ? "unknown error" : parts.joined(separator: ": ")))
    }

    private func check(_ result: Int32, _ call: String) throws {
        if result < 0 { throw Self.error(try open(), call) }
    }

    func get(_ path: String) throws -> String? {
        let handle = try open()
        var value: UnsafePointer<CChar>?
        try check(aug_get(handle, path, &value), "get \(path)")
        return value.map { String(cString: $0) }
    }

    func set(_ path: String, _ value: String?) throws {
        let handle = try open()
        try check(aug_set(handle, path, value), "set \(path)")
    }

    func match(_ path: String) throws -> [String] {
        let handle = try open()
        var matches: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = aug_match(handle, path, &matches)
        try check(count, "match \(path)")
        guard let matches else { return [] }
        defer { free(matches) }
        return (0..<Int(count)).compactMap { index in
            guard let match = matches[index] else { return nil }
            defer { free(match) }
            return String(cString: match)
        }
    }

    func insert(_ path: String, label: String, before: Bool) throws {
        let handle = try open()
        try check(aug_insert(handle, path, label, before ? 1 : 0), "insert \(label) at \(path)")
    }

    func remove(_ path: String) throws -> Int {
        let handle = try open()
        let count = aug_rm(handle, path)
        try check(count, "rm \(path)")
        return Int(count)
    }

    func label(_ path: String) throws -> String? {
        let handle = try open()
        var label: UnsafePointer<CChar>?
        try check(aug_label(handle, path, &label), "label \(path)")
        return label.map { String(cString: $0) }
    }

    /// Parses the text held by node `node` with `lens` into the tree at `path`. A parse error leaves the tree empty
    /// and is described under /augeas/text`path`/error.
    func textStore(lens: String, node: String, path: String) throws {
        let handle = try open()
        try check(aug_text_store(handle, lens, node, path), "store \(path) with \(lens)")
    }

    /// Prints the tree at `path` back to text with `lens`, using the original text in `nodeIn` to keep its
    /// layout, into node `nodeOut`.
    func textRetrieve(lens: String, nodeIn: String, path: String, nodeOut: String) throws {
        let handle = try open()
        try check(aug_text_retrieve(handle, lens, nodeIn, path, nodeOut), "retrieve \(path) with \(lens)")
    }
}
