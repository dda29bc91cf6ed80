import Foundation
import Testing
@testable import Appliance
import TestSupport
import Host

/// The script a batch's `select` runs in the appliance to limit LVM to the selected disk (`LVMFilter`), run in bash on
/// a sysfs tree of the test's own with `lvm` standing in: it must find the disk the daemon marked, whatever its
/// kernel name, and refuse where no disk or two disks carry the mark. That the file it writes is the daemon's own
/// (`lvm_set_filter`'s, byte for byte, on the same disk) is checked in a real appliance by `FixtureInspectionTests`.
@Suite struct LVMFilterTests {
    /// Runs the script for `mark` with disks whose read-ahead is `readAhead` (KiB, by kernel name); returns what it
    /// printed, its exit status, the lvm.conf it wrote and the read-ahead each disk has after it.
    func run(mark: Int, readAhead: [String: Int], devicesFile: Bool = true) throws
        -> (said: String, status: Int32, conf: String?, after: [String: Int]) {
        let directory = try TestDirectory()
        for (disk, kib) in readAhead {
            let queue = directory.path("sys/block/\(disk)/queue")
            try FileManager.default.createDirectory(atPath: queue, withIntermediateDirectories: true)
            try "\(kib)\n".write(toFile: queue + "/read_ahead_kb", atomically: false, encoding: .utf8)
        }
        let lvmDir = directory.path("lvm")
        try FileManager.default.createDirectory(atPath: lvmDir + "/cache", withIntermediateDirectories: true)
        try "stale".write(toFile: lvmDir + "/cache/.cache", atomically: false, encoding: .utf8)
        let script = """
            lvm() { echo "lvm $*"; }
            \(devicesFile ? "lvmdevices() { :; }" : "")
            export LVM_SYSTEM_DIR=\(shellQuoted(lvmDir)) PATH=/usr/bin:/bin
            """ + "\n" + LVMFilter.activationScript(markKiB: mark, sysfs: directory.path("sys"))
        let process = try runProcess("/bin/bash", ["-c", script], mergingErrors: true)
        var after: [String: Int] = [:]
        for disk in readAhead.keys {
            let text = try String(contentsOfFile: directory.path("sys/block/\(disk)/queue/read_ahead_kb"), encoding: .utf8)
            after[disk] = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(FileManager.default.fileExists(atPath: lvmDir + "/cache/.cache") == (process.status != 0))
        return (process.stdout, process.status, try? String(contentsOfFile: lvmDir + "/lvm.conf", encoding: .utf8), after)
    }

    @Test func theMarkedDiskIsFilteredWhateverTheKernelCalledIt() throws {
        // The second guest drive (libguestfs's /dev/sdb) came up as sdd, after the appliance's own disk.
        let mark = LVMFilter.markKiB(drive: 1)
        let result = try run(mark: mark, readAhead: ["sda": 128, "sdb": LVMFilter.markKiB(drive: 0), "sdc": 128,
                                                     "sdd": mark])
        #expect(result.status == 0, "\(result.said)")
        #expect(result.said == "disk /dev/sdd\nlvm vgchange -ay\n")
        #expect(LVMFilter.disk(in: result.said) == "/dev/sdd")
        #expect(LVMFilter.disk(in: "disk /dev/sdd; rm -rf /\n") == nil)
        #expect(LVMFilter.disk(in: "  2 logical volume(s) in volume group \"rhel\" now active") == nil)
        let rules = "        \"a|^/dev/sdd$|\",\n        \"a|^/dev/sdd[0-9]|\",\n        \"r|.*|\"\n"
        #expect(result.conf == "devices {\n    use_devicesfile = 0\n    filter = [\n" + rules + "    ]\n"
                + "    global_filter = [\n" + rules + "    ]\n}\n")
        // The mark is taken off; the other disks keep what they had.
        #expect(result.after == ["sda": 128, "sdb": 4096, "sdc": 128, "sdd": 128])
    }

    @Test func anLVMWithoutADevicesFileGetsNoSettingForIt() throws {
        let result = try run(mark: 4096, readAhead: ["sda": 4096], devicesFile: false)
        #expect(result.status == 0, "\(result.said)")
        #expect(result.conf?.hasPrefix("devices {\n    filter = [\n        \"a|^/dev/sda$|\",\n") == true,
                "\(result.conf ?? "none")")
    }

    @Test func noMarkOrTwoMarksStopBeforeLVMIsTouched() throws {
        let none = try run(mark: 4100, readAhead: ["sda": 128, "sdb": 4096])
        #expect(none.status != 0)
        #expect(none.said == "no disk carries the mark 4100 the daemon set\n")
        #expect(none.conf == nil)
        let two = try run(mark: 4100, readAhead: ["sda": 4100, "sdb": 4100])
        #expect(two.status != 0)
        #expect(two.said == "two disks carry the mark 4100: /dev/sda and /dev/sdb\n")
        #expect(two.conf == nil)
    }

    @Test func marksAreWholePagesAndDifferPerDrive() {
        let marks = (0..<64).map { LVMFilter.markKiB(drive: $0) }
        #expect(Set(marks).count == 64)
        #expect(marks.allSatisfy { $0 % 4 == 0 && $0 != 128 })
    }
}
