import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A new private directory (mode 0700) under TMPDIR, made by mkdtemp: its name cannot be guessed or taken over
/// beforehand, which matters for a tool that runs as root.
public func makeTemporaryDirectory(_ purpose: String) throws -> String {
    var template = Array((NSTemporaryDirectory() + "imgcustomize-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else {
        throw GuestError(guest: "imgcustomize", action: "create a temporary directory for \(purpose)",
                         path: NSTemporaryDirectory(), message: String(cString: strerror(errno)),
                         hint: "set TMPDIR to a writable directory")
    }
    return String(cString: made)
}
