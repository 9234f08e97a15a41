// swift-tools-version:6.1
import PackageDescription

// Module layout follows docs/architecture.md: imports point down the list only, and heavy
// dependencies stay out of modules that do not need them (Configuration needs only Yams).
let package = Package(
    name: "Setpoint",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "setpoint", targets: ["setpoint"]),
        .library(name: "Configuration", targets: ["Configuration"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "Configuration",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "CLI",
            dependencies: [
                "Configuration",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "setpoint", dependencies: ["CLI"]),
        .testTarget(name: "ConfigurationTests", dependencies: ["Configuration"]),
        .testTarget(name: "CLITests", dependencies: ["setpoint"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
