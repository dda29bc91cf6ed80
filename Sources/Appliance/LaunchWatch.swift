import Diagnostics
import Foundation
import Host
import Operations
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How long an appliance launch may take before it is given up.
public struct LaunchLimits: Sendable, Equatable {
    /// A KVM guest prints its first kernel line well within a second of qemu starting. A guest that printed none
    /// by then is hung (nested virtualization that accepts KVM and never runs the guest), however long one waits.
    public var kvmKernelSeconds: Double
    /// A whole KVM launch takes a few seconds; one still not up after this is given up too.
    public var kvmLaunchSeconds: Double
    /// Every launch, KVM or software emulation: past this the run fails with the console's last lines.
    public var launchSeconds: Double
    /// A booting kernel whose console then says nothing for this long is stuck: software emulation on a two-core
    /// machine at load 20 is never silent for more than a few tens of seconds, and a guest that hung once (seen here
    /// under TCG: stuck after "Loading compiled-in X.509 certificates" until the overall limit) boots on a second try.
    /// The launch is then tried once more.
    public var silentSeconds: Double

    /// Generous: software emulation on a loaded two-core machine launches in 20-100 s.
    public static let defaultLaunchSeconds: Double = 600
    /// IMGCUSTOMIZE_LAUNCH_TIMEOUT=SECONDS overrides `launchSeconds` where no option does.
    public static let environmentVariable = "IMGCUSTOMIZE_LAUNCH_TIMEOUT"

    public init(kvmKernelSeconds: Double = 10, kvmLaunchSeconds: Double = 60,
                launchSeconds: Double = LaunchLimits.defaultLaunchSeconds, silentSeconds: Double = 150) {
        self.kvmKernelSeconds = kvmKernelSeconds
        self.kvmLaunchSeconds = kvmLaunchSeconds
        self.launchSeconds = launchSeconds
        self.silentSeconds = silentSeconds
    }

    /// `seconds` when given, else IMGCUSTOMIZE_LAUNCH_TIMEOUT, else the default; refuses what is not a positive
    /// number of seconds.
    public static func resolve(launchSeconds seconds: Double?,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> LaunchLimits {
        var limits = LaunchLimits()
        if let seconds {
            limits.launchSeconds = seconds
        } else if let value = environment[environmentVariable], !value.isEmpty {
            guard let parsed = Double(value) else {
                throw HostError("\(environmentVariable): \"\(value)\" is not a number of seconds",
                                hint: "set it to a number of seconds, or unset \(environmentVariable)")
            }
            limits.launchSeconds = parsed
        }
        guard limits.launchSeconds > 0, limits.launchSeconds.isFinite else {
            throw HostError("launch timeout: \(limits.launchSeconds) is not a positive number of seconds",
                            hint: "give a timeout of at least a few seconds (software emulation needs 20-100)")
        }
        return limits
    }
}

/// Watches one launch from a thread of its own, because `guestfs_launch` blocks until the appliance answers and
/// has no timeout of its own a caller can set (libguestfs waits 20 minutes).
///
/// The hypervisor libguestfs runs is a small wrapper script in a private directory: it writes its process id
/// (qemu's, since it execs qemu) to a file, so the watch can kill exactly that qemu. Killing it makes the launch
/// fail at once; closing the handle then removes libguestfs's own temporary directories.
final class LaunchWatch: Sendable {
    enum Verdict: Sendable, Equatable {
        /// Under KVM: qemu ran but the guest printed no kernel line within the limit.
        case kvmSilent(seconds: Double)
        /// Under KVM: the kernel ran but the appliance was not up within the limit.
        case kvmSlow(seconds: Double)
        /// Any acceleration: not up within the overall limit.
        case timedOut(seconds: Double)
        /// Any acceleration: the kernel started, then the console said nothing for this long.
        case stalled(seconds: Double)
        /// The run was cancelled while launching.
        case cancelled(reason: String)
    }

    private struct State {
        var kernelSeen = false
        /// When the console last printed a line.
        var lastLine: ContinuousClock.Instant?
        var finished = false
        var verdict: Verdict?
        var qemuPID: pid_t?
        var killed = false
        var kernelUsed: String?
        var initrdUsed: String?
        var bootUsed: String?
    }

    private let directory: TemporaryDirectory
    let wrapper: String
    private let pidFile: String
    /// Where the wrapper says which kernel qemu was given: "pvh PATH" or "stock PATH".
    private let kernelFile: String
    private let underKVM: Bool
    private let limits: LaunchLimits
    private let state = Mutex(State())

