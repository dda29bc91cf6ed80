import Diagnostics
import Foundation
import Synchronization
import Testing
@testable import Operations
@testable import Appliance
import TestSupport
import Host

extension ApplianceTests {
    @Suite struct SessionTests {
        /// The first launch on a machine pays for the KVM probe; the next one goes straight to the remembered verdict.
        @Test func theAccelerationVerdictIsRememberedBetweenSessions() throws {
            let directory = try TestDirectory()
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

            // The first launch extracts the kernel's PVH entry (before it when supermin's appliance was there
            // already, after it otherwise); the second boots it, with no firmware loading and no decompression.
            #expect(secondLogs.messages.contains { $0.1.hasPrefix("appliance kernel: booted through its PVH entry") },
                    "\(secondLogs.messages.map(\.1).filter { $0.contains("kernel") })")
            // and the initrd without the modules no launch uses.
            #expect(secondLogs.messages.contains { $0.1.hasPrefix("appliance initrd: without the modules no launch uses") },
                    "\(secondLogs.messages.map(\.1).filter { $0.contains("initrd") })")
            // Both boot imgcustomize's /init, and say so at -v.
            for logs in [firstLogs, secondLogs] {
                #expect(logs.messages.contains { $0.1.hasPrefix("appliance: imgcustomize's shorter /init, built from ") },
                        "\(logs.messages.map(\.1).filter { $0.hasPrefix("appliance") })")
            }

            // The library logs no warning: it returns them, and the CLI prints them.
            let logged = { (logs: LogRecorder) in logs.messages.filter { $0.0 >= .warning }.map(\.1) }
            #expect(logged(firstLogs).isEmpty && logged(secondLogs).isEmpty)
            if let failure = first.launchReport.kvmFailure {
                // Where KVM is broken, the user reads one line saying so, once per machine.
                #expect(first.launchReport.acceleration == .tcg)
                #expect(first.warnings == [
                    "KVM is unusable here (\(failure)); using software emulation (TCG), slower; remembered in "
                        + cache.path,
                ])
                #expect(second.warnings.isEmpty)
            }
        }

        /// imgcustomize's /init runs mdadm only where blkid sees a RAID member: an array is still assembled, and
        /// its filesystem found. The array is made by libguestfs's own appliance (guestfish), as a user's would be.
        @Test func aRAIDArrayIsAssembledByImgcustomizesInit() throws {
            let directory = try TestDirectory()
            let image = directory.path("raid.qcow2")
            try runTool("qemu-img", ["create", "-q", "-f", "qcow2", image, "200M"])
            // Under software emulation, as Fixtures/build-images: qemu aborts under KVM on this project's machines.
            let settings = ProcessInfo.processInfo.environment["LIBGUESTFS_BACKEND_SETTINGS"] ?? "force_tcg"
            _ = try runTool("env", ["LIBGUESTFS_BACKEND_SETTINGS=\(settings)", "guestfish", "-a", image, "run", ":", "part-init", "/dev/sda", "mbr",
                                          ":", "part-add", "/dev/sda", "p", "2048", "200000",
                                          ":", "part-add", "/dev/sda", "p", "200001", "398000",
                                          ":", "md-create", "md0", "/dev/sda1 /dev/sda2", "level:raid1",
                                          ":", "mkfs", "ext4", "/dev/md/md0"])
            let logs = LogRecorder()
            let error = #expect(throws: GuestError.self) {
                _ = try ApplianceSession.inspect(image: image, format: .qcow2,
                                                 options: ApplianceOptions(logger: logs.logger()))
            }
            // The array's name (md0, md127) depends on which of udev and mdadm assembled it first.
            let message = try #require(error?.message)
            #expect(message.wholeMatch(of: #/no operating system found; filesystems: /dev/md[0-9]+ \(ext4\)/#) != nil, "\(message)")
            #expect(logs.messages.contains { $0.1.hasPrefix("appliance: imgcustomize's shorter /init") })
        }

        @Test func inspectingSomethingWithoutAnOperatingSystemSaysWhatWasFound() throws {
            let directory = try TestDirectory()
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
        let error = #expect(throws: HostError.self) {
            try Acceleration.resolve(.auto, environment: ["IMGCUSTOMIZE_ACCEL": "hvf"])
        }
        #expect(error?.diagnostic.hint == "use kvm, tcg or auto, or unset IMGCUSTOMIZE_ACCEL")
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
        let error = #expect(throws: HostError.self) {
            try InspectionMethod.resolve(.automatic, environment: ["IMGCUSTOMIZE_INSPECTION": "fast"])
        }
        #expect(error?.diagnostic.message == "IMGCUSTOMIZE_INSPECTION: unknown inspection method \"fast\"")
        #expect(error?.diagnostic.hint == "use automatic, native, appliance or libguestfs, or unset IMGCUSTOMIZE_INSPECTION")
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
        let directory = try TestDirectory()
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

