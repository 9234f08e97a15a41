import Backend
import SetpointConfiguration
import Foundation
import Model
import Reconcile
import Store

/// What the replica controller does: backend calls, the probing service, the finalizer.
public enum ReplicaAction: Sendable, Equatable {
    case createWorkload(WorkloadRequest)
    case stopWorkload(WorkloadID, graceful: Bool)
    case deleteWorkload(WorkloadID)
    case watchReadiness(ProbeTarget)
    case stopProbing
    case removeFinalizer
}

/// What the replica controller observes: the backend's word on the workload, readiness (the
/// backend's, or the probing service's verdict), and requests still owed to the endpoint.
public struct ReplicaObservation: Sendable, Equatable {
    /// The workload, or nil when the replica has none yet or the backend has none any more.
    public var workload: WorkloadStatus?
    /// Readiness the backend observes itself (a kubelet's probe), if it does.
    public var backendReadiness: Bool?
    /// The probing service's verdict, if it watches this replica.
    public var verdict: ProbeVerdict?
    /// Requests in flight to the endpoint (plus one while still in rotation), for the drain;
    /// nil = no proxy to ask.
    public var pendingRequests: Int?

    public init(workload: WorkloadStatus? = nil, backendReadiness: Bool? = nil, verdict: ProbeVerdict? = nil, pendingRequests: Int? = nil) {
        self.workload = workload
        self.backendReadiness = backendReadiness
        self.verdict = verdict
        self.pendingRequests = pendingRequests
    }
}

/// Converges a Replica with its workload on the backend: creates it, maps what the backend
/// observes to dstack's job phases and termination reasons, has it probed, stops it
/// gracefully (drain, stop, wait up to `stop_duration`, kill) and cleans it up before the
/// object goes. The decisions are `ReplicaPlanner`'s.
public struct ReplicaController: PlanningController {
    public typealias Kind = ReplicaKind

    let store: any ObjectStore
    let backend: any ComputeBackend
    let prober: any ReadinessProber
    let monitor: ReadinessMonitor
    /// How a serving replica leaves rotation before it is stopped.
    let drain: Drain
    /// Fills in `${{ secrets.NAME }}` when a workload is made.
    let secrets: (any SecretResolver)?

    public init(store: any ObjectStore, backend: any ComputeBackend, prober: any ReadinessProber, monitor: ReadinessMonitor,
                drain: Drain = .fixed(0), secrets: (any SecretResolver)? = nil) {
        self.secrets = secrets
        self.store = store
        self.backend = backend
        self.prober = prober
        self.monitor = monitor
        self.drain = drain
    }

    var replicas: TypedStore<ReplicaKind> { TypedStore(store) }

    public func load(_ key: ObjectKey) async throws -> Replica? { try await load(from: store, key) }

    public func observe(_ replica: Replica) async throws -> ReplicaObservation {
        var observed = ReplicaObservation()
        if let id = replica.status.workloadID.map(WorkloadID.init) {
            observed.workload = try await backend.status(id)
        }
        if case .running(let endpoint)? = observed.workload?.state {
            observed.backendReadiness = prober.observedReadiness(endpoint: endpoint)
        }
        observed.verdict = monitor.verdict(replica.key)
        if let endpoint = replica.status.endpoint, replica.spec.termination != nil {
            observed.pendingRequests = drain.pending?(endpoint)
        }
        return observed
    }

    public func plan(_ replica: Replica, _ observed: ReplicaObservation, now: Date) throws -> Plan<ReplicaStatus, ReplicaAction> {
        ReplicaPlanner.plan(replica, observed, drain: drain.settings, now: now)
    }

    public func perform(_ action: ReplicaAction, on replica: inout Replica, plan: inout Plan<ReplicaStatus, ReplicaAction>, now: Date) async throws {
        switch action {
        case .createWorkload(let planned):
            do {
                let request = try await withSecrets(planned)
                let id = try await backend.create(request)
                ReplicaPlanner.created(.success(id), &plan, now: now)
            } catch let e as BackendError where e.code == .noCapacity || e.code == .invalid {
                ReplicaPlanner.created(.failure(e), &plan, now: now)
            } catch let e as BackendError where e.code == .unavailable {
                // Retried with backoff; the status says why meanwhile (a cluster that does not
                // answer, a namespace that is gone).
                ReplicaPlanner.createFailed(e, &plan, now: now)
                throw RetryLater(e.description)
            }
        case .stopWorkload(let id, let graceful):
            try await backend.stop(id, graceful: graceful)
        case .deleteWorkload(let id):
            try await backend.delete(id)
        case .watchReadiness(let target):
            ReplicaPlanner.probed(await monitor.watch(replica.key, target), &plan, now: now)
        case .stopProbing:
            monitor.forget(replica.key)
        case .removeFinalizer:
            replica.meta.finalizers.removeAll { $0 == Labels.backendFinalizer }
            do { try await replicas.update(replica) } catch let e as StoreError where e.code == .notFound {}
        }
    }

