import Diagnostics
import Foundation
import Logging
import Operations

#if canImport(Glibc)
import Glibc
#endif

/// How the appliance's qemu runs: `auto` uses KVM where it works and remembers where it does not; `kvm` insists on
/// it (the launch fails without it); `tcg` is software emulation, slower but available everywhere.
public enum Acceleration: String, Sendable, CaseIterable, Codable {
    case auto, kvm, tcg

    /// Overrides `auto` without a code change: IMGCUSTOMIZE_ACCEL=kvm|tcg|auto.
    public static let environmentVariable = "IMGCUSTOMIZE_ACCEL"

    /// What to use: an explicit `kvm`/`tcg` wins, `auto` defers to the environment variable.
    public static func resolve(_ requested: Acceleration,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Acceleration {
        guard requested == .auto, let value = environment[environmentVariable], !value.isEmpty else { return requested }
        guard let chosen = Acceleration(rawValue: value.lowercased()) else {
            throw HostError("\(environmentVariable): unknown acceleration \"\(value)\"",
                            hint: "use kvm, tcg or auto, or unset \(environmentVariable)")
        }
        return chosen
    }
}

/// How an appliance came up, for reports and logs.
public struct LaunchReport: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        /// `kvm` or `tcg` asked for by option or environment.
        case requested
        /// The verdict of an earlier run, from the acceleration cache.
        case cached
        /// KVM was tried in this run (and the verdict recorded).
        case probed
        /// No /dev/kvm: software emulation without trying.
        case noKVM
    }

    /// What the appliance runs with: `kvm` (KVM where qemu could use it) or `tcg`.
    public var acceleration: Acceleration
    public var decision: Decision
    /// Why KVM would not do, when it was tried in this run and failed: qemu's own words ("qemu: failed to set
    /// MSR 0x10a to 0x69"), or the hang the launch watch saw.
    public var kvmFailure: String?
    /// Wall-clock seconds until the appliance answered, failed attempts included.
    public var seconds: Double
    /// The one line a user must see when this run gave KVM up for TCG (it is slower), with where the verdict is kept.
    public var warning: String?
}

/// Remembers whether KVM works, keyed by what decides it: the qemu binary and the host kernel. A different qemu or
/// kernel means a fresh probe.
struct AccelerationCache {
    let file: URL

    struct Key: Codable, Equatable {
        var hypervisor: String
        var hypervisorSize: Int64
        var hypervisorModified: Int64
        var kernel: String
    }

    struct Entry: Codable, Equatable {
        var key: Key
        var verdict: Acceleration
        /// qemu's message when the verdict is tcg.
        var reason: String?
    }

    /// ${XDG_CACHE_HOME:-~/.cache}/imgcustomize/acceleration.json
    static func defaultFile(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        URL(fileURLWithPath: ToolCache.directory(environment: environment), isDirectory: true)
            .appendingPathComponent("acceleration.json")
    }

    /// The key for the hypervisor libguestfs will run; nil when it cannot be identified (then nothing is cached).
    static func key(hypervisor: String) -> Key? {
        var info = stat()
        guard stat(hypervisor, &info) == 0 else { return nil }
        var names = utsname()
        guard uname(&names) == 0 else { return nil }
        let kernel = withUnsafeBytes(of: &names.release) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return Key(hypervisor: hypervisor, hypervisorSize: Int64(info.st_size),
                   hypervisorModified: Int64(info.st_mtim.tv_sec), kernel: kernel)
    }

    /// The remembered verdict for `key`; a missing, unreadable or stale cache is no verdict.
    func entry(for key: Key, logger: Logger) -> Entry? {
        guard let data = try? Data(contentsOf: file) else { return nil }
        do {
            let entry = try JSONDecoder().decode(Entry.self, from: data)
            return entry.key == key ? entry : nil
        } catch {
            logger.debug("ignoring unreadable acceleration cache \(file.path): \(error)")
            return nil
        }
    }

    /// Writes atomically, so that two runs never read half a file. A cache that cannot be written only costs the
    /// next run a probe, so it is logged, not thrown.
    func record(_ entry: Entry, logger: Logger) {
        do {
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            // Written beside the file and renamed over it: Foundation's .atomic goes through a directory in /tmp
            // that it leaves behind on every write. Named per write: a batch's launches may record at once.
            let temporary = file.deletingLastPathComponent()
                .appendingPathComponent(".\(file.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
            do {
                try encoder.encode(entry).write(to: temporary)
                guard rename(temporary.path, file.path) == 0 else {
                    throw CocoaError(.fileWriteUnknown,
                                     userInfo: [NSLocalizedDescriptionKey: String(cString: strerror(errno))])
                }
            } catch {
                try? FileManager.default.removeItem(at: temporary)
                throw error
            }
        } catch {
            logger.debug("could not record the acceleration verdict in \(file.path): \(error)")
        }
    }
}
