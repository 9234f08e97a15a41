import Synchronization

/// Fans workload status changes out to every `changes()` stream of a backend.
public final class StatusBroadcaster: Sendable {
    private struct State {
        var subscribers: [Int: AsyncStream<WorkloadStatus>.Continuation] = [:]
        var next = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// A new stream of every status announced from now on.
    public func subscribe() -> AsyncStream<WorkloadStatus> {
        let (stream, continuation) = AsyncStream<WorkloadStatus>.makeStream()
        let id = state.withLock { s in
            defer { s.next += 1 }
            s.subscribers[s.next] = continuation
            return s.next
        }
        continuation.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) } }
        return stream
    }

    public func announce(_ status: WorkloadStatus) {
        for subscriber in state.withLock({ Array($0.subscribers.values) }) { subscriber.yield(status) }
    }
}
