import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What the appliance's boot leaves out beside the bzImage (`PVHKernel`): a firmware that only loads the kernel, and
/// kernel arguments that skip work no appliance needs.
///
/// Each was measured on its own under software emulation, as boots of the appliance's PVH kernel and slim initrd up
/// to its `/init` (eight alternated boots each, load 0.7-1.1, 2.95 s without any):
/// - **qboot** (`-bios`, qemu's minimal firmware) instead of SeaBIOS: no POST, no scan of the drives for a boot
///   sector, no option ROM; it loads the PVH kernel from qemu's fw_cfg as SeaBIOS's option ROM does. -0.17 s.
/// - **`pci=noacpi`**: PCI interrupts routed from the firmware's table instead of by ACPI's interpreter evaluating
///   each link device (`\_SB_.LNKB` ...) as the virtio drivers bind. libguestfs's devices use MSI-X, so no legacy
///   interrupt line of theirs is used either way. -0.27 s.
/// - **`initcall_blacklist=`** for two initialisations of the kernel no appliance call uses: the kprobe event tracer
///   (0.13 s of the guest's clock) and the self-test of the SP800-108 key derivation (0.07 s). -0.07 s.
/// Together with the slim initrd's unsigned modules (`SlimInitrd`): 0.85 s less to `/init`.
///
/// They go with the PVH kernel: the wrapper of `LaunchWatch` adds them when it swaps the kernel in, so the stock
/// kernel boots as libguestfs gives it. A firmware libguestfs chose (`-bios`) is kept. `IMGCUSTOMIZE_APPLIANCE_BOOT=stock`
/// turns them off (the benchmark measures them so).
struct BootShortcuts: Equatable {
    static let environmentVariable = "IMGCUSTOMIZE_APPLIANCE_BOOT"
    /// Where distributions install qemu's qboot build (Debian's qemu-system-data; Fedora's qemu too).
    static let firmwareCandidates = ["/usr/share/qemu/qboot.rom", "/usr/share/qemu-kvm/qboot.rom"]
    static let kernelArguments = ["pci=noacpi", "initcall_blacklist=init_kprobe_trace,crypto_kdf108_init"]

    /// qboot's path, or nil when the host has none (the kernel arguments still apply).
    var firmware: String?
    var arguments: [String]

    /// The shortcuts for this host, or nil when the environment turns them off.
    static func resolve(environment: [String: String] = ProcessInfo.processInfo.environment,
                        firmwareCandidates: [String] = firmwareCandidates) -> BootShortcuts? {
        if environment[environmentVariable] == "stock" { return nil }
        return BootShortcuts(firmware: firmwareCandidates.first { access($0, R_OK) == 0 }, arguments: kernelArguments)
    }
}
