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
        var relistRequested = false
        var cancelWatch: (@Sendable () -> Void)?
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

    /// Asks for a new list at the next turn (the backend's consistency check found the
    /// cluster's history reset): the open watch ends and the cache is listed again.
    public func requestRelist() {
        let cancel = state.withLock { s -> (@Sendable () -> Void)? in
            s.relistRequested = true
            return s.cancelWatch
        }
        cancel?()
    }

    /// The history the cache came from is not the cluster's any more.
    struct HistoryReset: Error {
        var known: String
        var seen: String
    }

    /// Runs until cancelled.
    public func run() async {
        var backoff = ReconnectBackoff()
        var needList = true
        while !Task.isCancelled {
            do {
                if state.withLock({ s in defer { s.relistRequested = false }; return s.relistRequested }) { needList = true }
                if needList {
                    try await relist()
                    needList = false
                    backoff.reset()
                }
                let from = state.withLock { s in
                    s.watches += 1
                    return s.resourceVersion
                }
                // The watch races the relist signal in a task group, so that `requestRelist` can
                // end it (the first to finish cancels the other).
                let opened = ContinuousClock.now
                let relist = OneShot()
                state.withLock { $0.cancelWatch = { relist.fire() } }
                let outcome = await withTaskGroup(of: (delivered: Bool, error: Error?)?.self) { group in
                    group.addTask { [client, namespace, labelSelector, fieldSelector] in
                        var delivered = false
                        do {
                            for try await event in client.watch(T.self, namespace: namespace, labelSelector: labelSelector,
                                                                fieldSelector: fieldSelector, resourceVersion: from) {
                                try self.apply(event)
                                delivered = true
                            }
                            return (delivered, nil)
                        } catch {
                            return (delivered, error)
                        }
                    }
                    group.addTask {
                        await withTaskCancellationHandler { await relist.wait() } onCancel: { relist.fire() }
                        return nil   // a relist was asked for
                    }
                    let first = await group.next() ?? nil
                    group.cancelAll()
                    return first ?? (false, nil)
                }
                state.withLock { $0.cancelWatch = nil }
                // A watch that delivered, or stayed open a while, was a success: the next outage
                // starts from the shortest wait again.
                if outcome.delivered || ContinuousClock.now - opened > .seconds(5) { backoff.reset() }
                // Otherwise the server closed the watch (its timeout): watch again from where we are.
                if let error = outcome.error { throw error }
            } catch let e as KubeAPIError where e.isGone {
                logger.debug("watch expired; listing again", metadata: ["resource": "\(T.resource)"])
                needList = true
                continue
            } catch let e as KubeAPIError where e.isResourceVersionTooLarge {
                // A version the cluster has not reached: its history is not the one we followed.
                logger.warning("the cluster does not know the watched version; listing again",
                               metadata: ["resource": "\(T.resource)", "error": "\(e)"])
                needList = true
                continue
            } catch let reset as HistoryReset {
                logger.warning("the cluster's resourceVersions went backwards (etcd restored or replaced?); listing again",
                               metadata: ["resource": "\(T.resource)", "known": "\(reset.known)", "seen": "\(reset.seen)"])
                needList = true
                continue
            } catch {
                if Task.isCancelled { return }
                if state.withLock({ $0.relistRequested }) { continue }
                let delay = backoff.next()
                logger.warning("watch of \(T.resource) failed; retrying", metadata: ["error": "\(error)", "after": "\(delay.formatted)s"])
                try? await Task.sleep(for: .seconds(delay))
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

    /// Applies one watch event; throws `HistoryReset` when its version is older than one the
    /// cache already has (versions only grow within one cluster history).
    private func apply(_ event: WatchEvent<T>) throws {
        if let seen = event.resourceVersion {
            let known = state.withLock { $0.resourceVersion }
            if let known, ResourceVersion.isOlder(seen, than: known) { throw HistoryReset(known: known, seen: seen) }
        }
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

/// Kubernetes calls resourceVersions opaque, but every API server backed by etcd hands out
/// etcd revisions, which only grow within one history. A version older than one already seen
/// therefore means the history was replaced (etcd restored from a snapshot, or a new etcd):
/// what a cache built on the old one holds is no longer true. Versions that are not numbers
/// are never compared.
public enum ResourceVersion {
    public static func isOlder(_ version: String, than known: String) -> Bool {
        guard let v = UInt64(version), let k = UInt64(known) else { return false }
        return v < k
    }
}

/// The reflector's wait between failed attempts: exponential with ±20 % jitter, reset by any
/// success (a list, a watch event, a watch that stayed open), so a new outage starts small.
///
/// | failed attempt | wait (before jitter) |
/// |---|---|
/// | 1 | 0.2 s |
/// | 2 | 0.4 s |
/// | 3 | 0.8 s |
/// | … | doubling |
/// | 9 and later | 30 s (the cap) |
public struct ReconnectBackoff: Sendable {
    public static let initial = 0.2
    public static let cap = 30.0
    public private(set) var current = initial

    public init() {}

    /// The wait before the next attempt (with jitter), and the one after it doubled.
    public mutating func next(jitter: Double = Double.random(in: 0.8...1.2)) -> Double {
        defer { current = min(current * 2, Self.cap) }
        return current * jitter
    }

    public mutating func reset() { current = Self.initial }
}

extension Double {
    fileprivate var formatted: String { String(format: "%.2f", self) }
}
