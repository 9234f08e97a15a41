import Dispatch
import Foundation
import Synchronization

/// Time for controllers: the current time, and timers. Tests use a manual clock, so delays,
/// backoff and timeouts are driven deterministically instead of by sleeping.
public protocol ControllerClock: Sendable {
    func now() -> Date
    /// Runs `action` once at `deadline` (at once if it has passed) unless the timer is cancelled.
    @discardableResult
    func schedule(at deadline: Date, _ action: @escaping @Sendable () -> Void) -> TimerHandle
}

extension ControllerClock {
    /// Suspends until `deadline`; returns early (without error) when the task is cancelled.
    public func sleep(until deadline: Date) async {
        let box = Mutex<(CheckedContinuation<Void, Never>?, TimerHandle?, Bool)>((nil, nil, false))
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let alreadyCancelled = box.withLock { s -> Bool in
                    if s.2 { return true }
                    s.0 = c
                    return false
                }
                if alreadyCancelled { c.resume(); return }
                let handle = schedule(at: deadline) {
                    let c = box.withLock { s -> CheckedContinuation<Void, Never>? in defer { s.0 = nil }; return s.0 }
                    c?.resume()
                }
                box.withLock { $0.1 = handle }
            }
        } onCancel: {
            let (c, h) = box.withLock { s -> (CheckedContinuation<Void, Never>?, TimerHandle?) in
                s.2 = true
                defer { s.0 = nil }
                return (s.0, s.1)
            }
            h?.cancel()
            c?.resume()
        }
    }
}

/// Cancels a scheduled timer; cancelling after it fired does nothing.
public final class TimerHandle: Sendable {
    private let cancelled = Mutex(false)

    public init() {}

    public func cancel() { cancelled.withLock { $0 = true } }
    public var isCancelled: Bool { cancelled.withLock { $0 } }
}

/// Wall-clock time and Dispatch timers.
public struct SystemClock: ControllerClock {
    public init() {}

    public func now() -> Date { Date() }

    @discardableResult
    public func schedule(at deadline: Date, _ action: @escaping @Sendable () -> Void) -> TimerHandle {
        let handle = TimerHandle()
        let delay = max(0, deadline.timeIntervalSinceNow)
        DispatchQueue.global().asyncAfter(deadline: .now() + delay) {
            if !handle.isCancelled { action() }
        }
        return handle
    }
}
