import Backend
import Foundation
import Model
import Reconcile
import ServiceLifecycle
import SetpointConfiguration
import Synchronization

/// What the replica controller asks to be probed for one replica.
public struct ProbeTarget: Sendable, Equatable {
    public var endpoint: String
    public var probes: [ProbeTemplate]
    /// When the workload started running (how often an app with no probe is asked).
    public var since: Date
    /// Start from this verdict (the stored one: a restarted server does not flap a serving
    /// replica out of rotation while it probes again).
    public var ready: Bool

    public init(endpoint: String, probes: [ProbeTemplate], since: Date, ready: Bool) {
        self.endpoint = endpoint
        self.probes = probes
        self.since = since
        self.ready = ready
    }

    /// Same endpoint and probes: the same target (the verdict is not part of it).
    func sameTarget(as other: ProbeTarget) -> Bool { endpoint == other.endpoint && probes == other.probes }
}

/// What the monitor knows of one replica: the target and the verdict so far.
public struct ProbeVerdict: Sendable, Equatable {
    public var target: ProbeTarget
    public var ready: Bool

    public init(target: ProbeTarget, ready: Bool) {
        self.target = target
        self.ready = ready
    }
}

/// Runs readiness probes, on their own schedule, for every replica the replica controller
/// asked it to watch, and reports only *changes* of readiness (`onChange`), so that a replica
/// whose probes keep passing costs no reconcile and no store write.
///
/// | target | probed | ready when |
/// |---|---|---|
/// | with probes | every probe's `interval` | each probe has `ready_after` successes in a row |
/// | with probes, all `until_ready` | until ready, then never again | as above |
/// | no probe | at 20 ms, growing by 1/20 of the time since start, at most every 1 s | the app answers HTTP at all (then no more checks) |
///
/// Streaks live in memory: after a restart a target starts from its stored verdict.
public final class ReadinessMonitor: Service, Sendable {
    struct Watch {
        var target: ProbeTarget
        var streaks: [Int]
        var ready: Bool
        var due: Date
        /// Nothing more to probe (ready, and until-ready or no probe).
        var settled: Bool
    }

    private struct Book {
        var watches: [ObjectKey: Watch] = [:]
        /// The watched replicas still probed (not settled): the only ones a round looks at.
        var active: Set<ObjectKey> = []
    }

