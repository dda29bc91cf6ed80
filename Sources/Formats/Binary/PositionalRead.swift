#if canImport(Glibc)
import Glibc
#endif

/// Reads up to `buffer.count` bytes of `descriptor` at `offset` with pread (any number of threads may read one file
/// at once), going on after interrupted and short reads: fewer bytes only at the end of the file. The one read loop
/// of the package's file readers; they turn `failure` (an errno) into their own error, naming the file.
func positionalRead(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64)
    -> (count: Int, failure: Int32?) {
    guard let base = buffer.baseAddress else { return (0, nil) }
    var done = 0
    while done < buffer.count {
        let count = pread(descriptor, base + done, buffer.count - done, off_t(offset) + off_t(done))
        if count < 0 {
            if errno == EINTR { continue }
            return (done, errno)
        }
        if count == 0 { break }
        done += count
    }
    return (done, nil)
}
