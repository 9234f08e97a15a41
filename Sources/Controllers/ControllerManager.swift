import Backend
import Foundation
import Logging
import Model
import Reconcile
import ServiceLifecycle
import Store

/// Runs the run and replica controllers over a store and a backend, fed by informers (store
/// watches) and the backend's change stream, with garbage collection of orphaned workloads.
public final class ControllerManager: Service, Sendable {
    public let runInformer: Informer
    public let replicaInformer: Informer
    public let runController: Controller<RunReconciler>
    public let replicaController: Controller<ReplicaReconciler>
    /// ProxyRoute objects, kept by `routeController` when routes are enabled.
    public let routeInformer: Informer
    public let routeController: Controller<RouteReconciler>?
    let store: any ObjectStore
    let backend: any ComputeBackend
    let clock: any ControllerClock
    let logger: Logger

    public init(store: any ObjectStore, backend: any ComputeBackend, prober: any ReadinessProber, clock: any ControllerClock,
                runWorkers: Int = 4, replicaWorkers: Int = 8, resyncPeriod: TimeInterval? = 600, drain: Drain = .fixed(0),
                routes: Bool = false, metrics: (any ControllerMetrics)? = nil, logger: Logger = Logger(label: "setpoint.controllers")) {
        self.store = store
        self.backend = backend
        self.clock = clock
        self.logger = logger
        runInformer = Informer(store: store, kind: RunKind.name, clock: clock, resyncPeriod: resyncPeriod, logger: logger)
        replicaInformer = Informer(store: store, kind: ReplicaKind.name, clock: clock, resyncPeriod: resyncPeriod,
                                   indexLabel: Labels.run, logger: logger)
        runController = Controller(name: "run", reconciler: RunReconciler(store: store, replicas: InformerReplicaSource(replicaInformer), clock: clock),
                                   clock: clock, workers: runWorkers, metrics: metrics, logger: logger)
        replicaController = Controller(name: "replica",
                                       reconciler: ReplicaReconciler(store: store, backend: backend, prober: prober, clock: clock, drain: drain),
                                       clock: clock, workers: replicaWorkers, metrics: metrics, logger: logger)
        routeInformer = Informer(store: store, kind: ProxyRouteKind.name, clock: clock, resyncPeriod: resyncPeriod, logger: logger)
        let routeController = routes ? Controller(
            name: "route",
            reconciler: RouteReconciler(store: store, runs: runInformer, replicas: InformerReplicaSource(replicaInformer), routes: routeInformer),
            clock: clock, workers: 2, metrics: metrics, logger: logger) : nil
        self.routeController = routeController
        let runs = runController
        let replicas = replicaController
        runInformer.addHandler { change in
            runs.enqueue(change.object.key)
            routeController?.enqueue(change.object.key)
        }
        replicaInformer.addHandler { change in
            let o = change.object
            replicas.enqueue(o.key)
            // A replica's change is its run's business too (owner mapping), and its route's.
            if let run = o.meta.labels[Labels.run] {
                let key = ObjectKey(kind: RunKind.name, project: o.meta.project, name: run)
                runs.enqueue(key)
                routeController?.enqueue(key)
            }
        }
        routeInformer.addHandler { change in
            routeController?.enqueue(ObjectKey(kind: RunKind.name, project: change.object.meta.project, name: change.object.meta.name))
        }
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await self.runAll()
        }
    }

    private func runAll() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.runInformer.run() }
            group.addTask { try await self.replicaInformer.run() }
            group.addTask { try await self.routeInformer.run() }
            group.addTask { await self.watchBackend() }
            group.addTask { await self.recordBackendEvents() }
            await runInformer.waitUntilSynced()
            await replicaInformer.waitUntilSynced()
            await routeInformer.waitUntilSynced()
            await collectGarbage()
            group.addTask { try await self.runController.run() }
            group.addTask { try await self.replicaController.run() }
            if let routes = self.routeController { group.addTask { try await routes.run() } }
        }
    }

    /// Backend changes become replica keys (workloads carry their replica's labels).
    private func watchBackend() async {
        let replicas = replicaController
        for await change in backend.changes() {
            guard let key = Self.replicaKey(change.labels) else { continue }
            replicas.enqueue(key)
        }
    }

    /// The backend's remarks (a Pod's events) become the replica's events.
    private func recordBackendEvents() async {
        let recorder = EventRecorder(store: store, clock: clock, component: "backend")
        for await event in backend.events() {
            guard let key = Self.replicaKey(event.labels) else { continue }
            await recorder.record(key, warning: event.warning, reason: event.reason, message: event.message)
        }
    }

    static func replicaKey(_ labels: [String: String]) -> ObjectKey? {
        guard let project = labels[Labels.project], let run = labels[Labels.run], let group = labels[Labels.group],
              let num = labels[Labels.replica].flatMap(Int.init), let sub = labels[Labels.submission].flatMap(Int.init) else { return nil }
        return ObjectKey(kind: ReplicaKind.name, project: project,
                         name: Replica.name(run: run, group: group, replicaNum: num, submissionNum: sub))
    }

    /// Deletes workloads whose replica object no longer exists (after a crash between the
    /// object's deletion and the workload's, or of a server that was replaced).
    public func collectGarbage() async {
        do {
            for workload in try await backend.inventory(labels: [:]) {
                guard let key = Self.replicaKey(workload.labels) else { continue }
                if replicaInformer.get(key) == nil, try await store.get(key) == nil {
                    logger.info("deleting orphaned workload", metadata: ["workload": "\(workload.id)"])
                    try await backend.delete(workload.id)
                }
            }
        } catch {
            logger.warning("garbage collection failed", metadata: ["error": "\(error)"])
        }
    }
}
