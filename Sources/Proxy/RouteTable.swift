import Foundation
import Model
import Reconcile
import Store
import Synchronization

/// Where a published service's requests go: its ready replicas and how to treat requests.
public struct ServiceRoute: Sendable, Equatable {
    public var project: String
    public var run: String
    public var auth: Bool
    public var stripPrefix: Bool
    /// Endpoints of ready, non-terminating replicas (`unix:/path` or `host:port`).
    public var endpoints: [String]
}

/// The proxy's routes, kept current by `RouteUpdater`; read on every request.
public final class RouteTable: Sendable {
    private let routes = Mutex<[String: ServiceRoute]>([:])
    private let counter = Mutex(0)

    public init() {}

    public func route(project: String, run: String) -> ServiceRoute? {
        routes.withLock { $0["\(project)/\(run)"] }
    }

    public func set(_ route: ServiceRoute?, project: String, run: String) {
        routes.withLock { $0["\(project)/\(run)"] = route }
    }

    /// Round robin over a route's endpoints.
    public func pick(_ route: ServiceRoute) -> String? {
        guard !route.endpoints.isEmpty else { return nil }
        let n = counter.withLock { c -> Int in c &+= 1; return c }
        return route.endpoints[abs(n) % route.endpoints.count]
    }
}

/// The route controller (first cut): recomputes a run's route from the informer caches whenever
/// the run or one of its replicas changes.
public final class RouteUpdater: Sendable {
    let table: RouteTable
    let runs: Informer
    let replicas: Informer

    public init(table: RouteTable, runs: Informer, replicas: Informer) {
        self.table = table
        self.runs = runs
        self.replicas = replicas
        runs.addHandler { [weak self] change in
            self?.refresh(project: change.object.meta.project, run: change.object.meta.name)
        }
        replicas.addHandler { [weak self] change in
            if let run = change.object.meta.labels[Labels.run] { self?.refresh(project: change.object.meta.project, run: run) }
        }
    }

    public func refresh(project: String, run name: String) {
        let key = ObjectKey(kind: RunKind.name, project: project, name: name)
        guard let stored = runs.get(key), let run = try? TypedStore<RunKind>.decode(stored),
              !run.meta.isDeleting, run.spec.stop == nil else {
            table.set(nil, project: project, run: name)
            return
        }
        let children: [Replica] = replicas.list(project: project, indexed: name).compactMap { try? TypedStore<ReplicaKind>.decode($0) }
        let serving: [Replica] = children.filter { r in r.status.phase == .running && r.status.ready && r.spec.termination == nil }
        let endpoints: [String] = serving.sorted { a, b in a.meta.name < b.meta.name }.compactMap { r in r.status.endpoint }
        let config = run.spec.configuration
        table.set(ServiceRoute(project: project, run: name, auth: config.auth, stripPrefix: config.stripPrefix, endpoints: endpoints),
                  project: project, run: name)
    }
}
