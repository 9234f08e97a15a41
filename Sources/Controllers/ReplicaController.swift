import Backend
import SetpointConfiguration
import Foundation
import Model
import Reconcile
import Store

/// Converges a Replica with its workload on the backend: creates it, maps what the backend
/// observes to dstack's job phases and termination reasons, runs readiness probes, stops it
/// gracefully (stop, wait up to `stop_duration`, kill) and cleans it up before the object goes.
public struct ReplicaReconciler: Reconciler {
    public typealias Key = ObjectKey

    let store: any ObjectStore
    let backend: any ComputeBackend
    let prober: any ReadinessProber
    let clock: any ControllerClock
    let events: EventRecorder
    /// How a serving replica leaves rotation before it is stopped.
    let drain: Drain

    public init(store: any ObjectStore, backend: any ComputeBackend, prober: any ReadinessProber, clock: any ControllerClock,
                drain: Drain = .fixed(0)) {
        self.store = store
        self.backend = backend
        self.prober = prober
        self.clock = clock
        self.drain = drain
        self.events = EventRecorder(store: store, clock: clock, component: "replica-controller")
    }

    var replicas: TypedStore<ReplicaKind> { TypedStore(store) }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        guard let replica = try await replicas.get(project: key.project, name: key.name) else { return .done }
        let now = clock.now()
        var status = replica.status
        let result: ReconcileResult

        if replica.meta.isDeleting {
            if let id = replica.status.workloadID.map(WorkloadID.init) {
                try await backend.delete(id)
            }
            var r = replica
            r.meta.finalizers.removeAll { $0 == Labels.backendFinalizer }
            do { try await replicas.update(r) } catch let e as StoreError where e.code == .notFound {}
            return .done
        }

        if status.phase.isFinished {
            // Finished: make sure nothing is left running on the backend.
            if let id = status.workloadID.map(WorkloadID.init), try await backend.status(id) != nil {
                try await backend.delete(id)
            }
            return .done
        }

        let workload = try await status.workloadID.map(WorkloadID.init).asyncMap { try await backend.status($0) } ?? nil

        if let termination = replica.spec.termination {
            result = try await terminate(replica, termination, workload, &status, now)
        } else if status.workloadID == nil {
            result = try await start(replica, &status, now)
        } else {
            result = try await observe(replica, workload, &status, now)
        }