/// A qemu that hangs the way KVM does in broken nested virtualization: started, CPU never running, nothing on the
/// console. `when` is a shell `case` pattern matched against qemu's arguments; other launches run normally. The
/// script records the pid of each qemu it starts for the appliance, so that a test can check it is gone.
func hangingHypervisor(in directory: TestDirectory, when pattern: String) throws -> (script: String, pids: String) {
    let script = directory.path("hanging-qemu")
    let pids = directory.path("qemu-pids")
    let qemu = "/usr/bin/qemu-system-x86_64"
    // A launch matching `pattern` hangs whatever this host's KVM does (it may hang by itself, or abort with "failed
    // to set MSR"): its guest is never started (-S), and it runs under software emulation (accel=tcg, -cpu max).
    let text = """
        #!/bin/sh
        case " $* " in *" -kernel "*) echo $$ >> '\(pids)' ;; esac
        case " $* " in \(pattern))
          previous=
          for argument in "$@"; do
            shift
            case "$previous" in -cpu) argument=max ;; esac
            case "$argument" in *accel=kvm*) argument=$(printf '%s' "$argument" | sed 's/accel=kvm[:a-z]*/accel=tcg/') ;; esac
            set -- "$@" "$argument"
            previous=$argument
          done
          exec \(qemu) -S "$@" ;;
        esac
        exec \(qemu) "$@"

        """
    try Data(text.utf8).write(to: URL(fileURLWithPath: script))
    chmod(script, 0o755)
    return (script, pids)
}

/// Every qemu the script started has exited.
func allExited(_ pidFile: String) throws -> Bool {
    let pids = try String(contentsOfFile: pidFile, encoding: .utf8).split(separator: "\n").compactMap { Int32($0) }
    return !pids.isEmpty && pids.allSatisfy { kill($0, 0) != 0 && errno == ESRCH }
}

extension ApplianceTests {
    @Suite struct LaunchLimitTests {
        /// KVM that hangs (qemu runs, the guest never prints) is given up within seconds for software emulation,
        /// with one line saying so, and the verdict is remembered: the next launch does not try KVM again.
        @Test func aHangingKVMFallsBackToSoftwareEmulationAndIsRemembered() throws {
            let directory = try TestDirectory()
            let blank = directory.path("blank.qcow2")
            try runTool("qemu-img", ["create", "-q", "-f", "qcow2", blank, "16M"])
            let (hypervisor, pids) = try hangingHypervisor(in: directory, when: "*accel=kvm*")
            let cache = directory.url.appendingPathComponent("cache/acceleration.json")
            func options(_ logs: LogRecorder) -> ApplianceOptions {
                // Any writable device will do for "KVM is there": the test hypervisor decides how KVM behaves.
                var options = ApplianceOptions(acceleration: .auto, accelerationCache: cache, logger: logs.logger(),
                                               limits: LaunchLimits())
                options.hypervisor = hypervisor
                options.kvmDevice = "/dev/null"
                return options
            }
            let drive = ApplianceDrive(path: blank, format: .qcow2, readonly: true)

            let firstLogs = LogRecorder()
            let first = try ApplianceSession(drives: [drive], options: options(firstLogs))
            try first.close()
            #expect(first.launchReport.acceleration == .tcg)
            #expect(first.launchReport.decision == .probed)
            let reason = "qemu ran under KVM but the guest printed no kernel message within 10 s: it hangs"
            #expect(first.launchReport.kvmFailure == reason)
            // Returned for the caller to show, not logged.
            #expect(first.warnings == [
                "KVM is unusable here (\(reason)); using software emulation (TCG), slower; remembered in \(cache.path)",
            ])
            #expect(firstLogs.messages.filter { $0.0 >= .warning }.isEmpty)
            let verdict = try JSONSerialization.jsonObject(with: Data(contentsOf: cache)) as? [String: Any]
            #expect(verdict?["verdict"] as? String == "tcg")
            #expect(verdict?["reason"] as? String == reason)
            // The hung qemu was killed, not left behind.
            #expect(try allExited(pids))

