import Foundation
import Testing
@testable import Formats

@Suite struct QCOW2HeaderTests {
    @Test func truncatedHeaderNamesOffsetAndFile() {
        let bytes: [UInt8] = QCOW2Header.magic + [0, 0, 0, 3]
        #expect(throws: FormatError.self) {
            try QCOW2Header(prefix: bytes, fileSize: Int64(bytes.count), file: "short.qcow2")
        }
        do {
            _ = try QCOW2Header(prefix: bytes, fileSize: Int64(bytes.count), file: "short.qcow2")
        } catch {
            #expect(error.file == "short.qcow2")
            #expect(error.offset == 8)
        }
    }
}
