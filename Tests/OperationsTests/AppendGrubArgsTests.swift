import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct AppendGrubArgsTests {
    static let console = AppendGrubArgs(["console=tty0", "console=ttyS0,115200n8"])

    static let defaultGrub = """
        GRUB_TIMEOUT=5
        GRUB_DISTRIBUTOR="$(sed 's, release .*$,,g' /etc/system-release)"
        GRUB_DEFAULT=saved
        GRUB_DISABLE_SUBMENU=true
        GRUB_TERMINAL_OUTPUT="console"
        GRUB_CMDLINE_LINUX="crashkernel=auto rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rhgb quiet"
        GRUB_DISABLE_RECOVERY="true"

        """

    static func grubCfg(_ arguments: String) -> String {
        """
        ### BEGIN /etc/grub.d/10_linux ###
        menuentry 'Red Hat Enterprise Linux Server (3.10.0-1160.el7.x86_64) 7.9 (Maipo)' --class red {
        \tload_video
        \tset root='hd0,msdos1'
        \tlinux16 /vmlinuz-3.10.0-1160.el7.x86_64 root=/dev/mapper/rhel-root ro crashkernel=auto rhgb quiet\(arguments)
        \tinitrd16 /initramfs-3.10.0-1160.el7.x86_64.img
        }
        menuentry 'Red Hat Enterprise Linux Server (0-rescue)' --class red {
        \tlinux16 /vmlinuz-0-rescue root=/dev/mapper/rhel-root ro crashkernel=auto rhgb quiet\(arguments)
        \tinitrd16 /initramfs-0-rescue.img
        }

        """
    }

    @Test func rhel7DefaultGrubAndGeneratedConfig() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/default/grub", Self.defaultGrub)
        try tree.file("/boot/grub2/grub.cfg", Self.grubCfg(""), mode: 0o600)
        let (first, second) = try tree.applyTwice(Self.console)
        #expect(tree.text("/etc/default/grub") == Self.defaultGrub
            + "GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty0 console=ttyS0,115200n8\"\n")
        #expect(tree.text("/boot/grub2/grub.cfg") == Self.grubCfg(" console=tty0 console=ttyS0,115200n8"))
        #expect(try tree.hostStatus("/boot/grub2/grub.cfg").mode == 0o600)
        #expect(first.summary == "added console=tty0 console=ttyS0,115200n8 to /etc/default/grub, 2 linux/linux16/linuxefi line(s) of /boot/grub2/grub.cfg")
        #expect(second.summary == "console=tty0 console=ttyS0,115200n8 already in /etc/default/grub, 2 linux/linux16/linuxefi line(s) of /boot/grub2/grub.cfg")
        #expect(first.diffs?.map(\.path) == ["/etc/default/grub", "/boot/grub2/grub.cfg"])
    }

    @Test func existingDefaultKeepsItsValueAndQuotes() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT='quiet console=ttyS0,115200n8'\n")
        try tree.applyTwice(Self.console)
        // The serial console was there but not last: both move to the end, in the requested order.
        #expect(tree.text("/etc/default/grub") == "GRUB_CMDLINE_LINUX_DEFAULT='quiet console=tty0 console=ttyS0,115200n8'\n")
    }

    @Test func rhel6LegacyGrubEditedOnceThroughItsSymlinks() throws {
        let tree = try TemporaryTree()
        let conf = """
            default=0
            timeout=5
            title Red Hat Enterprise Linux 6 (2.6.32-754.el6.x86_64)
            \troot (hd0,0)
            \tkernel /vmlinuz-2.6.32-754.el6.x86_64 ro root=/dev/mapper/vg-lv_root rd_NO_LUKS rhgb quiet
            \tinitrd /initramfs-2.6.32-754.el6.x86_64.img

            """
        try tree.file("/boot/grub/grub.conf", conf)
        try tree.symlink("/etc/grub.conf", to: "../boot/grub/grub.conf")
        try tree.symlink("/boot/grub/menu.lst", to: "./grub.conf")
        let (first, _) = try tree.applyTwice(Self.console)
        #expect(tree.text("/boot/grub/grub.conf") == conf.replacingOccurrences(
            of: "rhgb quiet", with: "rhgb quiet console=tty0 console=ttyS0,115200n8"))
        #expect(first.summary == "added console=tty0 console=ttyS0,115200n8 to 1 kernel line(s) of /boot/grub/grub.conf")
        #expect(try tree.guest.exists("/etc/default/grub") == false)
    }

    @Test func blsEntriesEfiAndKernelCmdline() throws {
        let tree = try TemporaryTree()
        try tree.file("/boot/loader/entries/abc-4.18.0.conf",
                      "title Red Hat\nversion 4.18.0\nlinux /vmlinuz-4.18.0\noptions $kernelopts console=ttyS0\n")
        try tree.file("/boot/efi/EFI/redhat/grub.cfg",
                      "menuentry 'x' {\n  linuxefi /vmlinuz root=UUID=1 ro console=tty0\n}\n")
        try tree.file("/etc/kernel/cmdline", "root=UUID=1 ro\n")
        try tree.applyTwice(Self.console)
        #expect(tree.text("/boot/loader/entries/abc-4.18.0.conf")
            == "title Red Hat\nversion 4.18.0\nlinux /vmlinuz-4.18.0\noptions $kernelopts console=ttyS0 console=tty0 console=ttyS0,115200n8\n")
        #expect(tree.text("/boot/efi/EFI/redhat/grub.cfg")
            == "menuentry 'x' {\n  linuxefi /vmlinuz root=UUID=1 ro console=tty0 console=ttyS0,115200n8\n}\n")
        #expect(tree.text("/etc/kernel/cmdline") == "root=UUID=1 ro console=tty0 console=ttyS0,115200n8\n")
    }

    /// Only the arguments change: the tab after `linux`, double spaces and trailing blanks stay as the file had them.
    @Test func theLinesOwnWhitespaceIsKept() throws {
        let tree = try TemporaryTree()
        try tree.file("/boot/grub2/grub.cfg",
                      "menuentry 'x' {\n\tlinux16\t/vmlinuz-3.10 root=/dev/rhel/root  ro crashkernel=auto \n}\n")
        try tree.applyTwice(AppendGrubArgs(["crashkernel=256M", "console=tty0"]))
        #expect(tree.text("/boot/grub2/grub.cfg")
            == "menuentry 'x' {\n\tlinux16\t/vmlinuz-3.10 root=/dev/rhel/root  ro crashkernel=256M console=tty0 \n}\n")
        #expect(AppendGrubArgs.replacingArguments(of: "linux\t/vmlinuz  quiet\trhgb", after: 2, with: ["rhgb", "ro"])
            == "linux\t/vmlinuz\trhgb ro")
    }

    @Test(arguments: [
        (["quiet", "rhgb"], ["quiet"], ["quiet", "rhgb"]),
        (["crashkernel=auto", "ro"], ["crashkernel=256M"], ["crashkernel=256M", "ro"]),
        (["ro", "console=tty0", "console=ttyS0,115200n8"], ["console=tty0", "console=ttyS0,115200n8"],
         ["ro", "console=tty0", "console=ttyS0,115200n8"]),
        (["console=ttyS0,115200n8", "ro", "console=tty0"], ["console=tty0", "console=ttyS0,115200n8"],
         ["ro", "console=tty0", "console=ttyS0,115200n8"]),
        (["console=hvc0"], ["console=tty0"], ["console=hvc0", "console=tty0"]),
    ])
    func mergeRules(existing: [String], requested: [String], expected: [String]) {
        #expect(AppendGrubArgs.merge(existing, requested) == expected)
        #expect(AppendGrubArgs.merge(expected, requested) == expected)
    }

    @Test func noBootloaderIsAnError() throws {
        let tree = try TemporaryTree()
        let error = #expect(throws: GuestError.self) { try Self.console.apply(to: tree.guest, context: OperationContext()) }
        #expect(error?.message.hasPrefix("no bootloader configuration found") == true)
    }
}
