import Appliance
import Foundation
import Operations
import Testing
import TestSupport

/// `inspect --os` on the Windows fixtures (Fixtures/build-windows), through the built binary: the facts libguestfs's
/// inspection gave when the fixture was built (its `.inspection` file), and the Glance properties a Windows image
/// needs. One appliance launch per image; the registry test makes two, the windows-cloud test three.
@Suite(.fixtures(windowsFixtures), .serialized, .tags(.appliance)) struct WindowsInspectionTests {
    /// The fixture's `<name>.inspection` file: "key: value" lines libguestfs's inspection printed at build time.
    static func libguestfsFacts(_ name: String) throws -> [String: String] {
        let text = try String(contentsOfFile: try windowsFixtures.path("\(name).inspection"), encoding: .utf8)
        var facts: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            facts[String(line[..<colon])] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        return facts
    }

    @Test(arguments: [
        ("win2k19", "ServerStandard", "17763", nil as String?),
        ("win10", "Professional", "19045", "uefi"),
    ])
    func inspectionEqualsLibguestfs(name: String, edition: String, build: String, firmware: String?) throws {
        let expected = try Self.libguestfsFacts(name)
        let run = try imgcustomize(["inspect", "--os", "--glance", "--json", try windowsFixtures.path("\(name).qcow2")])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try jsonObject(run.stdout)
        let os = try #require(report["os"] as? [String: Any], "\(run.stdout)")
        #expect(os["type"] as? String == expected["type"])
        #expect(os["distro"] as? String == expected["distro"])
        #expect((os["major-version"] as? Int).map(String.init) == expected["major"])
        #expect((os["minor-version"] as? Int).map(String.init) == expected["minor"])
        #expect(os["product-name"] as? String == expected["product"])
        #expect(os["hostname"] as? String == expected["hostname"])
        #expect(os["arch"] as? String == expected["arch"])
        #expect(os["osinfo"] as? String == expected["osinfo"])
        #expect(os["root"] as? String == expected["roots"])
        let windows = try #require(os["windows"] as? [String: Any], "\(run.stdout)")
        #expect(windows["product-variant"] as? String == expected["variant"])
        #expect(windows["system-root"] as? String == expected["systemroot"])
        let drive = try #require(expected["drive"]).split(separator: " ").map(String.init)   // "C: /dev/sda2"
        #expect(windows["drive-mappings"] as? [String: String] == [String(drive[0].dropLast()): drive[1]])
        #expect(windows["edition"] as? String == edition)
        #expect(windows["build"] as? String == build)

        // What Glance needs for it: Windows, its libosinfo id, UEFI for the GPT guest, and a SATA disk and an e1000
        // NIC since neither fixture holds the virtio drivers.
        let glance = try #require(report["glance"] as? [String: Any], "\(run.stdout)")
        #expect(glance["os_type"] as? String == "windows")
        #expect(glance["os_distro"] as? String == "windows")
        #expect(glance["os_name"] as? String == expected["osinfo"])
        #expect(glance["hw_firmware_type"] as? String == firmware)
        #expect(glance["hw_disk_bus"] as? String == "sata")
        #expect(glance["hw_vif_model"] as? String == "e1000")
    }

    /// registry-set and registry-delete on the UEFI guest's NTFS through the appliance: the second of two identical
    /// sets changes nothing, and the hives read back (one more launch) hold what was asked.
    @Test func registryEditsOnAnImageReadBack() throws {
        let directory = try TestDirectory()
        let image = directory.path("win10.qcow2")
        try FileManager.default.copyItem(atPath: try windowsFixtures.path("win10.qcow2"), toPath: image)
        let drivers = try virtioWinTree(releases: ["w10"])
        let set = "HKLM\\SOFTWARE\\Cloudbase Solutions\\Cloudbase-Init:LoggingSerialPortSettings=sz:COM1,115200,N,8"
        let run = try imgcustomize(["customize", image, "--json", "--diff",
                                    "--registry-set", set, "--registry-set", set,
                                    "--registry-set", "HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters:Hostname=sz:WIN10-CLOUD",
                                    "--registry-delete", "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion:ReleaseId",
                                    "--inject-virtio-win", drivers.path,
                                    "--firstboot-command", "echo first boot>C:\\first-boot.txt"])
        #expect(run.status == 0, "\(run.stderr)")
        let reported = steps(try jsonObject(run.stdout)).filter { ($0["operation"] as? String)?.hasPrefix("registry-") == true }
        #expect(reported.map { $0["changed"] as? Bool } == [true, false, true, true], "\(reported)")
        let injected = steps(try jsonObject(run.stdout)).first { $0["operation"] as? String == "inject-virtio-win" }
        #expect((injected?["summary"] as? String)?.hasPrefix("viostor boots; balloon, netkvm, vioscsi, viostor for w10/amd64") == true,
                "\(String(describing: injected))")
        let diff = (reported.first?["diff"] as? [[String: Any]])?.first?["unified"] as? String ?? ""
        #expect(diff.contains("+\"LoggingSerialPortSettings\"=str(1):\"COM1,115200,N,8\""), "\(diff)")

        let hives = try readBack(image) { guest in
            // The drivers are where Windows finds them, and Glance learns that the guest takes virtio devices.
            #expect(try guest.read("/Windows/System32/drivers/viostor.sys") == Array("viostor/w10/amd64/viostor.sys driver bytes\n".utf8))
            #expect(try guest.list("/Windows/Drivers/VirtIO").contains("netkvm.inf"))
            #expect(try guest.list("/ProgramData/imgcustomize/firstboot/scripts") == ["0001-command.bat"])
            #expect(try guest.exists("/ProgramData/imgcustomize/firstboot/run.bat"))
            #expect(try GuestHardware(reading: guest, facts: guest.facts) == GuestHardware(uefiOnly: true))
            return try ["SOFTWARE", "SYSTEM"].map { hive -> String in
                let path = directory.path(hive)
                try Data(try guest.read("/Windows/System32/config/" + hive)).write(to: URL(fileURLWithPath: path))
                return path
            }
        }
        func exported(_ hive: Int, _ prefix: String, _ key: String) throws -> String {
            try runTool("hivexregedit", ["--export", "--unsafe-printable-strings", "--prefix", prefix, hives[hive], key])
        }
        #expect(try exported(0, "HKEY_LOCAL_MACHINE\\SOFTWARE", "Cloudbase Solutions\\Cloudbase-Init")
                .contains("\"LoggingSerialPortSettings\"=str(1):\"COM1,115200,N,8\""))
        let current = try exported(0, "HKEY_LOCAL_MACHINE\\SOFTWARE", "Microsoft\\Windows NT\\CurrentVersion")
        #expect(!current.contains("ReleaseId") && current.contains("\"ProductName\"=str(1):\"Windows 10 Pro\""), "\(current)")
        #expect(try exported(1, "HKEY_LOCAL_MACHINE\\SYSTEM", "ControlSet001\\Services\\Tcpip\\Parameters")
                .contains("\"Hostname\"=str(1):\"WIN10-CLOUD\""))
        #expect(try exported(1, "HKEY_LOCAL_MACHINE\\SYSTEM", "ControlSet001\\Services\\viostor")
                .contains("\"Start\"=dword:00000000"))
        #expect(try exported(1, "HKEY_LOCAL_MACHINE\\SYSTEM", "Setup").contains("\"SetupType\"=dword:00000002"))
    }

    /// The windows-cloud profile on the BIOS guest, chosen by `apply cloud` (its first run, with --diff: the registry
    /// changes as .reg text, recorded as a dry run records them), then run by name a second time, which changes
    /// nothing; then both results read back in one launch (three in all). A missing parameter is refused before any
    /// launch.
    @Test func windowsCloudProfileOnAnImageReadBack() throws {
        let directory = try TestDirectory()
        let image = directory.path("win2k19.qcow2")
        try FileManager.default.copyItem(atPath: try windowsFixtures.path("win2k19.qcow2"), toPath: image)
        let drivers = try virtioWinTree(releases: ["2k19"])
        let msi = directory.path("CloudbaseInitSetup_x64.msi")
        let msiBytes = Array("not an MSI: nothing runs it here\n".utf8)
        try Data(msiBytes).write(to: URL(fileURLWithPath: msi))
        let parameters = ["--param", "virtio-win=" + drivers.path, "--param", "cloudbase-init=" + msi,
                          "--param", "admin-user=Administrator"]

        // A required parameter missing: refused before anything is launched, naming it and how to give it.
        let pristine = try Data(contentsOf: URL(fileURLWithPath: image))
        let refused = try imgcustomize(["apply", "windows-cloud", image, "--param", "virtio-win=" + drivers.path])
        #expect(refused.status == 64, "\(refused.stderr)")
        #expect(refused.stderr.contains("profile windows-cloud needs its parameter cloudbase-init")
                && refused.stderr.contains("--param cloudbase-init=PATH"), "\(refused.stderr)")
        #expect(!refused.stderr.contains("TCG") && !refused.stderr.contains("appliance"), "\(refused.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == pristine)

        let chosen = try imgcustomize(["apply", "cloud", image, "--json", "--diff"] + parameters)
        #expect(chosen.status == 0, "\(chosen.stderr)")
        let report = try jsonObject(chosen.stdout)
        let ran = steps(report)
        #expect(ran.first?["operation"] as? String == "profile-choice")
        #expect((ran.first?["summary"] as? String)?.hasPrefix("chose windows-cloud for Windows Server 2019") == true, "\(ran)")
        let operations = ran.compactMap { $0["operation"] as? String }.filter { $0 != "profile-choice" && $0 != "selinux-relabel" }
        #expect(operations == ["inject-virtio-win", "mkdir", "write-lines", "write-lines", "firstboot-command",
                               "firstboot-install", "firstboot-command", "firstboot-command"], "\(operations)")
        #expect(ran.filter { operations.contains($0["operation"] as? String ?? "") }.allSatisfy { $0["changed"] as? Bool == true })
        let registryDiffs = ran.flatMap { $0["diff"] as? [[String: Any]] ?? [] }
            .filter { ($0["path"] as? String)?.hasPrefix("/Windows/System32/config/") == true }
            .compactMap { $0["unified"] as? String }.joined()
        #expect(registryDiffs.contains("+[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\viostor]")
                && registryDiffs.contains("+\"Start\"=dword:00000000")
                && registryDiffs.contains("+\"SetupType\"=dword:00000002"), "\(registryDiffs)")

        // The second run, by name: nothing to do. Its image is not byte for byte the first's (ntfs-3g, mounting it
        // read-write, updates access times in the MFT), so both are read back, in one launch: the same files, the
        // same hives.
        let first = directory.path("first.qcow2")
        try FileManager.default.copyItem(atPath: image, toPath: first)
        let second = try imgcustomize(["apply", "windows-cloud", image, "--json"] + parameters)
        #expect(second.status == 0, "\(second.stderr)")
        let again = steps(try jsonObject(second.stdout)).filter { $0["operation"] as? String != "selinux-relabel" }
        #expect(again.count == operations.count && again.allSatisfy { $0["changed"] as? Bool == false }, "\(again)")

        let root = "/ProgramData/imgcustomize/"
        let session = try ApplianceSession(drives: [ApplianceDrive(path: first, format: .qcow2, readonly: true),
                                                    ApplianceDrive(path: image, format: .qcow2, readonly: true)])
        defer { try? session.close() }
        var images: [[String: [UInt8]]] = []
        for (index, path) in [first, image].enumerated() {
            try session.select(drive: index, name: path, knownFacts: nil)
            let guest = try session.mountOperatingSystem()
            var files: [String: [UInt8]] = [:]
            for directory in ["/Windows/Drivers/VirtIO", root + "firstboot", root + "firstboot/scripts",
                              root + "firstboot/files", root + "cloudbase-init"] {
                for name in try guest.list(directory) where try guest.isFile(directory + "/" + name) {
                    files[directory + "/" + name] = try guest.read(directory + "/" + name)
                }
            }
            for file in ["/Windows/System32/drivers/viostor.sys", "/Windows/System32/config/SOFTWARE",
                         "/Windows/System32/config/SYSTEM"] {
                files[file] = try guest.read(file)
            }
            images.append(files)
        }
        #expect(images.count == 2 && images[0] == images[1], "the second run changed \(images.count == 2 ? images[0].keys.filter { images[0][$0] != images[1][$0] }.sorted() : [])")
        let files = try #require(images.last)
        #expect(files["/Windows/System32/drivers/viostor.sys"] == Array("viostor/2k19/amd64/viostor.sys driver bytes\n".utf8))
        #expect(files["/Windows/Drivers/VirtIO/netkvm.inf"] != nil, "\(files.keys.sorted())")
        #expect(files[root + "firstboot/files/CloudbaseInitSetup_x64.msi"] == msiBytes)
        let scripts = files.keys.filter { $0.hasPrefix(root + "firstboot/scripts/") }.sorted()
            .map { (String($0.dropFirst((root + "firstboot/scripts/").count)), String(decoding: files[$0] ?? [], as: UTF8.self)) }
        let configuration = ["cloudbase-init.conf", "cloudbase-init-unattend.conf"].map {
            String(decoding: files[root + "cloudbase-init/" + $0] ?? [], as: UTF8.self)
        }
        let hives = try ["SOFTWARE", "SYSTEM"].map { hive -> String in
            let path = directory.path(hive)
            try Data(files["/Windows/System32/config/" + hive] ?? []).write(to: URL(fileURLWithPath: path))
            return path
        }
        // Drivers into the store, then Cloudbase-Init's MSI, then its configuration over the MSI's, Sysprep last.
        #expect(scripts.map(\.0) == ["0001-command.bat", "0002-install-CloudbaseInitSetup_x64.bat", "0003-command.bat",
                                     "0004-command.bat"], "\(scripts.map(\.0))")
        let commands = scripts.map { $0.1.split(separator: "\r\n").last.map(String.init) ?? "" }
        #expect(commands.count == 4 && commands[0] == "pnputil -i -a %SystemRoot%\\Drivers\\VirtIO\\*.inf", "\(commands)")
        #expect(commands.count == 4 && commands[1].hasPrefix("msiexec /i \"%~dp0..\\files\\CloudbaseInitSetup_x64.msi\" /qn")
                && commands[1].contains("/l*v ")
                && commands[1].hasSuffix(" RUN_SERVICE_AS_LOCAL_SYSTEM=1 USERNAME=Administrator LOGGINGSERIALPORTNAME=COM1"),
                "\(commands)")
        #expect(commands.count == 4 && commands[2].hasPrefix("copy /y \"%SystemDrive%\\ProgramData\\imgcustomize\\cloudbase-init\\*.conf\""),
                "\(commands)")
        #expect(commands.count == 4 && commands[3].contains("\\Sysprep\\sysprep.exe /generalize /oobe /shutdown /unattend:"
                                                           + "\"%ProgramFiles%\\Cloudbase Solutions\\Cloudbase-Init\\conf\\Unattend.xml\""),
                "\(commands)")
        for (index, text) in configuration.enumerated() {
            let lines = text.split(separator: "\n").map(String.init)
            #expect(lines.first == "[DEFAULT]" && lines.contains("username=Administrator")
                    && lines.contains("logging_serial_port_settings=COM1,115200,N,8")
                    && lines.contains("metadata_services=cloudbaseinit.metadata.services.configdrive.ConfigDriveService,"
                                      + "cloudbaseinit.metadata.services.httpservice.HttpService,"
                                      + "cloudbaseinit.metadata.services.ec2service.EC2Service"), "\(text)")
            // The service creates the user and takes the user data; the specialize pass only names and extends.
            #expect(lines.contains { $0.hasPrefix("plugins=") && $0.contains("CreateUserPlugin") } == (index == 0), "\(text)")
            #expect(lines.contains("allow_reboot=false") == (index == 1), "\(text)")
        }
        func exported(_ hive: Int, _ prefix: String, _ key: String) throws -> String {
            try runTool("hivexregedit", ["--export", "--unsafe-printable-strings", "--prefix", prefix, hives[hive], key])
        }
        #expect(try exported(0, "HKEY_LOCAL_MACHINE\\SOFTWARE", "Microsoft\\Windows\\CurrentVersion")
                .contains("%SystemRoot%\\Drivers\\VirtIO"))
        #expect(try exported(1, "HKEY_LOCAL_MACHINE\\SYSTEM", "ControlSet001\\Services\\viostor").contains("\"Start\"=dword:00000000"))
        let setup = try exported(1, "HKEY_LOCAL_MACHINE\\SYSTEM", "Setup")
        #expect(setup.contains("\"SetupType\"=dword:00000002") && setup.contains("firstboot\\run.bat"), "\(setup)")
    }
}
