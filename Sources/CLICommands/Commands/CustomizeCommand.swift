import ArgumentParser
import Customize
import Formats
import Foundation
import Operations

extension IMGCustomize {
    struct CustomizeCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "customize",
            abstract: "Run operations on an image (or a directory tree, --tree), in command-line order, in one appliance launch.",
            discussion: """
            Operations are options named after them (`imgcustomize operations` and `man imgcustomize-operations` \
            list them all; the shells' completions know them). The image goes \
            through the same transaction as `apply`: it is never modified in place. Guest commands (run-command, \
            run, install, uninstall, update) run the guest's own programs inside the appliance; the appliance has \
            no network unless --network is given. A disk given with --attach (virt-customize's: an ISO of \
            packages, a data disk) is there for guest commands only, read-only: inspection, LVM, identities and \
            trimming see the guest's disks alone.

            The result has the image's format. A qcow2 image with compressed clusters is written compressed again, \
            with the same codec (zlib or zstd), so that it stays about its size; --compress chooses otherwise \
            (none for an uncompressed result).

            EXAMPLES:
              imgcustomize customize rhel7.qcow2 \\
                --set-line /etc/sysconfig/network:NOZEROCONF=yes \\
                --append-grub-args "console=tty0 console=ttyS0,115200n8" \\
                --lock-root --disable-repos --remove-machine-id \\
                --edit-file '/etc/ssh/sshd_config:s/^PermitRootLogin yes/PermitRootLogin no/' \\
                --trim-free-space
              imgcustomize customize rhel7.qcow2 --hostname web1.example.com --dry-run
              imgcustomize customize a.qcow2 b.qcow2 c.qcow2 --output-dir out/ --disable-repos
              imgcustomize customize debian12.qcow2 --install ./agent.deb --run-command 'systemctl enable agent'
              imgcustomize customize rhel9.qcow2 --network --install cloud-init --update
              imgcustomize customize rhel7.qcow2 --commands-from-file virt-customize.commands
              imgcustomize customize debian12.qcow2 --attach packages.iso \\
                --run-command 'mount -o ro LABEL=EXTRA /mnt && dpkg -i /mnt/*.deb; umount /mnt'
              imgcustomize customize rhel9.qcow2 --network --sm-credentials me@example.com:file:rhsm.pw \\
                --sm-register --sm-attach auto --install cloud-init --sm-remove --sm-unregister
              imgcustomize customize --tree /srv/chroot/rhel7 --disable-repos --json
            """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var runOptions: RunArguments

        @OptionGroup var target: TargetArguments

        @OptionGroup var operationArguments: OperationArguments

        @Option(help: "Compression of a qcow2 result: zlib, zstd or none (default: as the image's own compressed clusters, none if it has none).")
        var compress: ClusterCompression?

        func run() throws {
            let (images, operations, attachments) = try operationArguments.planned()
            guard !operations.isEmpty else {
                throw ValidationError("no operation given; `imgcustomize operations` lists them")
            }
            let options = try runOptions.options(global: global, compression: compress, attachments: attachments)
            let calls = RunCalls(
                tree: { try $0.customize(operations, onTree: $1, progress: $2) },
                image: { try $0.customize(operations, on: $1, progress: $2) },
                batch: { try $0.customize(operations, on: $1, outputDirectory: $2, progress: $3) })
            try execute(calls, target: target, images: images, attachmentsGiven: !attachments.isEmpty, options: options,
                        runOptions: runOptions, global: global)
        }
    }
}
