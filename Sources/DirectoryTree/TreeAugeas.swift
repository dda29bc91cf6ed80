import Operations

extension TreeFilesystem {
    /// Augeas never opens a file of the tree: the text goes through the tree's own contained resolution.
    public func withAugeas<T>(lens: String, path: String, _ body: (AugeasEdit) throws -> T) throws -> T {
        try editWithHostAugeas(try augeas(), lens: lens, path: path, body)
    }
}
