import Customize
import Formats
import Operations

extension GlanceProperties {
    /// The properties that follow from the inspected guest: its architecture and operating system as Glance names
    /// them, and the virtual hardware it needs or can use.
    mutating func add(_ facts: GuestFacts, _ hardware: GuestHardware) {
        architecture = facts.arch
        osType = facts.type
        if let os = GlanceOS(facts) {
            osDistro = os.distro
            osVersion = os.version
            osName = os.osName
        }
        hwFirmwareType = hardware.uefiOnly ? "uefi" : nil
        hwQemuGuestAgent = hardware.qemuGuestAgent ? "yes" : nil
        hwDiskBus = hardware.diskBus
        hwScsiModel = hardware.scsiModel
        hwVifModel = hardware.vifModel
    }
}
