import Foundation
import Testing
@testable import Operations

extension ApplianceTests {
    @Suite struct SessionTests {
        /// The first launch on a machine pays for the KVM probe; the next one goes straight to the remembered verdict.
        @Test func theAccelerationVerdictIsRememberedBetweenSessions() throws {
            let directory = try TemporaryDirectory()
            let blank = directory.path("blank.qcow2")
            try runTool("qemu-img", ["create", "-q", "-f", "qcow2", blank, "16M"])
            let cache = directory.url.appendingPathComponent("cache/acceleration.json")
            let drive = ApplianceDrive(path: blank, format: .qcow2, readonly: true)

            let firstLogs = LogRecorder()
            let first = try ApplianceSession(drives: [drive], options: ApplianceOptions(
                accelerationCache: cache, logger: firstLogs.logger()))
            try first.close()
            let secondLogs = LogRecorder()
            let second = try ApplianceSession(drives: [drive], options: ApplianceOptions(
                accelerationCache: cache, logger: secondLogs.logger()))
            try second.close()
            print("first launch: \(first.launchReport)\nsecond launch: \(second.launchReport)")

            if let forced = ProcessInfo.processInfo.environment[Acceleration.environmentVariable], forced != "auto" {
                #expect(first.launchReport.decision == .requested)
                return
            }
            guard access("/dev/kvm", R_OK | W_OK) == 0 else {
                #expect(first.launchReport.decision == .noKVM)
                return
            }
            #expect(first.launchReport.decision == .probed)
            #expect(FileManager.default.fileExists(atPath: cache.path))
            #expect(second.launchReport.decision == .cached)
            #expect(second.launchReport.acceleration == first.launchReport.acceleration)
            #expect(second.launchReport.kvmFailure == nil)

            let warnings = { (logs: LogRecorder) in
                logs.messages.filter { $0.0 >= .warning }.map(\.1)
            }
            if let failure = first.launchReport.kvmFailure {
                // Where KVM is broken, the user reads one line saying so, once per machine.
                #expect(first.launchReport.acceleration == .tcg)
                #expect(warnings(firstLogs) == [
                    "KVM is unusable here (qemu: \(failure)); using software emulation (TCG), slower",
                ])
                #expect(warnings(secondLogs).isEmpty)
            }
        }

        @Test func inspectingSomethingWithoutAnOperatingSystemSaysWhatWasFound() throws {
            let directory = try TemporaryDirectory()
            let image = directory.path("data.raw")
            try runTool("mkfs.ext4", ["-q", "-F", image, "32M"])
            let error = #expect(throws: GuestError.self) {
                _ = try ApplianceSession.inspect(image: image, format: .raw)
            }
            #expect(error?.guest == image)
            #expect(error?.message == "no operating system found; filesystems: /dev/sda (ext4)")
        }
    }
}

/// What needs no appliance.
@Suite struct ApplianceUnitTests {
    @Test func aMissingImageIsNamedBeforeAnythingLaunches() throws {
        let error = #expect(throws: GuestError.self) {
            _ = try ApplianceSession(drives: [ApplianceDrive(path: "/nonexistent/disk.qcow2", format: .qcow2)])
        }
        #expect(error?.description.contains("/nonexistent/disk.qcow2") == true)
    }

    @Test(arguments: [
        (Acceleration.auto, [String: String](), Acceleration.auto),
        (.auto, ["IMGCUSTOMIZE_ACCEL": "tcg"], .tcg),
        (.auto, ["IMGCUSTOMIZE_ACCEL": "KVM"], .kvm),
        (.kvm, ["IMGCUSTOMIZE_ACCEL": "tcg"], .kvm),
        (.tcg, [:], .tcg),
    ])
    func accelerationOptionThenEnvironment(requested: Acceleration, environment: [String: String],
                                           expected: Acceleration) throws {
        #expect(try Acceleration.resolve(requested, environment: environment) == expected)
    }

    @Test func anUnknownAccelerationIsRefusedWithTheChoices() {
        let error = #expect(throws: GuestError.self) {
            try Acceleration.resolve(.auto, environment: ["IMGCUSTOMIZE_ACCEL": "hvf"])
        }
        #expect(error?.hint == "use kvm, tcg or auto, or unset IMGCUSTOMIZE_ACCEL")
    }

    @Test(arguments: [
        (InspectionMethod.automatic, [String: String](), InspectionMethod.automatic),
        (.automatic, ["IMGCUSTOMIZE_INSPECTION": "LIBGUESTFS"], .libguestfs),
        (.libguestfs, ["IMGCUSTOMIZE_INSPECTION": "automatic"], .libguestfs),
    ])
    func inspectionOptionThenEnvironment(requested: InspectionMethod, environment: [String: String],
                                         expected: InspectionMethod) throws {
        #expect(try InspectionMethod.resolve(requested, environment: environment) == expected)
    }

    @Test func anUnknownInspectionMethodIsRefusedWithTheChoices() {
        let error = #expect(throws: GuestError.self) {
            try InspectionMethod.resolve(.automatic, environment: ["IMGCUSTOMIZE_INSPECTION": "fast"])
        }
        #expect(error?.message == "unknown inspection method \"fast\"")
        #expect(error?.hint == "use libguestfs or automatic, or unset IMGCUSTOMIZE_INSPECTION")
    }

    @Test func qemuErrorLineIsFoundInTheConsole() {
        let console = [
            "libguestfs: some library chatter",
            "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69",
            "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed.",
        ]
        #expect(Launcher.qemuError(in: console) == "failed to set MSR 0x10a to 0x69")
        #expect(Launcher.qemuError(in: ["[    0.000000] Linux version 6.1"]) == nil)
        #expect(Launcher.qemuError(in: [
            "qemu-system-x86_64: warning: host doesn't support requested feature",
            "qemu-system-x86_64: -drive file=/x.qcow2: Could not open '/x.qcow2': Permission denied",
        ]) == "-drive file=/x.qcow2: Could not open '/x.qcow2': Permission denied")
    }

    @Test func theCacheAnswersOnlyForTheSameQemuAndKernel() throws {
        let directory = try TemporaryDirectory()
        let cache = AccelerationCache(file: directory.url.appendingPathComponent("sub/acceleration.json"))
        let logger = LogRecorder().logger()
        let key = try #require(AccelerationCache.key(hypervisor: "/bin/sh"))
        #expect(cache.entry(for: key, logger: logger) == nil)
        let entry = AccelerationCache.Entry(key: key, verdict: .tcg, reason: "qemu: failed to set MSR 0x10a to 0x69")
        cache.record(entry, logger: logger)
        #expect(cache.entry(for: key, logger: logger) == entry)
        var otherKernel = key
        otherKernel.kernel += "-next"
        #expect(cache.entry(for: otherKernel, logger: logger) == nil)
        try Data("{ not json".utf8).write(to: cache.file)
        #expect(cache.entry(for: key, logger: logger) == nil)
    }

    @Test(arguments: [
        ("/etc/shadow", "/etc/shadow"),
        ("/etc/yum.repos.d/a b.repo", "/etc/yum.repos.d/a\\ b.repo"),
        ("/root/.bashrc", "/root/\\.bashrc"),
        ("/etc/x[1]", "/etc/x\\[1\\]"),
    ])
    func augeasPathsEscapeSyntax(path: String, expected: String) {
        #expect(augeasPath(path) == expected)
    }

    @Test func byteCountsReadLikeSizes() {
        #expect(formatBytes(0) == "0 B")
        #expect(formatBytes(1536) == "1.5 KiB")
        #expect(formatBytes(3 << 30) == "3.0 GiB")
    }
}