    /// Writes the wrapper for `hypervisor` (the qemu libguestfs would run). `underKVM` turns on the early hang
    /// checks. `kernels`, the cache of `PVHKernel`, lets the wrapper boot the kernel's PVH entry where one is cached,
    /// with `boot`'s firmware and kernel arguments (`BootShortcuts`), and the slim initrd (`SlimInitrd`) found there
    /// unless `slimInitrd` is false.
    init(hypervisor: String, underKVM: Bool, limits: LaunchLimits, kernels: String? = nil,
         slimInitrd: Bool = true, boot: BootShortcuts? = nil) throws {
        self.underKVM = underKVM
        self.limits = limits
        do {
            directory = try TemporaryDirectory(prefix: "imgcustomize-launch")
        } catch {
            throw HostError("cannot prepare the appliance launch: \(Diagnostic(of: error).message)",
                            hint: "set TMPDIR to a writable directory")
        }
        pidFile = directory.appending("qemu.pid")
        kernelFile = directory.appending("kernel")
        wrapper = directory.appending("qemu")
        // The script names its files relative to its own path ($0: libguestfs runs it by its absolute path), so that
        // it is the same size in every run: libguestfs caches what it learns about a hypervisor under its size and
        // modification time, and a wrapper whose size changed with the length of the process id in its directory's
        // name cost a query of qemu (three qemu runs, seconds at load) on every new length.
        // Only the launch itself (the run with -kernel) records its pid; libguestfs also runs the hypervisor
        // to query its version and devices. The kernel argument is looked up in the PVH cache under the content the
        // file has now (libguestfs may have just rebuilt it): a cached ELF replaces it, else it stays. With it,
        // the kernel arguments of `boot` join libguestfs's (its -append comes after -kernel) and its firmware is
        // added unless libguestfs chose one.
        let swap = kernels.map { kernels in """
            prev= pvh=
            firmware=\(shellQuoted(boot?.firmware ?? "")) arguments=\(shellQuoted(boot?.arguments.joined(separator: " ") ?? ""))
            for a do
              shift
              if [ "$prev" = -kernel ]; then
                pvh=\(shellQuoted(kernels))/vmlinux-$(sha256sum < "$a" 2>/dev/null | cut -d' ' -f1)
                if [ -f "$pvh" ]; then echo "pvh $pvh" > "$d/kernel"; a=$pvh; else echo "stock $a" > "$d/kernel"; pvh=; fi
              elif [ "$prev" = -initrd ] && \(slimInitrd); then
                slim=\(shellQuoted(kernels))/initrd-\(SlimInitrd.cachePrefix)$(sha256sum < "$a" 2>/dev/null | cut -d' ' -f1)
                if [ -f "$slim" ]; then echo "slim $slim" > "$d/initrd"; a=$slim; else echo "stock $a" > "$d/initrd"; fi
              elif [ "$prev" = -append ] && [ -n "$pvh" ] && [ -n "$arguments" ]; then
                a="$a $arguments"
              fi
              set -- "$@" "$a"
              prev=$a
            done
            if [ -n "$pvh" ] && [ -n "$arguments" ]; then
              case " $* " in *" -bios "*) firmware= ;; esac
              if [ -n "$firmware" ]; then set -- "$@" -bios "$firmware"; fi
              echo "${firmware:-its own firmware} $arguments" > "$d/boot"
            fi

            """ } ?? ""
        let script = """
            #!/bin/sh
            d=${0%/*}
            case " $* " in *" -kernel "*) echo $$ > "$d/qemu.pid.new" && mv "$d/qemu.pid.new" "$d/qemu.pid" ;; esac
            \(swap)exec \(shellQuoted(hypervisor)) "$@"

            """
        do {
            try Data(script.utf8).write(to: URL(fileURLWithPath: wrapper))
            guard chmod(wrapper, 0o700) == 0 else {
                throw HostError("cannot make the hypervisor wrapper \(wrapper) executable: \(String(cString: strerror(errno)))",
                                hint: "set TMPDIR to a directory on a filesystem that allows executables", path: wrapper)
            }
            // libguestfs caches what it learns about a hypervisor under the binary's size and modification time:
            // the real qemu's time keeps that cache valid across runs instead of querying qemu every launch.
            var real = stat()
            if stat(hypervisor, &real) == 0 {
                var times = [timespec(tv_sec: real.st_mtim.tv_sec, tv_nsec: 0),
                             timespec(tv_sec: real.st_mtim.tv_sec, tv_nsec: 0)]
                utimensat(AT_FDCWD, wrapper, &times, 0)
            }
        } catch {
            directory.remove()
            throw error as? HostError ?? HostError("cannot write the hypervisor wrapper \(wrapper): \(Diagnostic(of: error).message)",
                                                   hint: "set TMPDIR to a writable directory", path: wrapper)
        }
    }

