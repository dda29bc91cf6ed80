import Foundation
import Appliance
import Operations
import Testing
import TestSupport

/// What a user checks in a guest that went through a cloud profile, read back through the appliance.
struct CloudGuestChecks {
    let guest: ApplianceFilesystem

    func text(_ path: String) throws -> String { try guest.readText(path) }

    /// The steps both cloud profiles share.
    func cloudProfile() throws {
        try network()
        try cloudInit()
        try subscriptionCleanup()
        try rootLocked()
        try sysprep()
    }

    func network() throws {
        #expect(try text("/etc/sysconfig/network-scripts/ifcfg-eth0")
                == "TYPE=Ethernet\nDEVICE=eth0\nONBOOT=yes\nBOOTPROTO=dhcp\nNM_CONTROLLED=no\n")
        let network = try text("/etc/sysconfig/network").split(separator: "\n")
        #expect(network.filter { $0.hasPrefix("NOZEROCONF=") } == ["NOZEROCONF=yes"])
    }

    func cloudInit() throws {
        let cloudConfig = try text("/etc/cloud/cloud.cfg")
        let lines = cloudConfig.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.filter { $0.trimmingCharacters(in: .whitespaces) == "- resolv-conf" }.count == 1)
        // The entry sits in the cloud_init_modules list, and the YAML stays valid: PyYAML reads the list back.
        let directory = try TestDirectory()
        try cloudConfig.write(toFile: directory.path("cloud.cfg"), atomically: true, encoding: .utf8)
        let modules = try runTool("python3", ["-c", "import sys, yaml; print('\\n'.join(map(str, yaml.safe_load(open(sys.argv[1]))['cloud_init_modules'])))",
                                           directory.path("cloud.cfg")])
        #expect(modules.split(separator: "\n").contains("resolv-conf"))
    }

    func subscriptionCleanup() throws {
        for repo in try guest.glob("/etc/yum.repos.d/*.repo") {
            var sections = 0
            var enabledOff = 0
            for line in try text(repo).split(separator: "\n") {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("[") { sections += 1 }
                let compact = trimmed.replacingOccurrences(of: " ", with: "")
                if compact.hasPrefix("enabled=") {
                    #expect(compact == "enabled=0", "\(repo): \(line)")
                    enabledOff += 1
                }
            }
            #expect(sections == enabledOff, "\(repo): every section gets enabled=0")
        }
        #expect(try guest.list("/etc/pki/consumer").isEmpty)
        #expect(try guest.list("/etc/pki/entitlement").isEmpty)
        #expect(try guest.glob("/var/cache/yum/**/*").allSatisfy { try guest.isDirectory($0) })
    }

    func rootLocked() throws {
        let root = try text("/etc/shadow").split(separator: "\n").first { $0.hasPrefix("root:") }
        let password = root?.split(separator: ":", omittingEmptySubsequences: false).dropFirst().first ?? ""
        #expect(password.hasPrefix("!"), "root's password field is \(password)")
    }

    func sysprep() throws {
        // Emptied where systemd keeps one (RHEL 7); RHEL 6 has none, and none may appear.
        #expect(try guest.stat("/etc/machine-id")?.size ?? 0 == 0)
        #expect(try guest.stat("/var/lib/dbus/machine-id").map { $0.kind != .regular || $0.size == 0 } ?? true)
        #expect(try guest.glob("/etc/ssh/ssh_host_*").isEmpty)
        #expect(try !guest.exists("/root/.bash_history"))
        #expect(try !guest.exists("/etc/udev/rules.d/70-persistent-net.rules"))
        #expect(try guest.glob("/var/log/*.log").isEmpty)
        #expect(try guest.list("/tmp").isEmpty)
        for ifcfg in try guest.glob("/etc/sysconfig/network-scripts/ifcfg-*") {
            let keys = try text(ifcfg).split(separator: "\n").map { $0.split(separator: "=").first ?? "" }
            #expect(!keys.contains("HWADDR") && !keys.contains("UUID"), "\(ifcfg)")
        }
    }

    func consoleOnEveryKernelLine(_ path: String, keyword: String) throws {
        let kernelLines = try text(path).split(separator: "\n")
            .filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix(keyword + " ") }
        #expect(!kernelLines.isEmpty, "\(path) has \(keyword) lines")
        for line in kernelLines {
            #expect(line.hasSuffix("console=tty0 console=ttyS0,115200n8") || line.contains(" console=tty0 console=ttyS0,115200n8"),
                    "\(path): \(line)")
            #expect(line.components(separatedBy: "console=ttyS0,115200n8").count == 2, "once: \(line)")
        }
    }
}
