import ArgumentParser
import Logging
import BootCheck
import Foundation
import Operations

extension Firmware: EnumerableFlag {
    public static func help(for value: Firmware) -> ArgumentHelp? {
        switch value {
        case .bios: "Boot with BIOS (SeaBIOS) whatever the partition table says."
        case .uefi: "Boot with UEFI (OVMF) whatever the partition table says."
        }
    }
}

extension IMGCustomize {
    struct BootCheckCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "boot-check",
            abstract: "Boot a throwaway copy of an image and check what a cloud user relies on.",
            discussion: """
            The image is only read: qemu boots an overlay of it, with user-mode networking only and a NoCloud \
            seed that sets a random hostname, injects a fresh SSH key for root and runs a command. Once cloud-init \
            is done, the check logs in over SSH and verifies: the hostname, the command's marker, a machine-id and \
            SSH host keys other than the image's, console=ttyS0 on the kernel command line when the image asks \
            for it, a read-write root, no failed systemd units, cloud-init without errors, and that the first-boot \
            scripts imgcustomize queued (--firstboot...) each ran once and exited 0; then it powers the guest off. \
            With --boots 2 it boots the same machine again and checks it all once more, the first-boot scripts \
            not run again, the machine-id and host keys kept. Exits 0 only when every check passed. A boot that gets stuck fails at --timeout with the \
            stage it reached and the console's last lines.

            EXAMPLES:
              imgcustomize boot-check debian12-cloud.qcow2
              imgcustomize boot-check rhel9-cloud.qcow2 --json --keep-console console.log
              imgcustomize boot-check disk.raw --uefi --timeout 600
              imgcustomize boot-check with-firstboot.qcow2 --boots 2
            """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var appliance: ApplianceArguments

        @Argument(help: "The disk image to boot (qcow2 or raw; it is never written).", completion: .file())
        var image: String

        @Flag(help: "Print one JSON document on stdout: every stage and check, and the console log's path.")
        var json = false

        @Option(help: ArgumentHelp("Give up after this many seconds, boot to power-off (default \(Int(BootCheckOptions.defaultTimeout))).",
                                   valueName: "seconds"))
        var timeout: Double = BootCheckOptions.defaultTimeout

        /// Default: UEFI when the disk has an EFI system partition, BIOS otherwise.
        @Flag var firmware: Firmware?

        @Option(help: ArgumentHelp("Keep the serial console's log here (kept in TMPDIR anyway when the check fails).",
                                   valueName: "path"))
        var keepConsole: String?

        @Option(help: ArgumentHelp("Boot the machine this many times (1 or 2): a second boot finds what the first changed "
                                   + "and proves first-boot scripts ran once.", valueName: "n"))
        var boots: Int = 1

        func validate() throws {
            guard boots == 1 || boots == 2 else { throw ValidationError("--boots must be 1 or 2") }
            guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
        }

        /// What the check is asked to do, with the appliance options every launching command builds the same way.
        func options(logger: Logger) throws -> BootCheckOptions {
            BootCheckOptions(timeout: timeout, firmware: firmware, keepConsole: keepConsole,
                             appliance: try appliance.options(), cancellation: Interruption.cancellation,
                             logger: logger, access: global.access, boots: boots)
        }

        func run() throws {
            let logger = global.makeLogger()
            _ = Interruption.install()
            let options = try options(logger: logger)
            let report: BootReport
            do {
                report = try BootCheck(options: options).run(image: image)
            } catch {
                throw options.cancellation?.explain(error, image: image) ?? error
            }
            for warning in report.warnings { logger.warning("\(warning)") }
            if json { Output.document(report.json()) } else { print(report.text()) }
            if !report.passed { throw ExitCode.failure }
        }
    }
}