        if status != replica.status {
            var updated = replica
            status.observedGeneration = replica.meta.generation
            updated.status = status
            try await replicas.updateStatus(updated)
            if status.phase != replica.status.phase, status.phase == .failed {
                await events.record(replica.key, warning: true, reason: "ReplicaFailed",
                                    message: "\(status.terminationReason?.rawValue ?? "failed")\(status.message.map { ": \($0)" } ?? "")")
            }
        }
        return result
    }

    private func start(_ replica: Replica, _ status: inout ReplicaStatus, _ now: Date) async throws -> ReconcileResult {
        let request = WorkloadRequest(
            name: replica.meta.name, project: replica.meta.project, labels: replica.meta.labels,
            template: replica.spec.template,
            systemEnvironment: [
                "DSTACK_RUN_NAME": replica.spec.run, "DSTACK_REPLICA_NUM": String(replica.spec.replicaNum),
                "DSTACK_REPO_ID": replica.meta.project, "DSTACK_GPUS_NUM": String(Self.gpuCount(replica.spec.template)),
            ])
        do {
            let id = try await backend.create(request)
            status.workloadID = id.rawValue
            status.phase = .provisioning
            status.message = nil
            return .requeue(after: 0)
        } catch let e as BackendError where e.code == .noCapacity {
            finish(&status, .failedToStartDueToNoCapacity, e.message, now)
            return .done
        } catch let e as BackendError where e.code == .invalid {
            finish(&status, .creatingContainerError, e.message, now)
            return .done
        }
    }

    private func observe(_ replica: Replica, _ workload: WorkloadStatus?, _ status: inout ReplicaStatus, _ now: Date) async throws -> ReconcileResult {
        guard let workload else {
            finish(&status, .instanceUnreachable, "the workload disappeared from the backend", now)
            return .done
        }
        switch workload.state {
        case .pending(let message):
            status.phase = .provisioning
            status.message = message
            leaveRotation(&status)
            return .done
        case .pulling:
            status.phase = .pulling
            leaveRotation(&status)
            return .done
        case .stopping:
            status.phase = .terminating
            return .done
        case .exited(let code):
            status.exitStatus = code
            if code == 0 { finish(&status, .doneByRunner, nil, now) }
            else { finish(&status, .containerExitedWithError, "exited with status \(code)", now) }
            return .done
        case .failed(let reason, let message):
            finish(&status, reason, message, now)
            return .done
        case .running(let endpoint):
            if status.phase != .running {
                status.phase = .running
                status.startedAt = now
                status.message = nil
            }
            status.endpoint = endpoint
            return await probe(replica, endpoint, &status, now)
        }
    }

    /// A workload that went back to pending (a Pod recreated by its backend) serves nothing.
    private func leaveRotation(_ status: inout ReplicaStatus) {
        status.ready = false
        status.endpoint = nil
        status.probeStreaks = []
        status.lastProbeAt = nil
    }

    /// Runs the probes that are due; ready when every probe reached `ready_after` successes.
    private func probe(_ replica: Replica, _ endpoint: String, _ status: inout ReplicaStatus, _ now: Date) async -> ReconcileResult {
        let probes = replica.spec.template.probes
        if let observed = prober.observedReadiness(endpoint: endpoint) {
            // The backend runs the probe (a kubelet) and announces readiness changes.
            status.ready = observed
            return .done
        }
        if probes.isEmpty {
            // No probe: ready once the app answers HTTP at all, checked often at first and
            // then about once a second (a model server may take minutes to listen).
            if status.ready { return .done }
            if await prober.answers(endpoint: endpoint) {
                status.ready = true
                return .done
            }
            let elapsed = status.startedAt.map { now.timeIntervalSince($0) } ?? 0
            return .requeue(after: min(1, 0.02 + elapsed / 20))
        }
        if status.probeStreaks.count != probes.count { status.probeStreaks = Array(repeating: 0, count: probes.count) }
        let interval = TimeInterval(probes.map(\.interval).min() ?? ProbeSpec.defaultInterval)
        if let last = status.lastProbeAt, now.timeIntervalSince(last) < interval {
            return .requeue(after: interval - now.timeIntervalSince(last))
        }
        let done = status.ready && probes.allSatisfy(\.untilReady)
        if done { return .done }
        for (i, p) in probes.enumerated() {
            let ok = await prober.probe(endpoint: endpoint, p)
            status.probeStreaks[i] = ok ? status.probeStreaks[i] + 1 : 0
        }
        status.lastProbeAt = now
        status.ready = zip(probes, status.probeStreaks).allSatisfy { $1 >= $0.readyAfter }
        if status.ready && probes.allSatisfy(\.untilReady) { return .done }
        return .requeue(after: interval)
    }

    private func terminate(_ replica: Replica, _ termination: TerminationRequest, _ workload: WorkloadStatus?,
                           _ status: inout ReplicaStatus, _ now: Date) async throws -> ReconcileResult {
        guard let workload, let id = status.workloadID.map(WorkloadID.init) else {
            finish(&status, termination.reason, nil, now)
            return .done
        }
        switch workload.state {
        case .exited(let code):
            status.exitStatus = code
            try await backend.delete(id)
            finish(&status, termination.reason, nil, now)
            return .done
        case .failed:
            try await backend.delete(id)
            finish(&status, termination.reason, nil, now)
            return .done
        default:
            break
        }
        let bound = replica.spec.template.stopDuration
        // A serving replica leaves rotation first; it is stopped once the proxy has no request in
        // flight to it (or after the fixed drain period), within `stop_duration`.
        if termination.graceful, drain.isEnabled, status.stopRequestedAt == nil {
            if status.drainStartedAt == nil, status.ready {
                status.drainStartedAt = now
                status.phase = .terminating
                status.ready = false
                return .requeue(after: drain.remaining(since: now, now: now, stopDuration: bound, endpoint: status.endpoint) ?? 0)
            }
            if let started = status.drainStartedAt, let wait = drain.remaining(since: started, now: now, stopDuration: bound, endpoint: status.endpoint) {
                return .requeue(after: wait)
            }
        }
        status.phase = .terminating
        status.ready = false
        if !termination.graceful || bound == 0 {
            try await backend.stop(id, graceful: false)
            return .requeue(after: 1)
        }
        guard let asked = status.stopRequestedAt else {
            try await backend.stop(id, graceful: true)
            status.stopRequestedAt = now
            return bound > 0 ? .requeue(after: TimeInterval(bound)) : .done
        }
        if bound > 0, now.timeIntervalSince(asked) >= TimeInterval(bound) {
            try await backend.stop(id, graceful: false)
            await events.record(replica.key, warning: true, reason: "Killed",
                                message: "did not stop within stop_duration (\(bound)s); killed")
            return .requeue(after: 1)
        }
        return bound > 0 ? .requeue(after: TimeInterval(bound) - now.timeIntervalSince(asked)) : .done
    }

    private func finish(_ status: inout ReplicaStatus, _ reason: TerminationReason, _ message: String?, _ now: Date) {
        status.phase = reason.finalPhase
        status.terminationReason = reason
        status.message = message ?? status.message
        status.ready = false
        // It serves nothing any more: no endpoint to show (`describe`) or to route to.
        status.endpoint = nil
        status.finishedAt = now
    }

    /// `DSTACK_GPUS_NUM`: the minimum GPU count the replica asked for.
    static func gpuCount(_ template: ReplicaTemplate) -> Int {
        guard let json = try? JSONParser.parse(template.resources), case .int(let n)? = json["gpu"]?["count"]?["min"] else { return 0 }
        return n
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        switch self {
        case .some(let w): return try await transform(w)
        case .none: return nil
        }
    }
}

