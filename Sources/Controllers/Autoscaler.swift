import Foundation
import Logging
import Model
import Reconcile
import ServiceLifecycle
import SetpointConfiguration
import Store
import Synchronization

/// Requests the proxy counted for one service: what the autoscaler decides from.
public struct Demand: Sendable, Equatable {
    /// Requests that arrived in the last `seconds` seconds, for 30, 60 and 300 (dstack's windows)
    /// and for the panic window.
    public var requests: [Int: Int]
    /// Requests in flight now, held ones included.
    public var inFlight: Int
    /// Requests held because no replica was ready.
    public var held: Int
    /// How long the proxy has been counting for this service (a window longer than this is
    /// not full yet).
    public var observed: TimeInterval

    public init(requests: [Int: Int], inFlight: Int = 0, held: Int = 0, observed: TimeInterval) {
        self.requests = requests
        self.inFlight = inFlight
        self.held = held
        self.observed = observed
    }
}

/// The scaling decision for one replica group: dstack's RPS target tracking plus a panic mode
/// like Knative's. Pure: docs/autoscaling.md walks through it with numbers.
public enum AutoscalePolicy {
    public struct Input: Sendable {
        public var scaling: ScalingSpec
        public var min: Int
        public var max: Int
        /// The group's desired count now.
        public var current: Int
        public var demand: Demand?
        /// The run's last scale event (either direction).
        public var lastScaledAt: Date?
        /// Last time the panic threshold was met; nil = not panicking.
        public var panicSince: Date?
        public var now: Date

        public init(scaling: ScalingSpec, min: Int, max: Int, current: Int, demand: Demand?, lastScaledAt: Date?,
                    panicSince: Date? = nil, now: Date) {
            self.scaling = scaling
            self.min = min
            self.max = max
            self.current = current
            self.demand = demand
            self.lastScaledAt = lastScaledAt
            self.panicSince = panicSince
            self.now = now
        }
    }

    public struct Decision: Sendable, Equatable {
        public var desired: Int
        public var panicSince: Date?
        /// Why, for the event: the measured rate and the rule that applied.
        public var reason: String
    }

    /// The panic window: a tenth of the stable window, at least 2 s (Knative: 10 %, 6 s of 60 s).
    public static func panicWindow(_ stable: Int) -> Int { ScalingSpec.panicWindow(stable) }
    /// Panic when the short window asks for at least this many times the current replicas.
    public static let panicThreshold = 2.0

    public static func decide(_ input: Input) -> Decision {
        let window = input.scaling.window ?? ScalingSpec.defaultWindow
        let target = input.scaling.target
        func clamp(_ n: Int) -> Int { Swift.min(Swift.max(n, input.min), input.max) }
        let current = clamp(input.current)
        guard let demand = input.demand, target > 0 else {
            return Decision(desired: current, panicSince: nil, reason: "no request statistics; keeping \(current)")
        }
        // A window the proxy has not watched for completely yet is measured over what it saw.
        let seen = Swift.max(1, Swift.min(Double(window), demand.observed))
        let rps = Double(demand.requests[window] ?? 0) / seen
        let stable = clamp(Int((rps / target).rounded(.up)))
        let panicSeconds = panicWindow(window)
        let panicSeen = Swift.max(1, Swift.min(Double(panicSeconds), demand.observed))
        let panicRPS = Double(demand.requests[panicSeconds] ?? 0) / panicSeen
        let panicDesired = clamp(Int((panicRPS / target).rounded(.up)))
        let rates = String(format: "%.2f rps over %d s, %.2f rps over %d s, target %g per replica", rps, window, panicRPS, panicSeconds, target)

        // Panic: the short window wants ≥ 2× the replicas there are; scale up now and do not
        // scale down until a whole stable window has passed without that.
        var panicSince = input.panicSince
        if current > 0, Double(panicDesired) >= panicThreshold * Double(current) {
            panicSince = input.now
        } else if let since = panicSince, input.now.timeIntervalSince(since) >= Double(window) {
            panicSince = nil
        }
        if panicSince != nil {
            let desired = Swift.max(current, stable, panicDesired)
            return Decision(desired: desired, panicSince: panicSince,
                            reason: desired > current ? "panic: \(rates)" : "panic (holding \(current)): \(rates)")
        }

        let sinceScaled = input.lastScaledAt.map { input.now.timeIntervalSince($0) } ?? .infinity
        if stable > current {
            if current == 0 { return Decision(desired: stable, panicSince: nil, reason: "scale up from zero: \(rates)") }
            if sinceScaled >= Double(input.scaling.scaleUpDelay) {
                return Decision(desired: stable, panicSince: nil, reason: rates)
            }
        } else if stable < current {
            // A window not fully observed (a restarted server) never scales down.
            if demand.observed >= Double(window), sinceScaled >= Double(input.scaling.scaleDownDelay) {
                return Decision(desired: stable, panicSince: nil, reason: rates)
            }
        }
        return Decision(desired: current, panicSince: nil, reason: rates)
    }
}

