import Foundation
import Model
import Synchronization

/// The change feed shared by store implementations: a bounded log of recent changes and the
/// live subscribers. Publishing and subscribing happen under one lock, so a new watcher gets
/// every change after its position exactly once: replayed from the log, then live.
public final class WatchHub: Sendable {
    private struct Subscriber {
        var kind: String?
        var continuation: AsyncThrowingStream<WatchEvent, Error>.Continuation
    }

    private struct State {
        var log: [WatchEvent] = []
        var logStart = 0
        /// Changes up to this version are no longer in the log.
        var compactedThrough: Int64
        var subscribers: [Int: Subscriber] = [:]
        var nextID = 0
    }

    private let state: Mutex<State>
    private let capacity: Int

    /// - Parameters:
    ///   - currentVersion: the store's version at start; earlier changes are not available.
    ///   - capacity: how many recent changes are kept for watchers that fall behind.
    public init(currentVersion: Int64, capacity: Int = 100_000) {
        self.state = Mutex(State(compactedThrough: currentVersion))
        self.capacity = capacity
    }

    public func publish(_ event: WatchEvent) {
        state.withLock { s in
            s.log.append(event)
            if s.log.count - s.logStart > capacity {
                s.compactedThrough = s.log[s.logStart].resourceVersion
                s.logStart += 1
                if s.logStart > capacity {
                    s.log.removeFirst(s.logStart)
                    s.logStart = 0
                }
            }
            for sub in s.subscribers.values where sub.kind == nil || sub.kind == event.object.meta.kind {
                sub.continuation.yield(event)
            }
        }
    }

    public func subscribe(kind: String?, from version: Int64) -> AsyncThrowingStream<WatchEvent, Error> {
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, Error>.makeStream()
        let id: Int? = state.withLock { s in
            if version < s.compactedThrough {
                continuation.finish(throwing: StoreError(.resourceVersionTooOld,
                    "resourceVersion \(version) is older than the retained change feed (from \(s.compactedThrough)): list again"))
                return nil
            }
            for event in s.log[s.logStart...] where event.resourceVersion > version
                && (kind == nil || event.object.meta.kind == kind) {
                continuation.yield(event)
            }
            let id = s.nextID
            s.nextID += 1
            s.subscribers[id] = Subscriber(kind: kind, continuation: continuation)
            return id
        }
        if let id {
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
            }
        }
        return stream
    }

    /// The oldest position a watch can start from here.
    public var oldestPosition: Int64 { state.withLock { $0.compactedThrough } }

    /// Forgets everything through `version` (the changes before it cannot be had any more):
    /// every watch ends with `resourceVersionTooOld`, and its watcher lists again.
    public func expire(through version: Int64) {
        let subs = state.withLock { s -> [Subscriber] in
            s.log = []
            s.logStart = 0
            s.compactedThrough = max(s.compactedThrough, version)
            defer { s.subscribers = [:] }
            return Array(s.subscribers.values)
        }
        for sub in subs {
            sub.continuation.finish(throwing: StoreError(.resourceVersionTooOld, "the change feed was cut at \(version): list again"))
        }
    }

    /// Ends every watch (the store is closing).
    public func finishAll() {
        let subs = state.withLock { s in
            let all = s.subscribers.values
            s.subscribers = [:]
            return Array(all)
        }
        for sub in subs { sub.continuation.finish() }
    }
}
