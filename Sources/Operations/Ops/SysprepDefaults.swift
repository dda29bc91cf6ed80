/// The `sysprep` profile's operations, in order: virt-sysprep's default Linux clean-ups in its alphabetical order,
/// then what cloud images need on top (cloud-init state, UUID= in ifcfg files). Nothing here writes /etc/machine-id
/// after remove-machine-id empties it.
public let sysprepDefaults: [any Operation] = [
    AbrtData(), BackupFiles(), BashHistory(), BlkidTab(), CrashData(), CronSpool(), DHCPClientState(),
    DHCPServerState(), DovecotData(), IPAClient(), KerberosHostKeytab(), LogFiles(), LVMSystemDevices(),
    MailSpool(), NetHostname(), NetHWAddr(), NetNMConn(), PacctLog(), PackageManagerCache(), PAMData(),
    PasswdBackups(), PuppetDataLog(), RHSubscriptionManager(), RHNSystemID(), RPMDB(), SambaDBLog(), SmoltUUID(),
    SSHHostKeys(), SSHUserDir(), SSSDDBLog(), TmpFiles(), UdevPersistentNet(), UTmp(), YumUUID(), ZshHistory(),
    CloudInitState(), NetUUID(),
]

/// The sysprep operations that mean something on `guest`: all of them on Linux, the ifcfg and subscription ones
/// only on Red Hat's distributions; none on other operating systems.
public func sysprepOperations(for guest: GuestFacts) -> [any Operation] {
    sysprepDefaults.filter { operation in
        guard let cleanup = operation as? any CleanupOperation else { return guest.isLinuxOrUnknown }
        return type(of: cleanup).applies(to: guest)
    }
}
