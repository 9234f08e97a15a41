import APIServer
import AsyncHTTPClient
import Backend
import Controllers
import Foundation
import Hummingbird
import LocalBackend
import Logging
import Model
import Proxy
import Reconcile
import ServiceLifecycle
import Store
import StoreSQLite

/// Settings of `setpoint server`.
public struct ServerSettings: Sendable {
    public var host: String
    public var port: Int
    public var dataDirectory: String
    /// `SETPOINT_ADMIN_TOKEN`: the admin token to use instead of a generated one.
    public var adminToken: String?
    /// Write `~/.setpoint/config.yml` for the admin when the token is created.
    public var writeClientConfig: Bool

    public init(host: String = "127.0.0.1", port: Int = 3000, dataDirectory: String, adminToken: String? = nil,
                writeClientConfig: Bool = true) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.adminToken = adminToken
        self.writeClientConfig = writeClientConfig
    }

    public var publicURL: String {
        let shown = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host
        return "http://\(shown):\(port)"
    }
}

/// The composition root: the SQLite store in the data directory, the local backend, the
/// controllers, the REST API and the proxy, run as one ServiceGroup until SIGTERM or SIGINT.
public enum SetpointServer {
    /// - Parameter onToken: called with the admin token when it was created or changed now, and
    ///   whether it was generated (then it should be shown once).
    public static func run(_ settings: ServerSettings, logger: Logger, onToken: @Sendable (String, Bool) -> Void,
                           onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: settings.dataDirectory, withIntermediateDirectories: true)
        chmod(settings.dataDirectory, 0o700)
        let store = try SQLiteStore(path: settings.dataDirectory + "/state.db")
        let backend = try LocalBackend(root: settings.dataDirectory + "/local", logger: logger)
        logger.info("local backend ready", metadata: ["network": "\(backend.network.rawValue)"])

        let auth = Authenticator(store: store)
        if let (token, generated) = try await auth.bootstrap(adminToken: settings.adminToken) {
            let path = settings.dataDirectory + "/admin-token"
            fm.createFile(atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
            onToken(token, generated)
        }

        let clock = SystemClock()
        // Replicas leave the proxy's rotation 2 s before they are stopped (scale down, rollout, stop).
        let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: clock, drain: 2, logger: logger)
        let routes = RouteTable()
        let updater = RouteUpdater(table: routes, runs: manager.runInformer, replicas: manager.replicaInformer)
        let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                configuration: .init(timeout: .init(connect: .seconds(5), read: .seconds(60)), decompression: .disabled))

        let router = Router()
        APIRoutes(runs: RunService(store: store, backend: backend, publicURL: settings.publicURL,
                                   codeDirectory: settings.dataDirectory + "/code"), auth: auth, store: store,
                  backend: backend, logger: logger).register(on: router)
        ServiceProxy(table: routes, client: client, logger: logger) { header, project in
            switch auth.authorize(authorization: header, project: project) {
            case .allowed: return .allowed
            case .unauthenticated: return .unauthenticated
            case .forbidden: return .forbidden
            }
        }.register(on: router)

        let app = Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "setpoint"),
            services: [manager],
            onServerRunning: { channel in
                await onListening(channel.localAddress?.port ?? settings.port)
            },
            logger: logger)
        _ = updater
        do {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}
