import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

/// A RHEL 7 guest as a cloud image build leaves it: logs, caches, leases, host keys, histories, subscription data.
private func usedRHEL7Tree() throws -> TemporaryTree {
    let tree = try TemporaryTree()
    let files: [(String, String)] = [
        ("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ncloud-user:x:1000:1000::/home/cloud-user:/bin/bash\n"),
        ("/etc/passwd-", "root:x:0:0:root:/root:/bin/bash\n"),
        ("/etc/shadow-", "root:!!:19000:0:99999:7:::\n"),
        ("/etc/machine-id", "4f1a9c2e6b0d4e3f8a7b6c5d4e3f2a1b\n"),
        ("/etc/group-", "root:x:0:\n"),
        ("/etc/ssh/sshd_config", "PermitRootLogin no\n"),
        ("/etc/ssh/ssh_host_rsa_key", "-----BEGIN RSA PRIVATE KEY-----\n"),
        ("/etc/ssh/ssh_host_rsa_key.pub", "ssh-rsa AAAA root@build\n"),
        ("/etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\n"),
        ("/etc/sysconfig/network-scripts/ifcfg-eth0",
         "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\nTYPE=Ethernet\nUUID=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03\n"
            + "ONBOOT=yes\nBOOTPROTO=dhcp\nDHCP_HOSTNAME=build.example.com\n# keep this comment\n"),
        ("/etc/sysconfig/network-scripts/ifcfg-lo", "DEVICE=lo\nIPADDR=127.0.0.1\nONBOOT=yes\nNAME=loopback\n"),
        ("/etc/sysconfig/network-scripts/ifup-eth", "#!/bin/bash\nHWADDR=not-a-config-file\n"),
        ("/etc/sysconfig/rhn/systemid", "<?xml version=\"1.0\"?>\n"),
        ("/etc/udev/rules.d/70-persistent-net.rules", "SUBSYSTEM==\"net\", ATTR{address}==\"52:54:00:12:34:56\"\n"),
        ("/etc/lvm/devices/system.devices", "IDTYPE=sys_wwid IDNAME=naa.600 DEVNAME=/dev/sda2\n"),
        ("/etc/krb5.keytab", "keytab"),
        ("/etc/pki/consumer/cert.pem", "-----BEGIN CERTIFICATE-----\n"),
        ("/etc/pki/entitlement/1234.pem", "-----BEGIN CERTIFICATE-----\n"),
        ("/etc/NetworkManager/system-connections/eth0.nmconnection", "[connection]\nid=eth0\n"),
        ("/etc/yum.conf~", "[main]\n"),
        ("/etc/fstab.bak", "UUID=x / xfs defaults 0 0\n"),
        ("/etc/fstab", "UUID=x / xfs defaults 0 0\n"),
        ("/root/.bash_history", "yum update\n"),
        ("/root/.zsh_history", ": 1:0;ls\n"),
        ("/root/.ssh/authorized_keys", "ssh-rsa AAAA builder\n"),
        ("/root/anaconda-ks.cfg", "#version=RHEL7\n"),
        ("/root/original-ks.cfg", "#version=RHEL7\n"),
        ("/home/cloud-user/.bash_history", "sudo -i\n"),
        ("/home/cloud-user/.ssh/id_rsa", "private\n"),
        ("/home/cloud-user/.bashrc", "# .bashrc\n"),
        ("/var/log/messages", "Jan 1 boot\n"),
        ("/var/log/messages-20240101", "old\n"),
        ("/var/log/secure", "sshd\n"),
        ("/var/log/cron", "crond\n"),
        ("/var/log/yum.log", "Installed: cloud-init\n"),
        ("/var/log/cloud-init.log", "init\n"),
        ("/var/log/boot.log", "ok\n"),
        ("/var/log/wtmp", "w"),
        ("/var/log/btmp", "b"),
        ("/var/log/lastlog", "l"),
        ("/var/log/audit/audit.log", "type=DAEMON_START\n"),
        ("/var/log/anaconda/anaconda.log", "install\n"),
        ("/var/log/rhsm/rhsm.log", "register\n"),
        ("/var/log/journal/0123456789abcdef/system.journal", "LPKSHHRH"),
        ("/var/log/tuned/tuned.log", "tuned\n"),
        ("/var/lib/logrotate.status", "logrotate state -- version 2\n"),
        ("/var/cache/yum/x86_64/7/base/repomd.xml", "<repomd/>\n"),
        ("/var/cache/yum/x86_64/7/base/packages/bash.rpm", "rpm"),
        ("/var/cache/man/index.db", "db"),
        ("/var/lib/dhclient/dhclient--eth0.lease", "lease {}\n"),
        ("/var/lib/rpm/Packages", "rpmdb"),
        ("/var/lib/rpm/__db.001", "env"),
        ("/var/lib/rpm/__db.002", "env"),
        ("/var/lib/yum/uuid", "0b9a3f\n"),
        ("/var/lib/cloud/instances/i-0123/boot-finished", "done\n"),
        ("/var/lib/cloud/instances/i-0123/obj.pkl", "pickle"),
        ("/var/lib/cloud/data/previous-hostname", "build\n"),
        ("/var/spool/cron/root", "0 * * * * /bin/true\n"),
        ("/var/spool/at/a0001", "#!/bin/sh\n"),
        ("/var/spool/at/.SEQ", "00003\n"),
        ("/var/spool/at/spool/a0001", "out"),
        ("/var/spool/mail/root", "From root\n"),
        ("/var/spool/abrt/ccpp-2024-01-01/coredump", "core"),
        ("/var/crash/127.0.0.1-2024/vmcore", "core"),
        ("/var/account/pacct", "acct"),
        ("/var/account/pacct-20240101", "acct"),
        ("/var/lib/puppet/ssl/certs/build.pem", "cert"),
        ("/var/lib/sss/db/cache_default.ldb", "ldb"),
        ("/tmp/build.sh", "#!/bin/sh\n"),
        ("/tmp/.X11-unix/X0", ""),
        ("/tmp/.hidden", "x"),
        ("/var/tmp/rpm-tmp.1234", "x"),
        ("/var/tmp/systemd-private-abc/tmp/x", "x"),
        ("/run/utmp", "utmp"),
    ]
    for (path, text) in files { try tree.file(path, text) }
    try tree.symlink("/var/run", to: "../run")
    try tree.symlink("/var/lib/cloud/instance", to: "/var/lib/cloud/instances/i-0123")
    return tree
}

