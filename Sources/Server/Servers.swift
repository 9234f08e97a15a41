import APIServer
import Controllers
import Crypto
import Foundation
import Logging
import Model
import Primitives
import Proxy
import Reconcile
import ServiceLifecycle
import SetpointConfiguration
import Store
import Synchronization

/// What the servers of one installation share, checked at start: the installation's id (the
/// label of its workloads, so any server adopts them) and that this server's secret is the
/// one the project secrets were sealed under.
enum Installation {
    struct Mismatch: Error, CustomStringConvertible {
        var description: String
    }

    static let name = "installation"

    /// HMAC of a fixed text under the server secret: tells two secrets apart, reveals neither.
    static func check(_ secret: Data) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("setpoint installation: server secret check v1".utf8), using: SymmetricKey(data: secret))
        return Data(mac).map { String(format: "%02x", $0) }.joined()
    }

    /// The installation's id: the stored one, or (the first server) this data directory's, now stored.
    static func ensure(store: any ObjectStore, dataDirectory: String, serverSecret: Data) async throws -> String {
        let installations = TypedStore<InstallationKind>(store)
        let check = check(serverSecret)
        for _ in 0..<2 {
            if let existing = try await installations.get(project: systemProject, name: name) {
                guard existing.spec.secretCheck == check else {
                    throw Mismatch(description: """
                        this database belongs to an installation with another server secret, under which its project secrets are \
                        sealed: give every server the same \(dataDirectory)/server-secret (copy it from a server of this installation), \
                        or use another database
                        """)
                }
                return existing.spec.id
            }
            let id = try SetpointServer.installationID(dataDirectory)
            do {
                try await installations.create(Object(project: systemProject, name: name, spec: InstallationSpec(id: id, secretCheck: check)))
                return id
            } catch let e as StoreError where e.code == .alreadyExists {
                continue   // another server started at the same moment: read its record
            }
        }
        throw Mismatch(description: "could not record the installation in the database")
    }
}

/// Keeps this server's leadership: a candidate until it takes the store's lease, then the
/// leader until it loses it (then a candidate again), until the group shuts down. The
/// controllers follow `leadership`; the lease is given up after they stopped.
struct StoreLeaseHolder: ServiceLifecycle.Service {
    let elector: StoreLeaderElector
    let leadership: Leadership
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await elector.acquire()
                    leadership.begin()
                    try await elector.holdUntilLost()
                    // Returned: shutting down; the lease is released once the controllers stopped.
                    return
                } catch let e as StoreLeaderElector.LostLease {
                    leadership.end()
                    logger.error("lost the leader lease: the controllers stopped; following", metadata: ["reason": "\(e)"])
                } catch {
                    if Task.isCancelled { return }
                    leadership.end()
                    logger.warning("leader election failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        leadership.end()
    }
}

/// Runs `body` during each term of this server's leadership (the autoscaler).
struct LeaderOnly: ServiceLifecycle.Service {
    let leadership: Leadership
    let body: @Sendable () async throws -> Void

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await leadership.whileLeading(body)
        }
    }
}

/// This server in the store (`Server` objects of `_system`): who it is, a heartbeat, and its
/// proxy's traffic, which the leader's autoscaler adds to its own. It also follows the other
/// servers' objects, so the leader knows their traffic (a request waiting at a follower's
/// proxy wakes the leader's autoscaler at once).
final class ServerRegistry: ServiceLifecycle.Service, Sendable {
    let store: any ObjectStore
    let identity: String
    let address: String
    let routes: RouteTable
    /// The gateway reports this server receives (passed on to the leader), and where the
    /// leader records the ones the others received.
    let gatewayReports: GatewayReports
    let logger: Logger
    /// How often a server writes when its traffic changes; idle, every `heartbeat`.
    static let busyInterval: Double = 2
    static let heartbeat: Double = 10
    /// A server silent this long is `gone`, and its traffic counts for nothing.
    static let silence: Double = 30

    private struct Peer {
        var heartbeat: Date
        var services: [GatewayReport.Service]
    }

    private let peers = Mutex<[String: Peer]>([:])
    private let onWaiting = Mutex<(@Sendable (String, String) -> Void)?>(nil)
    private let startedAt = Date()

    init(store: any ObjectStore, identity: String, address: String, routes: RouteTable, gatewayReports: GatewayReports, logger: Logger) {
        self.store = store
        self.identity = identity
        self.address = address
        self.routes = routes
        self.gatewayReports = gatewayReports
        self.logger = logger
    }

    /// Called when another server's proxy holds requests for a service at zero.
    func setWaiting(_ handler: @escaping @Sendable (String, String) -> Void) { onWaiting.withLock { $0 = handler } }

