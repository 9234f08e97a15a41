import Foundation
import Model
import Primitives
import Synchronization

/// A service's `rate_limits`: the longest matching prefix applies; each key (client IP, or the
/// value of a header) has a token bucket of `burst + 1` tokens refilled at `rps`, which is what
/// nginx's `limit_req … burst=N nodelay` does on a dstack gateway. A request without the
/// header a limit is keyed by is not limited by it (nginx skips empty keys).
public final class RateLimiter: Sendable {
    let limits: [RouteRateLimit]
    private let buckets: Mutex<[[String: TokenBucket]]>
    /// Past this many keys a limit forgets the ones whose buckets are full again.
    static let sweepAt = 10_000

    public init?(_ limits: [RouteRateLimit]) {
        guard !limits.isEmpty else { return nil }
        self.limits = limits.sorted { $0.prefix.utf8.count > $1.prefix.utf8.count }
        buckets = Mutex(self.limits.map { _ in [:] })
    }

    /// nil when the request may go; otherwise the seconds until it could (`Retry-After`).
    public func check(path: Substring, clientIP: String, header: (String) -> String?,
                      now: TimeInterval = ProcessInfo.processInfo.systemUptime) -> TimeInterval? {
        guard let i = limits.firstIndex(where: { path.hasPrefix($0.prefix) }) else { return nil }
        let limit = limits[i]
        let key: String
        if let name = limit.header {
            guard let value = header(name), !value.isEmpty else { return nil }
            key = value
        } else {
            key = clientIP
        }
        return buckets.withLock { all -> TimeInterval? in
            var bucket = all[i][key] ?? TokenBucket(rate: limit.rps, capacity: Double(limit.burst + 1), now: now)
            let wait = bucket.take(now: now)
            all[i][key] = bucket
            if all[i].count > Self.sweepAt {
                all[i] = all[i].filter { _, b in !b.isFull(at: now) }
            }
            return wait
        }
    }
}
