import Testing
@testable import Operations

@Suite struct GuestErrorTests {
    @Test func messageNamesGuestActionPathAndHint() {
        let error = GuestError(guest: "rhel7.qcow2", action: "read", path: "/etc/shadow",
                               message: "No such file or directory", hint: "check the path")
        #expect(error.description == "rhel7.qcow2: read /etc/shadow: No such file or directory\n  hint: check the path")
    }
}