@Suite struct SysprepCleanupTests {
    @Test func sysprepDefaultsCleanAUsedGuestAndKeepWhatPackagesOwn() throws {
        let tree = try usedRHEL7Tree()
        let context = OperationContext(guest: GuestFacts(type: "linux", distro: "rhel", majorVersion: 7))
        var outcomes: [String: OperationOutcome] = [:]
        for operation in sysprepOperations(for: context.guest) {
            outcomes[operation.name] = try operation.apply(to: tree.guest, context: context)
        }

        let gone = [
            "/etc/passwd-", "/etc/shadow-", "/etc/group-", "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub",
            "/etc/ssh/ssh_host_ed25519_key", "/etc/sysconfig/rhn/systemid", "/etc/udev/rules.d/70-persistent-net.rules",
            "/etc/lvm/devices/system.devices", "/etc/krb5.keytab", "/etc/pki/consumer/cert.pem",
            "/etc/pki/entitlement/1234.pem", "/etc/NetworkManager/system-connections/eth0.nmconnection",
            "/etc/yum.conf~", "/etc/fstab.bak", "/root/.bash_history", "/root/.zsh_history", "/root/.ssh",
            "/root/anaconda-ks.cfg", "/root/original-ks.cfg", "/home/cloud-user/.bash_history", "/home/cloud-user/.ssh",
            "/var/log/messages", "/var/log/messages-20240101", "/var/log/secure", "/var/log/cron", "/var/log/yum.log",
            "/var/log/cloud-init.log", "/var/log/boot.log", "/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog",
            "/var/log/audit/audit.log", "/var/log/anaconda/anaconda.log", "/var/log/rhsm/rhsm.log",
            "/var/log/journal/0123456789abcdef", "/var/log/tuned/tuned.log", "/var/lib/logrotate.status",
            "/var/cache/yum/x86_64/7/base/repomd.xml", "/var/cache/yum/x86_64/7/base/packages/bash.rpm",
            "/var/cache/man/index.db", "/var/lib/dhclient/dhclient--eth0.lease", "/var/lib/rpm/__db.001",
            "/var/lib/rpm/__db.002", "/var/lib/yum/uuid", "/var/lib/cloud/instance", "/var/lib/cloud/instances",
            "/var/lib/cloud/data", "/var/spool/cron/root", "/var/spool/at/a0001", "/var/spool/at/spool/a0001",
            "/var/spool/mail/root", "/var/spool/abrt/ccpp-2024-01-01", "/var/crash/127.0.0.1-2024",
            "/var/account/pacct-20240101", "/var/lib/puppet/ssl/certs/build.pem", "/var/lib/sss/db/cache_default.ldb",
            "/tmp/build.sh", "/tmp/.X11-unix", "/tmp/.hidden", "/var/tmp/rpm-tmp.1234", "/var/tmp/systemd-private-abc",
            "/run/utmp",
        ]
        for path in gone { #expect(try tree.guest.lstat(path) == nil, "\(path) should be gone") }

        let kept = [
            "/etc/passwd", "/etc/fstab", "/etc/ssh/sshd_config", "/home/cloud-user/.bashrc", "/var/lib/rpm/Packages",
            "/etc/sysconfig/network-scripts/ifcfg-lo", "/etc/sysconfig/network-scripts/ifup-eth", "/var/run",
        ]
        for path in kept { #expect(try tree.guest.lstat(path) != nil, "\(path) should be kept") }
        let keptDirectories = [
            "/var/log", "/var/log/audit", "/var/log/anaconda", "/var/log/rhsm", "/var/log/journal", "/var/log/tuned",
            "/var/cache/yum", "/var/cache/yum/x86_64/7/base/packages", "/var/cache/man", "/var/lib/dhclient",
            "/var/lib/cloud", "/var/spool/cron", "/var/spool/at", "/var/spool/at/spool", "/var/spool/mail",
            "/var/spool/abrt", "/var/crash", "/var/lib/puppet/ssl/certs", "/var/lib/sss/db", "/etc/pki/consumer",
            "/etc/pki/entitlement", "/etc/NetworkManager/system-connections", "/tmp", "/var/tmp", "/root",
            "/home/cloud-user",
        ]
        for path in keptDirectories { #expect(try tree.guest.lstat(path)?.kind == .directory, "\(path) kept") }

        #expect(tree.text("/etc/sysconfig/network-scripts/ifcfg-eth0")
            == "DEVICE=eth0\nTYPE=Ethernet\nONBOOT=yes\nBOOTPROTO=dhcp\n# keep this comment\n")
        #expect(tree.text("/etc/sysconfig/network-scripts/ifup-eth") == "#!/bin/bash\nHWADDR=not-a-config-file\n")
        #expect(tree.text("/var/spool/at/.SEQ") == "00000\n")
        #expect(tree.text("/var/account/pacct") == "")
        #expect(tree.text("/etc/machine-id") == "")
        #expect(outcomes["logfiles"]?.changed == .yes)
        #expect(outcomes["net-hwaddr"]?.summary == "removed HWADDR from /etc/sysconfig/network-scripts/ifcfg-eth0")
        // The tree has no /var/lib/systemd: the seed is the classic one.
        #expect(outcomes["random-seed"]?.summary == "wrote fresh random bytes to /var/lib/random-seed (512 bytes)")

        // The second run finds nothing left to do, and says so, for every operation but the random seed, which
        // gets new bytes every run.
        for operation in sysprepOperations(for: context.guest) {
            let again = try operation.apply(to: tree.guest, context: context)
            #expect(again.changed == (operation is RandomSeed ? .yes : .no), "\(operation.name): \(again.summary)")
            if operation is any CleanupOperation { #expect(again.summary == "nothing to remove") }
        }
    }

    @Test func everyVirtSysprepDefaultLinuxOperationIsThereUnderItsName() {
        let names = sysprepDefaults.map(\.name)
        let virtSysprep = [
            "abrt-data", "backup-files", "bash-history", "blkid-tab", "crash-data", "cron-spool", "dhcp-client-state",
            "dhcp-server-state", "dovecot-data", "ipa-client", "kerberos-hostkeytab", "logfiles", "lvm-system-devices",
            "lvm-uuids", "mail-spool", "net-hostname", "net-hwaddr", "net-nmconn", "pacct-log", "package-manager-cache", "pam-data",
            "passwd-backups", "puppet-data-log", "rh-subscription-manager", "rhn-systemid", "rpm-db", "samba-db-log",
            "smolt-uuid", "ssh-hostkeys", "ssh-userdir", "sssd-db-log", "tmp-files", "udev-persistent-net", "utmp",
            "yum-uuid", "zsh-history", "cloud-init-state", "net-uuid", "remove-machine-id", "random-seed",
        ]
        for name in virtSysprep { #expect(names.contains(name), "\(name) missing") }
        #expect(Set(names).count == names.count)
    }

    @Test func ifcfgOperationsApplyOnlyToRedHatGuests() {
        let debian = sysprepOperations(for: GuestFacts(type: "linux", distro: "debian", majorVersion: 12)).map(\.name)
        #expect(!debian.contains("net-hwaddr") && !debian.contains("rh-subscription-manager"))
        #expect(debian.contains("logfiles"))
        #expect(sysprepOperations(for: GuestFacts(type: "windows", distro: "windows")).isEmpty)
        let rhel6 = sysprepOperations(for: GuestFacts(type: "linux", distro: "rhel", majorVersion: 6)).map(\.name)
        #expect(rhel6.contains("net-hwaddr") && rhel6.contains("net-uuid"))
    }

    @Test func aDebianCronSpoolKeepsItsDirectoriesAndResetsAtsCounter() throws {
        let tree = try TemporaryTree()
        try tree.file("/var/spool/cron/crontabs/root", "@reboot /bin/true\n")
        try tree.file("/var/spool/cron/atjobs/a00001019a2b3c", "#!/bin/sh\n")
        try tree.file("/var/spool/cron/atjobs/.SEQ", "00001\n")
        try tree.file("/var/spool/cron/atspool/.keep", "")
        let outcome = try CronSpool().apply(to: tree.guest, context: OperationContext())
        #expect(outcome.changed == .yes)
        #expect(try tree.guest.lstat("/var/spool/cron/crontabs/root") == nil)
        #expect(try tree.guest.lstat("/var/spool/cron/atjobs/a00001019a2b3c") == nil)
        #expect(try tree.guest.isDirectory("/var/spool/cron/crontabs"))
        #expect(try tree.guest.isDirectory("/var/spool/cron/atjobs"))
        #expect(tree.text("/var/spool/cron/atjobs/.SEQ") == "00000\n")
        #expect(try CronSpool().apply(to: tree.guest, context: OperationContext()) == .unchanged("nothing to remove"))
    }

    @Test func anEmptyGuestHasNothingToRemove() throws {
        let tree = try TemporaryTree()
        for operation in sysprepDefaults {
            #expect(try operation.apply(to: tree.guest, context: OperationContext()).changed == .no, "\(operation.name)")
        }
    }

    /// The sysprep profile's order comes from each operation's `sysprep` declaration: virt-sysprep's defaults sorted
    /// by virt-sysprep's names (remove-machine-id is its machine-id), then the cloud-image extras, then the random
    /// seed virt-sysprep writes in every run after its operations.
    @Test func sysprepRunsInVirtSysprepOrderThenTheCloudExtras() {
        #expect(sysprepDefaults.map(\.name) == [
            "abrt-data", "backup-files", "bash-history", "blkid-tab", "crash-data", "cron-spool", "dhcp-client-state",
            "dhcp-server-state", "dovecot-data", "ipa-client", "kerberos-hostkeytab", "logfiles", "lvm-system-devices",
            "lvm-uuids", "remove-machine-id", "mail-spool", "net-hostname", "net-hwaddr", "net-nmconn", "pacct-log",
            "package-manager-cache", "pam-data", "passwd-backups", "puppet-data-log", "rh-subscription-manager",
            "rhn-systemid", "rpm-db", "samba-db-log", "smolt-uuid", "ssh-hostkeys", "ssh-userdir", "sssd-db-log",
            "tmp-files", "udev-persistent-net", "utmp", "yum-uuid", "zsh-history", "cloud-init-state", "net-uuid",
            "apt-lists", "dhcp-leases", "cloud-init-network", "random-seed",
        ])
    }

    @Test func everySysprepOperationIsACommandLineFlag() throws {
        for operation in sysprepDefaults {
            let descriptor = try #require(OperationRegistry.named(operation.name), "\(operation.name) not listed")
            // A flag, or an optional argument (remove-machine-id's mode) the profile leaves out.
            if case .required = descriptor.argument { Issue.record("\(operation.name) requires an argument") }
            #expect(try descriptor.parse(nil).name == operation.name)
            #expect(throws: ArgumentError.self) { try descriptor.parse("/etc") }
        }
        for name in ["hostname", "timezone", "ssh-inject", "password", "root-password", "selinux-relabel"] {
            #expect(OperationRegistry.named(name) != nil, "\(name) not in the catalog")
        }
    }
}
