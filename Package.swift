// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "imgcustomize",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "imgcustomize", targets: ["imgcustomize"]),
        // The library other Swift tools use: formats and the QCOW2 engine, operations, the pipeline and the DSL,
        // and the built-in profiles.
        .library(name: "IMGCustomize", targets: ["Formats", "Operations", "Customize", "Profiles", "BootCheck"]),
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
        // Linux headers the Glibc module leaves out (sys/xattr.h); no library to link.
        .systemLibrary(name: "CLinux"),
        .systemLibrary(name: "CCrypt", pkgConfig: "libxcrypt",
                       providers: [.apt(["libcrypt-dev"])]),
        .systemLibrary(name: "CCompress", pkgConfig: "libdeflate",
                       providers: [.apt(["libdeflate-dev", "libzstd-dev", "zlib1g-dev"])]),
        .target(name: "Formats", dependencies: [
            "CCompress",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Operations", dependencies: [
            "CGuestFS", "CAugeas", "CLinux", "CCrypt",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Customize", dependencies: [
            "Formats", "Operations",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Profiles", dependencies: ["Customize", "Operations"], path: "profiles"),
        .target(name: "BootCheck", dependencies: [
            "Formats", "Operations",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "imgcustomize", dependencies: [
            "Customize", "Profiles", "Formats", "Operations", "BootCheck",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats"]),
        .testTarget(name: "OperationsTests", dependencies: ["Operations"]),
        .testTarget(name: "CustomizeTests", dependencies: ["Customize", "Profiles", "Formats", "Operations"]),
        .testTarget(name: "BootCheckTests", dependencies: ["BootCheck", "Formats", "Operations"]),
        .testTarget(name: "CLITests", dependencies: ["imgcustomize", "Operations", "Formats"]),
    ],
    swiftLanguageModes: [.v6]
)
