import Foundation
import Model

/// A backend's handle for one workload (a local process group, a Pod).
public struct WorkloadID: Hashable, Codable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// What to run for one replica.
public struct WorkloadRequest: Sendable, Equatable {
    /// Unique and stable: the replica object's name. Creating the same name twice returns the
    /// existing workload, so a retried reconcile never starts a duplicate.
    public var name: String
    public var project: String
    /// Labels the backend keeps on the workload, so inventory can find it after a restart.
    public var labels: [String: String]
    public var template: ReplicaTemplate
    /// Environment the backend adds (`DSTACK_RUN_NAME`, `DSTACK_REPLICA_NUM`, …).
    public var systemEnvironment: [String: String]
    /// Runs on the machine's own network (a gateway process listening on its ports) instead
    /// of a network of its own.
    public var hostNetwork = false
    /// Environment that is a secret (a gateway's credential): never written where the
    /// workload's description can be read (on Kubernetes, a Secret the Pod refers to).
    public var secretEnvironment: [String: String] = [:]

    public init(name: String, project: String, labels: [String: String], template: ReplicaTemplate, systemEnvironment: [String: String]) {
        self.name = name
        self.project = project
        self.labels = labels
        self.template = template
        self.systemEnvironment = systemEnvironment
    }
}

/// What a backend observes about a workload.
public enum WorkloadState: Sendable, Equatable {
    /// Accepted, waiting for capacity or being scheduled.
    case pending(String?)
    /// Fetching the image.
    case pulling
    /// Started and reachable at `endpoint` (`host:port`).
    case running(endpoint: String)
    /// Asked to stop, still running.
    case stopping
    /// The command ended with this exit status.
    case exited(Int32)
    /// The backend could not run it (no capacity, bad image, lost node).
    case failed(TerminationReason, String)
    /// Removed by someone else (a Pod deleted outside Setpoint), and why: it can be created
    /// again under the same name. What to do is the replica controller's decision.
    case vanished(String)
}

public struct WorkloadStatus: Sendable, Equatable {
    public var id: WorkloadID
    public var labels: [String: String]
    public var state: WorkloadState

    public init(id: WorkloadID, labels: [String: String], state: WorkloadState) {
        self.id = id
        self.labels = labels
        self.state = state
    }
}

public struct LogLine: Sendable, Equatable {
    public var time: Date
    public var text: String
    public init(time: Date, text: String) {
        self.time = time
        self.text = text
    }
}

public struct BackendError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Nothing can run this now (retry event `no-capacity`).
        case noCapacity
        /// The request cannot work as given (not retried until it changes).
        case invalid
        /// The backend is not reachable right now (retried with backoff).
        case unavailable
        case notFound
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// Where replicas run. Implementations: local processes, Kubernetes Pods, and a fake for tests.
///
/// Every call is idempotent: `create` by name, `stop` and `delete` of a workload that is gone
/// succeed. `changeStreams()` announce every state change so controllers watch instead of polling;
/// `inventory` lists what exists by label, for garbage collection and restart adoption.
public protocol ComputeBackend: Sendable {
    var name: String { get }
    func offers() async throws -> [Offer]
    func create(_ request: WorkloadRequest) async throws -> WorkloadID
    func status(_ id: WorkloadID) async throws -> WorkloadStatus?
    /// `graceful`: ask the command to stop (SIGTERM); otherwise kill it.
    func stop(_ id: WorkloadID, graceful: Bool) async throws
    /// Removes the workload and what it holds; stops it first if needed.
    func delete(_ id: WorkloadID) async throws
    func inventory(labels: [String: String]) async throws -> [WorkloadStatus]
    /// Every state change, as one stream per source (a set of backends has one per member):
    /// the consumer reads them side by side, in tasks of its own.
    func changeStreams() -> [AsyncStream<WorkloadStatus>]
    func logs(_ id: WorkloadID, follow: Bool) -> AsyncThrowingStream<LogLine, Error>
    /// What the backend tells about workloads beyond their state (a cluster's Pod events), one
    /// stream per source.
    func eventStreams() -> [AsyncStream<WorkloadEvent>]
    /// Whether a workload ID is this backend's (a set of backends asks each in turn).
    func owns(_ id: WorkloadID) -> Bool
    /// Why this backend cannot run a replica of this kind at all (the local backend runs no
    /// image), or nil; asked at plan time so the user hears it before anything is stored.
    func refusal(image: String?, docker: Bool) -> String?
}

/// The address in front of a gateway's workloads (a `LoadBalancer` Service on Kubernetes).
public enum FrontDoorState: Sendable, Equatable {
    /// No front door exists yet.
    case missing
    /// Created at this time; the infrastructure has not given it an address yet.
    case waiting(since: Date)
    case ready(address: String)
}

/// Backends that put one stable address in front of a gateway's replicas (kept across
/// redeploys of the replicas, so the address users point DNS at does not change, dstack #3924).
public protocol GatewayFrontDoors: Sendable {
    /// Whether this backend serves `region` (a kubeconfig context).
    func servesGateways(region: String) -> Bool
    func frontDoor(project: String, gateway: String, region: String) async throws -> FrontDoorState
    /// Creates it: `ports` are (name, public port, replica port); the replicas carry `selector`.
    func createFrontDoor(project: String, gateway: String, region: String, selector: [String: String], ports: [(String, Int, Int)]) async throws
    func deleteFrontDoor(project: String, gateway: String, region: String) async throws
}

/// A remark about a workload for the replica's events (`setpoint describe`).
public struct WorkloadEvent: Sendable, Equatable {
    public var labels: [String: String]
    public var warning: Bool
    public var reason: String
    public var message: String

    public init(labels: [String: String], warning: Bool, reason: String, message: String) {
        self.labels = labels
        self.warning = warning
        self.reason = reason
        self.message = message
    }
}

extension ComputeBackend {
    public func eventStreams() -> [AsyncStream<WorkloadEvent>] { [] }
    public func owns(_ id: WorkloadID) -> Bool { true }
    public func refusal(image: String?, docker: Bool) -> String? { nil }
}

/// Checks a replica's readiness probe.
public protocol ReadinessProber: Sendable {
    func probe(endpoint: String, _ probe: ProbeTemplate) async -> Bool
    /// Whether the app answers HTTP at all (any status): readiness when no probe is configured,
    /// so that a replica is not in rotation before its app listens.
    func answers(endpoint: String) async -> Bool
    /// Readiness the backend already observes for the workload at `endpoint` (a kubelet's
    /// readiness probe, through the Pod watch), or nil when Setpoint probes itself.
    func observedReadiness(endpoint: String) -> Bool?
}

extension ReadinessProber {
    public func answers(endpoint: String) async -> Bool { true }
    public func observedReadiness(endpoint: String) -> Bool? { nil }
}
