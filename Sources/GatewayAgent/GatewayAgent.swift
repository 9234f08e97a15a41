import APIClient
import Crypto
import Foundation
import Logging
import Model
import NIOCore
import Primitives
import Proxy
import ServiceLifecycle
import SetpointConfiguration
import Synchronization

/// `setpoint gateway run`: one gateway replica, the data plane of a gateway. It follows the
/// control plane's feed (its routes, its domain, the tokens that may reach its project),
/// serves `<run>.<domain>` and `gateway.<domain>` with the `Proxy` module, and reports its
/// traffic every second. When the control plane is unreachable it keeps serving what it last
/// heard (also across its own restart, from `statePath`), and catches up when it returns.
public struct GatewayAgentSettings: Sendable {
    public var serverURL: String
    public var credential: String
    public var project: String
    public var name: String
    public var replica: Int
    public var host: String
    public var port: Int
    /// Where HTTPS is served (nil: plain HTTP only).
    public var httpsPort: Int?
    public var proxy = ProxySettings()
    /// Where the last snapshot is kept (nil: memory only).
    public var statePath: String?
    /// A feed silent for this long is taken as broken (the server sends a keepalive every 10 s).
    public var feedSilence: TimeInterval = 30
    public var reportInterval: TimeInterval = 1

    public init(serverURL: String, credential: String, project: String, name: String, replica: Int, host: String, port: Int) {
        self.serverURL = serverURL
        self.credential = credential
        self.project = project
        self.name = name
        self.replica = replica
        self.host = host
        self.port = port
    }
}

/// The tokens that may reach the gateway's project, as SHA-256 hashes from the feed.
final class AccessTable: Sendable {
    private let hashes = Mutex<Set<String>>([])
    let project: String

    init(project: String) { self.project = project }

    func set(_ new: [String]) { hashes.withLock { $0 = Set(new) } }

    func authorize(_ header: String?, _ project: String) -> Access {
        guard project == self.project, let header, header.lowercased().hasPrefix("bearer ") else { return .unauthenticated }
        let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty else { return .unauthenticated }
        let hash = SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
        return hashes.withLock { $0.contains(hash) } ? .allowed : .unauthenticated
    }
}

public final class GatewayAgent: Sendable {
    public let settings: GatewayAgentSettings
    public let table = RouteTable(byHost: true)
    let access: AccessTable
    let identities = TLSIdentities()
    let client: APIClient
    let logger: Logger
    /// Services with a request waiting for a first replica, reported at once.
    private let waiting = Mutex<Set<String>>([])

    public init(settings: GatewayAgentSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        access = AccessTable(project: settings.project)
        client = APIClient(baseURL: settings.serverURL, token: settings.credential, project: settings.project)
        table.setSite(GatewaySite(project: settings.project, domain: nil))
        table.setDemandHandler { [weak self] _, run in
            guard let self else { return }
            self.waiting.withLock { _ = $0.insert(run) }
        }
    }