    /// Called with every console line while the launch runs.
    func saw(_ line: String) {
        let kernel = Self.isKernelLine(line)
        let now = ContinuousClock().now
        state.withLock {
            $0.lastLine = now
            if kernel { $0.kernelSeen = true }
        }
    }

    /// A line the guest kernel printed: libguestfs boots it with printk timestamps ("[    0.000000] Linux ...").
    static func isKernelLine(_ line: String) -> Bool {
        if line.contains("Linux version") { return true }
        let trimmed = line.drop(while: { $0 == " " })
        guard trimmed.first == "[", let close = trimmed.firstIndex(of: "]") else { return false }
        let stamp = trimmed[trimmed.index(after: trimmed.startIndex)..<close].trimmingCharacters(in: .whitespaces)
        let parts = stamp.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }

    /// Runs the watch on its own thread until `finish`; `cancellation`, when cancelled, stops the launch too.
    func start(cancellation: Cancellation?) {
        let clock = ContinuousClock()
        let started = clock.now
        let thread = Thread { [self] in
            var qemuStarted: ContinuousClock.Instant?
            while true {
                let now = clock.now
                if qemuStarted == nil, let pid = readPID() {
                    qemuStarted = now
                    state.withLock { $0.qemuPID = pid }
                }
                let (finished, doomed) = state.withLock { state -> (Bool, pid_t?) in
                    if !state.finished, state.verdict == nil {
                        state.verdict = judge(state, total: seconds(now - started),
                                              running: qemuStarted.map { seconds(now - $0) },
                                              silent: state.lastLine.map { seconds(now - $0) },
                                              cancelled: cancellation?.reason)
                    }
                    // Before qemu starts (libguestfs may still be building the appliance) there is nothing to kill:
                    // the verdict stands, and qemu is killed the moment it appears. Once: libguestfs reaps it.
                    guard !state.finished, state.verdict != nil, !state.killed, let pid = state.qemuPID else {
                        return (state.finished, nil)
                    }
                    state.killed = true
                    return (false, pid)
                }
                if finished { return }
                if let doomed { kill(doomed, SIGKILL) }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        thread.name = "imgcustomize launch watch"
        thread.start()
    }

    private func judge(_ state: State, total: Double, running: Double?, silent: Double?, cancelled: String?)
        -> Verdict? {
        if let cancelled { return .cancelled(reason: cancelled) }
        if total > limits.launchSeconds { return .timedOut(seconds: limits.launchSeconds) }
        if state.kernelSeen, let silent, silent > limits.silentSeconds { return .stalled(seconds: limits.silentSeconds) }
        guard underKVM, let running else { return nil }
        if !state.kernelSeen, running > limits.kvmKernelSeconds { return .kvmSilent(seconds: limits.kvmKernelSeconds) }
        if running > limits.kvmLaunchSeconds { return .kvmSlow(seconds: limits.kvmLaunchSeconds) }
        return nil
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func readPID() -> pid_t? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8) else { return nil }
        return pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Ends the watch (the launch returned) and says why it was stopped, if it was; removes the wrapper.
    func finish() -> Verdict? {
        let verdict = state.withLock { state -> Verdict? in
            state.finished = true
            return state.verdict
        }
        func said(_ file: String) -> String? {
            (try? String(contentsOfFile: file, encoding: .utf8)).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        }
        let kernel = said(kernelFile), initrd = said(directory.appending("initrd")), boot = said(directory.appending("boot"))
        state.withLock {
            $0.kernelUsed = kernel
            $0.initrdUsed = initrd
            $0.bootUsed = boot
        }
        directory.remove()
        return verdict
    }

    /// After `finish`: the kernel the wrapper gave qemu, "pvh PATH" or "stock PATH"; nil when it looked up none.
    var kernelUsed: String? { state.withLock { $0.kernelUsed } }
    /// After `finish`: the initrd the wrapper gave qemu, "slim PATH" (`SlimInitrd`) or "stock PATH".
    var initrdUsed: String? { state.withLock { $0.initrdUsed } }
    /// After `finish`: the firmware and kernel arguments the wrapper added with the PVH kernel (`BootShortcuts`),
    /// "PATH ARGUMENTS" ("its own firmware ARGUMENTS" when the host has no qboot or libguestfs chose one); nil when
    /// it added none.
    var bootUsed: String? { state.withLock { $0.bootUsed } }
}
