// LaunchWatch.swift is being reworked on another branch and does not import Host yet: this keeps Host's names
// (TemporaryDirectory, Cancellation) visible there until it does. Remove it when LaunchWatch.swift imports Host.
@_exported import Host
