import Foundation

/// What a reconcile asks of the runtime next. Reconcilers never touch the queue themselves.
///
/// | outcome | meaning |
/// |---|---|
/// | `.done` | converged (or waiting for an event that will enqueue the key); backoff is reset |
/// | `.requeue(after:)` | look again after a duration (a deadline the reconciler knows about); backoff is reset |
/// | a thrown error | transient failure: retried with the queue's rate-limited backoff |
/// | a thrown `TerminalError` | cannot succeed until the input changes: not retried; `stalled` is called |
public enum ReconcileResult: Sendable, Equatable {
    case done
    case requeue(after: TimeInterval)
}

/// An error that retrying will not fix (invalid spec, missing secret the user must add).
public struct TerminalError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var message: String

    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason): \(message)" }
}

/// Converges whatever a key identifies. Level-triggered: it reads current state and acts on all
/// of it, never on "what changed".
public protocol Reconciler: Sendable {
    associatedtype Key: Hashable & Sendable
    func reconcile(_ key: Key) async throws -> ReconcileResult
    /// Called after a `TerminalError`, to record it (condition `Stalled`).
    func stalled(_ key: Key, error: TerminalError) async
}

extension Reconciler {
    public func stalled(_ key: Key, error: TerminalError) async {}
}

/// Hooks for observing controllers (Prometheus later).
public protocol ControllerMetrics: Sendable {
    func reconciled(controller: String, duration: TimeInterval, outcome: String)
    func queueDepth(controller: String, depth: Int)
}

/// Counts reconciles in memory; useful in tests and benchmarks.
public final class CountingMetrics: ControllerMetrics, @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    public init() {}

    public func reconciled(controller: String, duration: TimeInterval, outcome: String) {
        lock.lock()
        counts["\(controller)/\(outcome)", default: 0] += 1
        lock.unlock()
    }

    public func queueDepth(controller: String, depth: Int) {}

    public func count(_ controller: String, _ outcome: String) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return counts["\(controller)/\(outcome)", default: 0]
    }
}
