import Foundation
import Reconcile
import Synchronization

/// Prometheus metrics of the server (text exposition format 0.0.4 at `/metrics`): reconciles
/// by controller and outcome with their durations, work-queue depths, and per service the
/// proxy's requests by status class, latency, requests in flight and held, and replicas
/// desired and ready.
public final class PrometheusMetrics: ControllerMetrics, Sendable {
    static let reconcileBuckets: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]

    struct Histogram {
        var counts = [Int](repeating: 0, count: PrometheusMetrics.reconcileBuckets.count + 1)
        var sum = 0.0
        var count = 0
    }

    struct State {
        var reconciles: [String: [String: Int]] = [:]
        var durations: [String: Histogram] = [:]
        var depths: [String: Int] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func reconciled(controller: String, duration: TimeInterval, outcome: String) {
        let bucket = Self.reconcileBuckets.firstIndex { duration <= $0 } ?? Self.reconcileBuckets.count
        state.withLock { s in
            s.reconciles[controller, default: [:]][outcome, default: 0] += 1
            s.durations[controller, default: Histogram()].counts[bucket] += 1
            s.durations[controller, default: Histogram()].sum += duration
            s.durations[controller, default: Histogram()].count += 1
        }
    }

    public func queueDepth(controller: String, depth: Int) {
        state.withLock { $0.depths[controller] = depth }
    }

    /// Desired and ready replicas of one service.
    public struct ServiceReplicas: Sendable {
        public var project: String
        public var run: String
        public var desired: Int
        public var ready: Int

        public init(project: String, run: String, desired: Int, ready: Int) {
            self.project = project
            self.run = run
            self.desired = desired
            self.ready = ready
        }
    }

    public func render(routes: [ServiceRoute], replicas: [ServiceReplicas]) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func line(_ text: String) { out += text + "\n" }
        func esc(_ v: String) -> String {
            v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        func num(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) }
        /// One histogram series: cumulative buckets, `+Inf`, sum and count.
        func histogram(_ name: String, _ labels: String, bounds: [Double], counts: [Int], sum: Double, count: Int) {
            var cumulative = 0
            for (i, bound) in bounds.enumerated() {
                cumulative += counts[i]
                line("\(name)_bucket{\(labels),le=\"\(num(bound))\"} \(cumulative)")
            }
            line("\(name)_bucket{\(labels),le=\"+Inf\"} \(count)")
            line("\(name)_sum{\(labels)} \(sum)")
            line("\(name)_count{\(labels)} \(count)")
        }

        line("# HELP setpoint_reconcile_total Reconciles by controller and outcome.")
        line("# TYPE setpoint_reconcile_total counter")
        for (c, outcomes) in s.reconciles.sorted(by: { $0.key < $1.key }) {
            for (o, n) in outcomes.sorted(by: { $0.key < $1.key }) {
                line("setpoint_reconcile_total{controller=\"\(esc(c))\",outcome=\"\(esc(o))\"} \(n)")
            }
        }
        line("# HELP setpoint_reconcile_duration_seconds How long reconciles take.")
        line("# TYPE setpoint_reconcile_duration_seconds histogram")
        for (c, h) in s.durations.sorted(by: { $0.key < $1.key }) {
            histogram("setpoint_reconcile_duration_seconds", "controller=\"\(esc(c))\"", bounds: Self.reconcileBuckets,
                      counts: h.counts, sum: h.sum, count: h.count)
        }
        line("# HELP setpoint_workqueue_depth Keys waiting in a controller's work queue.")
        line("# TYPE setpoint_workqueue_depth gauge")
        for (c, d) in s.depths.sorted(by: { $0.key < $1.key }) {
            line("setpoint_workqueue_depth{controller=\"\(esc(c))\"} \(d)")
        }

        let sorted = routes.sorted { $0.key < $1.key }
        let snapshots = sorted.map { ($0, $0.stats.snapshot) }
        line("# HELP setpoint_proxy_requests_total Requests the proxy answered per service, by status class.")
        line("# TYPE setpoint_proxy_requests_total counter")
        for (r, snap) in snapshots {
            for (i, n) in snap.byClass.enumerated() where i >= 1 && (n > 0 || i == 2) {
                line("setpoint_proxy_requests_total{project=\"\(esc(r.project))\",service=\"\(esc(r.run))\",code=\"\(i)xx\"} \(n)")
            }
        }
        line("# HELP setpoint_proxy_request_duration_seconds Time from a request's head to the end of its response.")
        line("# TYPE setpoint_proxy_request_duration_seconds histogram")
        for (r, snap) in snapshots {
            histogram("setpoint_proxy_request_duration_seconds", "project=\"\(esc(r.project))\",service=\"\(esc(r.run))\"",
                      bounds: ServiceStats.buckets, counts: snap.histogram, sum: snap.latencySum, count: snap.latencyCount)
        }
        line("# HELP setpoint_proxy_in_flight Requests in flight per service (held ones included).")
        line("# TYPE setpoint_proxy_in_flight gauge")
        for (r, snap) in snapshots { line("setpoint_proxy_in_flight{project=\"\(esc(r.project))\",service=\"\(esc(r.run))\"} \(snap.inFlight)") }
        line("# HELP setpoint_proxy_held Requests waiting for a first ready replica per service.")
        line("# TYPE setpoint_proxy_held gauge")
        for (r, snap) in snapshots { line("setpoint_proxy_held{project=\"\(esc(r.project))\",service=\"\(esc(r.run))\"} \(snap.held)") }
        line("# HELP setpoint_replicas_desired Replicas a service should have.")
        line("# TYPE setpoint_replicas_desired gauge")
        for r in replicas { line("setpoint_replicas_desired{project=\"\(esc(r.project))\",service=\"\(esc(r.run))\"} \(r.desired)") }
        line("# HELP setpoint_replicas_ready Replicas of a service that are ready.")
        line("# TYPE setpoint_replicas_ready gauge")
        for r in replicas { line("setpoint_replicas_ready{project=\"\(esc(r.project))\",service=\"\(esc(r.run))\"} \(r.ready)") }
        return out
    }
}
