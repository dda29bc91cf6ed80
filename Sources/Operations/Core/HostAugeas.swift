import Diagnostics
extension GuestFilesystem {
    /// The one way Augeas edits a guest file, for every implementation: the text is read through the filesystem
    /// itself, parsed by host libaugeas with `aug_text_store`, edited, printed with `aug_text_retrieve`, and written
    /// back through the filesystem only when it differs. Augeas never opens a file, in the guest or on the host.
    /// A missing file parses as empty text, so an edit can create it (mode 0644, owner root).
    ///
    /// For an image this costs one read and at most one write: no Augeas load or save inside the appliance, where
    /// each took about half a second under software emulation. The lenses are the same ones: the appliance is
    /// built from the host's packages.
    package func editWithHostAugeas<T>(_ augeas: Augeas, lens: String, path: String,
                               _ body: (AugeasEdit) throws -> T) throws -> T {
        let original: String
        switch try stat(path)?.kind {
        case nil:
            original = ""
        case .regular:
            let content = try read(path)
            // Augeas takes the text as a C string: everything after a NUL would be dropped from the file, and
            // the edit reported as done.
            if let offset = content.firstIndex(of: 0) {
                throw GuestError(guest: guestDescription, action: "edit with Augeas", path: path,
                                 message: "the file holds a NUL byte (at offset \(offset)), which is not text",
                                 hint: "repair the file (a NUL in a text file is damage), then run again")
            }
            guard let text = String(validating: content, as: UTF8.self) else {
                throw GuestError(guest: guestDescription, action: "edit with Augeas", path: path,
                                 message: "the file is not UTF-8 text", hint: "change it with edit-file instead")
            }
            original = text
        default:
            throw GuestError(guest: guestDescription, action: "edit with Augeas", path: path,
                             message: "not a regular file")
        }

        let input = "/imgcustomize/input", output = "/imgcustomize/output"
        // aug_text_store takes the file's path literally, the other calls take path expressions, in which the
        // characters of a name like "ifcfg-eth0:1" must be escaped.
        let node = "/files" + augeasPath(path)
        func fail(_ action: String, _ error: Error) -> GuestError {
            GuestError(guest: guestDescription, action: "\(action) with Augeas lens \(lens)", path: path,
                       message: parseError(augeas, node: node) ?? Diagnostic(of: error).message,
                       hint: Diagnostic(of: error).hint)
        }
        func clear() throws {
            for subtree in ["/files", "/augeas/text", "/imgcustomize"] { _ = try augeas.remove(subtree) }
        }
        do { try clear() } catch { throw fail("reset", error) }
        defer { try? clear() }

        do {
            try augeas.set(input, original)
            try augeas.textStore(lens: lens, node: input, path: "/files" + path)
        } catch {
            throw fail("parse", error)
        }
        if let message = parseError(augeas, node: node) {
            throw GuestError(guest: guestDescription, action: "parse with Augeas lens \(lens)", path: path,
                             message: message, hint: "fix the file's syntax, or change it with edit-file")
        }
        let result = try body(HostAugeasEdit(augeas: augeas, root: node, guest: guestDescription, file: path))
        let updated: String
        do {
            try augeas.textRetrieve(lens: lens, nodeIn: input, path: node, nodeOut: output)
            updated = try augeas.get(output) ?? ""
        } catch {
            throw fail("save", error)
        }
        if updated != original {
            try write(path, Array(updated.utf8), mode: 0o644)
        }
        return result
    }

    /// Augeas's description of a failed parse or print of `node`: "line 3, char 5: <message>" (nil when none).
    private func parseError(_ augeas: Augeas, node: String) -> String? {
        let error = "/augeas/text\(node)/error"
        guard let kind = try? augeas.get(error) else { return nil }
        var text = ""
        if let line = try? augeas.get(error + "/line"), let char = try? augeas.get(error + "/char") {
            text += "line \(line), char \(char): "
        }
        text += (try? augeas.get(error + "/message")) ?? kind
        return text
    }
}

/// A file path as an Augeas path expression: every character that could be read as syntax is escaped (Augeas
/// accepts a backslash before any character), so "/etc/yum.repos.d/a b.repo" stays one path.
func augeasPath(_ path: String) -> String {
    path.split(separator: "/", omittingEmptySubsequences: true).map { component in
        var escaped = ""
        for (index, character) in component.enumerated() {
            let plain = character.isASCII && (character.isLetter || character.isNumber
                                              || character == "-" || character == "_"
                                              || (character == "." && index > 0))
            if !plain { escaped.append("\\") }
            escaped.append(character)
        }
        return "/" + escaped
    }.joined()
}

/// The `AugeasEdit` handed out for one file: host Augeas calls, with failures named after the guest and file.
struct HostAugeasEdit: AugeasEdit {
    let augeas: Augeas
    let root: String
    let guest: String
    let file: String

    private func guarded<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            let inner = Diagnostic(of: error)
            throw GuestError(guest: guest, action: "edit with Augeas", path: file, message: inner.message, hint: inner.hint)
        }
    }

    func get(_ path: String) throws -> String? { try guarded { try augeas.get(path) } }
    func set(_ path: String, _ value: String?) throws { try guarded { try augeas.set(path, value) } }
    func match(_ path: String) throws -> [String] { try guarded { try augeas.match(path) } }
    func insert(_ path: String, label: String, before: Bool) throws {
        try guarded { try augeas.insert(path, label: label, before: before) }
    }
    @discardableResult func remove(_ path: String) throws -> Int { try guarded { try augeas.remove(path) } }
    func label(_ path: String) throws -> String? { try guarded { try augeas.label(path) } }
}
