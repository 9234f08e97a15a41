import Foundation
import Model

/// Several backends behind one: a replica goes to the first member its `backends` / `regions`
/// allow that has room (members are tried in order; `noCapacity` moves on to the next), and
/// every other call goes to the member that owns the workload ID.
public final class BackendSet: ComputeBackend, ReadinessProber {
    public struct Member: Sendable {
        public var backend: any ComputeBackend
        /// The backend type as `backends:` names it (`local`, `kubernetes`).
        public var type: String
        /// As `regions:` names it (for Kubernetes: the kubeconfig context).
        public var region: String
        public var prober: (any ReadinessProber)?

        public init(backend: any ComputeBackend, type: String, region: String, prober: (any ReadinessProber)? = nil) {
            self.backend = backend
            self.type = type
            self.region = region
            self.prober = prober
        }
    }

    public let members: [Member]
    /// Probes HTTP for members that do not observe readiness themselves.
    private let fallbackProber: any ReadinessProber
    public let name = "set"

    public init(_ members: [Member], prober: any ReadinessProber) {
        self.members = members
        self.fallbackProber = prober
    }

    /// Members a template may use, in order.
    public func candidates(_ template: ReplicaTemplate) -> [Member] {
        members.filter { m in
            (template.backends.map { $0.contains(m.type) } ?? true) && (template.regions.map { $0.contains(m.region) } ?? true)
        }
    }

    private func owner(_ id: WorkloadID) -> (any ComputeBackend)? { members.first { $0.backend.owns(id) }?.backend }

    /// A refusal only when every member refuses (the first one's words).
    public func refusal(image: String?, docker: Bool) -> String? {
        let refusals = members.map { $0.backend.refusal(image: image, docker: docker) }
        guard !refusals.isEmpty, refusals.allSatisfy({ $0 != nil }) else { return nil }
        return refusals.first ?? nil
    }

    public func offers() async throws -> [Offer] {
        var all: [Offer] = []
        for m in members {
            do { all += try await m.backend.offers() } catch {
                // One unreachable cluster does not hide the others' offers.
                continue
            }
        }
        return all
    }

    public func create(_ request: WorkloadRequest) async throws -> WorkloadID {
        let candidates = candidates(request.template)
        guard !candidates.isEmpty else {
            let configured = members.map { "\($0.type) (region \($0.region))" }.joined(separator: ", ")
            throw BackendError(.noCapacity, "no configured backend matches backends \(request.template.backends ?? ["any"]) and regions \(request.template.regions ?? ["any"]); configured: \(configured)")
        }
        var last: BackendError?
        // Members that cannot run this kind of replica at all are passed over.
        let refusals = candidates.map { $0.backend.refusal(image: request.template.image, docker: false) }
        let able = zip(candidates, refusals).filter { $0.1 == nil }.map(\.0)
        if able.isEmpty, let why = refusals.first ?? nil { throw BackendError(.invalid, why) }
        for m in able {
            do { return try await m.backend.create(request) } catch let e as BackendError where e.code == .noCapacity {
                last = e
            }
        }
        throw last ?? BackendError(.noCapacity, "no backend has capacity")
    }

    public func status(_ id: WorkloadID) async throws -> WorkloadStatus? { try await owner(id)?.status(id) }
    public func stop(_ id: WorkloadID, graceful: Bool) async throws { try await owner(id)?.stop(id, graceful: graceful) }
    public func delete(_ id: WorkloadID) async throws { try await owner(id)?.delete(id) }

    public func inventory(labels: [String: String]) async throws -> [WorkloadStatus] {
        // A member that cannot answer now is left out (its garbage waits for the next pass);
        // only when none answers is it an error.
        var all: [WorkloadStatus] = []
        var failures: [any Error] = []
        for m in members {
            do { all += try await m.backend.inventory(labels: labels) } catch { failures.append(error) }
        }
        if let first = failures.first, failures.count == members.count { throw first }
        return all
    }

    public func changeStreams() -> [AsyncStream<WorkloadStatus>] { members.flatMap { $0.backend.changeStreams() } }
    public func eventStreams() -> [AsyncStream<WorkloadEvent>] { members.flatMap { $0.backend.eventStreams() } }

    public func logs(_ id: WorkloadID, follow: Bool) -> AsyncThrowingStream<LogLine, Error> {
        guard let owner = owner(id) else { return AsyncThrowingStream { $0.finish() } }
        return owner.logs(id, follow: follow)
    }

    public func owns(_ id: WorkloadID) -> Bool { owner(id) != nil }

    // MARK: ReadinessProber

    public func probe(endpoint: String, _ probe: ProbeTemplate) async -> Bool { await fallbackProber.probe(endpoint: endpoint, probe) }
    public func answers(endpoint: String) async -> Bool { await fallbackProber.answers(endpoint: endpoint) }
    public func observedReadiness(endpoint: String) -> Bool? {
        for m in members { if let r = m.prober?.observedReadiness(endpoint: endpoint) { return r } }
        return nil
    }
}

/// Front doors go to the member that serves the gateway's region.
extension BackendSet: GatewayFrontDoors {
    func frontDoors(_ region: String) -> (any GatewayFrontDoors)? {
        members.lazy.compactMap { $0.backend as? any GatewayFrontDoors }.first { $0.servesGateways(region: region) }
    }

    public func servesGateways(region: String) -> Bool { frontDoors(region) != nil }

    public func frontDoor(project: String, gateway: String, region: String) async throws -> FrontDoorState {
        guard let member = frontDoors(region) else { throw BackendError(.invalid, "no configured cluster is region \(region)") }
        return try await member.frontDoor(project: project, gateway: gateway, region: region)
    }

    public func createFrontDoor(project: String, gateway: String, region: String, selector: [String: String], ports: [(String, Int, Int)]) async throws {
        guard let member = frontDoors(region) else { throw BackendError(.invalid, "no configured cluster is region \(region)") }
        try await member.createFrontDoor(project: project, gateway: gateway, region: region, selector: selector, ports: ports)
    }

    public func deleteFrontDoor(project: String, gateway: String, region: String) async throws {
        try await frontDoors(region)?.deleteFrontDoor(project: project, gateway: gateway, region: region)
    }
}
