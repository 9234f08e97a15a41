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
    /// Probes running replicas and wakes the replica controller when readiness changes.
    public let readiness: ReadinessMonitor
    /// ProxyRoute objects, kept by `routeController` when routes are enabled.
    public let routeInformer: Informer
    public let routeController: Controller<RouteReconciler>?
    /// Gateway objects, and their controller when this server runs gateways.
    public let gatewayInformer: Informer
    public let gatewayController: Controller<GatewayReconciler>?
    /// Certificates of gateways, and their controller when the server has an ACME issuer.
    public let certificateInformer: Informer
    public let certificateController: Controller<CertificateReconciler>?
    /// Project secrets (their digests): a new value rolls the runs that use it.
    public let secretInformer: Informer
    /// Git sources, and their controller when the server syncs them.
    public let sourceInformer: Informer
    public let sourceController: Controller<SourceReconciler>?
    let store: any ObjectStore
    let backend: any ComputeBackend
    let clock: any ControllerClock
    let logger: Logger
    /// How often orphaned workloads are looked for while running (besides at start).
    let garbageCollectionInterval: TimeInterval?
    /// Several servers on one database: the controllers run only while this one leads (the
    /// informers always: the API and the proxy read them). Nil: always.
    let leadership: Leadership?

    public init(store: any ObjectStore, backend: any ComputeBackend, prober: any ReadinessProber, clock: any ControllerClock,
                runWorkers: Int = 4, replicaWorkers: Int = 8, resyncPeriod: TimeInterval? = 600, drain: Drain = .fixed(0),
                routes: Bool = false, metrics: (any ControllerMetrics)? = nil, garbageCollectionInterval: TimeInterval? = 600,
                gateways: GatewayLaunch? = nil, gatewayReports: GatewayReports = GatewayReports(), issuer: (any CertificateIssuer)? = nil,
                secrets: (any SecretResolver)? = nil, sources: (fetcher: any SourceFetcher, applier: any SetApplier)? = nil,
                leadership: Leadership? = nil, logger: Logger = Logger(label: "setpoint.controllers")) {
        self.garbageCollectionInterval = garbageCollectionInterval
        self.leadership = leadership
        self.store = store
        self.backend = backend
        self.clock = clock
        self.logger = logger
        runInformer = Informer(store: store, kind: RunKind.name, clock: clock, resyncPeriod: resyncPeriod, logger: logger)
        replicaInformer = Informer(store: store, kind: ReplicaKind.name, clock: clock, resyncPeriod: resyncPeriod,
                                   indexLabel: Labels.run, logger: logger)
        secretInformer = Informer(store: store, kind: SecretKind.name, clock: clock, resyncPeriod: resyncPeriod, logger: logger)
        runController = Controller(name: "run", reconciler: RunReconciler(store: store, replicas: InformerReplicaSource(replicaInformer),
                                                                          secrets: InformerSecretDigests(secretInformer), clock: clock),
                                   clock: clock, workers: runWorkers, metrics: metrics, logger: logger)
        readiness = ReadinessMonitor(prober: prober, clock: clock)
        replicaController = Controller(name: "replica",
                                       reconciler: ReplicaReconciler(store: store, backend: backend, prober: prober, monitor: readiness,
                                                                     clock: clock, drain: drain, secrets: secrets),
                                       clock: clock, workers: replicaWorkers, metrics: metrics, logger: logger)
        routeInformer = Informer(store: store, kind: ProxyRouteKind.name, clock: clock, resyncPeriod: resyncPeriod, logger: logger)
        let routeController = routes ? Controller(
            name: "route",
            reconciler: RouteReconciler(store: store, runs: runInformer, replicas: InformerReplicaSource(replicaInformer), routes: routeInformer,
                                        clock: clock),
            clock: clock, workers: 2, metrics: metrics, logger: logger) : nil
        self.routeController = routeController
        gatewayInformer = Informer(store: store, kind: GatewayKind.name, clock: clock, resyncPeriod: resyncPeriod, logger: logger)
        let gatewayController = gateways.map { launch in
            Controller(name: "gateway",
                       reconciler: GatewayReconciler(GatewayController(store: store, backend: backend, reports: gatewayReports, launch: launch),
                                                     store: store, clock: clock, component: "gateway-controller", logger: logger),
                       clock: clock, workers: 2, metrics: metrics, logger: logger)
        }
        self.gatewayController = gatewayController
        certificateInformer = Informer(store: store, kind: CertificateKind.name, clock: clock, resyncPeriod: resyncPeriod, logger: logger)
        let certificateController = issuer.map { issuer in
            Controller(name: "certificate",
                       reconciler: CertificateReconciler(CertificateController(store: store, issuer: issuer), store: store, clock: clock,
                                                         component: "certificate-controller", logger: logger),
                       clock: clock, workers: 2, metrics: metrics, logger: logger)
        }
        self.certificateController = certificateController
        gatewayInformer.addHandler { change in gatewayController?.enqueue(change.object.key) }
        @Sendable func gatewayKey(_ project: String, _ name: String) -> ObjectKey { ObjectKey(kind: GatewayKind.name, project: project, name: name) }
        certificateInformer.addHandler { change in
            certificateController?.enqueue(change.object.key)
            if let g = change.object.meta.labels[Labels.gateway] { gatewayController?.enqueue(gatewayKey(change.object.meta.project, g)) }
        }
        gatewayReports.setLive { key in gatewayController?.enqueue(key) }
        let runs = runController
        let replicas = replicaController
        // Each controller has one root kind; other kinds' changes map to its keys (a run's route
        // has the run's project and name).
        @Sendable func routeKey(_ project: String, _ run: String) -> ObjectKey { ObjectKey(kind: ProxyRouteKind.name, project: project, name: run) }
        runInformer.addHandler { change in
            runs.enqueue(change.object.key)
            routeController?.enqueue(routeKey(change.object.meta.project, change.object.meta.name))
        }
        replicaInformer.addHandler { change in
            let o = change.object
            replicas.enqueue(o.key)
            // A replica's change is its run's business too (owner mapping), and its route's.
            if let run = o.meta.labels[Labels.run] {
                runs.enqueue(ObjectKey(kind: RunKind.name, project: o.meta.project, name: run))
                routeController?.enqueue(routeKey(o.meta.project, run))
            }
        }
        routeInformer.addHandler { change in
            routeController?.enqueue(change.object.key)
            // A route on a gateway is that gateway's business too (its certificates).
            if gatewayController != nil, let route = try? TypedStore<ProxyRouteKind>.decode(change.object), let g = route.spec.gateway {
                gatewayController?.enqueue(gatewayKey(change.object.meta.project, g))
            }
        }
        readiness.setOnChange { key in replicas.enqueue(key) }
        sourceInformer = Informer(store: store, kind: SourceKind.name, clock: clock, resyncPeriod: resyncPeriod, logger: logger)
        let sourceController = sources.map { parts in
            Controller(name: "source",
                       reconciler: SourceReconciler(SourceController(store: store, fetcher: parts.fetcher, applier: parts.applier, secrets: secrets),
                                                    store: store, clock: clock, component: "source-controller", logger: logger),
                       clock: clock, workers: 2, metrics: metrics, logger: logger)
        }
        self.sourceController = sourceController
        sourceInformer.addHandler { change in sourceController?.enqueue(change.object.key) }
        // An object a source applied is that source's business (its sync state and health).
        @Sendable func sourceOf(_ o: StoredObject) {
            guard let name = o.meta.labels[Labels.source] else { return }
            sourceController?.enqueue(ObjectKey(kind: SourceKind.name, project: o.meta.project, name: name))
        }
        runInformer.addHandler { change in sourceOf(change.object) }
        gatewayInformer.addHandler { change in sourceOf(change.object) }
        // A secret's change is the business of the runs of its project that refer to it.
        let runInformer = self.runInformer
        secretInformer.addHandler { change in
            let secret = change.object
            for o in runInformer.list({ $0.meta.project == secret.meta.project }) {
                guard let run = try? TypedStore<RunKind>.decode(o),
                      run.spec.configuration.secretReferences.uses.contains(where: { $0.secret == secret.meta.name }) else { continue }
                runs.enqueue(o.key)
            }
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
            group.addTask { try await self.gatewayInformer.run() }
            group.addTask { try await self.certificateInformer.run() }
            group.addTask { try await self.secretInformer.run() }
            group.addTask { try await self.sourceInformer.run() }
            // Probes only what the replica controller asked for (so nothing while following);
            // one run for the server's life (its wake-ups are one stream).
            group.addTask { try await self.readiness.run() }
            await runInformer.waitUntilSynced()
            await replicaInformer.waitUntilSynced()
            await routeInformer.waitUntilSynced()
            await gatewayInformer.waitUntilSynced()
            await certificateInformer.waitUntilSynced()
            await secretInformer.waitUntilSynced()
            await sourceInformer.waitUntilSynced()
            // Shut down while starting: the informers end, nothing else begins.
            if Task.isCancelled { return }
            if let leadership {
                group.addTask { try await leadership.whileLeading { try await self.lead(fresh: true) } }
            } else {
                group.addTask { try await self.lead(fresh: false) }
            }
        }
    }

    /// What only the leader does: the controllers, the backend's changes, garbage collection,
    /// the event sweep. Until cancelled (the end of a term, or of the server).
    private func lead(fresh: Bool) async throws {
        if fresh {
            // A new term: every object is looked at again (the queues were shut with the last
            // term, or filled while following).
            runController.reopen()
            replicaController.reopen()
            routeController?.reopen()
            gatewayController?.reopen()
            certificateController?.reopen()
            sourceController?.reopen()
            for o in runInformer.list() { runController.enqueue(o.key) }
            for o in replicaInformer.list() { replicaController.enqueue(o.key) }
            for o in routeInformer.list() { routeController?.enqueue(o.key) }
            for o in gatewayInformer.list() { gatewayController?.enqueue(o.key) }
            for o in certificateInformer.list() { certificateController?.enqueue(o.key) }
            for o in sourceInformer.list() { sourceController?.enqueue(o.key) }
        }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.watchBackend() }
            group.addTask { await self.recordBackendEvents() }
            await collectGarbage()
            if let interval = garbageCollectionInterval {
                // A workload can be orphaned while the server runs too (a replica object deleted
                // by hand, a delete that failed half-way).
                group.addTask {
                    while !Task.isCancelled {
                        await self.clock.sleep(until: self.clock.now().addingTimeInterval(interval))
                        if Task.isCancelled { return }
                        await self.collectGarbage()
                    }
                }
            }
            // Events are bounded by age and by number per project (docs/status.md).
            group.addTask {
                let events = EventRecorder(store: self.store, clock: self.clock, component: "controller-manager")
                while !Task.isCancelled {
                    await events.sweep()
                    await self.clock.sleep(until: self.clock.now().addingTimeInterval(60))
                }
            }
            group.addTask { try await self.runController.run() }
            group.addTask { try await self.replicaController.run() }
            if let routes = self.routeController { group.addTask { try await routes.run() } }
            if let gateways = self.gatewayController { group.addTask { try await gateways.run() } }
            if let certificates = self.certificateController { group.addTask { try await certificates.run() } }
            if let sources = self.sourceController { group.addTask { try await sources.run() } }
        }
    }

    /// Backend changes become replica keys (workloads carry their replica's labels); one task
    /// per stream (a set of backends has one per member).
    private func watchBackend() async {
        let replicas = replicaController
        let gateways = gatewayController
        await withDiscardingTaskGroup { group in
            for stream in backend.changeStreams() {
                group.addTask {
                    for await change in stream {
                        for key in Self.replicaKeys(change.labels) { replicas.enqueue(key) }
                        if let key = Self.gatewayKey(change.labels) { gateways?.enqueue(key) }
                    }
                }
            }
        }
    }

    /// The backend's remarks (a Pod's events) become the replica's events.
    private func recordBackendEvents() async {
        let recorder = EventRecorder(store: store, clock: clock, component: "backend")
        await withDiscardingTaskGroup { group in
            for stream in backend.eventStreams() {
                group.addTask {
                    for await event in stream {
                        let keys = Self.replicaKeys(event.labels)
                        guard let key = keys.first(where: { self.replicaInformer.get($0) != nil }) ?? keys.first else { continue }
                        await recorder.record(key, warning: event.warning, reason: event.reason, message: event.message, run: event.labels[Labels.run])
                    }
                }
            }
        }
    }

    /// The replica a workload belongs to, from its labels: the replica's name, and the name
    /// earlier versions gave it (a replica created then keeps that name).
    static func replicaKeys(_ labels: [String: String]) -> [ObjectKey] {
        guard let project = labels[Labels.project], let run = labels[Labels.run], let group = labels[Labels.group],
              let num = labels[Labels.replica].flatMap(Int.init), let sub = labels[Labels.submission].flatMap(Int.init) else { return [] }
        return [Replica.name(run: run, group: group, replicaNum: num, submissionNum: sub),
                Replica.legacyName(run: run, group: group, replicaNum: num, submissionNum: sub)]
            .map { ObjectKey(kind: ReplicaKind.name, project: project, name: $0) }
    }

    /// The gateway a workload belongs to, from its labels.
    static func gatewayKey(_ labels: [String: String]) -> ObjectKey? {
        guard let project = labels[Labels.project], let name = labels[Labels.gateway] else { return nil }
        return ObjectKey(kind: GatewayKind.name, project: project, name: name)
    }

    /// Deletes workloads whose replica object no longer exists (after a crash between the
    /// object's deletion and the workload's, or of a server that was replaced).
    public func collectGarbage() async {
        do {
            for workload in try await backend.inventory(labels: [:]) {
                if let key = Self.gatewayKey(workload.labels) {
                    // A gateway process whose gateway (this very one, by uid) is gone.
                    let stored = try await store.get(key)
                    if stored == nil || stored?.meta.uid != workload.labels[Labels.gatewayUID] {
                        logger.info("deleting orphaned gateway process", metadata: ["workload": "\(workload.id)"])
                        try await backend.delete(workload.id)
                    }
                    continue
                }
                let keys = Self.replicaKeys(workload.labels)
                guard !keys.isEmpty else { continue }
                var orphaned = true
                for key in keys {
                    if replicaInformer.get(key) != nil { orphaned = false } else if try await store.get(key) != nil { orphaned = false }
                }
                if orphaned {
                    logger.info("deleting orphaned workload", metadata: ["workload": "\(workload.id)"])
                    try await backend.delete(workload.id)
                }
            }
        } catch {
            logger.warning("garbage collection failed", metadata: ["error": "\(error)"])
        }
    }
}