            let secondLogs = LogRecorder()
            let second = try ApplianceSession(drives: [drive], options: options(secondLogs))
            try second.close()
            #expect(second.launchReport.decision == .cached)
            #expect(second.launchReport.acceleration == .tcg)
            #expect(secondLogs.messages.filter { $0.0 >= .warning }.isEmpty)
            // One qemu for the hung KVM attempt and one for each software-emulated launch.
            #expect(try String(contentsOfFile: pids, encoding: .utf8).split(separator: "\n").count == 3)
        }

        /// A launch that never comes up, whatever the acceleration, fails at the overall limit with what the console
        /// said and what to try; its qemu is killed.
        @Test func aLaunchThatNeverComesUpFailsAtTheLimit() throws {
            let directory = try TestDirectory()
            let blank = directory.path("blank.qcow2")
            try runTool("qemu-img", ["create", "-q", "-f", "qcow2", blank, "16M"])
            let (hypervisor, pids) = try hangingHypervisor(in: directory, when: "*")
            var options = ApplianceOptions(acceleration: .tcg, limits: LaunchLimits(launchSeconds: 8))
            options.hypervisor = hypervisor
            let started = Date()
            let error = #expect(throws: GuestError.self) {
                _ = try ApplianceSession(drives: [ApplianceDrive(path: blank, format: .qcow2, readonly: true)],
                                         options: options)
            }
            #expect(Date().timeIntervalSince(started) < 120)
            #expect(error?.guest == blank)
            #expect(error?.action == "launch the appliance")
            #expect(error?.message.hasPrefix("the appliance was not up within 8 s under software emulation (TCG); ")
                    == true)
            #expect(error?.hint?.contains("--launch-timeout or IMGCUSTOMIZE_LAUNCH_TIMEOUT") == true)
            #expect(error?.hint?.contains("the image is unchanged") == true)
            #expect(try allExited(pids))
        }

        /// A boot that gets stuck (its kernel started, then its console says nothing) is given up once it has been
        /// silent for the limit, not at the overall limit, and launched once more; the run says so, and the stuck
        /// qemu is killed.
        @Test func aStuckBootIsLaunchedAgain() throws {
            let directory = try TestDirectory()
            let blank = directory.path("blank.qcow2")
            try runTool("qemu-img", ["create", "-q", "-f", "qcow2", blank, "16M"])
            let script = directory.path("stuck-once-qemu"), pids = directory.path("qemu-pids")
            let stuck = directory.path("stuck")
            try Data("""
                #!/bin/sh
                case " $* " in *" -kernel "*)
                  echo $$ >> '\(pids)'
                  if [ ! -e '\(stuck)' ]; then
                    : > '\(stuck)'
                    echo '[    0.000000] Linux version 6.1.0 (a boot that gets stuck)'
                    exec sleep 3600
                  fi ;;
                esac
                exec /usr/bin/qemu-system-x86_64 "$@"

                """.utf8).write(to: URL(fileURLWithPath: script))
            chmod(script, 0o755)
            var options = ApplianceOptions(acceleration: .tcg, limits: LaunchLimits(silentSeconds: 30))
            options.hypervisor = script
            let started = Date()
            let session = try ApplianceSession(drives: [ApplianceDrive(path: blank, format: .qcow2, readonly: true)],
                                               options: options)
            try session.close()
            #expect(Date().timeIntervalSince(started) < 300)
            #expect(session.warnings == [
                "the appliance's kernel started under software emulation (TCG), then its console said nothing for "
                    + "30 s: it is stuck; launched it again",
            ])
            #expect(try String(contentsOfFile: pids, encoding: .utf8).split(separator: "\n").count == 2)
            #expect(try allExited(pids))
        }

        /// Cancelling while the appliance launches stops it at once: qemu killed, `RunCancelled` thrown.
        @Test func cancellingDuringTheLaunchKillsQemu() throws {
            let directory = try TestDirectory()
            let blank = directory.path("blank.qcow2")
            try runTool("qemu-img", ["create", "-q", "-f", "qcow2", blank, "16M"])
            let (hypervisor, pids) = try hangingHypervisor(in: directory, when: "*")
            let cancellation = Cancellation()
            var options = ApplianceOptions(acceleration: .tcg, cancellation: cancellation)
            options.hypervisor = hypervisor
            DispatchQueue.global().asyncAfter(deadline: .now() + 3) {
                cancellation.cancel(reason: "interrupted by the test")
            }
            let error = #expect(throws: RunCancelled.self) {
                _ = try ApplianceSession(drives: [ApplianceDrive(path: blank, format: .qcow2, readonly: true)],
                                         options: options)
            }
            #expect(error?.reason == "interrupted by the test")
            #expect(try allExited(pids))
        }
    }
}