    public func writeStatus(_ replica: Replica) async throws { try await replicas.updateStatus(replica) }

    /// The request with dstack's interpolation done (`dstack`'s server does it when it makes a
    /// job): `${{ secrets.NAME }}` filled in — `env` entries that use a secret move to the
    /// secret environment (on Kubernetes a Secret the Pod refers to), `registry_auth` gets its
    /// values — and `$$` made `$`. A secret that is gone (or a server without secrets) fails
    /// the create as invalid, with the names.
    func withSecrets(_ request: WorkloadRequest) async throws -> WorkloadRequest {
        let template = request.template
        let texts = Array(template.env.values) + [template.registryUsername, template.registryPassword].compactMap { $0 }
        guard template.usesSecrets || texts.contains(where: { $0.contains("$$") }) else { return request }
        let names = (template.secrets ?? [:]).keys.sorted()
        var values: [String: String] = [:]
        if !names.isEmpty {
            guard let secrets else {
                throw BackendError(.invalid, "the replica refers to secret(s) \(names.joined(separator: ", ")), but this server keeps no project secrets")
            }
            values = try await secrets.values(project: request.project, names: names)
        }
        var resolved = request
        func parse(_ text: String) throws -> [SecretReferences.Part] {
            do { return try SecretReferences.parse(text) } catch { throw BackendError(.invalid, error.message) }
        }
        func fill(_ text: String) throws -> String { SecretReferences.render(try parse(text), values) }
        for (key, text) in template.env where text.contains("$") {
            let parts = try parse(text)
            if parts.contains(where: { if case .secret = $0 { return true } else { return false } }) {
                resolved.template.env[key] = nil
                resolved.secretEnvironment[key] = SecretReferences.render(parts, values)
            } else {
                resolved.template.env[key] = SecretReferences.render(parts, values)
            }
        }
        if let user = template.registryUsername { resolved.template.registryUsername = try fill(user) }
        if let password = template.registryPassword { resolved.template.registryPassword = try fill(password) }
        return resolved
    }
}

/// The replica controller in its shell.
public typealias ReplicaReconciler = PlanReconciler<ReplicaController>

extension PlanReconciler where C == ReplicaController {
    public init(store: any ObjectStore, backend: any ComputeBackend, prober: any ReadinessProber, monitor: ReadinessMonitor,
                clock: any ControllerClock, drain: Drain = .fixed(0), secrets: (any SecretResolver)? = nil) {
        self.init(ReplicaController(store: store, backend: backend, prober: prober, monitor: monitor, drain: drain, secrets: secrets),
                  store: store, clock: clock, component: "replica-controller")
    }
}

/// The replica controller's decisions, pure: phases from what the backend observes, readiness
/// from the probing service, the stop sequence from the time. Table-tested in
/// `ReplicaPlannerTests`.
public enum ReplicaPlanner {
    public static func plan(_ replica: Replica, _ observed: ReplicaObservation, drain: DrainSettings, now: Date) -> Plan<ReplicaStatus, ReplicaAction> {
        var plan = Plan<ReplicaStatus, ReplicaAction>(status: replica.status)
        let watching = observed.verdict != nil
        let id = replica.status.workloadID.map(WorkloadID.init)

        if replica.meta.isDeleting {
            if let id { plan.actions.append(.deleteWorkload(id)) }
            if watching { plan.actions.append(.stopProbing) }
            plan.actions.append(.removeFinalizer)
            return plan
        }
        if replica.status.phase.isFinished {
            // Finished: make sure nothing is left running on the backend.
            if let id, observed.workload != nil { plan.actions.append(.deleteWorkload(id)) }
            if watching { plan.actions.append(.stopProbing) }
            return plan
        }

        if let termination = replica.spec.termination {
            terminate(replica, termination, observed, drain: drain, &plan, now: now)
        } else if id == nil {
            plan.actions.append(.createWorkload(request(replica)))
            plan.requeue(after: 0)
        } else {
            follow(replica, observed, &plan, now: now)
        }
        // Probed only while it may serve.
        if watching, plan.status.phase.isFinished || plan.status.phase == .terminating || plan.status.endpoint == nil {
            plan.actions.append(.stopProbing)
        }
        conclude(replica, &plan, now: now)
        return plan
    }

