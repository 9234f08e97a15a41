import Foundation
import Synchronization

/// Request statistics of one service, kept by the proxy: per-second arrival counts for the
/// last 300 s (the autoscaler's 30/60/300 s windows and its panic window), requests in flight
/// and held, and Prometheus counters (by status class) and a latency histogram.
public final class ServiceStats: Sendable {
    public static let horizon = 300
    /// Latency histogram bucket bounds, seconds.
    public static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    struct State {
        var frames = [Int](repeating: 0, count: ServiceStats.horizon)
        /// The second `frames[head]` counts.
        var headSecond: Int = 0
        var inFlight = 0
        var held = 0
        var byClass = [Int](repeating: 0, count: 6)
        var histogram = [Int](repeating: 0, count: ServiceStats.buckets.count + 1)
        var latencySum: Double = 0
        var latencyCount = 0
    }

    let state = Mutex(State())
    public let since: TimeInterval

    public init(now: TimeInterval = ProcessInfo.processInfo.systemUptime) {
        since = now
        state.withLock { $0.headSecond = Int(now) }
    }

    private static func advance(_ s: inout State, to second: Int) {
        guard second > s.headSecond else { return }
        let steps = min(second - s.headSecond, horizon)
        for i in 1...steps { s.frames[(s.headSecond + i) % horizon] = 0 }
        s.headSecond = second
    }

    /// A request arrived (it counts as demand even if it is held or fails).
    public func arrived(now: TimeInterval = ProcessInfo.processInfo.systemUptime) {
        let second = Int(now)
        state.withLock { s in
            Self.advance(&s, to: second)
            s.frames[second % Self.horizon] += 1
            s.inFlight += 1
        }
    }

    /// The request ended with `status` after `seconds`.
    public func finished(status: Int, seconds: Double) {
        let bucket = Self.buckets.firstIndex { seconds <= $0 } ?? Self.buckets.count
        state.withLock { s in
            s.inFlight -= 1
            s.byClass[min(max(status / 100, 0), 5)] += 1
            s.histogram[bucket] += 1
            s.latencySum += seconds
            s.latencyCount += 1
        }
    }

    public func holding(_ delta: Int) { state.withLock { $0.held += delta } }

    /// Requests that arrived in the last `seconds` (the current, partial second included).
    public func requests(last seconds: Int, now: TimeInterval = ProcessInfo.processInfo.systemUptime) -> Int {
        let second = Int(now)
        return state.withLock { s in
            Self.advance(&s, to: second)
            var total = 0
            for i in 0..<min(seconds, Self.horizon) { total += s.frames[(second - i + Self.horizon * 2) % Self.horizon] }
            return total
        }
    }

    public struct Snapshot: Sendable {
        public var inFlight: Int
        public var held: Int
        public var byClass: [Int]
        public var histogram: [Int]
        public var latencySum: Double
        public var latencyCount: Int
    }

    public var snapshot: Snapshot {
        state.withLock { s in
            Snapshot(inFlight: s.inFlight, held: s.held, byClass: s.byClass, histogram: s.histogram,
                     latencySum: s.latencySum, latencyCount: s.latencyCount)
        }
    }

    /// Seconds this service has been counted for.
    public func observed(now: TimeInterval = ProcessInfo.processInfo.systemUptime) -> TimeInterval { now - since }
}
