import Backend
import Foundation
import Model
import Reconcile
import Synchronization

/// A `ComputeBackend` in memory, with the knobs tests need: start latency, capacity, failed
/// creates, exits, interruptions, health, and commands that ignore a graceful stop. It is also
/// the `ReadinessProber` for its own workloads.
public final class FakeBackend: ComputeBackend, ReadinessProber {
    public struct Workload: Sendable, Equatable {
        public var id: WorkloadID
        public var request: WorkloadRequest
        public var state: WorkloadState
        public var healthy = true
        public var stopRequests = 0
    }

    private struct State {
        var workloads: [WorkloadID: Workload] = [:]
        var startDelay: TimeInterval
        var capacity: Int?
        var failCreates: [(match: @Sendable (WorkloadRequest) -> Bool, error: BackendError)] = []
        var ignoreGracefulStop = false
        var healthRule: (@Sendable (WorkloadRequest) -> Bool)?
        var creates = 0
        var deletes = 0
        var probes = 0
    }

    public let name = "fake"
    private let clock: any ControllerClock
    private let state: Mutex<State>
    private let broadcaster = StatusBroadcaster()

    public init(clock: any ControllerClock, startDelay: TimeInterval = 0, capacity: Int? = nil) {
        self.clock = clock
        self.state = Mutex(State(startDelay: startDelay, capacity: capacity))
    }

    // MARK: knobs

    public func setStartDelay(_ seconds: TimeInterval) { state.withLock { $0.startDelay = seconds } }
    public func setCapacity(_ capacity: Int?) { state.withLock { $0.capacity = capacity } }
    public func setIgnoreGracefulStop(_ ignore: Bool) { state.withLock { $0.ignoreGracefulStop = ignore } }

    /// Decides the health of workloads created from now on (`nil`: healthy).
    public func setHealthRule(_ rule: (@Sendable (WorkloadRequest) -> Bool)?) { state.withLock { $0.healthRule = rule } }

    /// Makes every create matching `match` fail with `error` until cleared.
    public func failCreates(where match: @escaping @Sendable (WorkloadRequest) -> Bool, with error: BackendError) {
        state.withLock { $0.failCreates.append((match, error)) }
    }

    public func clearCreateFailures() { state.withLock { $0.failCreates = [] } }

    /// Ends the workload of a replica with an exit status, as if its command returned.
    public func exit(_ replicaName: String, code: Int32) { transition(replicaName) { _ in .exited(code) } }

    /// Loses the workload as a spot interruption would.
    public func interrupt(_ replicaName: String) {
        transition(replicaName) { _ in .failed(.interruptedByNoCapacity, "spot instance interrupted") }
    }

    public func setHealthy(_ replicaName: String, _ healthy: Bool) {
        state.withLock { s in
            if let id = s.workloads.values.first(where: { $0.request.name == replicaName })?.id { s.workloads[id]?.healthy = healthy }
        }
    }

    public func setHealthy(where match: (WorkloadRequest) -> Bool, _ healthy: Bool) {
        state.withLock { s in
            for (id, w) in s.workloads where match(w.request) { s.workloads[id]?.healthy = healthy }
        }
    }

    // MARK: observation

    public var workloads: [Workload] { state.withLock { Array($0.workloads.values) } }
    public func workload(named name: String) -> Workload? { state.withLock { s in s.workloads.values.first { $0.request.name == name } } }
    public var running: [Workload] {
        workloads.filter { if case .running = $0.state { return true } else { return false } }
    }
    public var createCount: Int { state.withLock { $0.creates } }
    public var deleteCount: Int { state.withLock { $0.deletes } }

    // MARK: ComputeBackend

    public func offers() async throws -> [Offer] {
        [Offer(backend: name, region: "local", instance: "fake", cpus: 64, memoryGB: 512, diskGB: 10_000)]
    }

