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
    public static func panicWindow(_ stable: Int) -> Int { Swift.max(2, stable / 10) }
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

/// Evaluates every autoscaled run on a short tick (and at once when the proxy reports demand
/// at zero) and writes the groups' desired counts into the run's spec; the run controller
/// does the scaling.
public final class AutoscaleController: Service, Sendable {
    let store: any ObjectStore
    let runs: Informer
    let clock: any ControllerClock
    let demand: @Sendable (_ project: String, _ run: String) -> Demand?
    let interval: TimeInterval
    let events: EventRecorder
    let logger: Logger
    private let panics = Mutex<[String: Date]>([:])
    private let pokes: AsyncStream<ObjectKey>
    private let pokeSink: AsyncStream<ObjectKey>.Continuation

    public init(store: any ObjectStore, runs: Informer, clock: any ControllerClock, interval: TimeInterval = 0.5,
                logger: Logger, demand: @escaping @Sendable (String, String) -> Demand?) {
        self.store = store
        self.runs = runs
        self.clock = clock
        self.interval = interval
        self.demand = demand
        self.logger = logger
        self.events = EventRecorder(store: store, clock: clock, component: "autoscaler")
        (pokes, pokeSink) = AsyncStream.makeStream(of: ObjectKey.self, bufferingPolicy: .bufferingNewest(1024))
    }

    /// Demand appeared where there was no replica: decide now rather than at the next tick.
    public func poke(project: String, run: String) {
        pokeSink.yield(ObjectKey(kind: RunKind.name, project: project, name: run))
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.runs.waitUntilSynced()
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await key in self.pokes {
                        await self.evaluate(key)
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        await self.tick()
                        await self.clock.sleep(until: self.clock.now().addingTimeInterval(self.interval))
                    }
                    self.pokeSink.finish()
                }
            }
        }
    }

    public func tick() async {
        let keys = runs.list().map(\.meta.key)
        for key in keys { await evaluate(key) }
    }

    func evaluate(_ key: ObjectKey) async {
        guard let stored = runs.get(key), let run = try? TypedStore<RunKind>.decode(stored) else { return }
        let groups = run.spec.configuration.replicaGroups.filter { $0.scaling != nil }
        guard !groups.isEmpty, run.spec.stop == nil, !run.meta.isDeleting, !run.status.phase.isFinished else { return }
        let now = clock.now()
        let sample = demand(key.project, key.name)
        var desired = run.spec.desiredReplicas ?? [:]
        var notes: [String] = []
        for group in groups {
            guard let scaling = group.scaling else { continue }
            let min = group.replicas.min ?? 0
            let max = group.replicas.max ?? min
            let panicKey = "\(key.project)/\(key.name)/\(group.name)"
            let current = desired[group.name] ?? min
            let decision = AutoscalePolicy.decide(.init(scaling: scaling, min: min, max: max, current: current, demand: sample,
                                                        lastScaledAt: run.status.lastScaledAt,
                                                        panicSince: panics.withLock { $0[panicKey] }, now: now))
            panics.withLock { $0[panicKey] = decision.panicSince }
            if decision.desired != Swift.min(Swift.max(current, min), max) || desired[group.name] == nil {
                if decision.desired != current {
                    notes.append("group \(group.name): \(current) → \(decision.desired) replica(s) (\(decision.reason))")
                }
                desired[group.name] = decision.desired
            }
        }
        guard desired != (run.spec.desiredReplicas ?? [:]) else { return }
        var updated = run
        updated.spec.desiredReplicas = desired
        do {
            try await TypedStore<RunKind>(store).update(updated)
            for note in notes {
                await events.record(key, warning: false, reason: "Autoscaled", message: note)
            }
        } catch {
            // A conflict means the run changed meanwhile; the next tick sees the new version.
            logger.debug("autoscaler update failed", metadata: ["run": "\(key)", "error": "\(error)"])
        }
    }
}
