import Foundation
import Logging
import Synchronization

/// One event of a watch: an object added, modified or deleted, or a bookmark (only the version).
public enum WatchedChange<Object: Sendable>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    case bookmark
}

public struct WatchedEvent<Object: Sendable>: Sendable {
    public var change: WatchedChange<Object>
    /// The position after this event (nil: not said).
    public var version: String?

    public init(_ change: WatchedChange<Object>, version: String?) {
        self.change = change
        self.version = version
    }
}

/// Where a `ListWatchCache` lists and watches: the store's feed, or a Kubernetes API server.
public protocol ListWatchSource: Sendable {
    associatedtype Object: Sendable
    associatedtype Key: Hashable & Sendable
    associatedtype Events: AsyncSequence where Events.Element == WatchedEvent<Object>

    var name: String { get }
    func key(of object: Object) -> Key?
    /// Whether two copies of an object are the same version (a relist announces only changes).
    func same(_ a: Object, _ b: Object) -> Bool
    func list() async throws -> (items: [Object], version: String)
    func watch(from version: String) -> Events
    /// The watch position is gone or unknown (410 Gone, a compacted feed, a version the server
    /// never reached): list again at once.
    func requiresRelist(_ error: any Error) -> Bool
}

extension ListWatchSource {
    public func requiresRelist(_ error: any Error) -> Bool { false }
}

/// One list/watch cache for every source: list once, then watch from the list's version; a
/// watch that ends is resumed from the last version seen (events and bookmarks); a position
/// that is gone, a version older than one seen (the source's history was replaced) or
/// `requestRelist()` lists again, announcing only the differences. Failures back off
/// (`ReconnectBackoff`), on the clock `sleep` gives (a manual one in tests).
public final class ListWatchCache<Source: ListWatchSource>: Sendable {
    public typealias Object = Source.Object
    public typealias Key = Source.Key

    public enum Change: Sendable {
        case upsert(Object)
        case delete(Object)
    }

    private struct State {
        var items: [Key: Object] = [:]
        var synced = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        var version: String?
        var lists = 0
        var watches = 0
        var relistRequested = false
        var endWatch: (@Sendable () -> Void)?
    }

    public let source: Source
    private let sleep: @Sendable (TimeInterval) async -> Void
    private let onChange: @Sendable (Change) -> Void
    private let state = Mutex(State())
    private let logger: Logger

    /// `onChange` is called for every change, after the cache holds it.
    public init(source: Source, logger: Logger, sleep: @escaping @Sendable (TimeInterval) async -> Void = { try? await Task.sleep(for: .seconds($0)) },
                onChange: @escaping @Sendable (Change) -> Void) {
        self.source = source
        self.sleep = sleep
        self.logger = logger
        self.onChange = onChange
    }

    public func get(_ key: Key) -> Object? { state.withLock { $0.items[key] } }
    public var items: [Object] { state.withLock { Array($0.items.values) } }
    public var count: Int { state.withLock { $0.items.count } }
    public var isSynced: Bool { state.withLock { $0.synced } }
    /// The version a watch resumes from (the last event's or bookmark's).
    public var version: String? { state.withLock { $0.version } }
    /// How many lists and watches were started.
    public var counts: (lists: Int, watches: Int) { state.withLock { ($0.lists, $0.watches) } }

    /// Puts an object just written into the cache when the watch has not brought it yet (never
    /// over a copy already there), so a read right after a create sees it.
    public func seed(_ object: Object) {
        guard let key = source.key(of: object) else { return }
        state.withLock { s in if s.items[key] == nil { s.items[key] = object } }
    }

