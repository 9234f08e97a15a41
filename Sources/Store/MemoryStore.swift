import Foundation
import Model
import Synchronization

/// An in-memory `ObjectStore` (tests, benchmarks). Same semantics as the SQLite store.
public final class MemoryStore: RuleApplyingStore {
    private struct State {
        var objects: [ObjectKey: StoredObject] = [:]
        var version: Int64 = 0
        var writes = 0
    }

    private let state = Mutex(State())
    private let hub: WatchHub
    private let now: @Sendable () -> Date

    public init(now: @escaping @Sendable () -> Date = { Date() }, feedCapacity: Int = 100_000) {
        self.now = now
        self.hub = WatchHub(currentVersion: 0, capacity: feedCapacity)
    }

    public func get(_ key: ObjectKey) async throws -> StoredObject? {
        state.withLock { $0.objects[key] }
    }

    public func list(_ options: ListOptions) async throws -> ListResult {
        state.withLock { s in
            let items = s.objects.values.filter { options.matches($0.meta) }.sorted { $0.key < $1.key }
            return ListResult(items: items, resourceVersion: s.version)
        }
    }

    public func currentTime() -> Date { now() }

    public func watch(kind: String?, from resourceVersion: Int64) -> AsyncThrowingStream<WatchEvent, Error> {
        hub.subscribe(kind: kind, from: resourceVersion)
    }

    public func writeCount() async -> Int { state.withLock { $0.writes } }

    /// Applies one write under the lock and publishes its event before releasing it, so the
    /// feed is in version order.
    public func apply(_ key: ObjectKey, _ rule: @escaping (StoredObject?, Int64) throws -> StoreSemantics.Outcome) throws -> StoredObject {
        try state.withLock { s in
            let outcome = try rule(s.objects[key], s.version + 1)
            switch outcome {
            case .unchanged(let o):
                return o
            case .write(let o, let type):
                s.version += 1
                s.writes += 1
                s.objects[key] = o
                hub.publish(WatchEvent(type: type, object: o))
                return o
            case .remove(let o):
                s.version += 1
                s.writes += 1
                s.objects[key] = nil
                hub.publish(WatchEvent(type: .deleted, object: o))
                return o
            }
        }
    }
}
