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
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "Configuration",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        .target(name: "Model", dependencies: ["Configuration"]),
        .target(name: "Store", dependencies: ["Model"]),
        .target(
            name: "StoreSQLite",
            dependencies: ["Store", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(
            name: "Reconcile",
            dependencies: [
                "Store", "Model",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "Backend", dependencies: ["Model"]),
        .target(name: "CProcess"),
        .target(
            name: "LocalBackend",
            dependencies: ["Backend", "Model", "CProcess", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Controllers",
            dependencies: ["Model", "Store", "Reconcile", "Backend", .product(name: "Logging", package: "swift-log")]
        ),
        .target(name: "TestSupport", dependencies: ["Model", "Store", "Reconcile", "Backend"]),
        .target(
            name: "CLI",
            dependencies: [
                "Configuration",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "setpoint", dependencies: ["CLI"]),
        .executableTarget(
            name: "reconcile-bench",
            dependencies: ["Controllers", "TestSupport", "Store", "Model", "Configuration", "Reconcile", "Backend"]
        ),
        .testTarget(name: "ConfigurationTests", dependencies: ["Configuration"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "StoreSQLite", "Model", "TestSupport"]),
        .testTarget(name: "ReconcileTests", dependencies: ["Reconcile", "TestSupport"]),
        .testTarget(name: "LocalBackendTests", dependencies: ["LocalBackend", "Backend", "Model", "Controllers", "Store", "Reconcile", "Configuration"]),
        .testTarget(
            name: "ControllersTests",
            dependencies: ["Controllers", "TestSupport", "Store", "StoreSQLite", "Model", "Backend", "Reconcile", "Configuration"]
        ),
        .testTarget(name: "CLITests", dependencies: ["setpoint"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
