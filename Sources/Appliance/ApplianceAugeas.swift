import Diagnostics
import Operations

extension ApplianceFilesystem {
    /// Augeas edits of guest files run on the host (see `editWithHostAugeas`): the file is read from the appliance,
    /// and written back only when it changed. One host Augeas handle per session: compiling a lens takes longer
    /// than the edit itself.
    public func withAugeas<T>(lens: String, path: String, _ body: (AugeasEdit) throws -> T) throws -> T {
        try validate(path, "edit with Augeas")
        if augeas == nil {
            do {
                augeas = try Augeas()
            } catch {
                let inner = Diagnostic(of: error)
                throw GuestError(guest: guestDescription, action: "start Augeas to edit", path: path,
                                 message: inner.message,
                                 hint: inner.hint ?? "check that augeas-lenses is installed (scripts/install-deps)")
            }
        }
        return try editWithHostAugeas(augeas!, lens: lens, path: path, body)
    }
}
