// swift-tools-version:6.0
// A user's own profile, in the same DSL as the built-in ones, run through the imgcustomize library.
import PackageDescription

let package = Package(
    name: "imgcustomize-examples",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "imgcustomize", path: ".."),
    ],
    targets: [
        .executableTarget(name: "web-image", dependencies: [
            .product(name: "IMGCustomize", package: "imgcustomize"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