    /// Folds the outcome of `createWorkload` into the plan.
    public static func created(_ outcome: Result<WorkloadID, BackendError>, _ plan: inout Plan<ReplicaStatus, ReplicaAction>, now: Date) {
        let before = plan.status
        switch outcome {
        case .success(let id):
            plan.status.workloadID = id.rawValue
            plan.status.phase = .provisioning
            plan.status.message = nil
        case .failure(let e):
            finish(&plan.status, e.code == .noCapacity ? .failedToStartDueToNoCapacity : .creatingContainerError, e.message, now)
        }
        setReady(&plan.status, now: now)
        plan.events += transitions(from: before, to: plan.status)
    }

    /// Folds the first verdict of the probing service (run when it starts watching) into the
    /// plan: a replica whose app answers at once is ready in the same status write.
    public static func probed(_ verdict: ProbeVerdict, _ plan: inout Plan<ReplicaStatus, ReplicaAction>, now: Date) {
        guard plan.status.phase == .running, plan.status.endpoint == verdict.target.endpoint else { return }
        let before = plan.status
        plan.status.ready = verdict.ready
        setReady(&plan.status, now: now)
        plan.events += transitions(from: before, to: plan.status)
    }

    /// Folds a create the backend could not do now (retried with backoff): not ready, and why.
    public static func createFailed(_ error: BackendError, _ plan: inout Plan<ReplicaStatus, ReplicaAction>, now: Date) {
        let attempt = plan.status.message.map { $0.hasSuffix("; submitting it again") ? $0 + " failed: " : "" } ?? ""
        plan.status.message = attempt + error.message
        plan.status.ready = false
        plan.status.conditions.set("Ready", false, reason: "CreateFailed", message: plan.status.message ?? "", now: now)
    }

    /// The request for the replica's workload.
    static func request(_ replica: Replica) -> WorkloadRequest {
        WorkloadRequest(
            name: replica.meta.name, project: replica.meta.project, labels: replica.meta.labels,
            template: replica.spec.template,
            systemEnvironment: [
                "DSTACK_RUN_NAME": replica.spec.run, "DSTACK_REPLICA_NUM": String(replica.spec.replicaNum),
                "DSTACK_REPO_ID": replica.meta.project, "DSTACK_GPUS_NUM": String(gpuCount(replica.spec.template)),
            ])
    }

    /// The phase from the backend's word, and readiness while running.
    static func follow(_ replica: Replica, _ observed: ReplicaObservation, _ plan: inout Plan<ReplicaStatus, ReplicaAction>, now: Date) {
        guard let workload = observed.workload else {
            finish(&plan.status, .instanceUnreachable, "the workload disappeared from the backend", now)
            return
        }
        switch workload.state {
        case .pending(let message):
            plan.status.phase = .provisioning
            plan.status.message = message
            leaveRotation(&plan.status)
        case .pulling:
            plan.status.phase = .pulling
            leaveRotation(&plan.status)
        case .stopping:
            plan.status.phase = .terminating
        case .exited(let code):
            plan.status.exitStatus = code
            if code == 0 { finish(&plan.status, .doneByRunner, nil, now) }
            else { finish(&plan.status, .containerExitedWithError, "exited with status \(code)", now) }
        case .failed(let reason, let message):
            finish(&plan.status, reason, message, now)
        case .vanished(let why):
            // Removed behind Setpoint's back (`kubectl delete pod`, a node drain, a restored
            // etcd): submitted again under its name, as a ReplicaSet would; out of rotation
            // meanwhile. The create's outcome is folded in by `created`.
            plan.status.phase = .provisioning
            plan.status.message = "\(why); submitting it again"
            leaveRotation(&plan.status)
            plan.actions.append(.createWorkload(request(replica)))
            plan.events.append(.warning("Resubmitted", "\(why); submitting it again"))
        case .running(let endpoint):
            if plan.status.phase != .running {
                plan.status.phase = .running
                plan.status.startedAt = now
                plan.status.message = nil
            }
            plan.status.endpoint = endpoint
            if let ready = observed.backendReadiness {
                // The backend probes (a kubelet) and announces readiness changes.
                plan.status.ready = ready
                return
            }
            let target = ProbeTarget(endpoint: endpoint, probes: replica.spec.template.probes,
                                     since: plan.status.startedAt ?? now, ready: replica.status.ready)
            if let verdict = observed.verdict, verdict.target.sameTarget(as: target) {
                plan.status.ready = verdict.ready
            } else {
                // Not watched yet (or at another endpoint): from the stored verdict, so a
                // restarted server keeps a serving replica in rotation while it probes again.
                plan.actions.append(.watchReadiness(target))
                plan.status.ready = replica.status.ready && replica.status.endpoint == endpoint
            }
        }
    }

