import Diagnostics
import Operations

/// A failure of a customize/apply/sparsify run, as the user sees it: the image, what failed, what to do.
public struct CustomizeError: DiagnosticError, Sendable {
    public var image: String
    public var message: String
    public var hint: String?

    public init(image: String, _ message: String, hint: String? = nil) {
        self.image = image
        self.message = message
        self.hint = hint
    }

    public var diagnostic: Diagnostic { Diagnostic("\(image): \(message)", hint: hint, image: image) }
}
