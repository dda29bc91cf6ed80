import Foundation
import Logging
import Operations
import Host

/// A LUKS device a session opened, and the mapping its plaintext appears as.
struct OpenedLUKS: Equatable {
    var device: String
    var uuid: String
    /// /dev/mapper/luks-UUID: the name the guest's own crypttab gives it by default (systemd-cryptsetup,
    /// anaconda), so that an fstab naming /dev/mapper/luks-UUID resolves to it as it stands.
    var mapping: String
}

/// Opens the guest's LUKS devices with the keys given, before inspection, as virt-customize does (guestfs-tools'
/// options/decrypt.c and keys.c): partitions and unpartitioned disks first, then logical volumes once the volume
/// groups inside the opened devices are found. Every key a device's name or LUKS UUID selects is tried in order;
/// a device no key is for is passed to `LUKSKeys.prompt`, or left closed without one.
struct LUKSUnlock {
    let guestfs: Guestfs
    let keys: LUKSKeys
    let readonly: Bool
    let logger: Logger

    /// The devices opened, and a warning for every key that is for no LUKS device of the image.
    func run() throws -> (opened: [OpenedLUKS], warnings: [String]) {
        var opened: [OpenedLUKS] = []
        var warnings: [String] = []
        var found: [(device: String, uuid: String)] = []
        let disks = try guestfs.disks()
        let partitions = try guestfs.partitions()
        let bare = disks.filter { disk in !partitions.contains { QuickInspection.partition($0, isOn: disk) } }
        opened += try open(bare + partitions, found: &found)
        if !opened.isEmpty {
            try guestfs.activateVolumeGroups(true)
            let volumes = try guestfs.logicalVolumes()
            let inVolumes = try open(volumes, found: &found)
            if !inVolumes.isEmpty { try guestfs.activateVolumeGroups(true) }
            opened += inVolumes
        }
        for key in keys.keys where !found.contains(where: { key.applies(to: $0.device, uuid: $0.uuid) }) {
            let devices = found.map { "\($0.device) (UUID \($0.uuid))" }
            warnings.append("""
                \(guestfs.guest): the key for \(key.device) is for no LUKS device \
                (\(devices.isEmpty ? "the image has none" : "LUKS devices: " + devices.joined(separator: ", ")))
                """)
        }
        return (opened, warnings)
    }

    private func open(_ devices: [String], found: inout [(device: String, uuid: String)]) throws -> [OpenedLUKS] {
        var opened: [OpenedLUKS] = []
        for device in devices where guestfs.filesystemType(device) == "crypto_LUKS" {
            let uuid = try guestfs.luksUUID(device)
            found.append((device, uuid))
            let candidates = try secrets(for: device, uuid: uuid)
            guard !candidates.isEmpty else {
                logger.debug("\(device) is LUKS-encrypted (UUID \(uuid)) and no key is for it: left closed")
                continue
            }
            let mapping = "luks-\(uuid)"
            var failure: GuestError?
            let openedWith = candidates.first { candidate in
                do {
                    try guestfs.cryptsetupOpen(device, key: candidate.secret, name: mapping, readonly: readonly)
                    return true
                } catch {
                    failure = error as? GuestError
                    return false
                }
            }
            guard openedWith != nil else {
                let given = candidates.map(\.origin).joined(separator: ", ")
                throw GuestError(guest: guestfs.guest, action: "open the LUKS device", path: device,
                                 message: "\(given) did not open it (\(failure?.message ?? "no reason given"))",
                                 hint: "check the passphrase; the key is chosen by the device name (\(device)) or "
                                    + "its LUKS UUID (\(uuid)): --key \(device):key:PASSPHRASE")
            }
            logger.debug("opened the LUKS device \(device) (UUID \(uuid)) as /dev/mapper/\(mapping)")
            opened.append(OpenedLUKS(device: device, uuid: uuid, mapping: "/dev/mapper/\(mapping)"))
        }
        return opened
    }

    /// The passphrases to try on `device`, each with where it came from (said in errors instead of the secret).
    private func secrets(for device: String, uuid: String) throws -> [(secret: String, origin: String)] {
        let chosen = keys.keys.filter { $0.applies(to: device, uuid: uuid) }
        if chosen.isEmpty, let prompt = keys.prompt {
            guard let secret = prompt(device) else {
                throw GuestError(guest: guestfs.guest, action: "open the LUKS device", path: device,
                                 message: "no key for it: the keys given ran out (one is read for each LUKS device "
                                    + "no --key is for)",
                                 hint: "give one more line on stdin, or --key \(device):key:PASSPHRASE")
            }
            return [(secret, "the key read for it")]
        }
        return try chosen.map { key in
            switch key.source {
            case .passphrase(let secret):
                return (secret, "the key given for \(key.device)")
            case .file(let path):
                return (try Self.firstLine(ofKeyFile: path, for: device, guest: guestfs.guest),
                        "the key in \(path)")
            }
        }
    }

    /// A key file's first line without its newline, as virt-customize reads it.
    static func firstLine(ofKeyFile path: String, for device: String, guest: String) throws -> String {
        let data: [UInt8]
        do {
            data = try HostFiles.read(path).content
        } catch let error as SystemCallError {
            throw GuestError(guest: guest, action: "read the key file for \(device),", path: path, message: error.message,
                             hint: "give a readable file: --key \(device):file:PATH")
        }
        guard !data.isEmpty else {
            throw GuestError(guest: guest, action: "read the key file for \(device),", path: path,
                             message: "the file is empty", hint: "its first line is the passphrase")
        }
        let line = data.prefix { $0 != UInt8(ascii: "\n") }
        return String(decoding: line, as: UTF8.self)
    }
}
