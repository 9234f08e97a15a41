import APIServer
import Backend
import Controllers
import Foundation
import Hummingbird
import Kubernetes
import LocalBackend
import Logging
import Model
import SetpointConfiguration
import NIOCore
import Primitives
import Proxy
import Reconcile
import ServiceLifecycle
import Store
import StorePostgres
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
    public var proxy = ProxySettings()
    /// `--kubeconfig`: run replicas on this cluster (its current context, or `kubeContexts`)
    /// instead of what `<data-dir>/config.yml` lists.
    public var kubeconfig: String?
    public var kubeContexts: [String]?
    /// The server configuration (backends); nil: `<data-dir>/config.yml`, if it exists.
    public var configPath: String?
    /// `--database` / `SETPOINT_DATABASE_URL`: a PostgreSQL database shared by several servers
    /// (nil: SQLite in the data directory).
    public var databaseURL: String?
    /// `--server-name`: this server among several (default `<hostname>:<port>`).
    public var serverName: String?
    /// This binary, which gateway processes run (`setpoint gateway run`).
    public var executablePath: String = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

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
        _ = startedAt   // (a static is set on first use: now, as the server starts)
        try DataDirectoryLock.prepare(settings.dataDirectory)
        chmod(settings.dataDirectory, 0o700)
        // Start-up failures end the server before anything runs: another server on this data
        // directory, then the address (bound now, accepting once the proxy is ready).
        let lock = try DataDirectoryLock.acquire(settings.dataDirectory)
        defer { lock.release() }
        let listener = try await ProxyListener.bind(host: settings.host, port: settings.port)
        defer { listener.close() }
        // The store: SQLite in the data directory, or a PostgreSQL database that several servers
        // share (each serves the API and the proxy; the one holding the lease runs the controllers).
        let store: any ObjectStore
        var postgres: PostgresStore?
        if let url = settings.databaseURL {
            let shared = try await PostgresStore.open(url, logger: logger)
            logger.info("store: PostgreSQL", metadata: ["database": "\(shared.location)"])
            postgres = shared
            store = shared
        } else {
            store = try SQLiteStore(path: settings.dataDirectory + "/state.db")
        }
        do {
            try await serve(settings, store: store, shared: postgres != nil, logger: logger, listener: listener, onToken: onToken, onListening: onListening)
        } catch {
            await postgres?.close()
            throw error
        }
        await postgres?.close()
    }

    static func serve(_ settings: ServerSettings, store: any ObjectStore, shared: Bool, logger: Logger, listener: ProxyListener,
                      onToken: @Sendable (String, Bool) -> Void, onListening: @escaping @Sendable (Int) async -> Void) async throws {
        let fm = FileManager.default
        // Gateways and project secrets use credentials derived from the server's secret; every
        // server of an installation must have the same one (checked against the store).
        let serverSecret = try ServerSecret.load(dataDirectory: settings.dataDirectory)
        let installation = try await Installation.ensure(store: store, dataDirectory: settings.dataDirectory, serverSecret: serverSecret)
        let (backend, clusters, serverConfiguration) = try await makeBackends(settings, installation: installation, logger: logger)
        let identity = settings.serverName ?? "\(ProcessInfo.processInfo.hostName):\(settings.port)"
        // One server leads: with a shared database, the holder of the store's lease runs the
        // controllers and the autoscaler while every server serves. Inside a cluster on SQLite,
        // one server of an installation is active at a time (a Kubernetes Lease): the lease
        // holder is a service of the group, and the others wait for it to be taken.
        var leader: LeaderElector?
        let storeElector = shared ? StoreLeaderElector(store: store, identity: identity, logger: logger) : nil
        let leadership = shared ? Leadership() : nil
        if !shared, let home = clusters.first(where: { $0.client.connection.inCluster }) {
            leader = LeaderElector(client: home.client, namespace: home.client.connection.namespace,
                                   identity: ProcessInfo.processInfo.hostName, logger: logger)
        }
        let gate = Gate(open: leader == nil)

        let auth = Authenticator(store: store)
        if let (token, generated) = try await auth.bootstrap(adminToken: settings.adminToken) {
            let path = settings.dataDirectory + "/admin-token"
            guard fm.createFile(atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw DataDirectoryLock.Held(description: "cannot write the admin token to \(path): \(String(cString: strerror(errno)))")
            }
            onToken(token, generated)
        }

        let clock = SystemClock()
        let metrics = PrometheusMetrics()
        let routes = RouteTable()
        // Gateways: processes of this binary on the local backend, with credentials derived
        // from the server's secret, reporting their traffic here.
        let credentials = GatewayCredentials(secret: serverSecret)
        // Project secrets, sealed under a key derived from the same secret; their values are
        // opened only into a workload being made.
        let secrets = ProjectSecrets(store: store, box: SecretBox(serverSecret: serverSecret))
        let gatewayReports = GatewayReports()
        let runsLocally = serverConfiguration.backends.contains(.local)
        // Gateways on a cluster: Pods of Setpoint's image that reach this server at
        // `gateway_server_url` (or `code_url`), behind a LoadBalancer Service.
        var clusterGateways: KubernetesGatewaySettings?
        for case .kubernetes(let k) in serverConfiguration.backends {
            var g = k.gateway
            g.serverURL = g.serverURL ?? k.codeURL
            clusterGateways = g
        }
        let gatewayBackends = Set((runsLocally ? ["local"] : []) + (clusterGateways != nil ? ["kubernetes"] : []))
        let launch = gatewayBackends.isEmpty ? nil : GatewayLaunch(executable: settings.executablePath, serverURL: settings.publicURL,
                                                                   local: serverConfiguration.localGateway, kubernetes: clusterGateways,
                                                                   credential: { credentials.credential(for: $0) })
        // A replica leaving (scale down, rollout, stop) is out of its route first; it is
        // stopped once the proxy has no request in flight to it, within `stop_duration`.
        let drain = Drain(minimum: 0.05, pollInterval: 0.1) { address in routes.pending(address: address) }
        // Certificates for gateways come from an ACME CA (Let's Encrypt by default; `acme` in
        // config.yml or SETPOINT_ACME_* choose another, such as ZeroSSL or a private CA).
        var acme = serverConfiguration.acme
        let environment = ProcessInfo.processInfo.environment
        if let v = environment["SETPOINT_ACME_SERVER"] { acme.directory = v }
        if let v = environment["SETPOINT_ACME_CA_FILE"] { acme.caFile = v }
        if let v = environment["SETPOINT_ACME_EAB_KID"] { acme.eabKeyID = v }
        if let v = environment["SETPOINT_ACME_EAB_HMAC_KEY"] { acme.eabHMACKey = v }
        let local = serverConfiguration.localGateway
        let checkHost = local.listensEverywhere ? "127.0.0.1" : local.host
        let issuer = runsLocally ? AcmeIssuer(settings: acme, store: store, gatewayHTTP: "\(checkHost):\(local.httpPort)") : nil
        // The API's services, built before the controllers: a source applies its revisions
        // through the same set service `setpoint apply` uses.
        let runService = RunService(store: store, backend: backend, publicURL: settings.publicURL,
                                    codeDirectory: settings.dataDirectory + "/code", gateways: nil)
        let gatewayService = GatewayService(store: store, backends: gatewayBackends)
        let sets = SetService(runs: runService, gateways: gatewayService)
        let fetcher = GitFetcher(root: settings.dataDirectory + "/sources")
        let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: clock, drain: drain,
                                        routes: true, metrics: metrics, gateways: launch, gatewayReports: gatewayReports, issuer: issuer,
                                        secrets: secrets, sources: (fetcher, SourceSets(sets: sets)), leadership: leadership, logger: logger)
        routes.follow(manager.routeInformer)
        // Several servers: each says in the store who it is and what its proxy serves.
        let registry = shared ? ServerRegistry(store: store, identity: identity, address: settings.publicURL, routes: routes,
                                                gatewayReports: gatewayReports, logger: logger) : nil
        // Demand is this server's proxy's counts plus every live gateway replica's (and the
        // other servers' proxies').
        let autoscaler = AutoscaleController(store: store, runs: manager.runInformer, clock: clock, logger: logger) { project, run in
            let parts = [routes.route(project: project, run: run).map { Demand($0.report) },
                         gatewayReports.demand(project: project, run: run, now: Date()),
                         registry?.demand(project: project, run: run)].compactMap { $0 }
            return parts.isEmpty ? nil : parts.dropFirst().reduce(parts[0], +)
        }
        routes.setDemandHandler { project, run in autoscaler.poke(project: project, run: run) }
        gatewayReports.setWaiting { project, run in autoscaler.poke(project: project, run: run) }
        registry?.setWaiting { project, run in autoscaler.poke(project: project, run: run) }

        let router = Router()
        let streams = Signal()
        APIRoutes(runs: RunService(store: store, backend: backend, publicURL: settings.publicURL,
                                   codeDirectory: settings.dataDirectory + "/code", gateways: manager.gatewayInformer), auth: auth, store: store,
                  backend: backend, logger: logger,
                  gateways: gatewayService,
                  plane: GatewayPlane(store: store, credentials: credentials, reports: gatewayReports,
                                      readTimeout: serverConfiguration.localGateway.readTimeout,
                                      providedCertificate: local.certificateFile.flatMap { c in local.keyFile.map { (c, $0) } }),
                  secrets: secrets, sources: SourceService(store: store, secrets: secrets), streams: streams,
                  servers: { try await Self.servers(store: store, shared: shared, identity: identity, address: settings.publicURL) })
            .register(on: router)
        // The API listens on a Unix socket in the data directory; the proxy in front of it
        // owns the public address.
        let apiSocket = settings.dataDirectory + "/api.sock"
        unlink(apiSocket)
        let api = Application(router: router, configuration: .init(address: .unixDomainSocket(path: apiSocket), serverName: "setpoint"),
                              logger: logger)
        let runInformer = manager.runInformer
        let front = ProxyServer(
            host: settings.host, port: settings.port, listener: listener, table: routes, settings: settings.proxy, api: .unix(apiSocket), logger: logger,
            authorize: { header, project in
                switch auth.authorize(authorization: header, project: project) {
                case .allowed: return .allowed
                case .unauthenticated: return .unauthenticated
                case .forbidden: return .forbidden
                }
            },
            metrics: {
                let replicas = runInformer.list().compactMap { try? TypedStore<RunKind>.decode($0) }
                    .filter { !$0.status.phase.isFinished }
                    .map { PrometheusMetrics.ServiceReplicas(project: $0.meta.project, run: $0.meta.name,
                                                              desired: $0.status.desiredReplicas, ready: $0.status.readyReplicas) }
                    .sorted { ($0.project, $0.run) < ($1.project, $1.run) }
                return metrics.render(routes: routes.routes, replicas: replicas)
            },
            onListening: onListening)

        // A service that fails shuts the others down gracefully (cancelling Hummingbird or NIO
        // mid-accept can hang or trap), and the whole stop is bounded: 30 s of graceful shutdown,
        // then cancellation, then at most 10 s more before the process ends regardless.
        // The clusters' watches first (shut down last); the rest once this server leads. The
        // stream closer is last, so the first told of a shutdown: the API's open streams
        // (watches, followed logs, gateway feeds) end at once, and the front's drain does not
        // wait on them for its whole timeout.
        // With a shared database every server serves and follows the store; the autoscaler runs
        // on the leader only (the controllers follow `leadership` inside the manager).
        let scaling: any ServiceLifecycle.Service = leadership.map { l in LeaderOnly(leadership: l) { try await autoscaler.run() } } ?? autoscaler
        let gated: [any ServiceLifecycle.Service] = [manager, scaling, api, front, AuthenticatorFollower(auth: auth)] + (registry.map { [$0] } ?? [])
        let members: [any ServiceLifecycle.Service] = clusters + gated.map { Gated($0, by: gate) }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = members.map {
            .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        if let leader {
            services.append(.init(service: LeaseHolder(elector: leader, leadership: gate), successTerminationBehavior: .ignore,
                                  failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        if let storeElector, let leadership {
            services.append(.init(service: StoreLeaseHolder(elector: storeElector, leadership: leadership, logger: logger),
                                  successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        services.append(.init(service: StreamCloser(streams: streams), successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup))
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(30)
        configuration.maximumCancellationDuration = .seconds(10)
        let group = ServiceGroup(configuration: configuration)
        var failure: (any Error)?
        do { try await group.run() } catch { failure = error }
        // The controllers have stopped: the next server may lead at once.
        await leader?.release()
        await storeElector?.release()
        for cluster in clusters { await cluster.shutdown() }
        if let failure { throw failure }
        unlink(apiSocket)
    }

    /// The backends of `<data-dir>/config.yml` (or `--kubeconfig`), in the order replicas try them.
    static func makeBackends(_ settings: ServerSettings, installation: String, logger: Logger) async throws -> (BackendSet, [KubernetesBackend], BackendConfiguration) {
        let configuration: BackendConfiguration
        if let kubeconfig = settings.kubeconfig {
            var k = BackendConfiguration.Kubernetes()
            k.kubeconfig = kubeconfig
            k.contexts = settings.kubeContexts
            configuration = BackendConfiguration(backends: [.kubernetes(k)])
        } else {
            if let path = settings.configPath, !FileManager.default.fileExists(atPath: path) {
                throw BackendConfiguration.Error(description: "\(path): no such file (--config)")
            }
            configuration = try BackendConfiguration.load(path: settings.configPath ?? settings.dataDirectory + "/config.yml")
        }
        var members: [BackendSet.Member] = []
        var clusters: [KubernetesBackend] = []
        for entry in configuration.backends {
            switch entry {
            case .local:
                // SETPOINT_LOCAL_NETWORK=host|namespace forces the local backend's network mode.
                let network = ProcessInfo.processInfo.environment["SETPOINT_LOCAL_NETWORK"].flatMap(LocalBackend.NetworkMode.init(rawValue:))
                let local = try LocalBackend(root: configuration.localRoot ?? settings.dataDirectory + "/local", network: network, logger: logger)
                logger.info("local backend ready", metadata: ["network": "\(local.network.rawValue)"])
                members.append(.init(backend: local, type: "local", region: "local"))
            case .kubernetes(let k):
                for connection in try k.connections() {
                    var options = KubeClient.Options()
                    options.qps = k.qps
                    options.burst = k.burst
                    let client = try KubeClient(connection: connection, options: options, logger: logger)
                    var template = PodTemplate.Settings(namespace: connection.namespace, installation: installation)
                    template.codeURL = k.codeURL
                    if let image = k.image { template.defaultImage = image }
                    if let image = k.nvccImage { template.nvccImage = image }
                    if let image = k.helperImage { template.helperImage = image }
                    template.serviceAccountName = k.serviceAccount
                    var backendSettings = KubernetesBackend.Settings(template: template)
                    backendSettings.access = k.access
                    backendSettings.unschedulableTimeout = TimeInterval(k.unschedulableTimeout)
                    let cluster = KubernetesBackend(client: client, settings: backendSettings, logger: logger)
                    await cluster.prepare()
                    logger.info("kubernetes backend ready", metadata: [
                        "context": "\(connection.context)", "server": "\(connection.server.absoluteString)", "namespace": "\(connection.namespace)",
                        "access": "\(cluster.useAPIProxy ? "api-proxy" : "pod-ip")",
                    ])
                    clusters.append(cluster)
                    members.append(.init(backend: cluster, type: "kubernetes", region: connection.context, prober: cluster))
                }
            }
        }
        return (BackendSet(members, prober: SocketProber()), clusters, configuration)
    }

    /// A stable name for this server's data (the `setpoint.dev/installation` label), so two
    /// servers sharing a namespace never adopt or collect each other's Pods.
    static func installationID(_ dataDirectory: String) throws -> String {
        let path = dataDirectory + "/installation-id"
        if let data = FileManager.default.contents(atPath: path) {
            let id = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty { return id }
        }
        let id = "sp-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try (id + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return id
    }
}

/// Keeps the leader lease; losing it ends the server (its supervisor starts it again, as a
/// candidate).
struct LeaseHolder: ServiceLifecycle.Service {
    let elector: LeaderElector
    let leadership: Gate

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await elector.acquire()
            leadership.open()
            try await elector.holdUntilLost()
        }
    }
}

/// Opens once (this server took the leader Lease); services gated by it start then. Abandoned
/// (the group shutting down first), it never opens.
final class Gate: Sendable {
    private let decided = OnceValue<Bool>()

    init(open: Bool) { if open { decided.set(true) } }

    func open() { decided.set(true) }
    func abandon() { decided.set(false) }

    /// True once open; false if abandoned first.
    func wait() async -> Bool { await decided.wait() }
}

/// Runs `service` once `gate` opens; a shutdown before that ends it without running it.
struct Gated: ServiceLifecycle.Service {
    let service: any ServiceLifecycle.Service
    let gate: Gate

    init(_ service: any ServiceLifecycle.Service, by gate: Gate) {
        self.service = service
        self.gate = gate
    }

    func run() async throws {
        let gate = self.gate
        let opened = await withGracefulShutdownHandler {
            await withTaskCancellationHandler { await gate.wait() } onCancel: { gate.abandon() }
        } onGracefulShutdown: {
            gate.abandon()
        }
        guard opened else { return }
        try await service.run()
    }
}

/// Waits for the group's graceful shutdown and then ends the API's open streams.
struct StreamCloser: ServiceLifecycle.Service {
    let streams: Signal

    func run() async throws {
        try? await gracefulShutdown()
        streams.fire()
    }
}
