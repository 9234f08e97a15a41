import Foundation
import Model
import NIOCore
import NIOPosix
import Reconcile
import SetpointConfiguration
import Store
import Synchronization

/// Where an upstream listens.
public enum UpstreamAddress: Sendable, Hashable {
    case unix(String)
    case tcp(host: String, port: Int)

    /// `unix:/path` or `host:port` (a replica's endpoint).
    public init?(_ text: String) {
        if text.hasPrefix("unix:") {
            self = .unix(String(text.dropFirst(5)))
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self = .tcp(host: host, port: port)
    }

    func connect(_ bootstrap: ClientBootstrap) -> EventLoopFuture<Channel> {
        switch self {
        case .unix(let path): return bootstrap.connect(unixDomainSocketPath: path)
        case .tcp(let host, let port): return bootstrap.connect(host: host, port: port)
        }
    }
}

/// A replica in rotation. Its outstanding count survives route updates, so balancing and
/// draining see every request sent to it.
public final class Endpoint: Sendable {
    public let replica: String
    public let address: String
    let target: UpstreamAddress
    let outstanding = Atomic<Int>(0)

    init?(replica: String, address: String) {
        guard let target = UpstreamAddress(address) else { return nil }
        self.replica = replica
        self.address = address
        self.target = target
    }

    public var inFlight: Int { outstanding.load(ordering: .relaxed) }
}

/// One service as the proxy serves it (an immutable snapshot of its ProxyRoute).
extension ServiceRoute {
    /// This proxy's traffic for the service as the autoscaler reads it elsewhere: what a gateway
    /// reports to the control plane, and what a server writes for the leader.
    public var report: GatewayReport.Service {
        var requests: [String: Int] = [:]
        for window in ScalingSpec.countedWindows { requests[String(window)] = stats.requests(last: window) }
        let snapshot = stats.snapshot
        return GatewayReport.Service(project: project, run: run, requests: requests, inFlight: snapshot.inFlight,
                                     held: snapshot.held, observed: stats.observed())
    }
}

public final class ServiceRoute: Sendable {
    public let project: String
    public let run: String
    public let spec: ProxyRouteSpec
    public let endpoints: [Endpoint]
    let limiter: RateLimiter?
    public let stats: ServiceStats

    init(project: String, spec: ProxyRouteSpec, endpoints: [Endpoint], stats: ServiceStats) {
        self.project = project
        self.run = spec.run
        self.spec = spec
        self.endpoints = endpoints
        self.limiter = RateLimiter(spec.rateLimits)
        self.stats = stats
    }

    public var key: String { "\(project)/\(run)" }
    public var pathPrefix: String { "/proxy/services/\(project)/\(run)" }
}

/// What a gateway serves: `<run>.<domain>` for the project's services on it, and
/// `gateway.<domain>` for its models API.
public struct GatewaySite: Sendable, Equatable {
    public var project: String
    /// nil until the control plane said (nothing is served by name then).
    public var domain: String?
    /// ACME HTTP-01 answers by token.
    public var challenges: [String: String]
    /// Names served over HTTPS (`*.<domain>` for a wildcard): plain HTTP requests for them are
    /// redirected there, as dstack's gateway does.
    public var secureNames: Set<String>
    public var httpsPort: Int?

    public init(project: String, domain: String?, challenges: [String: String] = [:], secureNames: Set<String> = [], httpsPort: Int? = nil) {
        self.project = project
        self.domain = domain?.lowercased()
        self.challenges = challenges
        self.secureNames = Set(secureNames.map { $0.lowercased() })
        self.httpsPort = httpsPort
    }

    /// Where a plain HTTP request for `host` should go instead, when the name has a certificate.
    func secureLocation(host: String?, uri: String) -> String? {
        guard let httpsPort, var name = host?.lowercased(), !secureNames.isEmpty else { return nil }
        if let colon = name.lastIndex(of: ":"), !name.hasPrefix("[") { name = String(name[..<colon]) }
        if name.hasSuffix(".") { name.removeLast() }
        let wildcard = name.firstIndex(of: ".").map { "*" + name[$0...] }
        guard secureNames.contains(name) || wildcard.map(secureNames.contains) == true else { return nil }
        return "https://\(name)\(httpsPort == 443 ? "" : ":\(httpsPort)")\(uri)"
    }

