import Customize
import Operations

extension BuiltinProfiles {
    /// Section 1.2.1.2.3 of the Image Service guide, offline: what the operator does in the running Windows (load the
    /// virtio drivers, install Cloudbase-Init, tick "Run Sysprep" and "Shutdown") done to the image, the last two at
    /// its next boot. That boot ends with Sysprep shutting the guest down, generalized: the image to upload.
    ///
    /// Cloudbase-Init's configuration is staged under ProgramData and copied over the MSI's own files after the MSI
    /// has run, by the first-boot script that follows it: the MSI writes cloudbase-init.conf and
    /// cloudbase-init-unattend.conf itself, from its properties, so files put where it installs before it runs
    /// would be overwritten (or make a repair of a half-installed product of it).
    public static let windowsCloud = Profile(
        "windows-cloud",
        summary: "Prepare a Windows guest as an OpenStack cloud image (Image Service guide, 1.2.1.2.3): virtio drivers, "
            + "then at its next boot Cloudbase-Init and Sysprep, which shuts it down ready to upload",
        requires: .distro("windows"),
        parameters: [
            ProfileParameter("virtio-win", summary: "The virtio-win ISO, or a directory with its layout", hostPath: true),
            ProfileParameter("cloudbase-init", summary: "Cloudbase-Init's MSI, CloudbaseInitSetup_x64.msi from cloudbase.it", hostPath: true),
            ProfileParameter("admin-user", summary: "The account Cloudbase-Init creates and sets the password of",
                             default: "Admin"),
        ]
    ) { _, arguments in
        Group("virtio drivers (step 1): storage for boot, the others for Plug and Play") {
            InjectVirtioWin(arguments["virtio-win"])
        }
        Group("Cloudbase-Init configuration: OpenStack's metadata, serial-port logging (staged until its MSI runs)") {
            MakeDirectory(cloudbaseInitStaging)
            WriteLines(cloudbaseInitStaging + "/cloudbase-init.conf",
                       lines: cloudbaseInitConfiguration(user: arguments["admin-user"], unattended: false))
            WriteLines(cloudbaseInitStaging + "/cloudbase-init-unattend.conf",
                       lines: cloudbaseInitConfiguration(user: arguments["admin-user"], unattended: true))
        }
        Group("at the next boot, in order: drivers, Cloudbase-Init (steps 2-4), Sysprep and shut down (step 5)") {
            // Into the driver store, so that the devices present get them now and Sysprep's generalize keeps them.
            FirstbootCommand("pnputil -i -a %SystemRoot%\\Drivers\\VirtIO\\*.inf")
            FirstbootInstall([arguments["cloudbase-init"] + " RUN_SERVICE_AS_LOCAL_SYSTEM=1 USERNAME="
                              + arguments["admin-user"] + " LOGGINGSERIALPORTNAME=COM1"])
            FirstbootCommand("copy /y \"%SystemDrive%" + cloudbaseInitStaging.replacingOccurrences(of: "/", with: "\\")
                             + "\\*.conf\" \"" + cloudbaseInitConf + "\"")
            // As the MSI's "Run Sysprep" and "Shutdown" boxes do, with its Unattend.xml; not without Cloudbase-Init,
            // which would give a generalized image nothing configures.
            FirstbootCommand("if not exist \"\(cloudbaseInitConf)\\Unattend.xml\" (echo Cloudbase-Init is not installed: "
                             + "no Sysprep & exit /b 1) else %SystemRoot%\\System32\\Sysprep\\sysprep.exe /generalize /oobe "
                             + "/shutdown /unattend:\"\(cloudbaseInitConf)\\Unattend.xml\"")
        }
    }

    /// Below the system drive: the configuration waits here for the MSI.
    static let cloudbaseInitStaging = "/ProgramData/imgcustomize/cloudbase-init"
    /// Where Cloudbase-Init's MSI puts its configuration and Unattend.xml (its INSTALLDIR's conf).
    static let cloudbaseInitConf = "%ProgramFiles%\\Cloudbase Solutions\\Cloudbase-Init\\conf"

    /// cloudbase-init.conf (the service, at every boot) or cloudbase-init-unattend.conf (run once by Unattend.xml in
    /// Sysprep's specialize pass: the host name and the volumes, no reboot): OpenStack's config drive, then its
    /// metadata service, then EC2's; logging to COM1, which Nova's console log reads. No path ends in a backslash:
    /// Cloudbase-Init joins them, and a command file could not say it.
    static func cloudbaseInitConfiguration(user: String, unattended: Bool) -> [String] {
        let home = "C:\\Program Files\\Cloudbase Solutions\\Cloudbase-Init"
        let plugins = unattended
            ? ["common.mtu.MTUPlugin", "common.sethostname.SetHostNamePlugin", "windows.extendvolumes.ExtendVolumesPlugin"]
            : ["common.mtu.MTUPlugin", "common.sethostname.SetHostNamePlugin", "windows.createuser.CreateUserPlugin",
               "common.networkconfig.NetworkConfigPlugin", "windows.extendvolumes.ExtendVolumesPlugin",
               "common.setuserpassword.SetUserPasswordPlugin", "common.sshpublickeys.SetUserSSHPublicKeysPlugin",
               "common.userdata.UserDataPlugin", "common.localscripts.LocalScriptsPlugin"]
        return [
            "[DEFAULT]",
            "username=\(user)",
            "groups=Administrators",
            "inject_user_password=true",
            "first_logon_behaviour=no",
            "config_drive_raw_hhd=true",
            "config_drive_cdrom=true",
            "config_drive_vfat=true",
            "bsdtar_path=\(home)\\bin\\bsdtar.exe",
            "mtools_path=\(home)\\bin",
            "metadata_services=" + ["configdrive.ConfigDriveService", "httpservice.HttpService", "ec2service.EC2Service"]
                .map { "cloudbaseinit.metadata.services." + $0 }.joined(separator: ","),
            "plugins=" + plugins.map { "cloudbaseinit.plugins." + $0 }.joined(separator: ","),
            "verbose=true",
            "debug=true",
            "logdir=\(home)\\log",
            "logfile=cloudbase-init\(unattended ? "-unattend" : "").log",
            "default_log_levels=comtypes=INFO,suds=INFO,iso8601=WARN,requests=WARN",
            "logging_serial_port_settings=COM1,115200,N,8",
            "mtu_use_dhcp_config=true",
            "ntp_use_dhcp_config=true",
            "local_scripts_path=\(home)\\LocalScripts",
            "check_latest_version=false",
        ] + (unattended ? ["allow_reboot=false", "stop_service_on_exit=false"] : [])
    }
}
