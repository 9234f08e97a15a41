import Foundation
import Logging
import Synchronization

/// Keeps a cache of one kind of object (in one namespace, by label selector) in step with the
/// API server: list once, then watch from the list's resourceVersion, with bookmarks. A watch
/// that ends is resumed from the last seen version; `410 Gone` (the version was compacted)
/// forces a new list, whose differences are announced as events. Errors back off (0.2 s
/// doubling to 30 s). At steady state it holds one open watch and sends nothing else.
public final class Reflector<T: KubeObject>: Sendable {
    public enum Change: Sendable {
        case upsert(T)
        case deleted(T)
    }

    private struct State {
        var items: [String: T] = [:]
        var synced = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var resourceVersion: String?
        var lists = 0
        var watches = 0
    }

    private let client: KubeClient
    private let namespace: String?
    private let labelSelector: String?
    private let fieldSelector: String?
    private let onChange: @Sendable (Change) -> Void
    private let state = Mutex(State())
    private let logger: Logger

    public init(client: KubeClient, namespace: String?, labelSelector: String?, fieldSelector: String? = nil, logger: Logger,
                onChange: @escaping @Sendable (Change) -> Void) {
        self.client = client
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.logger = logger
        self.onChange = onChange
    }

    public func get(_ name: String) -> T? { state.withLock { $0.items[name] } }

    /// Puts an object the client just wrote into the cache when the watch has not brought it
    /// yet (never over a newer copy), so a read right after a create sees it.
    public func seed(_ object: T) {
        guard let name = object.metadata.name else { return }
        state.withLock { s in if s.items[name] == nil { s.items[name] = object } }
    }
    public var items: [T] { state.withLock { Array($0.items.values) } }
    public var isSynced: Bool { state.withLock { $0.synced } }
    /// The version a watch resumes from (the last event's or bookmark's).
    public var resourceVersion: String? { state.withLock { $0.resourceVersion } }
    /// How many lists and watches were started (the restart and efficiency tests read them).
    public var counts: (lists: Int, watches: Int) { state.withLock { ($0.lists, $0.watches) } }

    public func waitUntilSynced() async {
        await withCheckedContinuation { c in
            let done = state.withLock { s -> Bool in
                if s.synced { return true }
                s.waiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }

    /// Runs until cancelled.
    public func run() async {
        var backoff = 0.2
        var needList = true
        while !Task.isCancelled {
            do {
                if needList {
                    try await relist()
                    needList = false
                }
                let from = state.withLock { s in
                    s.watches += 1
                    return s.resourceVersion
                }
                var sawEvent = false
                for try await event in client.watch(T.self, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector, resourceVersion: from) {
                    sawEvent = true
                    apply(event)
                }
                // The server closed the watch (its timeout): watch again from where we are.
                if sawEvent { backoff = 0.2 }
            } catch let e as KubeAPIError where e.isGone {
                logger.debug("watch expired; listing again", metadata: ["resource": "\(T.resource)"])
                needList = true
                continue
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("watch of \(T.resource) failed; retrying", metadata: ["error": "\(error)", "after": "\(backoff)s"])
                let jitter = Double.random(in: 0.8...1.2)
                try? await Task.sleep(for: .seconds(backoff * jitter))
                backoff = min(backoff * 2, 30)
            }
        }
    }

    private func relist() async throws {
        state.withLock { $0.lists += 1 }
        let list = try await client.list(T.self, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector)
        var fresh: [String: T] = [:]
        for item in list.items { if let name = item.metadata.name { fresh[name] = item } }
        let (removed, changed, waiters) = state.withLock { s -> ([T], [T], [CheckedContinuation<Void, Never>]) in
            let removed = s.items.filter { fresh[$0.key] == nil }.map(\.value)
            let changed = fresh.values.filter { s.items[$0.metadata.name ?? ""]?.metadata.resourceVersion != $0.metadata.resourceVersion }
            s.items = fresh
            s.resourceVersion = list.metadata.resourceVersion
            s.synced = true
            let w = s.waiters
            s.waiters = []
            return (removed, changed, w)
        }
        for item in removed { onChange(.deleted(item)) }
        for item in changed { onChange(.upsert(item)) }
        for w in waiters { w.resume() }
    }

    private func apply(_ event: WatchEvent<T>) {
        switch event.type {
        case .bookmark:
            if let rv = event.resourceVersion { state.withLock { $0.resourceVersion = rv } }
        case .added, .modified:
            guard let object = event.object, let name = object.metadata.name else { return }
            state.withLock { s in
                s.items[name] = object
                s.resourceVersion = object.metadata.resourceVersion ?? s.resourceVersion
            }
            onChange(.upsert(object))
        case .deleted:
            guard let object = event.object, let name = object.metadata.name else { return }
            state.withLock { s in
                s.items[name] = nil
                s.resourceVersion = object.metadata.resourceVersion ?? s.resourceVersion
            }
            onChange(.deleted(object))
        case .error:
            break
        }
    }
}
