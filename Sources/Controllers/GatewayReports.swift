import Foundation
import Model
import Synchronization

/// What the gateway replicas last reported (`POST /api/v1/gateway/report`, every second): their
/// liveness for the gateway controller, and their traffic per service for the autoscaler. A
/// replica silent for longer than `timeout` counts for nothing: it never holds scaling back
/// (dstack waits for every replica's stats, #3959).
public final class GatewayReports: Sendable {
    struct Entry {
        var at: Date
        var report: GatewayReport
        /// Received by another server and read from its record (not passed on again).
        var relayed = false
    }

    /// Reports older than this are dropped.
    public let timeout: TimeInterval
    private let entries = Mutex<[ObjectKey: [Int: Entry]]>([:])
    private let onLive = Mutex<(@Sendable (ObjectKey) -> Void)?>(nil)
    private let onWaiting = Mutex<(@Sendable (String, String) -> Void)?>(nil)

    public init(timeout: TimeInterval = 5) { self.timeout = timeout }

    /// Called when a replica of this gateway starts (or resumes) reporting.
    public func setLive(_ handler: @escaping @Sendable (ObjectKey) -> Void) { onLive.withLock { $0 = handler } }
    /// Called when a request waits on a gateway at a service with no ready replica (project, run).
    public func setWaiting(_ handler: @escaping @Sendable (String, String) -> Void) { onWaiting.withLock { $0 = handler } }

    /// - Parameter relayed: the report reached another server, which wrote it to the store.
    public func record(gateway: ObjectKey, _ report: GatewayReport, now: Date, relayed: Bool = false) {
        let resumed = entries.withLock { all -> Bool? in
            let before = all[gateway]?[report.replica]
            // A relayed copy never replaces a newer report received here.
            if relayed, let before, before.at >= now { return nil }
            all[gateway, default: [:]][report.replica] = Entry(at: now, report: report, relayed: relayed)
            return before.map { now.timeIntervalSince($0.at) > timeout } ?? true
        }
        guard let resumed else { return }
        if resumed { onLive.withLock { $0 }?(gateway) }
        if !report.waiting.isEmpty, let waiting = onWaiting.withLock({ $0 }) {
            for run in report.waiting { waiting(gateway.project, run) }
        }
    }

    /// When each replica of the gateway last reported.
    public func lastReports(gateway: ObjectKey) -> [Int: Date] {
        entries.withLock { $0[gateway]?.mapValues(\.at) ?? [:] }
    }

    /// The replicas' traffic for one service, summed over the replicas that reported within
    /// `timeout`; nil when none did.
    public func demand(project: String, run: String, now: Date) -> Demand? {
        let reports = entries.withLock { all -> [GatewayReport.Service] in
            all.filter { $0.key.project == project }.values.flatMap { replicas in
                replicas.values.filter { now.timeIntervalSince($0.at) <= timeout }
                    .compactMap { e in e.report.services.first { $0.project == project && $0.run == run } }
            }
        }
        guard !reports.isEmpty else { return nil }
        var total = Demand(requests: [:], observed: 0)
        for r in reports { total = total + Demand(r) }
        return total
    }

    /// The reports this server received itself within `timeout` (not relayed ones), for the
    /// other servers: each with its gateway and its age.
    public func received(now: Date) -> [RelayedGatewayReport] {
        entries.withLock { all in
            all.flatMap { key, replicas in
                replicas.values.filter { !$0.relayed && now.timeIntervalSince($0.at) <= timeout }.map {
                    RelayedGatewayReport(project: key.project, gateway: key.name, report: $0.report, age: max(0, now.timeIntervalSince($0.at)))
                }
            }.sorted { ($0.project, $0.gateway, $0.report.replica) < ($1.project, $1.gateway, $1.report.replica) }
        }
    }

    /// Forgets a deleted gateway.
    public func forget(gateway: ObjectKey) { entries.withLock { _ = $0.removeValue(forKey: gateway) } }
}

extension Demand {
    /// What a gateway or another server reported for a service.
    public init(_ r: GatewayReport.Service) {
        var requests: [Int: Int] = [:]
        for (k, v) in r.requests { if let window = Int(k) { requests[window] = v } }
        self.init(requests: requests, inFlight: r.inFlight, held: r.held, observed: r.observed)
    }

    /// Two sources' counts together (the server's proxy and the gateways'): requests and
    /// in-flight add up; a window is full once either source has watched it whole.
    public static func + (a: Demand, b: Demand) -> Demand {
        Demand(requests: a.requests.merging(b.requests, uniquingKeysWith: +), inFlight: a.inFlight + b.inFlight,
               held: a.held + b.held, observed: max(a.observed, b.observed))
    }
}
