import Foundation
import Testing
@testable import Operations

/// The issue's `imgcustomize customize` example, parsed through the catalog as the CLI does and run on a RHEL 7 tree.
@Suite struct CustomizeSequenceTests {
    static let arguments: [(option: String, argument: String?)] = [
        ("set-line", "/etc/sysconfig/network:NOZEROCONF=yes"),
        ("append-grub-args", "console=tty0 console=ttyS0,115200n8"),
        ("lock-root", nil),
        ("disable-repos", nil),
        ("remove-machine-id", nil),
        ("edit-file", "/etc/ssh/sshd_config:s/^PermitRootLogin yes/PermitRootLogin no/"),
        ("yaml-list-add", "/etc/cloud/cloud.cfg:cloud_init_modules:resolv-conf"),
        ("write-lines", "/etc/sysconfig/network-scripts/ifcfg-eth0:TYPE=Ethernet\\nDEVICE=eth0\\nONBOOT=yes\\nBOOTPROTO=dhcp\\nNM_CONTROLLED=no"),
        ("trim-free-space", nil),
    ]

    @Test func firstRunChangesEverythingSecondRunNothing() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/sysconfig/network", "NETWORKING=yes\n")
        try tree.file("/etc/default/grub", "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"rhgb quiet\"\n")
        try tree.file("/boot/grub2/grub.cfg", "menuentry 'RHEL' {\n\tlinux16 /vmlinuz root=/dev/vda1 ro\n}\n", mode: 0o600)
        try tree.file("/etc/shadow", "root:$6$s$h:19000:0:99999:7:::\n", mode: 0o000)
        try tree.file("/etc/yum.repos.d/redhat.repo", "[rhel-7-server-rpms]\nname=RHEL\n")
        try tree.file("/etc/machine-id", "0123456789abcdef0123456789abcdef\n", mode: 0o444)
        try tree.file("/etc/ssh/sshd_config", "PermitRootLogin yes\n", mode: 0o600)
        try tree.file("/etc/cloud/cloud.cfg", "cloud_init_modules:\n - bootcmd\n - ssh\n")
        try tree.file("/etc/sysconfig/network-scripts/ifcfg-eth0", "DEVICE=eth0\nHWADDR=52:54:00:aa:bb:cc\n")

        let operations = try Self.arguments.map { option, argument in
            try #require(OperationCatalog.named(option)).parse(argument)
        }
        let runner = OperationRunner(guest: tree.guest, recordDiffs: true)
        let first = try operations.map { try runner.run($0) }
        #expect(first.map(\.changed) == [true, true, true, true, true, true, true, true, false])
        let second = try operations.map { try runner.run($0) }
        #expect(second.map(\.changed).allSatisfy { !$0 }, "\(second.map(\.summary))")
        #expect(second.allSatisfy { $0.diffs == [] })

        #expect(tree.text("/etc/sysconfig/network") == "NETWORKING=yes\nNOZEROCONF=yes\n")
        #expect(tree.text("/etc/default/grub") == "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"rhgb quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"console=tty0 console=ttyS0,115200n8\"\n")
        #expect(tree.text("/boot/grub2/grub.cfg") == "menuentry 'RHEL' {\n\tlinux16 /vmlinuz root=/dev/vda1 ro console=tty0 console=ttyS0,115200n8\n}\n")
        #expect(tree.text("/etc/shadow") == "root:!$6$s$h:19000:0:99999:7:::\n")
        #expect(tree.text("/etc/yum.repos.d/redhat.repo") == "[rhel-7-server-rpms]\nname=RHEL\nenabled=0\n")
        #expect(tree.text("/etc/machine-id") == "")
        #expect(tree.text("/etc/ssh/sshd_config") == "PermitRootLogin no\n")
        #expect(tree.text("/etc/cloud/cloud.cfg") == "cloud_init_modules:\n - bootcmd\n - ssh\n - resolv-conf\n")
        #expect(tree.text("/etc/sysconfig/network-scripts/ifcfg-eth0")
            == "TYPE=Ethernet\nDEVICE=eth0\nONBOOT=yes\nBOOTPROTO=dhcp\nNM_CONTROLLED=no\n")
        for (path, mode) in [("/boot/grub2/grub.cfg", 0o600), ("/etc/shadow", 0o000), ("/etc/machine-id", 0o444),
                             ("/etc/ssh/sshd_config", 0o600)] {
            #expect(try tree.hostStatus(path).mode == mode, "\(path)")
        }
        #expect(runner.touchedPaths == ["/etc/sysconfig/network", "/etc/default/grub", "/boot/grub2/grub.cfg",
                                        "/etc/shadow", "/etc/yum.repos.d/redhat.repo", "/etc/machine-id",
                                        "/etc/ssh/sshd_config", "/etc/cloud/cloud.cfg",
                                        "/etc/sysconfig/network-scripts/ifcfg-eth0"])
    }
}