/// What the autoscaler observes about a run: the proxy's counts, and the panic state it keeps
/// per group between looks (in memory: a restarted server starts calm, and never scales down
/// before a full window).
public struct AutoscaleObservation: Sendable {
    public var demand: Demand?
    public var panicSince: [String: Date]

    public init(demand: Demand?, panicSince: [String: Date]) {
        self.demand = demand
        self.panicSince = panicSince
    }
}

public enum AutoscaleAction: Sendable, Equatable {
    /// The groups' desired counts (`spec.desiredReplicas`).
    case setDesired([String: Int])
    /// Panic state per group for the next look (nil: calm).
    case rememberPanic([String: Date?])
}

/// Decides each autoscaled group's desired count from the proxy's counts (`AutoscalePolicy`) and
/// writes `spec.desiredReplicas` when it changes; the run controller does the scaling. A run is
/// looked at again every `interval` while it autoscales (sampling, as Knative's autoscaler
/// ticks), and at once when a request waits at zero (`poke`).
public struct Autoscaler: PlanningController {
    public typealias Kind = RunKind

    let store: any ObjectStore
    let runs: Informer
    let interval: TimeInterval
    let demand: @Sendable (_ project: String, _ run: String) -> Demand?
    let panics: PanicMemory

    /// Panic state between looks: per run, per group.
    final class PanicMemory: Sendable {
        let state = Mutex<[ObjectKey: [String: Date]]>([:])
    }

    public func load(_ key: ObjectKey) async throws -> Run? {
        try runs.get(key).map(TypedStore<RunKind>.decode)
    }

    public func observe(_ run: Run) async throws -> AutoscaleObservation {
        AutoscaleObservation(demand: demand(run.meta.project, run.meta.name),
                             panicSince: panics.state.withLock { $0[run.key] ?? [:] })
    }

    public func plan(_ run: Run, _ observed: AutoscaleObservation, now: Date) throws -> Plan<RunStatus, AutoscaleAction> {
        Self.plan(run, observed, interval: interval, now: now)
    }