    /// The other servers' traffic for one service (nil when none reported any lately).
    func demand(project: String, run: String, now: Date = Date()) -> Demand? {
        let reports = peers.withLock { all in
            all.filter { $0.key != identity && now.timeIntervalSince($0.value.heartbeat) <= Self.silence }
                .values.compactMap { p in p.services.first { $0.project == project && $0.run == run } }
        }
        guard !reports.isEmpty else { return nil }
        return reports.dropFirst().reduce(Demand(reports[0])) { $0 + Demand($1) }
    }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.report() }
                group.addTask { await self.follow() }
            }
        }
        // A clean stop says so at once (the list shows it gone, not silent); bounded, so a
        // server cut off from the database still stops promptly.
        let servers = TypedStore<ServerKind>(store)
        let identity = self.identity
        _ = try? await bounded(.seconds(3)) { try await servers.delete(project: systemProject, name: identity) }
    }

    private func traffic() -> [GatewayReport.Service] {
        // Only services with traffic: an idle server writes nothing but its heartbeat.
        routes.routes.map(\.report).filter { $0.inFlight > 0 || $0.held > 0 || $0.requests.values.contains { $0 > 0 } }
            .sorted { ($0.project, $0.run) < ($1.project, $1.run) }
    }

    private func report() async {
        let servers = TypedStore<ServerKind>(store)
        var lastWrite = Date.distantPast
        var lastTraffic: [GatewayReport.Service] = []
        var lastGateways: [GatewayReport] = []
        while !Task.isCancelled {
            let now = Date()
            let services = traffic()
            let gateways = gatewayReports.received(now: now)
            let due = now.timeIntervalSince(lastWrite) >= Self.heartbeat || services != lastTraffic || gateways.map(\.report) != lastGateways
            if due {
                do {
                    let spec = ServerSpec(address: address, startedAt: startedAt, version: SetpointVersion.current)
                    let status = ServerStatus(heartbeat: now, services: services, gateways: gateways)
                    if var existing = try await servers.get(project: systemProject, name: identity) {
                        if existing.spec != spec {
                            existing.spec = spec
                            existing = try await servers.update(existing)
                        }
                        existing.status = status
                        try await servers.updateStatus(existing)
                    } else {
                        var created = try await servers.create(Object(project: systemProject, name: identity, spec: spec))
                        created.status = status
                        try await servers.updateStatus(created)
                    }
                    lastWrite = now
                    lastTraffic = services
                    lastGateways = gateways.map(\.report)
                } catch {
                    logger.warning("could not record this server in the store", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: .seconds(services.isEmpty && gateways.isEmpty ? 1 : Self.busyInterval))
        }
    }

    private func follow() async {
        var position: Int64?
        while !Task.isCancelled {
            do {
                if position == nil {
                    let listed = try await store.list(ListOptions(kind: ServerKind.name, project: systemProject))
                    var fresh: [String: Peer] = [:]
                    for o in listed.items {
                        let s = try TypedStore<ServerKind>.decode(o)
                        fresh[s.meta.name] = Peer(heartbeat: s.status.heartbeat ?? .distantPast, services: s.status.services)
                    }
                    peers.withLock { $0 = fresh }
                    position = listed.resourceVersion
                }
                for try await event in store.watch(kind: ServerKind.name, from: position ?? 0) {
                    position = event.resourceVersion
                    let s = try TypedStore<ServerKind>.decode(event.object)
                    if event.type == .deleted {
                        _ = peers.withLock { $0.removeValue(forKey: s.meta.name) }
                        continue
                    }
                    peers.withLock { $0[s.meta.name] = Peer(heartbeat: s.status.heartbeat ?? .distantPast, services: s.status.services) }
                    guard s.meta.name != identity else { continue }
                    if let waiting = onWaiting.withLock({ $0 }) {
                        for service in s.status.services where service.held > 0 { waiting(service.project, service.run) }
                    }
                    // What gateways told that server counts here too (their traffic, that they live).
                    let seen = Date()
                    for g in s.status.gateways {
                        gatewayReports.record(gateway: ObjectKey(kind: GatewayKind.name, project: g.project, name: g.gateway), g.report,
                                              now: seen.addingTimeInterval(-g.age), relayed: true)
                    }
                }
                try? await Task.sleep(for: .seconds(1))
            } catch let e as StoreError where e.code == .resourceVersionTooOld {
                position = nil
            } catch {
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// Keeps the token index current with users any server writes.
struct AuthenticatorFollower: ServiceLifecycle.Service {
    let auth: Authenticator

    func run() async throws {
        await cancelWhenGracefulShutdown { await auth.follow() }
    }
}

extension SetpointServer {
    /// The installation's servers as `GET /api/v1/servers` lists them: with a shared database,
    /// every server's record and the lease's holder; on SQLite, this one server, leading.
    static func servers(store: any ObjectStore, shared: Bool, identity: String, address: String) async throws -> API.ServerList {
        guard shared else {
            return API.ServerList(store: "sqlite", leader: identity, leaseDurationSeconds: nil, servers: [
                API.Server(name: identity, address: address, role: "leader", startedAt: startedAt, leaderSince: startedAt,
                           heartbeat: Date(), version: SetpointVersion.current),
            ])
        }
        let lease = try await TypedStore<LeaseKind>(store).get(project: systemProject, name: StoreLeaderElector.name)
        let now = Date()
        let holder = lease.flatMap { l -> String? in
            guard let renewed = l.spec.renewTime, now.timeIntervalSince(renewed) <= Double(l.spec.leaseDurationSeconds) else { return nil }
            return l.spec.holderIdentity
        }
        let rows = try await TypedStore<ServerKind>(store).list(project: systemProject).map { s -> API.Server in
            let silent = s.status.heartbeat.map { now.timeIntervalSince($0) > ServerRegistry.silence } ?? true
            let role = s.meta.name == holder ? "leader" : silent ? "gone" : "follower"
            return API.Server(name: s.meta.name, address: s.spec.address, role: role, startedAt: s.spec.startedAt,
                              leaderSince: role == "leader" ? lease?.spec.acquireTime : nil, heartbeat: s.status.heartbeat,
                              version: s.spec.version)
        }
        return API.ServerList(store: "postgres", leader: holder, leaseDurationSeconds: lease?.spec.leaseDurationSeconds, servers: rows)
    }

    /// When this process started.
    static let startedAt = Date()
}
