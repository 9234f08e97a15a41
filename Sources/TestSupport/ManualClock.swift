import Foundation
import Reconcile
import Synchronization

/// A clock that moves only when a test says so. Timers fire, in deadline order, during
/// `advance`; nothing in a test ever sleeps for real.
public final class ManualClock: ControllerClock {
    private struct Timer {
        var deadline: Date
        var sequence: Int
        var handle: TimerHandle
        var action: @Sendable () -> Void
    }

    private struct State {
        var now: Date
        var timers: [Timer] = []
        var sequence = 0
    }

    private let state: Mutex<State>

    public init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        state = Mutex(State(now: start))
    }

    public func now() -> Date { state.withLock { $0.now } }

    @discardableResult
    public func schedule(at deadline: Date, _ action: @escaping @Sendable () -> Void) -> TimerHandle {
        let handle = TimerHandle()
        let fireNow: Bool = state.withLock { s in
            if deadline <= s.now { return true }
            s.sequence += 1
            s.timers.append(Timer(deadline: deadline, sequence: s.sequence, handle: handle, action: action))
            return false
        }
        if fireNow { action() }
        return handle
    }

    /// Moves time forward by `seconds`, firing every timer that comes due, earliest first.
    public func advance(by seconds: TimeInterval) {
        let target = now().addingTimeInterval(seconds)
        while true {
            let next: Timer? = state.withLock { s in
                let due = s.timers.enumerated().filter { $0.element.deadline <= target }
                guard let first = due.min(by: { ($0.element.deadline, $0.element.sequence) < ($1.element.deadline, $1.element.sequence) }) else {
                    s.now = target
                    return nil
                }
                s.timers.remove(at: first.offset)
                s.now = max(s.now, first.element.deadline)
                return first.element
            }
            guard let timer = next else { return }
            if !timer.handle.isCancelled { timer.action() }
        }
    }

    /// Timers not yet fired or cancelled.
    public var pendingTimers: Int { state.withLock { $0.timers.filter { !$0.handle.isCancelled }.count } }
}
