import SetpointConfiguration
import Foundation
import Model
import Reconcile
import Store

/// Converges a Run: its Replica objects (scale, roll, retry, stop) and its status. The decisions
/// are `RunPlanner`'s; this shell reads, applies the plan to the store and records events.
public struct RunReconciler: Reconciler {
    public typealias Key = ObjectKey

    let store: any ObjectStore
    let replicas: any ReplicaSource
    let clock: any ControllerClock
    let events: EventRecorder

    public init(store: any ObjectStore, replicas: any ReplicaSource, clock: any ControllerClock) {
        self.store = store
        self.replicas = replicas
        self.clock = clock
        self.events = EventRecorder(store: store, clock: clock, component: "run-controller")
    }

    var runs: TypedStore<RunKind> { TypedStore(store) }
    var replicaStore: TypedStore<ReplicaKind> { TypedStore(store) }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        guard var run = try await runs.get(project: key.project, name: key.name) else { return .done }
        let children = try await replicas.replicas(project: key.project, run: key.name)

        if run.meta.isDeleting {
            return try await finishDeletion(run, children)
        }
        if !run.meta.finalizers.contains(Labels.replicasFinalizer) {
            run.meta.finalizers.append(Labels.replicasFinalizer)
            run = try await runs.update(run)
        }
        if run.status.phase.isFinished && run.spec.stop != nil && children.allSatisfy({ $0.status.phase.isFinished }) {
            return .done
        }

        var templates: [String: ReplicaTemplate] = [:]
        for group in run.spec.configuration.replicaGroups {
            templates[group.name] = try ReplicaTemplates.template(run.spec.configuration, group: group, code: run.spec.code)
        }

        var plan = RunPlanner.plan(run: run, replicas: children, templates: templates, now: clock.now())
        if plan.status.conditions["Stalled"]?.status == "True" {
            plan.status.conditions.set("Stalled", false, reason: "Resolved", message: "", now: clock.now())
        }

        for create in plan.creates {
            let replica = Replica(project: run.meta.project, name: create.name, labels: create.labels,
                                  owner: run.ownerReference, finalizers: [Labels.backendFinalizer], spec: create.spec)
            do {
                try await replicaStore.create(replica)
            } catch let e as StoreError where e.code == .alreadyExists {
                // Created by an earlier pass whose cache had not caught up: deterministic names
                // make this harmless.
            }
        }
        for (name, request) in plan.terminations {
            guard var replica = children.first(where: { $0.meta.name == name }), replica.spec.termination == nil else { continue }
            replica.spec.termination = request
            try await replicaStore.update(replica)
        }
        for name in plan.deletions {
            do {
                try await replicaStore.delete(project: run.meta.project, name: name)
            } catch let e as StoreError where e.code == .notFound {}
        }
        for note in plan.events {
            await events.record(run.key, warning: note.warning, reason: note.reason, message: note.message)
        }
        if plan.status != run.status {
            run.status = plan.status
            try await runs.updateStatus(run)
        }
        return plan.requeueAfter.map { .requeue(after: $0) } ?? .done
    }

    /// Deletes the run's replicas (each cleans up its workload first), then lets the run go.
    private func finishDeletion(_ run: Run, _ children: [Replica]) async throws -> ReconcileResult {
        for child in children where !child.meta.isDeleting {
            do {
                try await replicaStore.delete(project: run.meta.project, name: child.meta.name)
            } catch let e as StoreError where e.code == .notFound {}
        }
        let remaining = try await TypedStore<ReplicaKind>(store).list(project: run.meta.project, labels: [Labels.run: run.meta.name])
        guard remaining.isEmpty else { return .done }
        var run = run
        run.meta.finalizers.removeAll { $0 == Labels.replicasFinalizer }
        do {
            try await runs.update(run)
        } catch let e as StoreError where e.code == .notFound {}
        return .done
    }

    public func stalled(_ key: ObjectKey, error: TerminalError) async {
        guard var run = try? await runs.get(project: key.project, name: key.name) else { return }
        let now = clock.now()
        run.status.conditions.set("Stalled", true, reason: error.reason, message: error.message, now: now)
        run.status.conditions.set("Ready", false, reason: error.reason, message: error.message, now: now)
        run.status.message = error.message
        _ = try? await runs.updateStatus(run)
        await events.record(key, warning: true, reason: error.reason, message: error.message)
    }
}
