import Foundation
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
        var cache: [ObjectKey: StoredObject] = [:]
        /// `project/label value` → keys, for the indexed label.
        var index: [String: Set<ObjectKey>] = [:]
        var handlers: [Handler] = []
        var synced = false
        var syncWaiters: [CheckedContinuation<Void, Never>] = []
        var relists = 0
    }

    public let kind: String
    /// A label whose values are indexed (per project) for `list(project:indexed:)`.
    public let indexLabel: String?
    private let store: any ObjectStore
    private let clock: any ControllerClock
    private let resyncPeriod: TimeInterval?
    private let state = Mutex(State())
    private let logger: Logger

    public init(store: any ObjectStore, kind: String, clock: any ControllerClock, resyncPeriod: TimeInterval? = 600,
                indexLabel: String? = nil, logger: Logger = Logger(label: "setpoint.informer")) {
        self.store = store
        self.kind = kind
        self.indexLabel = indexLabel
        self.clock = clock
        self.resyncPeriod = resyncPeriod
        self.logger = logger
    }

    public func addHandler(_ handler: @escaping Handler) {
        state.withLock { $0.handlers.append(handler) }
    }

    public func get(_ key: ObjectKey) -> StoredObject? { state.withLock { $0.cache[key] } }

    public func list(_ include: (StoredObject) -> Bool = { _ in true }) -> [StoredObject] {
        state.withLock { s in s.cache.values.filter(include) }
    }

    /// Cached objects of `project` whose indexed label has `value`.
    public func list(project: String, indexed value: String) -> [StoredObject] {
        state.withLock { s in
            (s.index["\(project)/\(value)"] ?? []).compactMap { s.cache[$0] }
        }
    }

    private func indexKey(_ o: StoredObject) -> String? {
        guard let label = indexLabel, let value = o.meta.labels[label] else { return nil }
        return "\(o.meta.project)/\(value)"
    }

    public var count: Int { state.withLock { $0.cache.count } }
    public var relistCount: Int { state.withLock { $0.relists } }

    /// Returns once the first list has filled the cache.
    public func waitUntilSynced() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.synced { return true }
                s.syncWaiters.append(c)
                return false
            }
            if ready { c.resume() }
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.listAndWatch() }
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

    private func listAndWatch() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let listed = try await store.list(ListOptions(kind: kind))
                replaceCache(with: listed.items)
                failures = 0
                for try await event in store.watch(kind: kind, from: listed.resourceVersion) {
                    apply(event)
                }
                if Task.isCancelled { return }
            } catch let error as StoreError where error.code == .resourceVersionTooOld {
                logger.debug("watch position too old; listing again", metadata: ["kind": "\(kind)"])
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                let delay = min(30, 0.1 * pow(2, Double(min(failures, 10))))
                logger.warning("list/watch failed; retrying", metadata: ["kind": "\(kind)", "error": "\(error)"])
                await clock.sleep(until: clock.now().addingTimeInterval(delay))
            }
            state.withLock { $0.relists += 1 }
        }
    }

    private func replaceCache(with items: [StoredObject]) {
        let (changes, handlers, waiters): ([Change], [Handler], [CheckedContinuation<Void, Never>]) = state.withLock { s in
            var changes: [Change] = []
            var fresh: [ObjectKey: StoredObject] = [:]
            for item in items {
                fresh[item.key] = item
                if s.cache[item.key] != item { changes.append(.upsert(item)) }
            }
            for (key, old) in s.cache where fresh[key] == nil { changes.append(.delete(old)) }
            s.cache = fresh
            s.index = [:]
            for o in fresh.values { if let k = indexKey(o) { s.index[k, default: []].insert(o.key) } }
            s.synced = true
            defer { s.syncWaiters = [] }
            return (changes, s.handlers, s.syncWaiters)
        }
        for change in changes { for h in handlers { h(change) } }
        for w in waiters { w.resume() }
    }

    private func apply(_ event: WatchEvent) {
        let handlers: [Handler] = state.withLock { s in
            if let old = s.cache[event.object.key], let k = indexKey(old) { s.index[k]?.remove(old.key) }
            switch event.type {
            case .added, .modified:
                s.cache[event.object.key] = event.object
                if let k = indexKey(event.object) { s.index[k, default: []].insert(event.object.key) }
            case .deleted:
                s.cache[event.object.key] = nil
            }
            return s.handlers
        }
        let change: Change = event.type == .deleted ? .delete(event.object) : .upsert(event.object)
        for h in handlers { h(change) }
    }

    /// Re-announces every cached object.
    public func resync() {
        let (objects, handlers) = state.withLock { (Array($0.cache.values), $0.handlers) }
        for o in objects { for h in handlers { h(.resync(o)) } }
    }
}
