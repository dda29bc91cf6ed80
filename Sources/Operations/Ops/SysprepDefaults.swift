/// The `sysprep` profile's operations, in order: virt-sysprep's default Linux clean-ups in its alphabetical
/// order (its machine-id is remove-machine-id), then what cloud images need on top (cloud-init state, UUID= in ifcfg
/// files). Nothing here writes /etc/machine-id after remove-machine-id empties it.
public let sysprepDefaults: [any Operation] = [
    AbrtData(), BackupFiles(), BashHistory(), BlkidTab(), CrashData(), CronSpool(), DHCPClientState(),
    DHCPServerState(), DovecotData(), IPAClient(), KerberosHostKeytab(), LogFiles(), LVMSystemDevices(),
    RemoveMachineID(), MailSpool(), NetHostname(), NetHWAddr(), NetNMConn(), PacctLog(), PackageManagerCache(),
    PAMData(), PasswdBackups(), PuppetDataLog(), RHSubscriptionManager(), RHNSystemID(), RPMDB(), SambaDBLog(),
    SmoltUUID(), SSHHostKeys(), SSHUserDir(), SSSDDBLog(), TmpFiles(), UdevPersistentNet(), UTmp(), YumUUID(),
    ZshHistory(), CloudInitState(), NetUUID(),
]

/// The sysprep operations that mean something on `guest`: all of them on Linux, the ifcfg and subscription ones
/// only on Red Hat's distributions; none on other operating systems.
public func sysprepOperations(for guest: GuestFacts) -> [any Operation] {
    sysprepDefaults.filter { operation in
        guard let cleanup = operation as? any CleanupOperation else { return guest.isLinuxOrUnknown }
        return type(of: cleanup).applies(to: guest)
    }
}

extension OperationCatalog {
    /// The sysprep and virt-customize-style operations of this file's neighbours, as the command line offers them.
    static let sysprepCatalogEntries: [any CatalogEntry.Type] = [
        Hostname.self, Timezone.self, SSHInject.self, Password.self, RootPassword.self, SELinuxRelabel.self,
        AbrtData.self, BackupFiles.self, BashHistory.self, BlkidTab.self, CrashData.self, CronSpool.self,
        DHCPClientState.self, DHCPServerState.self, DovecotData.self, IPAClient.self, KerberosHostKeytab.self,
        LogFiles.self, LVMSystemDevices.self, MailSpool.self, NetHostname.self, NetHWAddr.self, NetNMConn.self,
        PacctLog.self, PackageManagerCache.self, PAMData.self, PasswdBackups.self, PuppetDataLog.self,
        RHSubscriptionManager.self, RHNSystemID.self, RPMDB.self, SambaDBLog.self, SmoltUUID.self, SSHHostKeys.self,
        SSHUserDir.self, SSSDDBLog.self, TmpFiles.self, UdevPersistentNet.self, UTmp.self, YumUUID.self,
        ZshHistory.self, CloudInitState.self, NetUUID.self,
    ]
}
