import SetpointConfiguration
import Foundation
import Model
import Reconcile
import Store

/// What the run controller does to the store: the actions of its plan.
public enum RunAction: Sendable, Equatable {
    /// The run keeps its replicas' cleanup finalizer until they are gone.
    case addFinalizer
    case create(RunPlan.Create)
    case terminate(Replica, TerminationRequest)
    case delete(replica: String)
    case removeFinalizer
}

/// The run and its replicas, as the run controller sees them.
public struct RunObservation: Sendable {
    /// This run's replicas (owned by this run's uid: a replica left by an earlier run of the
    /// same name is not one of them).
    public var replicas: [Replica]
    /// The digests of the project's secrets, when the configuration refers to any.
    public var secretDigests: [String: String]

    public init(replicas: [Replica], secretDigests: [String: String] = [:]) {
        self.replicas = replicas
        self.secretDigests = secretDigests
    }
}

/// Converges a Run: its Replica objects (scale, roll, retry, stop) and its status. The worked
/// example of the one shape (docs/architecture.md): `observe` reads, `plan` decides (the rules
/// are `RunPlanner`'s), `perform` writes what the plan says, and `PlanReconciler` writes the
/// status once and records the events.
public struct RunController: PlanningController {
    public typealias Kind = RunKind

    let store: any ObjectStore
    let replicas: any ReplicaSource
    let secrets: any SecretDigestSource

    public init(store: any ObjectStore, replicas: any ReplicaSource, secrets: (any SecretDigestSource)? = nil) {
        self.store = store
        self.replicas = replicas
        self.secrets = secrets ?? StoreSecretDigests(store)
    }

    var runs: TypedStore<RunKind> { TypedStore(store) }
    var replicaStore: TypedStore<ReplicaKind> { TypedStore(store) }

    public func load(_ key: ObjectKey) async throws -> Run? { try await load(from: store, key) }

    public func observe(_ run: Run) async throws -> RunObservation {
        // A run being deleted lets go only when its replicas are gone: ask the store, not a
        // cache that may lag behind.
        let all = run.meta.isDeleting
            ? try await replicaStore.list(project: run.meta.project, labels: [Labels.run: run.meta.name])
            : try await replicas.replicas(project: run.meta.project, run: run.meta.name)
        let digests = run.spec.configuration.secretReferences.uses.isEmpty ? [:] : try await secrets.digests(project: run.meta.project)
        return RunObservation(replicas: all.filter { $0.isOwned(by: run) }, secretDigests: digests)
    }

    public func plan(_ run: Run, _ observed: RunObservation, now: Date) throws -> Plan<RunStatus, RunAction> {
        let children = observed.replicas
        if run.meta.isDeleting {
            let live = children.filter { !$0.meta.isDeleting }
            if children.isEmpty {
                return Plan(status: run.status, actions: run.meta.finalizers.contains(Labels.replicasFinalizer) ? [.removeFinalizer] : [])
            }
            return Plan(status: run.status, actions: live.map { .delete(replica: $0.meta.name) })
        }
        var actions: [RunAction] = []
        if !run.meta.finalizers.contains(Labels.replicasFinalizer) { actions.append(.addFinalizer) }
        if run.status.phase.isFinished && run.spec.stop != nil && children.allSatisfy({ $0.status.phase.isFinished }) {
            return Plan(status: run.status, actions: actions)
        }
        var templates: [String: ReplicaTemplate] = [:]
        for group in run.spec.configuration.replicaGroups {
            do {
                templates[group.name] = try ReplicaTemplates.template(run.spec.configuration, group: group, code: run.spec.code,
                                                                      secrets: observed.secretDigests)
            } catch let error as TerminalError where run.spec.stop != nil {
                // Stopping needs no new template (a secret deleted meanwhile must not block a
                // stop): keep the one the replicas run.
                guard let current = children.filter({ $0.spec.group == group.name }).max(by: { $0.spec.deploymentNum < $1.spec.deploymentNum }) else {
                    if children.isEmpty { continue }
                    throw error
                }
                templates[group.name] = current.spec.template
            }
        }
        let decided = RunPlanner.plan(run: run, replicas: children, templates: templates, now: now)
        actions += decided.creates.map(RunAction.create)
        for (name, request) in decided.terminations {
            guard let replica = children.first(where: { $0.meta.name == name }), replica.spec.termination == nil else { continue }
            actions.append(.terminate(replica, request))
        }
        actions += decided.deletions.map { .delete(replica: $0) }
        return Plan(status: decided.status, actions: actions, events: decided.events.map { EventNote(warning: $0.warning, reason: $0.reason, message: $0.message) },
                    requeueAfter: decided.requeueAfter)
    }

    public func perform(_ action: RunAction, on run: inout Run, plan: inout Plan<RunStatus, RunAction>, now: Date) async throws {
        switch action {
        case .addFinalizer:
            run.meta.finalizers.append(Labels.replicasFinalizer)
            run = try await runs.update(run)
        case .removeFinalizer:
            run.meta.finalizers.removeAll { $0 == Labels.replicasFinalizer }
            do { try await runs.update(run) } catch let e as StoreError where e.code == .notFound {}
        case .create(let create):
            let replica = Replica(project: run.meta.project, name: create.name, labels: create.labels,
                                  owner: run.ownerReference, finalizers: [Labels.backendFinalizer], spec: create.spec)
            do {
                try await replicaStore.create(replica)
            } catch let e as StoreError where e.code == .alreadyExists {
                try await alreadyExists(create.name, run)
            }
        case .terminate(var replica, let request):
            replica.spec.termination = request
            try await replicaStore.update(replica)
        case .delete(let name):
            do {
                try await replicaStore.delete(project: run.meta.project, name: name)
            } catch let e as StoreError where e.code == .notFound {}
        }
    }

    public func writeStatus(_ run: Run) async throws { try await runs.updateStatus(run) }

    /// A create that found the name taken: ours (an earlier pass whose cache had not caught up)
    /// is fine; anyone else's is said in the run's status, and retried with backoff.
    func alreadyExists(_ name: String, _ run: Run) async throws {
        let existing = try await replicaStore.get(project: run.meta.project, name: name)
        guard let existing, !existing.isOwned(by: run) else { return }
        let owner = existing.meta.ownerReferences.first.map { "\($0.kind.lowercased()) \($0.name) (uid \($0.uid))" } ?? "no owner"
        let message = existing.meta.isDeleting && existing.meta.ownerReferences.first?.name == run.meta.name
            ? "replica \(name) of an earlier run named \(run.meta.name) is still being deleted; its replacement starts once it is gone"
            : "the replica name \(name) is taken by an object of \(owner); this run cannot create it"
        throw ActionRefused(reason: "ReplicaNameTaken", message: message)
    }
}

extension Object where Kind == ReplicaKind {
    /// Whether `run` (this very run, by uid) owns the replica.
    func isOwned(by run: Run) -> Bool {
        meta.ownerReferences.contains { $0.kind == RunKind.name && $0.uid == run.meta.uid }
    }
}

/// The run controller in its shell.
public typealias RunReconciler = PlanReconciler<RunController>

extension PlanReconciler where C == RunController {
    public init(store: any ObjectStore, replicas: any ReplicaSource, secrets: (any SecretDigestSource)? = nil, clock: any ControllerClock) {
        self.init(RunController(store: store, replicas: replicas, secrets: secrets), store: store, clock: clock, component: "run-controller")
    }
}