    static let challengePath = "/.well-known/acme-challenge/"

    enum Target: Equatable { case service(String), models, unknown }

    /// What a `Host` header names (any port dropped, case ignored, a trailing dot allowed).
    func target(host: String?) -> Target {
        guard let domain, var host = host?.lowercased() else { return .unknown }
        if host.hasPrefix("[") { return .unknown }
        if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
        if host.hasSuffix(".") { host.removeLast() }
        guard host.count > domain.count + 1, host.hasSuffix(domain), host.dropLast(domain.count).last == "." else { return .unknown }
        let label = host.dropLast(domain.count + 1)
        guard !label.isEmpty, !label.contains(".") else { return .unknown }
        return label == "gateway" ? .models : .service(String(label))
    }
}

/// The proxy's routes, fed by the ProxyRoute informer; read on every request. Also where
/// requests wait for a first replica (scale from zero) and where the replica controller asks
/// whether a draining replica still has requests.
public final class RouteTable: Sendable {
    struct Waiter {
        var id: Int
        var fire: @Sendable (ServiceRoute?) -> Void
    }

    struct State {
        var routes: [String: ServiceRoute] = [:]
        var endpoints: [String: Endpoint] = [:]
        var stats: [String: ServiceStats] = [:]
        var waiters: [String: [Waiter]] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())
    private let gatewaySite = Mutex<GatewaySite?>(nil)
    /// Called when a request starts waiting at a service with no ready replica.
    let onDemandAtZero = Mutex<(@Sendable (String, String) -> Void)?>(nil)

    /// A gateway's table: requests are routed by `Host` (`site`); the server's is routed by
    /// path and never takes the site's lock.
    let byHost: Bool

    public init(byHost: Bool = false) { self.byHost = byHost }

    /// On a gateway: route by `Host` for this site (nil: by path, as the server does).
    public var site: GatewaySite? { byHost ? gatewaySite.withLock { $0 } : nil }
    public func setSite(_ site: GatewaySite?) { gatewaySite.withLock { $0 = site } }

    /// Replaces every route (a gateway's snapshot from the control plane).
    public func replaceAll(_ routes: [(project: String, spec: ProxyRouteSpec)]) {
        let wanted = Set(routes.map { "\($0.project)/\($0.spec.run)" })
        for r in self.routes where !wanted.contains(r.key) { remove(project: r.project, run: r.run) }
        for r in routes where self.route(project: r.project, run: r.spec.run)?.spec != r.spec { set(project: r.project, spec: r.spec) }
    }

    public func setDemandHandler(_ handler: @escaping @Sendable (_ project: String, _ run: String) -> Void) {
        onDemandAtZero.withLock { $0 = handler }
    }

    /// Keeps the table in step with the ProxyRoute informer.
    public func follow(_ informer: Informer) {
        informer.addHandler { [weak self] change in
            guard let self else { return }
            switch change {
            case .upsert(let o), .resync(let o):
                if let route = try? TypedStore<ProxyRouteKind>.decode(o) { self.set(project: o.meta.project, spec: route.spec) }
            case .delete(let o):
                self.remove(project: o.meta.project, run: o.meta.name)
            }
        }
    }

    public func route(project: String, run: String) -> ServiceRoute? {
        state.withLock { $0.routes["\(project)/\(run)"] }
    }

    public var routes: [ServiceRoute] { state.withLock { Array($0.routes.values) } }

    public func set(project: String, spec: ProxyRouteSpec) {
        let key = "\(project)/\(spec.run)"
        let (route, waiters) = state.withLock { s -> (ServiceRoute, [Waiter]) in
            let endpoints = spec.endpoints.compactMap { e -> Endpoint? in
                if let existing = s.endpoints[e.address], existing.replica == e.replica { return existing }
                guard let fresh = Endpoint(replica: e.replica, address: e.address) else { return nil }
                s.endpoints[e.address] = fresh
                return fresh
            }
            let stats = s.stats[key] ?? ServiceStats()
            s.stats[key] = stats
            let route = ServiceRoute(project: project, spec: spec, endpoints: endpoints, stats: stats)
            s.routes[key] = route
            Self.sweep(&s)
            guard !endpoints.isEmpty else { return (route, []) }
            return (route, s.waiters.removeValue(forKey: key) ?? [])
        }
        for w in waiters { w.fire(route) }
    }