    /// Returns once the first list is in, or when the task is cancelled or the cache stops
    /// first (a shutdown during start-up must not wait for a list that never comes).
    public func waitUntilSynced() async {
        let id = state.withLock { s -> Int in
            defer { s.nextWaiter += 1 }
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s -> Bool in
                    if s.synced || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if done { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Lists again at the next turn: the open watch ends, and the cache is listed.
    public func requestRelist() {
        let end = state.withLock { s -> (@Sendable () -> Void)? in
            s.relistRequested = true
            return s.endWatch
        }
        end?()
    }

    /// The history the cache came from is not the source's any more.
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
                let from = state.withLock { s -> String in
                    s.watches += 1
                    return s.version ?? "0"
                }
                let opened = ContinuousClock.now
                // The watch races the relist signal: the first to finish cancels the other.
                let relist = Signal()
                state.withLock { $0.endWatch = { relist.fire() } }
                let outcome = await withTaskGroup(of: (delivered: Bool, error: Error?)?.self) { group in
                    group.addTask { [source] in
                        var delivered = false
                        do {
                            for try await event in source.watch(from: from) {
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
                        return nil
                    }
                    let first = await group.next() ?? nil
                    group.cancelAll()
                    return first ?? (false, nil)
                }
                state.withLock { $0.endWatch = nil }
                // A watch that delivered, or stayed open a while, was a success: the next outage
                // starts from the shortest wait again.
                if outcome.delivered || ContinuousClock.now - opened > .seconds(5) { backoff.reset() }
                if let error = outcome.error { throw error }
            } catch let reset as HistoryReset {
                logger.warning("the source's versions went backwards (its history was replaced?); listing again",
                               metadata: ["source": "\(source.name)", "known": "\(reset.known)", "seen": "\(reset.seen)"])
                needList = true
            } catch where source.requiresRelist(error) {
                logger.debug("watch position gone; listing again", metadata: ["source": "\(source.name)", "error": "\(error)"])
                needList = true
            } catch {
                if Task.isCancelled || error is CancellationError { return }
                if state.withLock({ $0.relistRequested }) { continue }
                let delay = backoff.next()
                logger.warning("list/watch failed; retrying", metadata: ["source": "\(source.name)", "error": "\(error)",
                                                                       "after": "\(String(format: "%.2f", delay))s"])
                await sleep(delay)
            }
        }
    }

    private func relist() async throws {
        state.withLock { $0.lists += 1 }
        let list = try await source.list()
        var fresh: [Key: Object] = [:]
        for item in list.items { if let key = source.key(of: item) { fresh[key] = item } }
        let (removed, changed, waiters) = state.withLock { s -> ([Object], [Object], [CheckedContinuation<Void, Never>]) in
            let removed = s.items.filter { fresh[$0.key] == nil }.map(\.value)
            let changed = fresh.filter { key, item in s.items[key].map { !source.same($0, item) } ?? true }.map(\.value)
            s.items = fresh
            s.version = list.version
            s.synced = true
            defer { s.waiters = [:] }
            return (removed, changed, Array(s.waiters.values))
        }
        for item in removed { onChange(.delete(item)) }
        for item in changed { onChange(.upsert(item)) }
        for w in waiters { w.resume() }
    }

    /// Applies one event; throws `HistoryReset` when its version is older than one the cache
    /// already has (versions only grow within one history).
    private func apply(_ event: WatchedEvent<Object>) throws {
        if let seen = event.version, let known = state.withLock({ $0.version }), Versions.isOlder(seen, than: known) {
            throw HistoryReset(known: known, seen: seen)
        }
        switch event.change {
        case .bookmark:
            if let v = event.version { state.withLock { $0.version = v } }
        case .added(let object), .modified(let object):
            guard let key = source.key(of: object) else { return }
            state.withLock { s in
                s.items[key] = object
                s.version = event.version ?? s.version
            }
            onChange(.upsert(object))
        case .deleted(let object):
            guard let key = source.key(of: object) else { return }
            state.withLock { s in
                s.items[key] = nil
                s.version = event.version ?? s.version
            }
            onChange(.delete(object))
        }
    }
}

/// Versions of the store's feed and of etcd-backed API servers are numbers that only grow within
/// one history: one older than a version already seen means the history was replaced (etcd
/// restored from a snapshot, or a new one). Versions that are not numbers are never compared
/// (Kubernetes calls them opaque).
public enum Versions {
    public static func isOlder(_ version: String, than known: String) -> Bool {
        guard let v = UInt64(version), let k = UInt64(known) else { return false }
        return v < k
    }
}

/// The wait between failed attempts of a list/watch: exponential with ±20 % jitter, reset by
/// any success (a list, a watch event, a watch that stayed open), so a new outage starts small.
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

/// A value set once (the first `set` wins), awaited by whoever needs it: waiting after it was
/// set returns at once. The one-shot primitive behind `Signal`, a relay's port and the leader
/// gate.
public final class OnceValue<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        /// What to do once set; a waiter that gives up (cancelled) is removed by its number.
        var waiters: [Int: @Sendable (Value?) -> Void] = [:]
        var next = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var value: Value? { state.withLock { $0.value } }

    public func set(_ value: Value) {
        let waiters = state.withLock { s -> [@Sendable (Value?) -> Void] in
            guard s.value == nil else { return [] }
            s.value = value
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w(value) }
    }

    public func wait() async -> Value {
        await withCheckedContinuation { (c: CheckedContinuation<Value, Never>) in
            let now = state.withLock { s -> Value? in
                if let v = s.value { return v }
                s.next += 1
                s.waiters[s.next] = { c.resume(returning: $0!) }
                return nil
            }
            if let now { c.resume(returning: now) }
        }
    }

    /// The value, or nil if the task is cancelled before it is set.
    public func waitUnlessCancelled() async -> Value? {
        let id = state.withLock { s -> Int in
            s.next += 1
            return s.next
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Value?, Never>) in
                let now = state.withLock { s -> Value?? in
                    if let v = s.value { return .some(v) }
                    if Task.isCancelled { return .some(nil) }
                    s.waiters[id] = { c.resume(returning: $0) }
                    return .none
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?(nil)
        }
    }
}

/// A signal fired once; waiting after it fired returns at once.
public final class Signal: Sendable {
    private let once = OnceValue<Bool>()

    public init() {}

    public func fire() { once.set(true) }
    public func wait() async { _ = await once.wait() }
    /// Returns once fired, or when the task is cancelled.
    public func waitUnlessCancelled() async { _ = await once.waitUnlessCancelled() }
}

/// A weak reference that is Sendable: how a callback made before its owner exists (a cache's
/// `onChange`, set up in the owner's `init`) reaches the owner without keeping it alive.
public final class WeakReference<Target: AnyObject & Sendable>: Sendable {
    private let target = Mutex<Weak>(Weak())
    private struct Weak { weak var value: Target? }

    public init() {}

    public var value: Target? {
        get { target.withLock { $0.value } }
        set { target.withLock { $0.value = newValue } }
    }
}
