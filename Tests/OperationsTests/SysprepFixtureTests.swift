import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree
import TestSupport

/// The fixtures helper's RHEL 7 tree (Fixtures/trees/common, then rhel7 over it), as the images are built from it.
private func rhel7FixtureTree() throws -> TemporaryTree {
    let trees = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/trees")
    let tree = try TemporaryTree()
    for layer in ["common", "rhel7"] {
        try runTool("cp", ["-a", trees.appendingPathComponent(layer).path + "/.", tree.path])
    }
    return tree
}

@Suite struct SysprepFixtureTests {
    @Test func theSysprepProfileOnTheRHEL7FixtureThenItsPolicysLabels() throws {
        let tree = try rhel7FixtureTree()
        let facts = GuestFacts(type: "linux", distro: "rhel", majorVersion: 7, minorVersion: 9)
        let runner = OperationRunner(guest: tree.guest, context: OperationContext(guest: facts))
        for operation in sysprepOperations(for: facts) + [SELinuxRelabel()] { _ = try runner.run(operation) }

        for gone in ["/var/log/messages", "/var/log/secure-20231112", "/var/log/audit/audit.log", "/var/log/yum.log",
                     "/var/log/anaconda/anaconda.log", "/root/.bash_history", "/root/anaconda-ks.cfg",
                     "/root/notes.txt~", "/etc/hosts.bak", "/etc/shadow-", "/etc/passwd-",
                     "/etc/udev/rules.d/70-persistent-net.rules", "/etc/sysconfig/rhn/systemid", "/var/lib/yum/uuid",
                     "/var/lib/dhclient/dhclient--eth0.lease", "/var/lib/cloud/data", "/var/spool/cron/root",
                     "/var/spool/mail/root", "/tmp/ks-script-Jx2b3k", "/var/tmp/build-notes.txt"] {
            #expect(try tree.guest.lstat(gone) == nil, "\(gone)")
        }
        for kept in ["/var/log/audit", "/var/log/anaconda", "/var/log/rhsm", "/var/lib/cloud", "/var/spool/cron",
                     "/var/spool/mail", "/tmp", "/var/tmp", "/etc/udev/rules.d"] {
            #expect(try tree.guest.isDirectory(kept), "\(kept)")
        }
        let ifcfg = try #require(tree.text("/etc/sysconfig/network-scripts/ifcfg-eth0"))
        #expect(!ifcfg.contains("HWADDR=") && !ifcfg.contains("UUID=") && !ifcfg.contains("DHCP_HOSTNAME="))
        #expect(ifcfg.hasPrefix("TYPE=Ethernet\nPROXY_METHOD=none\n"))
        #expect(ifcfg.hasSuffix("PEERROUTES=yes\nZONE=public\n"))
        #expect(tree.text("/etc/machine-id") == "")

        // Labels of what the run rewrote, from the fixture's own targeted file_contexts.
        func label(_ path: String) throws -> String? {
            try tree.guest.getxattr(path, name: "security.selinux").map {
                String(decoding: $0.filter { $0 != 0 }, as: UTF8.self)
            }
        }
        #expect(try label("/etc/sysconfig/network-scripts/ifcfg-eth0") == "system_u:object_r:net_conf_t:s0")
        #expect(try label("/etc/machine-id") == "system_u:object_r:machineid_t:s0")

        // Again: nothing changes but the random seed, which gets new bytes every run.
        let again = OperationRunner(guest: tree.guest, context: OperationContext(guest: facts))
        for operation in sysprepOperations(for: facts) + [SELinuxRelabel(paths: runner.touchedPaths)] {
            let report = try again.run(operation)
            #expect(report.changed == (operation is RandomSeed ? .yes : .no), "\(report.operation): \(report.summary)")
        }
    }
}
