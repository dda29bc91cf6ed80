/// `word` as one word of a POSIX shell command line: in single quotes, each quote inside written as '\''.
package func shellQuoted(_ word: String) -> String {
    "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: #"'\''"#) + "'"
}