/// How a serving replica leaves the proxy's rotation before it is stopped (scale down, rollout,
/// stop): out of the route first, then wait.
public struct Drain: Sendable {
    /// At least this long out of rotation (the route change reaching the proxy).
    public var minimum: TimeInterval
    /// Requests still owed to an endpoint (in flight, plus one while it is still in the proxy's
    /// rotation); nil = no proxy to ask, so only `minimum` is waited.
    public var pending: (@Sendable (String) -> Int)?
    public var pollInterval: TimeInterval

    public init(minimum: TimeInterval, pollInterval: TimeInterval = 0.1, pending: (@Sendable (String) -> Int)?) {
        self.minimum = minimum
        self.pollInterval = pollInterval
        self.pending = pending
    }

    /// Out of rotation for `seconds`, nothing else.
    public static func fixed(_ seconds: TimeInterval) -> Drain {
        Drain(minimum: seconds, pollInterval: seconds, pending: nil)
    }

    var isEnabled: Bool { minimum > 0 || pending != nil }

    /// How much longer to wait before stopping, or nil to stop now. The whole drain is bounded
    /// by `stop_duration` (0 or less: no bound beyond the minimum).
    func remaining(since started: Date, now: Date, stopDuration: Int, endpoint: String?) -> TimeInterval? {
        let elapsed = now.timeIntervalSince(started)
        let bound = stopDuration > 0 ? TimeInterval(stopDuration) : .infinity
        let minimum = Swift.min(self.minimum, bound)
        if elapsed < minimum { return Swift.min(minimum - elapsed, pollInterval) }
        guard let pending, let endpoint, elapsed < bound, pending(endpoint) > 0 else { return nil }
        return Swift.min(pollInterval, bound - elapsed)
    }
}
