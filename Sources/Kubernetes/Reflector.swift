import Foundation
import Primitives
import Logging

/// Keeps a cache of one kind of object (in one namespace, by label selector) in step with the
/// API server: the one `ListWatchCache` (the store's informers use it too) over the API's list
/// and watch, with bookmarks. `410 Gone` and a version the server never reached list again; so
/// does a version older than one seen (a restored or replaced etcd). At steady state it holds
/// one open watch and sends nothing else.
public final class Reflector<T: KubeObject>: Sendable {
    public enum Change: Sendable {
        case upsert(T)
        case deleted(T)
    }

    let cache: ListWatchCache<KubeSource<T>>

    public init(client: KubeClient, namespace: String?, labelSelector: String?, fieldSelector: String? = nil, logger: Logger,
                onChange: @escaping @Sendable (Change) -> Void) {
        let source = KubeSource<T>(client: client, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector)
        cache = ListWatchCache(source: source, logger: logger) { change in
            switch change {
            case .upsert(let object): onChange(.upsert(object))
            case .delete(let object): onChange(.deleted(object))
            }
        }
    }

    public func get(_ name: String) -> T? { cache.get(name) }
    /// Puts an object the client just wrote into the cache when the watch has not brought it
    /// yet (never over a newer copy), so a read right after a create sees it.
    public func seed(_ object: T) { cache.seed(object) }
    public var items: [T] { cache.items }
    public var isSynced: Bool { cache.isSynced }
    /// The version a watch resumes from (the last event's or bookmark's).
    public var resourceVersion: String? { cache.version }
    /// How many lists and watches were started (the restart and efficiency tests read them).
    public var counts: (lists: Int, watches: Int) { cache.counts }
    public func waitUntilSynced() async { await cache.waitUntilSynced() }
    /// Asks for a new list at the next turn (the backend's consistency check found the
    /// cluster's history reset): the open watch ends and the cache is listed again.
    public func requestRelist() { cache.requestRelist() }
    /// Runs until cancelled.
    public func run() async { await cache.run() }
}

/// The API server's list and watch of one kind, for `ListWatchCache`.
struct KubeSource<T: KubeObject>: ListWatchSource {
    let client: KubeClient
    let namespace: String?
    let labelSelector: String?
    let fieldSelector: String?

    var name: String { T.resource }

    func key(of object: T) -> String? { object.metadata.name }
    func same(_ a: T, _ b: T) -> Bool { a.metadata.resourceVersion == b.metadata.resourceVersion }

    func list() async throws -> (items: [T], version: String) {
        let list = try await client.list(T.self, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector)
        return (list.items, list.metadata.resourceVersion ?? "0")
    }

    func watch(from version: String) -> AsyncCompactMapSequence<AsyncThrowingStream<WatchEvent<T>, Error>, WatchedEvent<T>> {
        client.watch(T.self, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector, resourceVersion: version)
            .compactMap { event -> WatchedEvent<T>? in
                switch event.type {
                case .bookmark: return WatchedEvent(.bookmark, version: event.resourceVersion)
                case .added: return event.object.map { WatchedEvent(.added($0), version: event.resourceVersion) }
                case .modified: return event.object.map { WatchedEvent(.modified($0), version: event.resourceVersion) }
                case .deleted: return event.object.map { WatchedEvent(.deleted($0), version: event.resourceVersion) }
                case .error: return nil
                }
            }
    }

    func requiresRelist(_ error: any Error) -> Bool {
        guard let e = error as? KubeAPIError else { return false }
        // Compacted (410 Gone), or a version the cluster has not reached: its history is not
        // the one we followed.
        return e.isGone || e.isResourceVersionTooLarge
    }
}
