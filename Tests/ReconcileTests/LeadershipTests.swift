import Foundation
import Logging
import Model
import Primitives
import Reconcile
import Store
import Synchronization
import Testing
import TestSupport

/// The store's leader lease (several servers on one database), the terms it gives the
/// controllers, and a start-up that is shut down before the first list.
@Suite(.timeLimit(.minutes(1))) struct LeadershipTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    static func elector(_ store: any ObjectStore, _ name: String) -> StoreLeaderElector {
        StoreLeaderElector(store: store, identity: name, leaseDuration: 4, renewDeadline: .milliseconds(2500),
                           renewInterval: .milliseconds(300), retryInterval: .milliseconds(100), logger: quiet)
    }

    static func holder(_ store: any ObjectStore) async throws -> String? {
        try await TypedStore<LeaseKind>(store).get(project: systemProject, name: StoreLeaderElector.name)?.spec.holderIdentity
    }

    /// Every write of the lease, in order (the timing checks read the times the lease records,
    /// so a machine too loaded to renew on time cannot make them fail or pass wrongly).
    final class LeaseLog: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [LeaseSpec] = []
        func append(_ s: LeaseSpec) { lock.withLock { entries.append(s) } }
        var all: [LeaseSpec] { lock.withLock { entries } }
    }

    @Test func oneHolderAtATimeTakeoverOnlyAfterExpiryAndAtOnceAfterRelease() async throws {
        let store = MemoryStore()
        let log = LeaseLog()
        let recording = Task {
            for try await e in store.watch(kind: LeaseKind.name, from: 0) {
                if let lease = try? TypedStore<LeaseKind>.decode(e.object) { log.append(lease.spec) }
            }
        }
        defer { recording.cancel() }
        let a = Self.elector(store, "a")
        let b = Self.elector(store, "b")
        try await a.acquire()
        let holding = Task { try await a.holdUntilLost() }
        // b waits while a renews.
        let waiting = Task { try await b.acquire() }
        try await waitFor(timeout: 20) { log.all.filter { $0.holderIdentity == "a" }.count >= 5 }
        // a stops renewing (a crash): b takes over once the lease went unchanged for 4 s,
        // counted from a's last renewal as the lease records it.
        holding.cancel()
        _ = await holding.result
        try await waiting.value
        #expect(try await Self.holder(store) == "b")
        try await waitFor(timeout: 5) { log.all.contains { $0.holderIdentity == "b" } }
        let entries = log.all
        let takeover = try #require(entries.firstIndex { $0.holderIdentity == "b" })
        let lastRenewal = try #require(entries[..<takeover].last { $0.holderIdentity == "a" }?.renewTime)
        let acquired = try #require(entries[takeover].acquireTime)
        #expect(acquired.timeIntervalSince(lastRenewal) >= 3.9, "taken \(acquired.timeIntervalSince(lastRenewal)) s after the last renewal")
        #expect(entries[takeover].leaseTransitions == 1)
        #expect(entries[..<takeover].allSatisfy { $0.holderIdentity == "a" }, "one holder at a time")
        // a, back, sees another holder; b releases and a takes it without waiting for expiry.
        await #expect(throws: StoreLeaderElector.LostLease.self) { try await a.holdUntilLost() }
        await b.release()
        let started = Date()
        try await a.acquire()
        #expect(Date().timeIntervalSince(started) < 3.5, "a released lease is free at once, not after 4 s")
        #expect(try await Self.holder(store) == "a")
    }

    @Test func eachTermRunsTheBodyAndItsEndCancelsIt() async throws {
        let leadership = Leadership()
        let starts = Atomic<Int>(0)
        let ends = Atomic<Int>(0)
        let running = Task {
            try await leadership.whileLeading {
                starts.add(1, ordering: .relaxed)
                do { try await Task.sleep(for: .seconds(3600)) } catch { ends.add(1, ordering: .relaxed); throw error }
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(starts.load(ordering: .relaxed) == 0, "nothing runs while following")
        leadership.begin()
        try await waitFor(timeout: 5) { starts.load(ordering: .relaxed) == 1 }
        leadership.end()
        try await waitFor(timeout: 5) { ends.load(ordering: .relaxed) == 1 }
        leadership.begin()
        try await waitFor(timeout: 5) { starts.load(ordering: .relaxed) == 2 }
        running.cancel()
        _ = await running.result
        #expect(ends.load(ordering: .relaxed) == 2, "cancelling ends the term's body too")
    }

    /// A source that never answers its list (a database that is down at start).
    struct Unreachable: ListWatchSource {
        var name: String { "unreachable" }
        func key(of object: String) -> String? { object }
        func same(_ a: String, _ b: String) -> Bool { a == b }
        struct Down: Error {}
        func list() async throws -> (items: [String], version: String) { throw Down() }
        func watch(from version: String) -> AsyncThrowingStream<WatchedEvent<String>, Error> { AsyncThrowingStream { $0.finish() } }
    }

    /// A server shut down during its start-up, before its informers' first list, stops: a
    /// wait for the first list ends when cancelled (it used to wait forever, and the shutdown
    /// ended in the service group's fatal error after 40 s).
    @Test func waitingForTheFirstListEndsWhenCancelled() async throws {
        let cache = ListWatchCache(source: Unreachable(), logger: Self.quiet) { _ in }
        let run = Task { await cache.run() }
        let waiter = Task { await cache.waitUntilSynced(); return cache.isSynced }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        #expect(await waiter.value == false, "returned, unsynced")
        run.cancel()
        _ = await run.value
    }
}