@Suite struct LaunchLimitResolutionTests {
    @Test(arguments: [
        (nil, [:], LaunchLimits.defaultLaunchSeconds),
        (nil, ["IMGCUSTOMIZE_LAUNCH_TIMEOUT": "90"], 90),
        (30, ["IMGCUSTOMIZE_LAUNCH_TIMEOUT": "90"], 30),
    ] as [(Double?, [String: String], Double)])
    func theOptionThenTheEnvironmentThenTheDefault(option: Double?, environment: [String: String], expected: Double)
        throws {
        #expect(try LaunchLimits.resolve(launchSeconds: option, environment: environment).launchSeconds == expected)
    }

    @Test(arguments: ["soon", "0", "-5"])
    func aTimeoutThatIsNotAPositiveNumberIsRefused(value: String) {
        #expect(throws: HostError.self) {
            _ = try LaunchLimits.resolve(launchSeconds: nil, environment: ["IMGCUSTOMIZE_LAUNCH_TIMEOUT": value])
        }
    }

    @Test(arguments: [
        ("[    0.000000] Linux version 6.1.0-28-amd64", true),
        ("[   12.345678] sd 0:0:0:0: [sda] 2048 512-byte logical blocks", true),
        ("\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)", false),
        ("Booting from ROM...", false),
        ("[sda] not a timestamp", false),
    ])
    func kernelLinesAreToldFromFirmwareLines(line: String, kernel: Bool) {
        #expect(LaunchWatch.isKernelLine(line) == kernel)
    }
}

@Suite struct CancellationTests {
    @Test func stopActionsRunOnceAndLateOnesRunAtOnce() throws {
        let cancellation = Cancellation()
        let count = Mutex(0)
        let registration = cancellation.onCancel { count.withLock { $0 += 1 } }
        #expect(throws: Never.self) { try cancellation.check(image: "a.qcow2") }
        cancellation.cancel(reason: "first")
        cancellation.cancel(reason: "second")
        #expect(count.withLock { $0 } == 1)
        #expect(cancellation.reason == "first")
        let error = #expect(throws: RunCancelled.self) { try cancellation.check(image: "a.qcow2") }
        #expect(error?.description == "a.qcow2: first; the image is unchanged")
        _ = cancellation.onCancel { count.withLock { $0 += 10 } }
        #expect(count.withLock { $0 } == 11)
        registration.end()
    }

    @Test func anEndedRegistrationDoesNotRun() {
        let cancellation = Cancellation()
        let ran = Mutex(false)
        cancellation.onCancel { ran.withLock { $0 = true } }.end()
        cancellation.cancel()
        #expect(!ran.withLock { $0 })
    }
}