    /// A workload that went back to pending (a Pod recreated by its backend) serves nothing.
    static func leaveRotation(_ status: inout ReplicaStatus) {
        status.ready = false
        status.endpoint = nil
    }

    static func terminate(_ replica: Replica, _ termination: TerminationRequest, _ observed: ReplicaObservation, drain: DrainSettings,
                          _ plan: inout Plan<ReplicaStatus, ReplicaAction>, now: Date) {
        guard let workload = observed.workload, let id = replica.status.workloadID.map(WorkloadID.init) else {
            finish(&plan.status, termination.reason, nil, now)
            return
        }
        switch workload.state {
        case .vanished:
            finish(&plan.status, termination.reason, nil, now)
            return
        case .exited(let code):
            plan.status.exitStatus = code
            plan.actions.append(.deleteWorkload(id))
            finish(&plan.status, termination.reason, nil, now)
            return
        case .failed:
            plan.actions.append(.deleteWorkload(id))
            finish(&plan.status, termination.reason, nil, now)
            return
        default:
            break
        }
        let bound = replica.spec.template.stopDuration
        var status = plan.status
        defer { plan.status = status }
        // A serving replica leaves rotation first; it is stopped once the proxy has no request in
        // flight to it (or after the fixed drain period), within `stop_duration`.
        if termination.graceful, drain.isEnabled, status.stopRequestedAt == nil {
            if status.drainStartedAt == nil, status.ready {
                status.drainStartedAt = now
                status.phase = .terminating
                status.ready = false
                plan.requeue(after: drain.remaining(since: now, now: now, stopDuration: bound, pending: observed.pendingRequests) ?? 0)
                return
            }
            if let started = status.drainStartedAt,
               let wait = drain.remaining(since: started, now: now, stopDuration: bound, pending: observed.pendingRequests) {
                plan.requeue(after: wait)
                return
            }
        }
        status.phase = .terminating
        status.ready = false
        if !termination.graceful || bound == 0 {
            plan.actions.append(.stopWorkload(id, graceful: false))
            plan.requeue(after: 1)
            return
        }
        guard let asked = status.stopRequestedAt else {
            plan.actions.append(.stopWorkload(id, graceful: true))
            status.stopRequestedAt = now
            if bound > 0 { plan.requeue(after: TimeInterval(bound)) }
            return
        }
        if bound > 0, now.timeIntervalSince(asked) >= TimeInterval(bound) {
            plan.actions.append(.stopWorkload(id, graceful: false))
            plan.events.append(.warning("Killed", "did not stop within stop_duration (\(bound)s); killed"))
            plan.requeue(after: 1)
            return
        }
        if bound > 0 { plan.requeue(after: TimeInterval(bound) - now.timeIntervalSince(asked)) }
    }

    /// The `Ready` condition, the generation, and the events of what changed.
    static func conclude(_ replica: Replica, _ plan: inout Plan<ReplicaStatus, ReplicaAction>, now: Date) {
        setReady(&plan.status, now: now)
        if plan.status != replica.status { plan.status.observedGeneration = replica.meta.generation }
        plan.events += transitions(from: replica.status, to: plan.status)
    }

