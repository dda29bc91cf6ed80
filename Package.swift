// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "imgcustomize",
    // Linux only: the appliance is libguestfs, and the tree backend and the I/O use Glibc and Linux headers.
    products: [
        .executable(name: "imgcustomize", targets: ["imgcustomize"]),
        // The library other Swift tools use: formats and the QCOW2 engine, the operations and the guest model they
        // are written against, its two backends (the appliance, a directory tree), the pipeline and the DSL, and the
        // built-in profiles.
        .library(name: "IMGCustomize",
                 targets: ["Diagnostics", "Host", "Formats", "Operations", "Appliance", "DirectoryTree", "Customize", "Profiles",
                           "BootCheck"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CGuestFS", pkgConfig: "libguestfs",
                       providers: [.apt(["libguestfs-dev"])]),
        .systemLibrary(name: "CAugeas", pkgConfig: "augeas",
                       providers: [.apt(["libaugeas-dev"])]),
        // Linux calls the Glibc module leaves out (xattrs, sync_file_range); no library to link.
        .systemLibrary(name: "CLinux"),
        .systemLibrary(name: "CCrypt", pkgConfig: "libxcrypt",
                       providers: [.apt(["libcrypt-dev"])]),
        .systemLibrary(name: "CCompress", pkgConfig: "libdeflate",
                       providers: [.apt(["libdeflate-dev", "libzstd-dev", "zlib1g-dev"])]),
        // The one shape of an error a user sees (message, hint, image, path), below everything that throws one.
        .target(name: "Diagnostics"),
        // What every module shares about the host it runs on: processes (the one runner), temporary directories and
        // the scratch registry, cancellation, reading host files, shell quoting, sizes as people read them.
        .target(name: "Host", dependencies: [
            "Diagnostics", "CLinux",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Formats", dependencies: [
            "Diagnostics", "CCompress", "CLinux",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // A native read-only reader of guest disks (partition tables, LVM2, ext2/3/4, XFS, btrfs, vfat) and a path-resolving read API
        // over them: hostile input parsed on the host, every value checked, every traversal bounded.
        .target(name: "NativeReader", dependencies: ["Diagnostics", "Formats", "CCompress"]),
        // The guest model: the guest-filesystem protocol, guest facts, the operation protocol, the registry and the
        // runner, Augeas editing, and the operations. It never sees libguestfs.
        .target(name: "Operations", dependencies: [
            "Diagnostics", "Host", "CAugeas", "CCrypt",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The libguestfs appliance: the typed handle (the only libguestfs caller), the launcher and session, quick
        // inspection, the guest filesystem inside it, and its block-device work (trimming, swap, LVM).
        .target(name: "Appliance", dependencies: [
            "Diagnostics", "Host", "Formats", "NativeReader", "Operations", "CGuestFS",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // A directory tree on the host as a guest filesystem, every path contained in it.
        .target(name: "DirectoryTree", dependencies: ["Host", "Operations", "CLinux"]),
        .target(name: "Customize", dependencies: [
            "Diagnostics", "Host", "Formats", "Operations", "Appliance", "DirectoryTree",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Profiles", dependencies: ["Customize", "Operations"], path: "profiles"),
        // Boots a prepared image under qemu and checks what a cloud would (the `boot-check` command).
        .target(name: "BootCheck", dependencies: [
            "Diagnostics", "Host", "Formats", "Operations", "Appliance",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The commands, their options and the progress bar, as a library the tests parse in-process.
        .target(name: "CLICommands", dependencies: [
            "Diagnostics", "Host", "Customize", "Profiles", "Formats", "Operations", "Appliance", "BootCheck",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], plugins: ["BuildCommit"]),
        // Writes the commit the tool is built from into CLICommands before each build, for --version.
        .plugin(name: "BuildCommit", capability: .buildTool()),
        .executableTarget(name: "imgcustomize", dependencies: ["CLICommands"]),
        // What every test target shares: temporary directories, running host tools and processes.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TestSupport"]),
        .testTarget(name: "HostTests", dependencies: ["Host", "TestSupport"]),
        .testTarget(name: "NativeReaderTests", dependencies: ["NativeReader", "Formats", "TestSupport"]),
        .testTarget(name: "OperationsTests", dependencies: ["Diagnostics", "Host", "Operations", "Appliance", "DirectoryTree",
                                                             "Formats", "TestSupport"]),
        .testTarget(name: "CustomizeTests", dependencies: ["Customize", "Diagnostics", "Host", "Profiles", "Formats", "Operations",
                                                            "DirectoryTree", "TestSupport"]),
        .testTarget(name: "BootCheckTests", dependencies: ["BootCheck", "Formats", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["imgcustomize", "CLICommands", "Diagnostics", "Host", "Operations", "Appliance", "Formats",
                                                      "Profiles", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
