import Foundation
import Model
import Reconcile
import Store

/// What the proxy should serve for a run: the pure part of the route controller.
public enum RoutePlanner {
    /// The route of `run`, or nil when it serves nothing (stopped, finished, being deleted).
    /// Only replicas that are running, ready and not asked to end are in rotation, so a replica
    /// leaves rotation the moment it is told to stop (drain) or fails a probe.
    public static func route(run: Run, replicas: [Replica]) -> ProxyRouteSpec? {
        guard !run.meta.isDeleting, run.spec.stop == nil, !run.status.phase.isFinished else { return nil }
        let config = run.spec.configuration
        let endpoints = replicas
            .filter { r in r.status.phase == .running && r.status.ready && r.spec.termination == nil && r.status.drainStartedAt == nil && !r.meta.isDeleting }
            .compactMap { r in r.status.endpoint.map { RouteEndpoint(replica: r.meta.name, address: $0) } }
            .sorted { $0.replica < $1.replica }
        let model = config.model.map { m in RouteModel(name: m.name, format: m.format.rawValue, prefix: m.prefix) }
        let limits = config.rateLimits.map { l -> RouteRateLimit in
            switch l.key {
            case .ipAddress: return RouteRateLimit(prefix: l.prefix, header: nil, rps: l.rps, burst: l.burst)
            case .header(let h): return RouteRateLimit(prefix: l.prefix, header: h, rps: l.rps, burst: l.burst)
            }
        }
        let scalesToZero = config.replicaGroups.contains { ($0.replicas.min ?? 0) == 0 }
        return ProxyRouteSpec(run: run.meta.name, auth: config.auth, stripPrefix: config.stripPrefix, endpoints: endpoints,
                              model: model, rateLimits: limits, scalesToZero: scalesToZero, runCreatedAt: run.meta.createdAt,
                              gateway: run.spec.gateway)
    }
}

/// What the route controller does to the store.
public enum RouteAction: Sendable, Equatable {
    case create(ProxyRoute)
    case update(ProxyRoute)
    case delete
}

/// The run a route serves, and its replicas.
public struct RouteObservation: Sendable {
    public var run: Run?
    public var replicas: [Replica]

    public init(run: Run?, replicas: [Replica]) {
        self.run = run
        self.replicas = replicas
    }
}

/// Keeps one ProxyRoute per serving run (same project and name), written only when it changes.
/// Its object is the route; a route not stored yet is loaded as a blank one (resourceVersion 0),
/// so that "the run serves, there is no route" plans a create.
public struct RouteController: PlanningController {
    public typealias Kind = ProxyRouteKind

    let store: any ObjectStore
    let runs: Informer
    let replicas: any ReplicaSource
    let routes: Informer

    public init(store: any ObjectStore, runs: Informer, replicas: any ReplicaSource, routes: Informer) {
        self.store = store
        self.runs = runs
        self.replicas = replicas
        self.routes = routes
    }

    var routeStore: TypedStore<ProxyRouteKind> { TypedStore(store) }

    public func load(_ key: ObjectKey) async throws -> ProxyRoute? {
        if let stored = routes.get(key) { return try TypedStore<ProxyRouteKind>.decode(stored) }
        return ProxyRoute(project: key.project, name: key.name, labels: [Labels.run: key.name],
                          spec: ProxyRouteSpec(run: key.name, auth: true, stripPrefix: true, endpoints: [], runCreatedAt: Date(timeIntervalSince1970: 0)))
    }

    public func observe(_ route: ProxyRoute) async throws -> RouteObservation {
        let run = try runs.get(ObjectKey(kind: RunKind.name, project: route.meta.project, name: route.meta.name)).map(TypedStore<RunKind>.decode)
        let children = run == nil ? [] : try await replicas.replicas(project: route.meta.project, run: route.meta.name)
        return RouteObservation(run: run, replicas: children)
    }

    public func plan(_ route: ProxyRoute, _ observed: RouteObservation, now: Date) throws -> Plan<EmptyStatus, RouteAction> {
        var plan = Plan<EmptyStatus, RouteAction>(status: route.status)
        let stored = route.meta.resourceVersion != 0
        let wanted = observed.run.flatMap { RoutePlanner.route(run: $0, replicas: observed.replicas) }
        switch (stored, wanted) {
        case (false, nil):
            break
        case (true, nil):
            plan.actions = [.delete]
            plan.events = [.normal("Unpublished", "the run serves nothing any more; removed from the proxy")]
        case (false, let spec?):
            var created = ProxyRoute(project: route.meta.project, name: route.meta.name, labels: [Labels.run: route.meta.name], spec: spec)
            created.meta.ownerReferences = observed.run.map { [$0.ownerReference] } ?? []
            plan.actions = [.create(created)]
            plan.events = [.normal("Published", "in the proxy with \(Self.endpoints(spec.endpoints.count))")]
        case (true, let spec?):
            guard route.spec != spec else { break }
            var updated = route
            updated.spec = spec
            plan.actions = [.update(updated)]
            // Only the changes a user acts on: serving nothing, and serving again.
            if spec.endpoints.isEmpty && !route.spec.endpoints.isEmpty {
                plan.events = [.warning("NoEndpoints", "no replica is ready: requests wait for one\(spec.scalesToZero ? " (scale from zero)" : "")")]
            } else if !spec.endpoints.isEmpty && route.spec.endpoints.isEmpty {
                plan.events = [.normal("EndpointsReady", "serving with \(Self.endpoints(spec.endpoints.count))")]
            }
        }
        return plan
    }

    static func endpoints(_ n: Int) -> String { n == 1 ? "1 ready replica" : "\(n) ready replicas" }

    public func perform(_ action: RouteAction, on route: inout ProxyRoute, plan: inout Plan<EmptyStatus, RouteAction>, now: Date) async throws {
        switch action {
        case .create(let created):
            // `alreadyExists` (the cache had not seen it yet) is retried: the next pass updates it.
            route = try await routeStore.create(created)
        case .update(let updated):
            route = try await routeStore.update(updated)
        case .delete:
            do { try await routeStore.delete(project: route.meta.project, name: route.meta.name) } catch let e as StoreError where e.code == .notFound {}
        }
    }

    /// Routes have no status.
    public func writeStatus(_ route: ProxyRoute) async throws {}
}

/// The route controller in its shell.
public typealias RouteReconciler = PlanReconciler<RouteController>

extension PlanReconciler where C == RouteController {
    public init(store: any ObjectStore, runs: Informer, replicas: any ReplicaSource, routes: Informer, clock: any ControllerClock) {
        self.init(RouteController(store: store, runs: runs, replicas: replicas, routes: routes), store: store, clock: clock, component: "route-controller")
    }
}
