import Host

/// Limits LVM to one guest disk of a batch and activates its volume groups in one appliance shell, writing the
/// configuration libguestfs's daemon writes for `lvm_set_filter` (daemon/lvm-filter.c) where the daemon keeps it
/// (`$LVM_SYSTEM_DIR/lvm.conf`: /tmp/lvm in the appliance, /etc/lvm without it). The daemon's own call also
/// deactivates every group and runs `vgscan` before activating: with the groups already inactive neither is needed
/// (LVM compares its scan hints with the filter and scans again when it changed), which saves about 1.4 s of a
/// batched image's 9 under TCG.
///
/// The kernel does not name the disks in the order libguestfs added them (under load the appliance's own disk may
/// come first), and the daemon translates the names it is given; a shell is not translated. So the daemon marks the
/// disk first, through its translated name: it sets the disk's read-ahead to `markKiB` (`blockdev_setra`), and the
/// script takes the one disk whose read-ahead is that (putting back the kernel's default, 128 KiB), and refuses to
/// go on if there is none or more than one.
enum LVMFilter {
    /// The read-ahead, in KiB, that marks the disk of `drive` (its index among the guest's drives): unlike the
    /// kernel's 128 KiB or any earlier mark, and whole pages (the kernel keeps read-ahead in 4 KiB pages).
    static func markKiB(drive index: Int) -> Int { 4096 + 4 * index }

    /// `sysfs`: where sysfs is mounted (the tests give a tree of their own).
    static func activationScript(markKiB mark: Int, sysfs: String = "/sys") -> String {
        """
        set -e
        disk=
        for queue in \(shellQuoted(sysfs))/block/sd*/queue/read_ahead_kb; do
          read -r kb < "$queue"
          if [ "$kb" = \(mark) ]; then
            name=${queue%/queue/read_ahead_kb}
            name=${name##*/}
            if [ -n "$disk" ]; then echo "two disks carry the mark \(mark): $disk and /dev/$name"; exit 1; fi
            disk=/dev/$name
            echo 128 > "$queue"
          fi
        done
        if [ -z "$disk" ]; then echo "no disk carries the mark \(mark) the daemon set"; exit 1; fi
        rules="\\"a|^$disk\\$|\\",
                \\"a|^$disk[0-9]|\\",
                \\"r|.*|\\""
        if command -v lvmdevices >/dev/null || command -v vgimportdevices >/dev/null; then
          file='    use_devicesfile = 0
        '
        else
          file=
        fi
        dir=${LVM_SYSTEM_DIR:-/etc/lvm}
        printf 'devices {\\n%s    filter = [\\n        %s\\n    ]\\n    global_filter = [\\n        %s\\n    ]\\n}\\n' \\
          "$file" "$rules" "$rules" > "$dir/lvm.conf.new"
        mv -f "$dir/lvm.conf.new" "$dir/lvm.conf"
        rm -f "$dir/cache/.cache"
        echo "disk $disk"
        lvm vgchange -ay
        """
    }

    /// The disk the script found, from what it printed: a plain /dev/sdX name or nil.
    static func disk(in said: String) -> String? {
        guard let line = said.split(separator: "\n").first, line.hasPrefix("disk /dev/sd") else { return nil }
        let name = line.dropFirst("disk /dev/sd".count)
        return !name.isEmpty && name.allSatisfy({ $0 >= "a" && $0 <= "z" }) ? String(line.dropFirst(5)) : nil
    }
}
