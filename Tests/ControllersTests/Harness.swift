import Backend
import SetpointConfiguration
import Controllers
import Foundation
import Model
import Reconcile
import Store
import TestSupport

/// Drives the real run and replica `Controller`s (queue, requeue, backoff, the shell) and the
/// probing service over a store and a fake backend with a manual clock: `converge()` queues
/// every run and replica (as informer events would) and processes the queues until a full pass
/// writes nothing; `advance` moves the clock, so requeues, retries and probes come due.
struct Harness {
    let clock: ManualClock
    let store: any ObjectStore
    let backend: FakeBackend
    let readiness: ReadinessMonitor
    let runController: Controller<RunReconciler>
    let replicaController: Controller<ReplicaReconciler>

    init(store: (any ObjectStore)? = nil, backend: FakeBackend? = nil, clock: ManualClock = ManualClock(), drain: Drain = .fixed(0),
         secrets: (any SecretResolver)? = nil) {
        self.clock = clock
        let c = clock
        self.store = store ?? MemoryStore(now: { c.now() })
        self.backend = backend ?? FakeBackend(clock: clock)
        readiness = ReadinessMonitor(prober: self.backend, clock: clock)
        runController = Controller(name: "run", reconciler: RunReconciler(store: self.store, replicas: StoreReplicaSource(self.store), clock: clock),
                                   clock: clock)
        replicaController = Controller(name: "replica",
                                       reconciler: ReplicaReconciler(store: self.store, backend: self.backend, prober: self.backend,
                                                                     monitor: readiness, clock: clock, drain: drain, secrets: secrets),
                                       clock: clock)
        let replicas = replicaController
        readiness.setOnChange { replicas.enqueue($0) }
    }

    var runs: TypedStore<RunKind> { TypedStore(store) }
    var replicaStore: TypedStore<ReplicaKind> { TypedStore(store) }

    static func configuration(_ yaml: String) throws -> ServiceConfiguration {
        guard case .success(.service(let s)) = ConfigurationParser.parse(yaml).first?.result else {
            throw HarnessError(message: "invalid configuration: \(ConfigurationParser.parse(yaml).first?.issues ?? [])")
        }
        return s
    }

    /// Creates the run, or updates its configuration as `apply` would.
    @discardableResult
    func apply(_ yaml: String, project: String = "main") async throws -> Run {
        let config = try Self.configuration(yaml)
        let name = config.name ?? "svc"
        if var existing = try await runs.get(project: project, name: name) {
            existing.spec.configuration = config
            return try await runs.update(existing)
        }
        return try await runs.create(Run(project: project, name: name, spec: RunSpec(configuration: config)))
    }

    func setDesired(_ run: String, _ counts: [String: Int]) async throws {
        var r = try await self.run(run)
        r.spec.desiredReplicas = counts
        try await runs.update(r)
    }

    func stop(_ run: String, abort: Bool = false) async throws {
        var r = try await self.run(run)
        r.spec.stop = StopRequest(abort: abort)
        try await runs.update(r)
    }

    func run(_ name: String, project: String = "main") async throws -> Run {
        guard let r = try await runs.get(project: project, name: name) else { throw HarnessError(message: "no run \(name)") }
        return r
    }

    func allReplicas(_ run: String) async throws -> [Replica] {
        try await replicaStore.list(project: "main", labels: [Labels.run: run]).sorted { $0.meta.name < $1.meta.name }
    }

    /// Replicas that are not finished and not asked to end.
    func live(_ run: String) async throws -> [Replica] {
        try await allReplicas(run).filter { $0.status.phase.isActive && $0.spec.termination == nil }
    }

    func serving(_ run: String) async throws -> [Replica] {
        try await live(run).filter { $0.status.phase == .running && $0.status.ready }
    }

    func events(_ run: String) async throws -> [EventSpec] {
        try await TypedStore<EventKind>(store).list(project: "main", labels: ["setpoint.dev/involved": run])
            .map(\.spec).sorted { $0.firstTimestamp < $1.firstTimestamp }
    }

    /// Reconciles everything until a full pass changes nothing in the store.
    func converge(maxPasses: Int = 60) async throws {
        for _ in 0..<maxPasses {
            let before = await store.writeCount()
            for run in try await store.list(ListOptions(kind: RunKind.name)).items { runController.enqueue(run.key) }
            for replica in try await store.list(ListOptions(kind: ReplicaKind.name)).items { replicaController.enqueue(replica.key) }
            await settle()
            if await store.writeCount() == before { return }
        }
        throw HarnessError(message: "did not converge in \(maxPasses) passes")
    }

    /// Runs only what the runtime itself has due: probes, then the queued keys (requeues,
    /// retries, readiness changes), until nothing is queued.
    func settle() async {
        for _ in 0..<100 {
            await readiness.probeDue()
            let processed = await runController.processQueued() + replicaController.processQueued()
            if processed == 0 { return }
        }
    }

    /// One reconcile of one run, through its controller (the queue's bookkeeping included).
    func reconcileRun(_ key: ObjectKey) async {
        runController.enqueue(key)
        await runController.processQueued()
    }

    func reconcileReplica(_ key: ObjectKey) async {
        replicaController.enqueue(key)
        await replicaController.processQueued()
    }

    /// Moves time forward (in steps, so timers and probes come due) and converges after each.
    func advance(by seconds: TimeInterval, step: TimeInterval = 5) async throws {
        var left = seconds
        while left > 0 {
            let s = min(step, left)
            clock.advance(by: s)
            left -= s
            try await converge()
        }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

let http2 = """
    type: service
    name: web
    commands:
      - python3 -m http.server 8000
    port: 8000
    replicas: 2
    """
