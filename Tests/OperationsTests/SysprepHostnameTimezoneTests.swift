import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct SysprepHostnameTests {
    @Test func rhel7WritesEtcHostname() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/hostname", "localhost.localdomain\n")
        try tree.file("/etc/sysconfig/network", "NETWORKING=yes\n")
        let context = OperationContext(guest: GuestFacts(type: "linux", distro: "rhel", majorVersion: 7))
        #expect(try Hostname("web1.example.com").apply(to: tree.guest, context: context).changed == .yes)
        #expect(tree.text("/etc/hostname") == "web1.example.com\n")
        #expect(tree.text("/etc/sysconfig/network") == "NETWORKING=yes\n")
        #expect(try Hostname("web1.example.com").apply(to: tree.guest, context: context)
            == .unchanged("hostname already web1.example.com"))
    }

    @Test func rhel6SetsHostnameInSysconfigNetwork() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/sysconfig/network", "NETWORKING=yes\nHOSTNAME=localhost.localdomain\nNOZEROCONF=yes\n")
        let context = OperationContext(guest: GuestFacts(type: "linux", distro: "rhel", majorVersion: 6))
        #expect(try Hostname("web1").apply(to: tree.guest, context: context).changed == .yes)
        #expect(tree.text("/etc/sysconfig/network") == "NETWORKING=yes\nHOSTNAME=web1\nNOZEROCONF=yes\n")
        #expect(try !tree.guest.exists("/etc/hostname"))
        #expect(try Hostname("web1").apply(to: tree.guest, context: context).changed == .no)
    }

    @Test func debianRenamesTheLoopbackLineToo() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/hostname", "debian\n")
        try tree.file("/etc/hosts",
                      "127.0.0.1\tlocalhost\n127.0.1.1\tdebian.lan\tdebian\n\n::1\tlocalhost ip6-localhost\n")
        let context = OperationContext(guest: GuestFacts(type: "linux", distro: "debian", majorVersion: 12))
        #expect(try Hostname("web1.example.com").apply(to: tree.guest, context: context).changed == .yes)
        #expect(tree.text("/etc/hostname") == "web1.example.com\n")
        #expect(tree.text("/etc/hosts")
            == "127.0.0.1\tlocalhost\n127.0.1.1\tweb1.example.com\tweb1\n\n::1\tlocalhost ip6-localhost\n")
        #expect(try Hostname("web1.example.com").apply(to: tree.guest, context: context).changed == .no)
    }

    @Test(arguments: ["", "-web", "web_1", "a..b", String(repeating: "a", count: 64)])
    func badHostnamesAreRefused(name: String) {
        #expect(throws: ArgumentError.self) { try Hostname.parse(name) }
    }
}

@Suite struct SysprepTimezoneTests {
    @Test func localtimeBecomesARelativeSymlinkAndRHEL6ClockFollows() throws {
        let tree = try TemporaryTree()
        try tree.file("/usr/share/zoneinfo/Europe/Paris", "TZif2")
        try tree.file("/usr/share/zoneinfo/UTC", "TZif2")
        try tree.file("/etc/localtime", "TZif2 copy of UTC")
        try tree.file("/etc/sysconfig/clock", "ZONE=\"UTC\"\nUTC=true\n")
        let outcome = try Timezone("Europe/Paris").apply(to: tree.guest, context: OperationContext())
        #expect(outcome.changed == .yes)
        #expect(try tree.guest.lstat("/etc/localtime")?.kind == .symlink)
        #expect(try tree.guest.readlink("/etc/localtime") == "../usr/share/zoneinfo/Europe/Paris")
        #expect(try tree.guest.readText("/etc/localtime") == "TZif2")
        #expect(tree.text("/etc/sysconfig/clock") == "ZONE=\"Europe/Paris\"\nUTC=true\n")
        #expect(try Timezone("Europe/Paris").apply(to: tree.guest, context: OperationContext())
            == .unchanged("time zone already Europe/Paris"))
    }

    @Test func aZoneTheGuestLacksIsRefusedAndNothingChanges() throws {
        let tree = try TemporaryTree()
        try tree.file("/usr/share/zoneinfo/UTC", "TZif2")
        try tree.symlink("/etc/localtime", to: "../usr/share/zoneinfo/UTC")
        let error = try #require(throws: GuestError.self) {
            try Timezone("Mars/Olympus_Mons").apply(to: tree.guest, context: OperationContext())
        }
        #expect(error.description.contains("/usr/share/zoneinfo/Mars/Olympus_Mons"))
        #expect(try tree.guest.readlink("/etc/localtime") == "../usr/share/zoneinfo/UTC")
        #expect(throws: ArgumentError.self) { try Timezone.parse("../../etc/shadow") }
        #expect(throws: ArgumentError.self) { try Timezone.parse("/UTC") }
        #expect(try Timezone.parse("America/Argentina/Buenos_Aires").zone == "America/Argentina/Buenos_Aires")
    }
}
