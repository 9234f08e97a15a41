import Controllers
import Foundation
import SetpointConfiguration
import Testing

/// The autoscaling policy with explicit times: dstack's RPS target tracking (its cases from
/// `autoscalers.py`) and the panic mode.
struct AutoscalePolicyTests {
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    func scaling(target: Double = 10, window: Int? = nil, up: Int = 300, down: Int = 600) -> ScalingSpec {
        ScalingSpec(metric: "rps", target: target, window: window, scaleUpDelay: up, scaleDownDelay: down)
    }

    /// Steady load: `rps` over every window.
    func demand(rps: Double, observed: TimeInterval = 3600) -> Demand {
        var requests: [Int: Int] = [:]
        for w in [2, 3, 6, 30, 60, 300] { requests[w] = Int((rps * Double(w)).rounded()) }
        return Demand(requests: requests, observed: observed)
    }

    func decide(_ scaling: ScalingSpec, min: Int = 0, max: Int = 10, current: Int, demand: Demand?, lastScaled: TimeInterval? = 3600,
                panicSince: Date? = nil, now: TimeInterval = 0) -> AutoscalePolicy.Decision {
        AutoscalePolicy.decide(.init(scaling: scaling, min: min, max: max, current: current, demand: demand,
                                     lastScaledAt: lastScaled.map { t0.addingTimeInterval(now - $0) }, panicSince: panicSince,
                                     now: t0.addingTimeInterval(now)))
    }

    @Test func noStatisticsKeepTheCurrentCount() {
        #expect(decide(scaling(), current: 3, demand: nil).desired == 3)
        // …clamped to the range.
        #expect(decide(scaling(), min: 1, max: 2, current: 5, demand: nil).desired == 2)
    }

    @Test func desiredIsTheCeilingOfRateOverTarget() {
        // dstack: rps = requests in window / window; desired = ceil(rps / target), clamped.
        #expect(decide(scaling(), current: 1, demand: demand(rps: 25)).desired == 3)
        #expect(decide(scaling(), current: 1, demand: demand(rps: 10)).desired == 1)
        #expect(decide(scaling(), max: 2, current: 1, demand: demand(rps: 35)).desired == 2)
        #expect(decide(scaling(), min: 2, current: 2, demand: demand(rps: 0)).desired == 2)
    }

    @Test func windowSelectsWhichCountIsUsed() {
        // 60 requests in the last 30 s, and none before: 2 rps over 30 s, 1 over 60 s, 0.2 over 300 s.
        let d = Demand(requests: [3: 3, 6: 6, 30: 60, 60: 60, 300: 60], observed: 3600)
        #expect(decide(scaling(target: 1, window: 30), current: 2, demand: d).desired == 2)
        #expect(decide(scaling(target: 1, window: 60), current: 2, demand: d).desired == 1)
        #expect(decide(scaling(target: 0.1, window: 300), current: 1, demand: Demand(requests: [30: 3, 300: 60], observed: 3600)).desired == 2)
    }

    @Test func scaleUpWaitsForScaleUpDelayExceptFromZero() {
        // Last scaled 100 s ago, scale_up_delay 300: not yet (1.5× the capacity is no panic).
        #expect(decide(scaling(), current: 2, demand: demand(rps: 25), lastScaled: 100).desired == 2)
        #expect(decide(scaling(), current: 2, demand: demand(rps: 25), lastScaled: 300).desired == 3)
        // From zero: at once, even right after the last scale event.
        let fromZero = decide(scaling(), current: 0, demand: demand(rps: 0.02), lastScaled: 1)
        #expect(fromZero.desired == 1)
        #expect(fromZero.reason.hasPrefix("scale up from zero"))
    }

    @Test func scaleDownWaitsForScaleDownDelay() {
        #expect(decide(scaling(), current: 3, demand: demand(rps: 5), lastScaled: 599).desired == 3)
        #expect(decide(scaling(), current: 3, demand: demand(rps: 5), lastScaled: 600).desired == 1)
        // Idle: to zero when the range allows it, to the minimum otherwise.
        #expect(decide(scaling(), current: 2, demand: demand(rps: 0)).desired == 0)
        #expect(decide(scaling(), min: 1, current: 2, demand: demand(rps: 0)).desired == 1)
    }

    @Test func aWindowNotFullyObservedNeverScalesDown() {
        // A restarted server has counted for 20 s: no scale-down from a 60 s window…
        #expect(decide(scaling(), current: 3, demand: demand(rps: 0, observed: 20)).desired == 3)
        // …but the rate it saw counts over what it saw, for scaling up.
        let d = Demand(requests: [6: 120, 60: 400], observed: 20)
        #expect(decide(scaling(), current: 0, demand: d).desired == 2)
    }

    @Test func panicScalesUpAtOnceOnATenfoldStep() {
        // 1 replica at its target of 10 rps; the load steps to 100 rps. The 60 s window has seen
        // 3 s of it (1 rps * 57 + 100 * 3 = 357 requests → 6 rps: no change by itself), the 6 s
        // panic window 3 s of it ((10 * 3 + 100 * 3) / 6 = 55 rps → 6 replicas ≥ 2 × 1).
        let step = Demand(requests: [6: 330, 60: 870], observed: 3600)
        let d = decide(scaling(), current: 1, demand: step, lastScaled: 10)
        #expect(d.desired == 6, "scale_up_delay does not hold back a panic")
        #expect(d.panicSince != nil)
        #expect(d.reason.hasPrefix("panic"))
    }

    @Test func noScaleDownWhilePanickingUntilAStableWindowPasses() {
        let since = t0
        // 30 s after panic started the load is gone: hold the count.
        let holding = decide(scaling(down: 0), current: 6, demand: demand(rps: 0), lastScaled: 30, panicSince: since, now: 30)
        #expect(holding.desired == 6 && holding.panicSince == since)
        // A whole stable window (60 s) later: panic ends and the normal rules apply.
        let after = decide(scaling(down: 0), current: 6, demand: demand(rps: 0), lastScaled: 60, panicSince: since, now: 60)
        #expect(after.panicSince == nil && after.desired == 0)
        // The threshold met again renews the panic.
        let renewed = decide(scaling(), current: 2, demand: demand(rps: 60), lastScaled: 5, panicSince: since, now: 50)
        #expect(renewed.panicSince == t0.addingTimeInterval(50) && renewed.desired == 6)
    }

    @Test func belowThePanicThresholdTheDelaysApply() {
        // 1.5× the current capacity is not a panic: wait for scale_up_delay.
        let d = decide(scaling(), current: 2, demand: demand(rps: 30), lastScaled: 10)
        #expect(d.desired == 2 && d.panicSince == nil)
    }

    @Test func panicWindowIsATenthOfTheStableWindow() {
        #expect(AutoscalePolicy.panicWindow(60) == 6)
        #expect(AutoscalePolicy.panicWindow(30) == 3)
        #expect(AutoscalePolicy.panicWindow(300) == 30)
    }
}
