// swift-tools-version:6.1
import PackageDescription

// Module layout follows docs/architecture.md: imports point down the list only, and heavy
// dependencies stay out of modules that do not need them (the configuration module needs only
// Yams). It is called `SetpointConfiguration` because Hummingbird depends on
// apple/swift-configuration, whose module is already named `Configuration`.
let package = Package(
    name: "Setpoint",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "setpoint", targets: ["setpoint"]),
        .library(name: "SetpointConfiguration", targets: ["SetpointConfiguration"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        .target(
            name: "SetpointConfiguration",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        .target(name: "Model", dependencies: ["SetpointConfiguration"]),
        // Small shared parts: the one list/watch cache (the store and the Kubernetes API), backoff, the token bucket.
        .target(name: "Primitives", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(name: "Store", dependencies: ["Model"]),
        .target(
            name: "StoreSQLite",
            dependencies: ["Store", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The PostgreSQL store (several servers on one database): its own target, so only the
        // server and the store's tests build postgres-nio.
        .target(
            name: "StorePostgres",
            dependencies: [
                "Store", "Model", "Primitives",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Reconcile",
            dependencies: [
                "Store", "Model", "Primitives",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "Backend", dependencies: ["Model"]),
        .target(name: "CProcess"),
        .target(
            name: "LocalBackend",
            dependencies: ["Backend", "Model", "SetpointConfiguration", "CProcess", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Kubernetes",
            dependencies: [
                "Backend", "Model", "SetpointConfiguration", "Primitives",
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Controllers",
            dependencies: [
                "Model", "Store", "Reconcile", "Backend",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "Model", "Store", "Reconcile", "Backend", "SetpointConfiguration",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Proxy",
            dependencies: [
                "Model", "Store", "Reconcile", "SetpointConfiguration", "Primitives",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The data path: no runtime exclusivity checks in release builds (they showed in profiles).
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "APIServer",
            dependencies: [
                "SetpointConfiguration", "Model", "Store", "Controllers", "Backend", "Reconcile", "Primitives",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            // The status page, compiled into the binary (no files to install, no CDN).
            resources: [.embedInCode("Web/index.html"), .embedInCode("Web/app.js"), .embedInCode("Web/app.css"), .embedInCode("Web/icon.svg")]
        ),
        .target(
            name: "APIClient",
            dependencies: [
                "SetpointConfiguration", "Model",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // The ACME client (RFC 8555, HTTP-01) the server gets gateway certificates with.
        .target(
            name: "Acme",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // `setpoint gateway run`: a gateway's data plane (the proxy, fed by the control plane's feed).
        .target(
            name: "GatewayAgent",
            dependencies: [
                "APIClient", "Proxy", "Model", "Primitives", "SetpointConfiguration",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Server",
            dependencies: [
                "APIServer", "Proxy", "Controllers", "Store", "StoreSQLite", "StorePostgres", "LocalBackend", "Kubernetes", "Backend", "Reconcile", "Primitives", "Acme",
                .product(name: "Yams", package: "Yams"),
                "SetpointConfiguration", "Model",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "CLI",
            dependencies: [
                "SetpointConfiguration", "Model", "APIClient", "Server", "Proxy", "GatewayAgent",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "setpoint", dependencies: ["CLI"]),
        .executableTarget(name: "fake-kube-apiserver", dependencies: ["TestSupport"]),
        .executableTarget(
            name: "reconcile-bench",
            dependencies: ["Controllers", "TestSupport", "Store", "StoreSQLite", "StorePostgres", "Model", "SetpointConfiguration", "Reconcile", "Backend"]
        ),
        .testTarget(name: "ConfigurationTests", dependencies: ["SetpointConfiguration"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "StoreSQLite", "StorePostgres", "Model", "TestSupport"]),
        .testTarget(name: "ReconcileTests", dependencies: ["Reconcile", "TestSupport", "Primitives", "Store", "Model", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "LocalBackendTests", dependencies: ["LocalBackend", "Backend", "Model", "Controllers", "Store", "Reconcile", "SetpointConfiguration", "TestSupport"]),
        .testTarget(
            name: "ControllersTests",
            dependencies: ["Controllers", "TestSupport", "Store", "StoreSQLite", "Model", "Backend", "Reconcile", "SetpointConfiguration"]
        ),
        .testTarget(
            name: "APIServerTests",
            dependencies: ["APIServer", "Model", "Store", "Reconcile", "TestSupport",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdTesting", package: "hummingbird"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "CLITests", dependencies: ["setpoint", "CLI", "APIClient", "Model"], exclude: ["Fixtures"]),
        .testTarget(name: "E2ETests", dependencies: ["setpoint", "TestSupport", "SetpointConfiguration", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "KubernetesTests",
            dependencies: ["Kubernetes", "TestSupport", "Backend", "Model", "SetpointConfiguration", "Controllers", "Store", "Reconcile", "Primitives",
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "ProxyTests",
            dependencies: ["Proxy", "Model", "TestSupport", .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
