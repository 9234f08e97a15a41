/// The one token bucket (the work queue's global retry limit, the Kubernetes client's QPS and
/// burst, the proxy's `rate_limits`): `capacity` tokens, refilled at `rate` per second. Time is
/// seconds on the caller's clock (a controller clock, `ContinuousClock`, the proxy's), so the
/// bucket itself is a pure value, tested with numbers.
public struct TokenBucket: Sendable, Equatable {
    public let rate: Double
    public let capacity: Double
    public private(set) var tokens: Double
    public private(set) var updated: Double

    /// A full bucket at `now`.
    public init(rate: Double, capacity: Double, now: Double) {
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now
    }

    private mutating func refill(_ now: Double) {
        if now > updated, rate > 0 { tokens = min(capacity, tokens + (now - updated) * rate) }
        updated = max(updated, now)
    }

    /// Takes a token if there is one (nil); otherwise takes nothing and says how long until one
    /// is there (a request refused with `Retry-After`).
    public mutating func take(now: Double) -> Double? {
        refill(now)
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        return rate > 0 ? (1 - tokens) / rate : .infinity
    }

    /// Takes a token in any case and says how long to wait before using it (0 when there was
    /// one): waiting callers queue up behind each other, as client-go's limiter does.
    public mutating func reserve(now: Double) -> Double {
        refill(now)
        tokens -= 1
        guard tokens < 0 else { return 0 }
        return rate > 0 ? -tokens / rate : .infinity
    }

    /// Full again by `now` (an idle key whose bucket can be forgotten).
    public func isFull(at now: Double) -> Bool {
        tokens + max(0, now - updated) * rate >= capacity
    }
}
