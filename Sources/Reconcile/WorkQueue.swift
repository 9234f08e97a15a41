import Foundation
import Primitives
import Synchronization

/// A queue of keys to reconcile, with client-go's workqueue guarantees:
///
/// - adding a key that is already queued is a no-op (`dirty`);
/// - a key is never handed to two workers at once (`processing`);
/// - a key added while it is being processed is queued again when `done` is called;
/// - `add(_:after:)` keeps the earliest deadline for a key;
/// - `addRateLimited` delays by the larger of a per-key exponential backoff and a global token
///   bucket; `forget` resets the key's backoff.
///
/// Backoff (per key, reset by `forget`):
///
/// | failures | delay |
/// |---|---|
/// | 1 | `baseDelay` (5 ms) |
/// | n | `baseDelay × 2^(n-1)` |
/// | … | capped at `maxDelay` (5 min) |
///
/// The global bucket allows `qps` (10) keys per second with bursts of `burst` (100).
public final class WorkQueue<Key: Hashable & Sendable>: Sendable {
    public struct RateLimit: Sendable {
        public var baseDelay: TimeInterval
        public var maxDelay: TimeInterval
        public var qps: Double
        public var burst: Double

        public init(baseDelay: TimeInterval = 0.005, maxDelay: TimeInterval = 300, qps: Double = 10, burst: Double = 100) {
            self.baseDelay = baseDelay
            self.maxDelay = maxDelay
            self.qps = qps
            self.burst = burst
        }
    }

    private struct State {
        var queue: [Key] = []
        var head = 0
        var dirty = Set<Key>()
        var processing = Set<Key>()
        /// Earliest pending deadline per delayed key.
        var waiting: [Key: Date] = [:]
        var failures: [Key: Int] = [:]
        var tokens: TokenBucket
        var waiters: [CheckedContinuation<Key?, Never>] = []
        var shuttingDown = false
    }

    private let state: Mutex<State>
    private let clock: any ControllerClock
    private let limits: RateLimit

    public init(clock: any ControllerClock, rateLimit: RateLimit = RateLimit()) {
        self.clock = clock
        self.limits = rateLimit
        self.state = Mutex(State(tokens: TokenBucket(rate: rateLimit.qps, capacity: rateLimit.burst,
                                                     now: clock.now().timeIntervalSinceReferenceDate)))
    }

    /// Queues `key` now.
    public func add(_ key: Key) {
        let waiter: (CheckedContinuation<Key?, Never>, Key)? = state.withLock { s in
            guard !s.shuttingDown, !s.dirty.contains(key) else { return nil }
            s.dirty.insert(key)
            if s.processing.contains(key) { return nil }
            return Self.dispatch(key, &s)
        }
        if let (continuation, key) = waiter { continuation.resume(returning: key) }
    }

    /// A dirty key that is not being processed: straight to a waiting worker, else to the queue.
    private static func dispatch(_ key: Key, _ s: inout State) -> (CheckedContinuation<Key?, Never>, Key)? {
        if !s.waiters.isEmpty, !s.shuttingDown {
            s.dirty.remove(key)
            s.processing.insert(key)
            return (s.waiters.removeFirst(), key)
        }
        s.queue.append(key)
        return nil
    }

    /// Queues `key` after `delay`; an earlier pending deadline for the same key wins.
    public func add(_ key: Key, after delay: TimeInterval) {
        if delay <= 0 { add(key); return }
        let deadline = clock.now().addingTimeInterval(delay)
        let schedule: Bool = state.withLock { s in
            guard !s.shuttingDown else { return false }
            if let existing = s.waiting[key], existing <= deadline { return false }
            s.waiting[key] = deadline
            return true
        }
        guard schedule else { return }
        clock.schedule(at: deadline) { [weak self] in self?.fire(key, deadline) }
    }

    private func fire(_ key: Key, _ deadline: Date) {
        let due: Bool = state.withLock { s in
            guard s.waiting[key] == deadline else { return false }
            s.waiting[key] = nil
            return true
        }
        if due { add(key) }
    }

    /// Queues `key` after its backoff: the larger of the per-key exponential delay and the
    /// global token bucket's.
    public func addRateLimited(_ key: Key) {
        let now = clock.now()
        let delay: TimeInterval = state.withLock { s in
            let n = s.failures[key, default: 0]
            s.failures[key] = n + 1
            let perKey = min(limits.maxDelay, limits.baseDelay * pow(2, Double(n)))
            // The global bucket: a reserved token's wait (a negative balance is time to wait).
            let bucket = s.tokens.reserve(now: now.timeIntervalSinceReferenceDate)
            return max(perKey, bucket)
        }
        add(key, after: delay)
    }

    /// Clears the key's failure count (after a successful reconcile).
    public func forget(_ key: Key) {
        _ = state.withLock { $0.failures.removeValue(forKey: key) }
    }

    public func failures(_ key: Key) -> Int { state.withLock { $0.failures[key, default: 0] } }

    /// The next key to process, waiting for one; `nil` once the queue shuts down.
    public func get() async -> Key? {
        await withCheckedContinuation { (c: CheckedContinuation<Key?, Never>) in
            let ready: Key?? = state.withLock { s in
                if s.head < s.queue.count {
                    let key = s.queue[s.head]
                    s.head += 1
                    if s.head > 1024, s.head * 2 > s.queue.count {
                        s.queue.removeFirst(s.head)
                        s.head = 0
                    }
                    s.dirty.remove(key)
                    s.processing.insert(key)
                    return .some(key)
                }
                if s.shuttingDown { return .some(nil) }
                s.waiters.append(c)
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    /// Marks `key` processed; if it was added meanwhile, it is queued again.
    public func done(_ key: Key) {
        let waiter: (CheckedContinuation<Key?, Never>, Key)? = state.withLock { s in
            s.processing.remove(key)
            guard s.dirty.contains(key) else { return nil }
            return Self.dispatch(key, &s)
        }
        if let (continuation, key) = waiter { continuation.resume(returning: key) }
    }

    /// Stops handing out keys; waiting workers get `nil`.
    public func shutDown() {
        let waiters = state.withLock { s in
            s.shuttingDown = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: nil) }
    }

    /// Hands out keys again after `shutDown` (a server that leads again after losing the lease).
    public func reopen() { state.withLock { $0.shuttingDown = false } }

    /// Keys queued and not yet handed out.
    public var depth: Int { state.withLock { $0.queue.count - $0.head } }
    /// Keys waiting for a delay.
    public var delayedCount: Int { state.withLock { $0.waiting.count } }
    public var processingCount: Int { state.withLock { $0.processing.count } }
    /// Nothing queued, delayed or in progress.
    public var isIdle: Bool { state.withLock { $0.queue.count == $0.head && $0.processing.isEmpty && $0.waiting.isEmpty } }
    public func isProcessing(_ key: Key) -> Bool { state.withLock { $0.processing.contains(key) } }
}
