import CGuestFS

extension ApplianceFilesystem {
    /// Augeas starts once per session with nothing loaded; each call registers one lens for one file, loads, edits,
    /// saves in place (no .augsave backups left in the guest), and unregisters it so the next call starts clean.
    public func withAugeas<T>(lens: String, path: String, _ body: (AugeasEdit) throws -> T) throws -> T {
        try validate(path, "edit with Augeas")
        if !augeasStarted {
            try guestfs.run("start Augeas") {
                guestfs_aug_init($0, "/", imgc_aug_no_load | imgc_aug_no_modl_autoload)
            }
            augeasStarted = true
        }
        // The transform is named after the lens's module ("Shellvars.lns" -> /augeas/load/Shellvars).
        let module = lens.split(separator: ".", maxSplits: 1).first.map(String.init) ?? lens
        guard !module.isEmpty, module.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw GuestError(guest: guestDescription, action: "edit with Augeas", path: path,
                             message: "\"\(lens)\" is not an Augeas lens name", hint: "e.g. Shellvars.lns")
        }
        try guestfs.run("register the Augeas lens \(lens) for", path) {
            guestfs_aug_transform_argv($0, lens, path, nil)
        }
        let outcome = Result { try edit(lens: lens, path: path, body) }
        // Dropping the whole transform, not excluding the file (libguestfs's "remove" adds an excl, which would
        // outlive this call and hide the file from the next one).
        _ = try guestfs.number("unregister the Augeas lens \(lens) for", path) {
            guestfs_aug_rm($0, "/augeas/load/" + module)
        }
        return try outcome.get()
    }

    private func edit<T>(lens: String, path: String, _ body: (AugeasEdit) throws -> T) throws -> T {
        // aug_load also drops what earlier calls left unsaved, and the trees of files no longer registered.
        try guestfs.run("load with Augeas", path) { guestfs_aug_load($0) }
        try checkAugeasErrors(lens: lens, path: path, action: "parse with the Augeas lens \(lens)")
        let value = try body(ApplianceAugeasEdit(guestfs: guestfs, root: "/files" + Self.augeasPath(path)))
        switch guestfs.perform("save with the Augeas lens \(lens)", path, { handle -> Int32? in
            guestfs_aug_save(handle) == -1 ? nil : 0
        }) {
        case .success:
            return value
        case .failure(let failure):
            // Augeas says why under /augeas/files/PATH/error; libguestfs only says that saving failed.
            try checkAugeasErrors(lens: lens, path: path, action: "save with the Augeas lens \(lens)")
            throw failure.error
        }
    }

    /// Turns Augeas's error nodes for `path` (or for the lens itself, e.g. a misspelt lens name) into a GuestError.
    private func checkAugeasErrors(lens: String, path: String, action: String) throws {
        let fileErrors = "/augeas/files" + Self.augeasPath(path) + "/error"
        let found = try guestfs.strings("look for Augeas errors about", path) { guestfs_aug_match($0, fileErrors) }
            + guestfs.strings("look for Augeas errors about", path) { guestfs_aug_match($0, "/augeas/load/*/error") }
        guard let node = found.first else { return }
        func detail(_ child: String) -> String? {
            try? guestfs.string("read the Augeas error", path) { guestfs_aug_get($0, node + child) }
        }
        var message = detail("/message") ?? detail("") ?? "unknown Augeas error"
        if let kind = detail(""), kind != message { message = "\(kind): \(message)" }
        if let line = detail("/line") {
            message += " (line \(line)" + (detail("/char").map { ", char \($0)" } ?? "") + ")"
        }
        throw GuestError(guest: guestDescription, action: action, path: path, message: message,
                         hint: "fix the file's syntax in the guest, or change it with edit-file instead")
    }

    /// A file path as an Augeas path expression: every character that could be read as syntax is escaped (Augeas
    /// accepts a backslash before any character), so "/etc/yum.repos.d/a b.repo" stays one path.
    static func augeasPath(_ path: String) -> String {
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
}

/// The Augeas tree of one file, edited inside the appliance.
struct ApplianceAugeasEdit: AugeasEdit {
    let guestfs: Guestfs
    let root: String

    func get(_ path: String) throws -> String? {
        let matches = try match(path)
        guard matches.count == 1 else {
            if matches.isEmpty { return nil }
            throw GuestError(guest: guestfs.guest, action: "read the Augeas node", path: path,
                             message: "\(matches.count) nodes match where one was expected")
        }
        switch guestfs.perform("read the Augeas node", path, { Guestfs.takeString(guestfs_aug_get($0, path)) }) {
        case .success(let value): return value
        // A node without a value ("[section]" headers, "!!"-less entries) is not an error: libguestfs reports it as
        // one because its protocol has no null string.
        case .failure(let failure) where failure.error.message.contains("NULL"): return nil
        case .failure(let failure): throw failure.error
        }
    }

    func set(_ path: String, _ value: String?) throws {
        if let value {
            try guestfs.run("set the Augeas node", path) { guestfs_aug_set($0, path, value) }
        } else {
            try guestfs.run("clear the Augeas node", path) { guestfs_aug_clear($0, path) }
        }
    }

    func match(_ path: String) throws -> [String] {
        try guestfs.strings("match Augeas nodes", path) { guestfs_aug_match($0, path) }
    }

    func insert(_ path: String, label: String, before: Bool) throws {
        try guestfs.run("insert \(label) \(before ? "before" : "after") the Augeas node", path) {
            guestfs_aug_insert($0, path, label, before ? 1 : 0)
        }
    }

    @discardableResult func remove(_ path: String) throws -> Int {
        Int(try guestfs.number("remove Augeas nodes", path) { guestfs_aug_rm($0, path) })
    }

    func label(_ path: String) throws -> String? {
        guard try !match(path).isEmpty else { return nil }
        return try guestfs.string("read the label of the Augeas node", path) { guestfs_aug_label($0, path) }
    }
}