    /// Runs until SIGTERM or SIGINT: the listener first (a port in use ends it at once).
    public func run() async throws {
        if let path = settings.statePath, let data = FileManager.default.contents(atPath: path),
           let snapshot = try? API.decoder.decode(GatewaySnapshot.self, from: data), snapshot.project == settings.project {
            apply(snapshot, persist: false)
            logger.info("serving the last known routes until the control plane answers", metadata: ["routes": "\(snapshot.routes.count)"])
        }
        let listener = try await ProxyListener.bind(host: settings.host, port: settings.port, sharedPort: true)
        let access = self.access
        let table = self.table
        let proxy = ProxyServer(host: settings.host, port: settings.port, listener: listener, table: table, settings: settings.proxy,
                                api: nil, logger: logger, authorize: { access.authorize($0, $1) },
                                onListening: { [logger, settings] port in
                                    logger.info("gateway listening", metadata: ["address": "\(settings.host):\(port)", "gateway": "\(settings.project)/\(settings.name)"])
                                })
        var services: [any Service] = [proxy, Loop(name: "feed") { try await self.follow() }, Loop(name: "report") { try await self.report() }]
        if let httpsPort = settings.httpsPort {
            let secureListener = try await ProxyListener.bind(host: settings.host, port: httpsPort, sharedPort: true)
            services.append(ProxyServer(host: settings.host, port: httpsPort, listener: secureListener, table: table, settings: settings.proxy,
                                        api: nil, logger: logger, authorize: { access.authorize($0, $1) }, tls: try identities.context(),
                                        onListening: { [logger] port in logger.info("gateway listening (HTTPS)", metadata: ["port": "\(port)"]) }))
        }
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(35)
        configuration.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: configuration).run()
    }

    func apply(_ snapshot: GatewaySnapshot, persist: Bool) {
        table.setSite(GatewaySite(project: settings.project, domain: snapshot.domain,
                                  challenges: Dictionary(snapshot.challenges.map { ($0.token, $0.keyAuthorization) }, uniquingKeysWith: { a, _ in a }),
                                  secureNames: settings.httpsPort == nil ? [] : Set(snapshot.certificates.map(\.domain)), httpsPort: settings.httpsPort))
        table.replaceAll(snapshot.routes.map { ($0.project, $0.spec) })
        access.set(snapshot.tokenHashes)
        identities.set(snapshot.certificates)
        guard persist, let path = settings.statePath, let data = try? API.encoder.encode(snapshot) else { return }
        let temporary = path + ".partial"
        if FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) {
            rename(temporary, path)
        }
    }

    /// Follows the feed, reconnecting with backoff; routes stay as they are while it is down.
    func follow() async throws {
        var backoff = ReconnectBackoff()
        var wasDown = false
        while !Task.isCancelled {
            let heard = Heard()
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in self.client.gatewayFeed() {
                            heard.state.withLock { $0 = (.now, true) }
                            if let snapshot = message.snapshot { self.apply(snapshot, persist: true) }
                        }
                        throw FeedEnded(description: "the control plane closed the feed")
                    }
                    group.addTask {
                        let silence = Duration.seconds(self.settings.feedSilence)
                        while true {
                            try await Task.sleep(for: .seconds(1))
                            if heard.state.withLock({ $0.at }).duration(to: .now) > silence {
                                throw FeedEnded(description: "no word from the control plane for \(Int(self.settings.feedSilence)) s")
                            }
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                if heard.state.withLock({ $0.any }) { backoff.reset(); if wasDown { wasDown = false } }
                if !wasDown {
                    logger.warning("control plane unreachable; serving the last known routes", metadata: ["error": "\(error)"])
                    wasDown = true
                }
            }
            try await Task.sleep(for: .seconds(backoff.next()))
        }
    }

    final class Heard: Sendable {
        let state = Mutex<(at: ContinuousClock.Instant, any: Bool)>((.now, false))
    }

    struct FeedEnded: Error, CustomStringConvertible { var description: String }

    /// This replica's traffic per service, every `reportInterval` and at once when a request
    /// waits at a service with no ready replica.
    func report() async throws {
        var last = ContinuousClock.now
        while !Task.isCancelled {
            // Looks every 100 ms for a request waiting at zero; reports every interval anyway.
            try await Task.sleep(for: .milliseconds(100))
            let due = last.duration(to: .now) >= .seconds(settings.reportInterval)
            guard due || waiting.withLock({ !$0.isEmpty }) else { continue }
            last = .now
            let waitingNow = waiting.withLock { w -> [String] in defer { w.removeAll() }; return Array(w) }
            let services = table.routes.map(\.report)
            do {
                try await client.gatewayReport(GatewayReport(replica: settings.replica, services: services, waiting: waitingNow))
            } catch {
                // Unreachable: the next report tells the whole window again.
                if !waitingNow.isEmpty { waiting.withLock { $0.formUnion(waitingNow) } }
            }
        }
    }
}

/// A long-running loop as a service of the group: it ends on graceful shutdown.
struct Loop: Service {
    let name: String
    let body: @Sendable () async throws -> Void

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await body() }
    }
}
