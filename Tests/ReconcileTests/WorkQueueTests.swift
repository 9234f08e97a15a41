import Foundation
import Model
import Reconcile
import Store
import Synchronization
import Testing
import TestSupport

@Suite struct WorkQueueTests {
    @Test func addingAQueuedKeyIsANoOp() async {
        let q = WorkQueue<String>(clock: ManualClock())
        q.add("a")
        q.add("a")
        q.add("b")
        #expect(q.depth == 2)
        #expect(await q.get() == "a")
        #expect(await q.get() == "b")
        #expect(q.depth == 0)
    }

    @Test func aKeyReAddedWhileProcessingRunsAgainAfterDone() async {
        let q = WorkQueue<String>(clock: ManualClock())
        q.add("a")
        let key = await q.get()
        #expect(key == "a")
        q.add("a")
        // Not handed out while processing.
        #expect(q.depth == 0)
        q.done("a")
        #expect(q.depth == 1)
        #expect(await q.get() == "a")
    }

    @Test func delayedAddsEarliestWins() async {
        let clock = ManualClock()
        let q = WorkQueue<String>(clock: clock)
        q.add("a", after: 10)
        q.add("a", after: 5)
        q.add("a", after: 20)
        clock.advance(by: 4)
        #expect(q.depth == 0)
        clock.advance(by: 1)
        #expect(q.depth == 1)
        _ = await q.get()
        q.done("a")
        clock.advance(by: 30)
        #expect(q.depth == 0, "superseded later deadlines do not fire again")
    }

    @Test func rateLimitedBackoffGrowsAndIsCapped() async {
        let clock = ManualClock()
        let q = WorkQueue<String>(clock: clock, rateLimit: .init(baseDelay: 1, maxDelay: 8, qps: 1000, burst: 1000))
        var fired: [TimeInterval] = []
        for _ in 0..<6 {
            q.addRateLimited("a")
            var waited: TimeInterval = 0
            while q.depth == 0 {
                clock.advance(by: 1)
                waited += 1
            }
            fired.append(waited)
            _ = await q.get()
            q.done("a")
        }
        #expect(fired == [1, 2, 4, 8, 8, 8])
        q.forget("a")
        #expect(q.failures("a") == 0)
    }

    @Test func globalBucketLimitsBursts() {
        let clock = ManualClock()
        let q = WorkQueue<Int>(clock: clock, rateLimit: .init(baseDelay: 0.001, maxDelay: 1, qps: 1, burst: 2))
        for i in 0..<4 { q.addRateLimited(i) }
        clock.advance(by: 0.01)
        #expect(q.depth == 2, "two fit the burst")
        clock.advance(by: 1)
        #expect(q.depth == 3)
        clock.advance(by: 1)
        #expect(q.depth == 4)
    }

    /// Random operations against the invariants: never two workers on one key, a queued key is
    /// queued once, and every key added is processed after its last add.
    @Test(arguments: [1, 2, 3, 4, 5])
    func invariantsUnderConcurrency(seed: Int) async {
        let q = WorkQueue<Int>(clock: ManualClock())
        let inFlight = Locked<Set<Int>>([])
        let violations = Locked(0)
        let lastAdd = Locked<[Int: Int]>([:])
        let lastStart = Locked<[Int: Int]>([:])
        let tick = Locked(0)
        var rng = SeededRandom(seed: UInt64(seed))
        let adds = (0..<2000).map { _ in Int(rng.next() % 20) }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    while let key = await q.get() {
                        let fresh = inFlight.withLock { $0.insert(key).inserted }
                        if !fresh { violations.withLock { $0 += 1 } }
                        let t = tick.withLock { $0 += 1; return $0 }
                        lastStart.withLock { $0[key] = t }
                        await Task.yield()
                        inFlight.withLock { _ = $0.remove(key) }
                        q.done(key)
                    }
                }
            }
            group.addTask {
                for key in adds {
                    let t = tick.withLock { $0 += 1; return $0 }
                    lastAdd.withLock { $0[key] = t }
                    q.add(key)
                    if key % 3 == 0 { await Task.yield() }
                }
                while !q.isIdle { await Task.yield() }
                q.shutDown()
            }
        }
        #expect(violations.withLock { $0 } == 0)
        let adds2 = lastAdd.withLock { $0 }
        let starts = lastStart.withLock { $0 }
        for (key, added) in adds2 {
            #expect((starts[key] ?? 0) > added, "key \(key) added at \(added) must be processed after that")
        }
    }
}

/// A small deterministic generator (SplitMix64) for property tests.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

