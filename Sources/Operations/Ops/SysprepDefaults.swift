/// The `sysprep` profile's operations, in order: virt-sysprep's default Linux clean-ups in the order it runs them
/// (sorted by its names; its machine-id is remove-machine-id), then what cloud images need on top (cloud-init state,
/// UUID= in ifcfg files), as each operation declares in its `sysprep` property. Nothing here writes /etc/machine-id
/// after remove-machine-id empties it.
public let sysprepDefaults: [any GuestOperation] = {
    let registered = OperationRegistry.all
    let virtSysprep = registered.compactMap { descriptor -> (String, OperationDescriptor)? in
        guard case .virtSysprep(let name) = descriptor.sysprep else { return nil }
        return (name, descriptor)
    }.sorted { $0.0 < $1.0 }.map(\.1)
    let cloud = registered.filter { $0.sysprep == .cloudImages }
    return (virtSysprep + cloud).compactMap { try? $0.parse(nil) }
}()

/// The sysprep operations that mean something on `guest`: all of them on Linux, the ifcfg and subscription ones
/// only on Red Hat's distributions; none on other operating systems.
public func sysprepOperations(for guest: GuestFacts) -> [any GuestOperation] {
    sysprepDefaults.filter { operation in
        guard let cleanup = operation as? any CleanupOperation else { return guest.isLinuxOrUnknown }
        return type(of: cleanup).applies(to: guest)
    }
}
