import Testing
@testable import Operations
@testable import DirectoryTree

/// virt-sysprep's operations that run only when asked: what they remove, what they keep, and that the defaults
/// leave them out.
@Suite struct SysprepOnRequestTests {
    @Test func firewallRulesGoAndFirewalldsOwnConfigurationStays() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/sysconfig/iptables", "-A INPUT -p tcp --dport 22 -j ACCEPT\n")
        try tree.file("/etc/firewalld/zones/public.xml", "<zone/>\n")
        try tree.file("/etc/firewalld/services/app.xml", "<service/>\n")
        try tree.file("/etc/firewalld/firewalld.conf", "DefaultZone=public\n")
        let (first, second) = try tree.applyTwice(FirewallRules())
        #expect(first.changed == .yes && second.summary == "nothing to remove")
        for path in ["/etc/sysconfig/iptables", "/etc/firewalld/zones/public.xml", "/etc/firewalld/services/app.xml"] {
            #expect(try tree.guest.lstat(path) == nil, "\(path)")
        }
        #expect(tree.text("/etc/firewalld/firewalld.conf") == "DefaultZone=public\n")
        #expect(try tree.guest.isDirectory("/etc/firewalld/zones"))
    }

    @Test func kerberosDataGoesButTheKDCsConfigurationStays() throws {
        let tree = try TemporaryTree()
        for name in ["principal", "principal.ok", ".k5.EXAMPLE.COM", "kdc.conf", "kadm5.acl"] {
            try tree.file("/var/kerberos/krb5kdc/" + name, name + "\n")
        }
        try tree.file("/etc/krb5.keytab", "keytab\n")
        try tree.applyTwice(KerberosData())
        #expect(try tree.guest.list("/var/kerberos/krb5kdc").sorted() == ["kadm5.acl", "kdc.conf"])
        // The host keytab is kerberos-hostkeytab's, a default operation of its own.
        #expect(tree.text("/etc/krb5.keytab") == "keytab\n")
    }

    @Test func caCertificatesGoButTheSystemBundlesStay() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/pki/tls/certs/ca-bundle.crt", "bundle\n")
        try tree.file("/etc/pki/tls/certs/ca-bundle.trust.crt", "trust\n")
        try tree.file("/etc/pki/tls/certs/web.example.com.crt", "cert\n")
        try tree.file("/etc/pki/tls/private/web.example.com.key", "key\n", mode: 0o600)
        try tree.file("/etc/pki/CA/private/cakey.key", "ca key\n", mode: 0o600)
        let (first, _) = try tree.applyTwice(CACertificates())
        #expect(first.changed == .yes)
        #expect(try tree.guest.list("/etc/pki/tls/certs").sorted() == ["ca-bundle.crt", "ca-bundle.trust.crt"])
        #expect(try tree.guest.list("/etc/pki/tls/private").isEmpty && tree.guest.list("/etc/pki/CA/private").isEmpty)
    }

    @Test func flagReconfigurationCreatesUnconfiguredOnce() throws {
        let tree = try TemporaryTree()
        let (first, _) = try tree.applyTwice(FlagReconfiguration())
        #expect(first.summary == "created empty /.unconfigured")
        #expect(tree.text("/.unconfigured") == "")
    }

    @Test func theyAreOffByDefaultUnderVirtSysprepsNames() throws {
        let onRequest = ["ca-certificates", "firewall-rules", "flag-reconfiguration", "fs-uuids", "kerberos-data",
                         "script", "user-account"]
        for name in onRequest {
            let descriptor = try #require(OperationRegistry.named(name))
            #expect(descriptor.sysprep == .virtSysprepOnRequest(as: name)
                    && descriptor.isFlag == !["script", "user-account"].contains(name))
        }
        #expect(Set(sysprepDefaults.map(\.name)).isDisjoint(with: onRequest))
        #expect(SysprepSelection.known.filter { !$0.isSysprepDefault }.map(\.name) == onRequest)
    }
}
