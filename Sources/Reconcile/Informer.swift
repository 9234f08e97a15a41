import Foundation
import Primitives
import Logging
import Model
import ServiceLifecycle
import Store
import Synchronization

/// Keeps a cache of one kind's objects by listing the store and then watching it from the
/// list's position; re-lists when the watch position is too old or the watch breaks. Handlers
/// turn changes into work-queue keys. A periodic resync re-announces every cached object: a
/// safety net, not a poll.
public final class Informer: Service, Sendable {
    public enum Change: Sendable {
        case upsert(StoredObject)
        case delete(StoredObject)
        /// The periodic resync.
        case resync(StoredObject)

        public var object: StoredObject {
            switch self {
            case .upsert(let o), .delete(let o), .resync(let o): return o
            }
        }
    }

    public typealias Handler = @Sendable (Change) -> Void

    private struct State {
        /// `project/label value` → keys, for the indexed label.
        var index: [String: Set<ObjectKey>] = [:]
        /// Key → the index entry it is in.
        var indexed: [ObjectKey: String] = [:]
        var handlers: [Handler] = []
    }

    public let kind: String
    /// A label whose values are indexed (per project) for `list(project:indexed:)`.
    public let indexLabel: String?
    private let clock: any ControllerClock
    private let resyncPeriod: TimeInterval?
    private let state = Mutex(State())
    /// The one list/watch cache (the Kubernetes reflectors use it too).
    private let cache: ListWatchCache<StoreSource>

    public init(store: any ObjectStore, kind: String, clock: any ControllerClock, resyncPeriod: TimeInterval? = 600,
                indexLabel: String? = nil, logger: Logger = Logger(label: "setpoint.informer")) {
        self.kind = kind
        self.indexLabel = indexLabel
        self.clock = clock
        self.resyncPeriod = resyncPeriod
        let box = WeakReference<Informer>()
        cache = ListWatchCache(source: StoreSource(store: store, kind: kind), logger: logger,
                               sleep: { delay in await clock.sleep(until: clock.now().addingTimeInterval(delay)) },
                               onChange: { change in box.value?.changed(change) })
        box.value = self
    }

    public func addHandler(_ handler: @escaping Handler) {
        state.withLock { $0.handlers.append(handler) }
    }

    public func get(_ key: ObjectKey) -> StoredObject? { cache.get(key) }

    public func list(_ include: (StoredObject) -> Bool = { _ in true }) -> [StoredObject] {
        cache.items.filter(include)
    }

    /// Cached objects of `project` whose indexed label has `value`.
    public func list(project: String, indexed value: String) -> [StoredObject] {
        let keys = state.withLock { $0.index["\(project)/\(value)"] ?? [] }
        return keys.compactMap { cache.get($0) }
    }

    private func indexKey(_ o: StoredObject) -> String? {
        guard let label = indexLabel, let value = o.meta.labels[label] else { return nil }
        return "\(o.meta.project)/\(value)"
    }

    public var count: Int { cache.count }

    /// Returns once the first list has filled the cache.
    public func waitUntilSynced() async { await cache.waitUntilSynced() }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.cache.run() }
                if let period = self.resyncPeriod {
                    group.addTask {
                        while !Task.isCancelled {
                            await self.clock.sleep(until: self.clock.now().addingTimeInterval(period))
                            if Task.isCancelled { break }
                            self.resync()
                        }
                    }
                }
            }
        }
    }

    /// The cache holds the change: index it, then tell the handlers.
    private func changed(_ change: ListWatchCache<StoreSource>.Change) {
        let handlers: [Handler] = state.withLock { s in
            let o: StoredObject
            switch change {
            case .upsert(let object), .delete(let object): o = object
            }
            if let old = s.indexed.removeValue(forKey: o.key) { s.index[old]?.remove(o.key) }
            if case .upsert = change, let k = indexKey(o) {
                s.index[k, default: []].insert(o.key)
                s.indexed[o.key] = k
            }
            return s.handlers
        }
        let event: Change
        switch change {
        case .upsert(let o): event = .upsert(o)
        case .delete(let o): event = .delete(o)
        }
        for h in handlers { h(event) }
    }

    /// Re-announces every cached object.
    public func resync() {
        let handlers = state.withLock { $0.handlers }
        for o in cache.items { for h in handlers { h(.resync(o)) } }
    }
}

/// The store's list and feed of one kind, for `ListWatchCache`.
struct StoreSource: ListWatchSource {
    let store: any ObjectStore
    let kind: String

    var name: String { kind }

    func key(of object: StoredObject) -> ObjectKey? { object.key }
    func same(_ a: StoredObject, _ b: StoredObject) -> Bool { a == b }

    func list() async throws -> (items: [StoredObject], version: String) {
        let listed = try await store.list(ListOptions(kind: kind))
        return (listed.items, String(listed.resourceVersion))
    }

    func watch(from version: String) -> AsyncMapSequence<AsyncThrowingStream<Store.WatchEvent, Error>, WatchedEvent<StoredObject>> {
        store.watch(kind: kind, from: Int64(version) ?? 0).map { event in
            let position = String(event.object.meta.resourceVersion)
            switch event.type {
            case .added: return WatchedEvent(.added(event.object), version: position)
            case .modified: return WatchedEvent(.modified(event.object), version: position)
            case .deleted: return WatchedEvent(.deleted(event.object), version: position)
            }
        }
    }

    func requiresRelist(_ error: any Error) -> Bool { (error as? StoreError)?.code == .resourceVersionTooOld }
}