    /// Pure: the decision for every autoscaled group of `run`.
    public static func plan(_ run: Run, _ observed: AutoscaleObservation, interval: TimeInterval, now: Date) -> Plan<RunStatus, AutoscaleAction> {
        var plan = Plan<RunStatus, AutoscaleAction>(status: run.status)
        let groups = run.spec.configuration.replicaGroups.filter { $0.scaling != nil }
        guard !groups.isEmpty, run.spec.stop == nil, !run.meta.isDeleting, !run.status.phase.isFinished else { return plan }
        var desired = run.spec.desiredReplicas ?? [:]
        var panics: [String: Date?] = [:]
        for group in groups {
            guard let scaling = group.scaling else { continue }
            let current = desired[group.name] ?? group.minReplicas
            let decision = AutoscalePolicy.decide(.init(scaling: scaling, min: group.minReplicas, max: group.maxReplicas, current: current,
                                                        demand: observed.demand, lastScaledAt: run.status.lastScaledAt,
                                                        panicSince: observed.panicSince[group.name], now: now))
            if decision.panicSince != observed.panicSince[group.name] { panics[group.name] = .some(decision.panicSince) }
            if decision.desired != group.clamp(current) || desired[group.name] == nil {
                if decision.desired != current {
                    plan.events.append(.normal("Autoscaled", "group \(group.name): \(current) → \(decision.desired) replica(s) (\(decision.reason))"))
                }
                desired[group.name] = decision.desired
            }
        }
        if desired != (run.spec.desiredReplicas ?? [:]) { plan.actions.append(.setDesired(desired)) }
        if !panics.isEmpty { plan.actions.append(.rememberPanic(panics)) }
        plan.requeue(after: interval)
        return plan
    }

    public func perform(_ action: AutoscaleAction, on run: inout Run, plan: inout Plan<RunStatus, AutoscaleAction>, now: Date) async throws {
        switch action {
        case .setDesired(let desired):
            var updated = run
            updated.spec.desiredReplicas = desired
            // A conflict (the run changed meanwhile) is retried at once with the new version.
            run = try await TypedStore<RunKind>(store).update(updated)
        case .rememberPanic(let groups):
            panics.state.withLock { p in
                for (group, since) in groups { p[run.key, default: [:]][group] = since }
                if p[run.key]?.isEmpty == true { p[run.key] = nil }
            }
        }
    }

    /// The autoscaler writes the spec, never the status.
    public func writeStatus(_ run: Run) async throws {}
}

/// Runs the `Autoscaler` in the one shell, fed by the run informer and by pokes from the proxy.
public final class AutoscaleController: Service, Sendable {
    public let controller: Controller<PlanReconciler<Autoscaler>>
    let runs: Informer

    public init(store: any ObjectStore, runs: Informer, clock: any ControllerClock, interval: TimeInterval = 0.5,
                logger: Logger, demand: @escaping @Sendable (String, String) -> Demand?) {
        self.runs = runs
        let autoscaler = Autoscaler(store: store, runs: runs, interval: interval, demand: demand, panics: Autoscaler.PanicMemory())
        controller = Controller(name: "autoscale", reconciler: PlanReconciler(autoscaler, store: store, clock: clock, component: "autoscaler",
                                                                              logger: logger),
                                clock: clock, workers: 2, logger: logger)
        let controller = self.controller
        runs.addHandler { change in
            if case .delete = change { return }
            let run = change.object
            // Only runs with an autoscaled group are looked at (the spec says which).
            if (try? TypedStore<RunKind>.decode(run))?.spec.configuration.replicaGroups.contains(where: { $0.scaling != nil }) == true {
                controller.enqueue(run.key)
            }
        }
    }

    /// Demand appeared where there was no replica: decide now rather than at the next look.
    public func poke(project: String, run: String) {
        controller.enqueue(ObjectKey(kind: RunKind.name, project: project, name: run))
    }

    /// Until cancelled; it may run again (a server's next term as leader), and looks at every
    /// autoscaled run when it starts.
    public func run() async throws {
        await runs.waitUntilSynced()
        controller.reopen()
        for o in runs.list() where (try? TypedStore<RunKind>.decode(o))?.spec.configuration.replicaGroups.contains(where: { $0.scaling != nil }) == true {
            controller.enqueue(o.key)
        }
        try await controller.run()
    }
}

extension ReplicaGroup {
    /// `replicas` as a range: the least and the most replicas the group may have.
    public var minReplicas: Int { replicas.min ?? 0 }
    public var maxReplicas: Int { replicas.max ?? minReplicas }

    /// A requested count within the group's range: the one clamp the run planner and the
    /// autoscaler share.
    public func clamp(_ requested: Int) -> Int { Swift.min(Swift.max(requested, minReplicas), maxReplicas) }
}