    public func remove(project: String, run: String) {
        let key = "\(project)/\(run)"
        let waiters = state.withLock { s -> [Waiter] in
            s.routes[key] = nil
            s.stats[key] = nil
            Self.sweep(&s)
            return s.waiters.removeValue(forKey: key) ?? []
        }
        for w in waiters { w.fire(nil) }
    }

    /// Endpoints in no route and with nothing in flight are forgotten.
    private static func sweep(_ s: inout State) {
        let live = Set(s.routes.values.flatMap { $0.endpoints.map(\.address) })
        s.endpoints = s.endpoints.filter { live.contains($0.key) || $0.value.inFlight > 0 }
    }

    /// Least outstanding requests by the power of two choices, among the current endpoints of
    /// the service minus `excluding`; the chosen endpoint's count is taken under the same lock
    /// as the route is read, so a replica out of rotation never gets a new request.
    func pick(_ key: String, excluding: [String] = []) -> (ServiceRoute, Endpoint)? {
        state.withLock { s -> (ServiceRoute, Endpoint)? in
            guard let route = s.routes[key] else { return nil }
            let all = route.endpoints
            let candidates = excluding.isEmpty ? all : all.filter { !excluding.contains($0.address) }
            let chosen: Endpoint
            switch candidates.count {
            case 0: return nil
            case 1: chosen = candidates[0]
            default:
                let i = Int.random(in: 0..<candidates.count)
                var j = Int.random(in: 0..<(candidates.count - 1))
                if j >= i { j += 1 }
                let a = candidates[i], b = candidates[j]
                chosen = a.inFlight <= b.inFlight ? a : b
            }
            chosen.outstanding.wrappingAdd(1, ordering: .relaxed)
            return (route, chosen)
        }
    }

    func release(_ endpoint: Endpoint) {
        endpoint.outstanding.wrappingSubtract(1, ordering: .relaxed)
    }

    /// What a draining replica at `address` still owes: requests in flight, plus one while it
    /// is still in some route's rotation.
    public func pending(address: String) -> Int {
        state.withLock { s in
            let inRotation = s.routes.values.contains { r in r.endpoints.contains { $0.address == address } }
            return (s.endpoints[address]?.inFlight ?? 0) + (inRotation ? 1 : 0)
        }
    }

    enum Hold {
        case ready(ServiceRoute)
        case waiting(id: Int)
        case full
        case gone
    }

    /// Waits for the service to have a replica; `fire` gets the route (nil: it went away).
    /// At most `limit` requests wait per service.
    func hold(_ key: String, limit: Int, fire: @escaping @Sendable (ServiceRoute?) -> Void) -> Hold {
        state.withLock { s -> Hold in
            guard let r = s.routes[key] else { return .gone }
            if !r.endpoints.isEmpty { return .ready(r) }
            if (s.waiters[key]?.count ?? 0) >= limit { return .full }
            s.nextWaiter += 1
            s.waiters[key, default: []].append(Waiter(id: s.nextWaiter, fire: fire))
            return .waiting(id: s.nextWaiter)
        }
    }

    func cancelHold(_ key: String, id: Int) {
        state.withLock { s in s.waiters[key]?.removeAll { $0.id == id } }
    }

    func demandAtZero(project: String, run: String) {
        onDemandAtZero.withLock { $0 }?(project, run)
    }

    /// The service publishing `model` in `project` (the most recently created run wins).
    public func model(project: String, name: String) -> ServiceRoute? {
        state.withLock { s in
            s.routes.values.filter { $0.project == project && $0.spec.model?.name == name }
                .max { ($0.spec.runCreatedAt, $0.run) < ($1.spec.runCreatedAt, $1.run) }
        }
    }

    public func models(project: String) -> [ServiceRoute] {
        state.withLock { s in s.routes.values.filter { $0.project == project && $0.spec.model != nil } }
            .sorted { $0.spec.model!.name < $1.spec.model!.name }
    }
}
