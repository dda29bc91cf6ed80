import Foundation
import Testing
import TestSupport
@testable import Customize

/// How many appliances a batch launches at once: the user's number, or one per core within half the memory.
@Suite struct BatchLaunchesTests {
    @Test func oneLaunchPerCoreWhereTheMemoryHoldsThem() {
        // 1280 MiB appliances and 256 MiB for qemu: half of 24 GiB holds eight.
        #expect(BatchLaunches.count(images: 10, asked: nil, applianceMiB: nil, cores: 2, availableMiB: 24_576) == 2)
        #expect(BatchLaunches.count(images: 10, asked: nil, applianceMiB: nil, cores: 16, availableMiB: 24_576) == 8)
        #expect(BatchLaunches.count(images: 10, asked: nil, applianceMiB: 4096, cores: 16, availableMiB: 24_576) == 2)
        // Too little memory for two, or for one: one launch all the same.
        #expect(BatchLaunches.count(images: 10, asked: nil, applianceMiB: nil, cores: 8, availableMiB: 4_000) == 1)
        #expect(BatchLaunches.count(images: 10, asked: nil, applianceMiB: nil, cores: 8, availableMiB: 500) == 1)
        // Memory unknown: the cores decide.
        #expect(BatchLaunches.count(images: 10, asked: nil, applianceMiB: nil, cores: 4, availableMiB: nil) == 4)
    }

    @Test func neverMoreLaunchesThanImagesAndTheUsersNumberWins() {
        #expect(BatchLaunches.count(images: 3, asked: nil, applianceMiB: nil, cores: 16, availableMiB: 65_536) == 3)
        #expect(BatchLaunches.count(images: 10, asked: 1, applianceMiB: nil, cores: 16, availableMiB: 65_536) == 1)
        #expect(BatchLaunches.count(images: 10, asked: 5, applianceMiB: nil, cores: 2, availableMiB: 1_000) == 5)
        #expect(BatchLaunches.count(images: 2, asked: 5, applianceMiB: nil, cores: 2, availableMiB: nil) == 2)
    }

    @Test func availableMemoryIsReadFromMeminfo() throws {
        let directory = try TestDirectory("meminfo")
        let file = directory.path("meminfo")
        try "MemTotal:       24608280 kB\nMemFree:         1234567 kB\nMemAvailable:   20971520 kB\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        #expect(BatchLaunches.availableMemoryMiB(meminfo: file) == 20_480)
        try "MemTotal:       24608280 kB\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(BatchLaunches.availableMemoryMiB(meminfo: file) == nil)
        #expect(BatchLaunches.availableMemoryMiB(meminfo: directory.path("missing")) == nil)
        #expect((BatchLaunches.availableMemoryMiB() ?? 0) > 0, "this machine's /proc/meminfo")
    }
}