    private let prober: any ReadinessProber
    private let clock: any ControllerClock
    private let book = Mutex(Book())
    /// The next wake-up already scheduled (one timer at a time).
    private let nextWake = Mutex<Date?>(nil)
    private let onChange = Mutex<(@Sendable (ObjectKey) -> Void)?>(nil)
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(prober: any ReadinessProber, clock: any ControllerClock) {
        self.prober = prober
        self.clock = clock
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Who hears of readiness changes (the replica controller's queue).
    public func setOnChange(_ handler: @escaping @Sendable (ObjectKey) -> Void) { onChange.withLock { $0 = handler } }

    /// Probes `target` for `key` from now on, the first time at once (its verdict is returned,
    /// so a replica whose app answers is ready in the same reconcile); the same target again
    /// changes nothing and returns the verdict so far.
    @discardableResult
    public func watch(_ key: ObjectKey, _ target: ProbeTarget) async -> ProbeVerdict {
        let fresh = book.withLock { b -> Bool in
            if let existing = b.watches[key], existing.target.sameTarget(as: target) { return false }
            let streaks = target.probes.map { target.ready ? $0.readyAfter : 0 }
            // In flight (due never) until the first round below is in.
            b.watches[key] = Watch(target: target, streaks: streaks, ready: target.ready, due: .distantFuture, settled: false)
            b.active.insert(key)
            return true
        }
        if fresh {
            _ = record(key, target, await probe(target))
            scheduleEarliest()
        }
        return verdict(key) ?? ProbeVerdict(target: target, ready: false)
    }

    public func forget(_ key: ObjectKey) {
        book.withLock { b in
            b.watches[key] = nil
            b.active.remove(key)
        }
    }

    /// The verdict for `key`, or nil when it is not watched.
    public func verdict(_ key: ObjectKey) -> ProbeVerdict? {
        book.withLock { $0.watches[key].map { ProbeVerdict(target: $0.target, ready: $0.ready) } }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            // A round that waits on a slow probe does not hold up the next round's targets.
            await withDiscardingTaskGroup { group in
                for await _ in self.wakes {
                    group.addTask { await self.probeDue() }
                }
            }
        }
    }

    /// What one round of one target found.
    enum Outcome: Sendable {
        /// Each probe's result.
        case probes([Bool])
        /// No probe: whether the app answers HTTP at all.
        case answers(Bool)
    }

    private func probe(_ target: ProbeTarget) async -> Outcome {
        if target.probes.isEmpty { return .answers(await prober.answers(endpoint: target.endpoint)) }
        var results: [Bool] = []
        for p in target.probes { results.append(await prober.probe(endpoint: target.endpoint, p)) }
        return .probes(results)
    }

    /// Books a round's outcome; true when the readiness changed.
    private func record(_ key: ObjectKey, _ target: ProbeTarget, _ outcome: Outcome) -> Bool {
        let after = clock.now()
        return book.withLock { b -> Bool in
            guard var watch = b.watches[key], watch.target.sameTarget(as: target) else { return false }   // replaced or forgotten meanwhile
            let was = watch.ready
            switch outcome {
            case .probes(let results):
                for (i, ok) in results.enumerated() where i < watch.streaks.count { watch.streaks[i] = ok ? watch.streaks[i] + 1 : 0 }
                watch.ready = zip(target.probes, watch.streaks).allSatisfy { $1 >= $0.readyAfter }
                watch.settled = watch.ready && target.probes.allSatisfy(\.untilReady)
                watch.due = after.addingTimeInterval(TimeInterval(target.probes.map(\.interval).min() ?? ProbeSpec.defaultInterval))
            case .answers(let ok):
                watch.ready = ok
                watch.settled = ok
                watch.due = after.addingTimeInterval(Self.answerInterval(since: target.since, now: after))
            }
            b.watches[key] = watch
            if watch.settled { b.active.remove(key) }
            return watch.ready != was
        }
    }

    /// Runs every probe that is due now, together, and announces the replicas whose readiness
    /// changed. The service's loop calls it on each timer; tests call it after moving a manual
    /// clock.
    public func probeDue() async {
        let now = clock.now()
        // Taken targets are marked in flight (due never) until their results are in.
        let due = book.withLock { b -> [(ObjectKey, ProbeTarget)] in
            b.active.compactMap { key -> (ObjectKey, ProbeTarget)? in
                guard let w = b.watches[key], !w.settled, w.due <= now else { return nil }
                b.watches[key]?.due = .distantFuture
                return (key, w.target)
            }
        }
        // Whatever happens next, the earliest target still waiting has a wake-up (a timer that
        // fired a hair early finds nothing due and only schedules again).
        defer { scheduleEarliest() }
        guard !due.isEmpty else { return }
        let results = await withTaskGroup(of: (ObjectKey, ProbeTarget, Outcome).self) { group in
            for (key, target) in due {
                group.addTask { (key, target, await self.probe(target)) }
            }
            var all: [(ObjectKey, ProbeTarget, Outcome)] = []
            for await result in group { all.append(result) }
            return all
        }
        let changed = results.filter { key, target, outcome in record(key, target, outcome) }.map(\.0)
        let handler = onChange.withLock { $0 }
        for key in changed { handler?(key) }
    }

    /// How soon an app with no probe is asked again: often at first, then about once a second
    /// (a model server may take minutes to listen).
    static func answerInterval(since: Date, now: Date) -> TimeInterval {
        min(1, 0.02 + max(0, now.timeIntervalSince(since)) / 20)
    }

    private func scheduleEarliest() {
        let earliest = book.withLock { b in
            b.active.compactMap { key -> Date? in
                guard let w = b.watches[key], !w.settled, w.due != .distantFuture else { return nil }
                return w.due
            }.min()
        }
        if let earliest { schedule(earliest) }
    }

    /// One timer for the earliest wake-up: a later deadline waits for it (the round it starts
    /// schedules the next).
    private func schedule(_ deadline: Date) {
        let now = clock.now()
        let needed = nextWake.withLock { next -> Bool in
            if let pending = next, pending > now, pending <= deadline { return false }
            next = deadline
            return true
        }
        guard needed else { return }
        clock.schedule(at: deadline) { [weak self] in
            guard let self else { return }
            self.nextWake.withLock { if $0 == deadline { $0 = nil } }
            self.wake.yield()
        }
    }
}