    public func create(_ request: WorkloadRequest) async throws -> WorkloadID {
        let id = WorkloadID("fake-\(request.project)-\(request.name)")
        let (status, delay): (WorkloadStatus?, TimeInterval) = try state.withLock { s in
            if s.workloads[id] != nil { return (nil, 0) }
            if let failure = s.failCreates.first(where: { $0.match(request) }) { throw failure.error }
            if let capacity = s.capacity {
                let live = s.workloads.values.filter { !Self.isFinished($0.state) }.count
                if live >= capacity { throw BackendError(.noCapacity, "no capacity: \(live) of \(capacity) workloads in use") }
            }
            s.creates += 1
            let state: WorkloadState = s.startDelay > 0 ? .pending("starting") : .running(endpoint: Self.endpoint(id, request))
            s.workloads[id] = Workload(id: id, request: request, state: state, healthy: s.healthRule?(request) ?? true)
            return (WorkloadStatus(id: id, labels: request.labels, state: state), s.startDelay)
        }
        if let status {
            announce(status)
            if delay > 0 {
                clock.schedule(at: clock.now().addingTimeInterval(delay)) { [weak self] in
                    self?.transition(id: id) { current in
                        if case .pending = current { return .running(endpoint: Self.endpoint(id, request)) }
                        return current
                    }
                }
            }
        }
        return id
    }

    public func status(_ id: WorkloadID) async throws -> WorkloadStatus? {
        state.withLock { s in s.workloads[id].map { WorkloadStatus(id: id, labels: $0.request.labels, state: $0.state) } }
    }

    public func stop(_ id: WorkloadID, graceful: Bool) async throws {
        let ignore = state.withLock { s -> Bool in
            s.workloads[id]?.stopRequests += 1
            return s.ignoreGracefulStop
        }
        transition(id: id) { current in
            if Self.isFinished(current) { return current }
            if graceful { return ignore ? .stopping : .exited(143) }
            return .exited(137)
        }
    }

    public func delete(_ id: WorkloadID) async throws {
        state.withLock { s in
            if s.workloads.removeValue(forKey: id) != nil { s.deletes += 1 }
        }
    }

    public func inventory(labels: [String: String]) async throws -> [WorkloadStatus] {
        state.withLock { s in
            s.workloads.values.filter { w in labels.allSatisfy { w.request.labels[$0.key] == $0.value } }
                .map { WorkloadStatus(id: $0.id, labels: $0.request.labels, state: $0.state) }
        }
    }

    public func changes() -> AsyncStream<WorkloadStatus> { broadcaster.subscribe() }
    public func changeStreams() -> [AsyncStream<WorkloadStatus>] { [changes()] }

    public func logs(_ id: WorkloadID, follow: Bool) -> AsyncThrowingStream<LogLine, Error> {
        AsyncThrowingStream { c in
            c.yield(LogLine(time: clock.now(), text: "fake workload \(id)"))
            c.finish()
        }
    }

    // MARK: ReadinessProber

    /// Probes run so far.
    public var probeCount: Int { state.withLock { $0.probes } }

    public func probe(endpoint: String, _ probe: ProbeTemplate) async -> Bool {
        state.withLock { s in
            s.probes += 1
            return s.workloads.values.contains { w in
                if case .running(let e) = w.state, e == endpoint { return w.healthy }
                return false
            }
        }
    }

    // MARK: helpers

    private static func endpoint(_ id: WorkloadID, _ request: WorkloadRequest) -> String {
        "\(id.rawValue):\(request.template.port)"
    }

    static func isFinished(_ state: WorkloadState) -> Bool {
        switch state {
        case .exited, .failed: return true
        default: return false
        }
    }

    private func transition(_ replicaName: String, _ change: (WorkloadState) -> WorkloadState) {
        let id = state.withLock { s in s.workloads.values.first { $0.request.name == replicaName }?.id }
        if let id { transition(id: id, change) }
    }

    private func transition(id: WorkloadID, _ change: (WorkloadState) -> WorkloadState) {
        let status: WorkloadStatus? = state.withLock { s in
            guard let w = s.workloads[id] else { return nil }
            let next = change(w.state)
            if next == w.state { return nil }
            s.workloads[id]?.state = next
            return WorkloadStatus(id: id, labels: w.request.labels, state: next)
        }
        if let status { announce(status) }
    }

    private func announce(_ status: WorkloadStatus) { broadcaster.announce(status) }
}