@Suite struct ControllerRuntimeTests {
    final class Scripted: Reconciler {
        typealias Key = String
        let outcomes: Mutex<[String: [Result<ReconcileResult, Error>]]>
        let calls = Mutex<[String]>([])
        let stalledKeys = Mutex<[String]>([])

        init(_ outcomes: [String: [Result<ReconcileResult, Error>]]) { self.outcomes = Mutex(outcomes) }

        func reconcile(_ key: String) async throws -> ReconcileResult {
            calls.withLock { $0.append(key) }
            let next = outcomes.withLock { o -> Result<ReconcileResult, Error> in
                guard var list = o[key], !list.isEmpty else { return .success(.done) }
                let first = list.removeFirst()
                o[key] = list
                return first
            }
            return try next.get()
        }

        func stalled(_ key: String, error: TerminalError) async { stalledKeys.withLock { $0.append(key) } }
    }

    struct Transient: Error {}

    @Test func outcomesDriveTheQueue() async {
        let clock = ManualClock()
        let reconciler = Scripted([
            "requeue": [.success(.requeue(after: 30))],
            "flaky": [.failure(Transient()), .failure(Transient())],
            "broken": [.failure(TerminalError(reason: "InvalidSpec", message: "no"))],
        ])
        let controller = Controller(name: "t", reconciler: reconciler, clock: clock,
                                    rateLimit: .init(baseDelay: 1, maxDelay: 60, qps: 1000, burst: 1000))
        await controller.process("requeue")
        #expect(controller.queue.delayedCount == 1)
        clock.advance(by: 30)
        #expect(controller.queue.depth == 1)

        await controller.process("flaky")
        #expect(controller.queue.failures("flaky") == 1)
        await controller.process("flaky")
        #expect(controller.queue.failures("flaky") == 2)
        await controller.process("flaky")
        #expect(controller.queue.failures("flaky") == 0, "success forgets the backoff")

        await controller.process("broken")
        #expect(reconciler.stalledKeys.withLock { $0 } == ["broken"])
        #expect(controller.queue.failures("broken") == 0)
    }

    struct Slow: Reconciler {
        typealias Key = String
        let clock: ManualClock
        func reconcile(_ key: String) async throws -> ReconcileResult {
            // Waits on the manual clock, which the test never advances far enough.
            await clock.sleep(until: clock.now().addingTimeInterval(3600))
            try Task.checkCancellation()
            return .done
        }
    }

    @Test func reconcilesThatOutlastTheTimeoutAreRetried() async {
        let clock = ManualClock()
        let controller = Controller(name: "slow", reconciler: Slow(clock: clock), clock: clock, timeout: 5,
                                    rateLimit: .init(baseDelay: 1, maxDelay: 60, qps: 1000, burst: 1000))
        let task = Task { await controller.process("k") }
        while clock.pendingTimers < 2 { await Task.yield() }
        clock.advance(by: 5)
        await task.value
        #expect(controller.queue.failures("k") == 1)
    }
}

@Suite struct InformerTests {
    static func object(_ name: String) -> StoredObject {
        StoredObject(meta: ObjectMeta(kind: "Thing", project: "main", name: name, uid: "", labels: ["run": "r"]),
                     spec: Data("{}".utf8), status: Data("{}".utf8))
    }

    @Test func listsThenWatchesAndRelistsWhenTooOld() async throws {
        let store = MemoryStore(feedCapacity: 3)
        _ = try await store.create(Self.object("a"))
        let informer = Informer(store: store, kind: "Thing", clock: ManualClock(), resyncPeriod: nil, indexLabel: "run")
        let seen = Locked<[String]>([])
        informer.addHandler { change in seen.withLock { $0.append(change.object.meta.name) } }
        let task = Task { try await informer.run() }
        await informer.waitUntilSynced()
        #expect(informer.count == 1)
        _ = try await store.create(Self.object("b"))
        try await waitFor { informer.count == 2 }
        #expect(informer.list(project: "main", indexed: "r").count == 2)
        _ = try await store.delete(ObjectKey(kind: "Thing", project: "main", name: "a"))
        try await waitFor { informer.get(ObjectKey(kind: "Thing", project: "main", name: "a")) == nil }
        #expect(informer.list(project: "main", indexed: "r").map(\.meta.name) == ["b"])
        task.cancel()
        _ = try? await task.value
        #expect(seen.withLock { $0 }.contains("b"))
    }
}


/// A lock-protected value that closures can capture.
final class Locked<T: Sendable>: Sendable {
    private let mutex: Mutex<T>
    init(_ value: T) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout T) -> R) -> R { mutex.withLock { body(&$0) } }
}