/// The hypervisor wrapper's swaps, run as libguestfs runs it, with a script standing in for qemu that writes down its
/// arguments; no launch (`theAccelerationVerdictIsRememberedBetweenSessions` boots through it).
@Suite struct LaunchWrapperTests {
    static func arguments(passing given: [String], kernels: String, boot: BootShortcuts?,
                          in directory: TestDirectory) throws -> (arguments: [String], boot: String?) {
        let recorded = directory.path("arguments")
        let hypervisor = directory.path("qemu")
        try Data("#!/bin/sh\nfor a do echo \"$a\"; done > \(shellQuoted(recorded))\n".utf8)
            .write(to: URL(fileURLWithPath: hypervisor))
        chmod(hypervisor, 0o755)
        let watch = try LaunchWatch(hypervisor: hypervisor, underKVM: false,
                                    limits: try LaunchLimits.resolve(launchSeconds: nil), kernels: kernels, boot: boot)
        _ = try runTool(watch.wrapper, given)
        _ = watch.finish()
        let lines = try String(contentsOfFile: recorded, encoding: .utf8).split(separator: "\n").map(String.init)
        return (lines, watch.bootUsed)
    }

    /// With the PVH kernel swapped in, qboot comes with it and the kernel arguments join libguestfs's; a firmware
    /// libguestfs chose is kept; a kernel with no PVH entry cached boots with neither.
    @Test func theBootShortcutsComeWithThePVHKernelOnly() throws {
        let directory = try TestDirectory()
        let kernels = directory.path("kernels")
        try FileManager.default.createDirectory(atPath: kernels, withIntermediateDirectories: true)
        let kernel = directory.path("kernel")
        try Data("a kernel".utf8).write(to: URL(fileURLWithPath: kernel))
        let pvh = kernels + "/" + (try #require(PVHKernel.cachedName(of: kernel)))
        try Data("its PVH entry".utf8).write(to: URL(fileURLWithPath: pvh))
        let boot = BootShortcuts(firmware: "/usr/share/qemu/qboot.rom", arguments: BootShortcuts.kernelArguments)
        let libguestfs = ["-m", "1280", "-kernel", kernel, "-initrd", directory.path("initrd"),
                          "-append", "panic=1 console=ttyS0 root=UUID=1"]

        let swapped = try Self.arguments(passing: libguestfs, kernels: kernels, boot: boot, in: directory)
        #expect(swapped.arguments == ["-m", "1280", "-kernel", pvh, "-initrd", directory.path("initrd"), "-append",
                                      "panic=1 console=ttyS0 root=UUID=1 pci=noacpi initcall_blacklist=init_kprobe_trace,crypto_kdf108_init",
                                      "-bios", "/usr/share/qemu/qboot.rom"])
        #expect(swapped.boot == "/usr/share/qemu/qboot.rom pci=noacpi initcall_blacklist=init_kprobe_trace,crypto_kdf108_init")

        let ownFirmware = try Self.arguments(passing: ["-bios", "/x/OVMF.fd"] + libguestfs, kernels: kernels, boot: boot,
                                             in: directory)
        #expect(ownFirmware.arguments.filter { $0 == "-bios" }.count == 1)
        #expect(ownFirmware.arguments.prefix(2) == ["-bios", "/x/OVMF.fd"])
        #expect(ownFirmware.boot?.hasPrefix("its own firmware pci=noacpi") == true)

        // Turned off, or no PVH entry for this kernel: libguestfs's arguments (but the kernel), unchanged.
        let off = try Self.arguments(passing: libguestfs, kernels: kernels, boot: nil, in: directory)
        #expect(off.arguments == ["-m", "1280", "-kernel", pvh] + libguestfs.dropFirst(4))
        #expect(off.boot == nil)
        try Data("another kernel".utf8).write(to: URL(fileURLWithPath: kernel))
        let stockKernel = try Self.arguments(passing: libguestfs, kernels: kernels, boot: boot, in: directory)
        #expect(stockKernel.arguments == libguestfs)
        #expect(stockKernel.boot == nil)
    }

    @Test func theBootShortcutsOnThisHost() {
        #expect(BootShortcuts.resolve(environment: [BootShortcuts.environmentVariable: "stock"]) == nil)
        #expect(BootShortcuts.resolve(environment: [:], firmwareCandidates: ["/nonexistent/qboot.rom", "/dev/null"])
                == BootShortcuts(firmware: "/dev/null", arguments: BootShortcuts.kernelArguments))
        #expect(BootShortcuts.resolve(environment: [:], firmwareCandidates: ["/nonexistent/qboot.rom"])?.firmware == nil)
    }
}