    /// The events of a status change, as a Pod's are (`Created`, `Pulling`, `Started`, then
    /// `Ready`/`NotReady` as it enters and leaves rotation, `Stopping`, and how it ended).
    static func transitions(from before: ReplicaStatus, to after: ReplicaStatus) -> [EventNote] {
        var notes: [EventNote] = []
        if before.workloadID == nil, let id = after.workloadID { notes.append(.normal("Created", "workload \(id) submitted to the backend")) }
        if after.phase != before.phase {
            switch after.phase {
            case .pulling: notes.append(.normal("Pulling", "pulling the image"))
            case .running: notes.append(.normal("Started", "running\(after.endpoint.map { " at \($0)" } ?? "")"))
            case .terminating: notes.append(.normal("Stopping", "stopping\(after.message.map { ": \($0)" } ?? "")"))
            case .failed: notes.append(failedEvent(after))
            case .terminated, .aborted, .done:
                notes.append(.normal("Finished", "\(after.phase.rawValue)\(after.terminationReason.map { " (\($0.rawValue))" } ?? "")"))
            case .submitted, .provisioning: break
            }
        }
        let wasServing = before.phase == .running && before.ready
        let serving = after.phase == .running && after.ready
        if serving && !wasServing { notes.append(.normal("Ready", "readiness probes passed; in rotation")) }
        if wasServing && !serving && after.phase == .running { notes.append(.warning("NotReady", "readiness probes failing; out of rotation")) }
        return notes
    }

    static func failedEvent(_ status: ReplicaStatus) -> EventNote {
        .warning("ReplicaFailed", "\(status.terminationReason?.rawValue ?? "failed")\(status.message.map { ": \($0)" } ?? "")")
    }

    /// `Ready`: true while serving; otherwise why not, as a reason from docs/status.md.
    static func setReady(_ status: inout ReplicaStatus, now: Date) {
        let reason: String
        let message: String
        switch status.phase {
        case .running where status.ready: (reason, message) = ("Serving", "")
        case .running: (reason, message) = ("ProbesFailing", "the readiness probes have not passed (yet)")
        case .submitted: (reason, message) = ("Submitted", "")
        case .provisioning: (reason, message) = ("Provisioning", status.message ?? "")
        case .pulling: (reason, message) = ("Pulling", "")
        case .terminating: (reason, message) = ("Terminating", "")
        case .terminated, .aborted, .failed, .done:
            (reason, message) = ("Finished", status.terminationReason?.rawValue ?? status.phase.rawValue)
        }
        status.conditions.set("Ready", status.phase == .running && status.ready, reason: reason, message: message, now: now)
    }

    static func finish(_ status: inout ReplicaStatus, _ reason: TerminationReason, _ message: String?, _ now: Date) {
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
        ResourcesSpec(normalizedJSON: template.resources)?.gpu?.count.min ?? 0
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

    /// What the planner needs (the `pending` closure is asked by `observe`).
    public var settings: DrainSettings {
        DrainSettings(minimum: minimum, pollInterval: pollInterval, asksProxy: pending != nil)
    }
}

/// The drain's rules, pure.
public struct DrainSettings: Sendable, Equatable {
    public var minimum: TimeInterval
    public var pollInterval: TimeInterval
    /// Whether in-flight requests are waited for (a proxy is asked).
    public var asksProxy: Bool

    public init(minimum: TimeInterval, pollInterval: TimeInterval, asksProxy: Bool) {
        self.minimum = minimum
        self.pollInterval = pollInterval
        self.asksProxy = asksProxy
    }

    var isEnabled: Bool { minimum > 0 || asksProxy }

    /// How much longer to wait before stopping, or nil to stop now. The whole drain is bounded
    /// by `stop_duration` (0 or less: no bound beyond the minimum). `pending`: requests still
    /// owed to the endpoint, nil when no proxy is asked.
    func remaining(since started: Date, now: Date, stopDuration: Int, pending: Int?) -> TimeInterval? {
        let elapsed = now.timeIntervalSince(started)
        let bound = stopDuration > 0 ? TimeInterval(stopDuration) : .infinity
        let minimum = Swift.min(self.minimum, bound)
        if elapsed < minimum { return Swift.min(minimum - elapsed, pollInterval) }
        guard asksProxy, let pending, elapsed < bound, pending > 0 else { return nil }
        return Swift.min(pollInterval, bound - elapsed)
    }
}
