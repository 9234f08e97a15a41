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
        StoreLeaderElector(store: store, identity: name, leaseDuration: 2, renewDeadline: .milliseconds(1200),
                           renewInterval: .milliseconds(300), retryInterval: .milliseconds(100), logger: quiet)
    }

    static func holder(_ store: any ObjectStore) async throws -> String? {
        try await TypedStore<LeaseKind>(store).get(project: systemProject, name: StoreLeaderElector.name)?.spec.holderIdentity
    }

    @Test func oneHolderAtATimeTakeoverOnlyAfterExpiryAndAtOnceAfterRelease() async throws {
        let store = MemoryStore()
        let a = Self.elector(store, "a")
        let b = Self.elector(store, "b")
        try await a.acquire()
        let holding = Task { try await a.holdUntilLost() }
        // b waits while a renews, well past one lease duration.
        let waiting = Task { try await b.acquire(); return Date() }
        try await Task.sleep(for: .seconds(3))
        #expect(try await Self.holder(store) == "a")
        // a stops renewing (a crash): b takes over once the lease went unchanged for 2 s.
        holding.cancel()
        _ = await holding.result
        let stopped = Date()
        let acquired = try await waiting.value
        #expect(acquired.timeIntervalSince(stopped) >= 1.5, "not before the lease expired: \(acquired.timeIntervalSince(stopped)) s")
        #expect(try await Self.holder(store) == "b")
        let lease = try #require(try await TypedStore<LeaseKind>(store).get(project: systemProject, name: StoreLeaderElector.name))
        #expect(lease.spec.leaseTransitions == 1)
        // a, back, sees another holder; b releases and a takes it at once.
        await #expect(throws: StoreLeaderElector.LostLease.self) { try await a.holdUntilLost() }
        await b.release()
        let started = Date()
        try await a.acquire()
        #expect(Date().timeIntervalSince(started) < 1, "a released lease is free at once")
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
