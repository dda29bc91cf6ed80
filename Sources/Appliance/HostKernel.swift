import Diagnostics
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The host kernel supermin copies into the appliance it builds, once per user.
///
/// Ubuntu installs /boot/vmlinuz-* readable by root only, so a user's first launch would fail deep inside supermin
/// with a copy error; the launch is refused before it starts instead, saying what to change.
enum HostKernel {
    /// The kernels supermin may pick: SUPERMIN_KERNEL when set, else every /boot/vmlinuz-*.
    static func candidates(environment: [String: String], boot: String = "/boot") -> [String] {
        if let chosen = environment["SUPERMIN_KERNEL"], !chosen.isEmpty { return [chosen] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: boot)) ?? []
        return names.filter { $0.hasPrefix("vmlinuz-") }.sorted().map { (boot as NSString).appendingPathComponent($0) }
    }

    /// Why the appliance cannot be built by this user, when no kernel it could be built from is readable; nil when
    /// one is (or when there is none at all: supermin says that better).
    static func unreadable(environment: [String: String] = ProcessInfo.processInfo.environment,
                           boot: String = "/boot") -> HostError? {
        let kernels = candidates(environment: environment, boot: boot)
        guard !kernels.isEmpty, !kernels.contains(where: { access($0, R_OK) == 0 }) else { return nil }
        let which = kernels.count == 1 ? "the host kernel \(kernels[0])" : "any host kernel (\(kernels.joined(separator: ", ")))"
        let hint = environment["SUPERMIN_KERNEL"].map { _ in "make SUPERMIN_KERNEL name a kernel this user can read" }
            ?? "make the kernel readable (`sudo chmod 0644 /boot/vmlinuz-*`; on Ubuntu, keep it so across updates with "
            + "`sudo dpkg-statoverride --update --add root root 0644 /boot/vmlinuz-$(uname -r)`), or set "
            + "SUPERMIN_KERNEL to a readable copy of it, or run as root"
        return HostError("cannot read \(which): libguestfs builds this user's appliance from it, on the first launch",
                         hint: hint, path: kernels[0])
    }
}
