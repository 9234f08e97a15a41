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
                              model: model, rateLimits: limits, scalesToZero: scalesToZero, runCreatedAt: run.meta.createdAt)
    }
}

/// Keeps one ProxyRoute per serving run (same project and name), written only when it changes.
public struct RouteReconciler: Reconciler {
    public typealias Key = ObjectKey

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

    /// `key` is the run's key.
    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        let routeKey = ObjectKey(kind: ProxyRouteKind.name, project: key.project, name: key.name)
        let current = try routes.get(routeKey).map(TypedStore<ProxyRouteKind>.decode)
        let run = try runs.get(ObjectKey(kind: RunKind.name, project: key.project, name: key.name)).map(TypedStore<RunKind>.decode)
        let wanted = try await run.asyncMap { run in RoutePlanner.route(run: run, replicas: try await replicas.replicas(project: key.project, run: key.name)) } ?? nil

        switch (current, wanted) {
        case (nil, nil):
            break
        case (let current?, nil):
            do { try await routeStore.delete(project: current.meta.project, name: current.meta.name) } catch let e as StoreError where e.code == .notFound {}
        case (nil, let spec?):
            let owner = run.map { [$0.ownerReference] } ?? []
            var route = ProxyRoute(project: key.project, name: key.name, labels: [Labels.run: key.name], spec: spec)
            route.meta.ownerReferences = owner
            do { try await routeStore.create(route) } catch let e as StoreError where e.code == .alreadyExists {
                return .requeue(after: 0.05)   // the cache had not seen it yet
            }
        case (var current?, let spec?):
            guard current.spec != spec else { break }
            current.spec = spec
            do { try await routeStore.update(current) } catch let e as StoreError where e.isConflictOrMissing {
                return .requeue(after: 0.05)
            }
        }
        return .done
    }
}
