import Glibc

/// What a file is when it is not a regular file, as messages name it ("it is a FIFO"); nil for a regular file. One
/// wording for every check of a path the user gave: an image, a destination, a host input.
public func fileKind(_ mode: mode_t) -> String? {
    switch mode & S_IFMT {
    case S_IFREG: nil
    case S_IFDIR: "a directory"
    case S_IFLNK: "a symbolic link"
    case S_IFBLK: "a block device"
    case S_IFCHR: "a character device"
    case S_IFIFO: "a FIFO"
    case S_IFSOCK: "a socket"
    default: "not a regular file"
    }
}
