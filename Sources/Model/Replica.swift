import Foundation

/// dstack's job statuses, used for replicas so dstack users read them without a dictionary.
public enum ReplicaPhase: String, Codable, Sendable, CaseIterable {
    case submitted, provisioning, pulling, running, terminating, terminated, aborted, failed, done

    public var isFinished: Bool { [.terminated, .aborted, .failed, .done].contains(self) }
    public var isActive: Bool { !isFinished }
}

/// dstack's retry events.
public enum RetryEvent: String, Codable, Sendable {
    case noCapacity = "no-capacity"
    case interruption
    case error
}

/// dstack's job termination reasons, with the final status each leads to and the retry event
/// it counts as (dstack-behavior.md §2.2).
public enum TerminationReason: String, Codable, Sendable, CaseIterable {
    case failedToStartDueToNoCapacity = "failed_to_start_due_to_no_capacity"
    case interruptedByNoCapacity = "interrupted_by_no_capacity"
    case instanceUnreachable = "instance_unreachable"
    case waitingInstanceLimitExceeded = "waiting_instance_limit_exceeded"
    case waitingRunnerLimitExceeded = "waiting_runner_limit_exceeded"
    case volumeError = "volume_error"
    case gatewayError = "gateway_error"
    case containerExitedWithError = "container_exited_with_error"
    case portsBindingFailed = "ports_binding_failed"
    case creatingContainerError = "creating_container_error"
    case executorError = "executor_error"
    case logQuotaExceeded = "log_quota_exceeded"
    case terminatedByUser = "terminated_by_user"
    case scaledDown = "scaled_down"
    case terminatedByServer = "terminated_by_server"
    case maxDurationExceeded = "max_duration_exceeded"
    case inactivityDurationExceeded = "inactivity_duration_exceeded"
    case terminatedDueToUtilizationPolicy = "terminated_due_to_utilization_policy"
    case doneByRunner = "done_by_runner"
    case abortedByUser = "aborted_by_user"

    public var finalPhase: ReplicaPhase {
        switch self {
        case .terminatedByUser, .scaledDown, .terminatedByServer, .maxDurationExceeded,
             .inactivityDurationExceeded, .terminatedDueToUtilizationPolicy:
            return .terminated
        case .doneByRunner: return .done
        case .abortedByUser: return .aborted
        default: return .failed
        }
    }

    /// The retry event this reason counts as; `nil` for reasons that are never retried.
    public var retryEvent: RetryEvent? {
        switch self {
        case .failedToStartDueToNoCapacity: return .noCapacity
        case .interruptedByNoCapacity: return .interruption
        default: return finalPhase == .failed ? .error : nil
        }
    }
}

/// What a replica runs: the parts of its group's configuration a backend needs. Two replicas
/// with the same template run the same thing; a template change is what a rollout replaces.
public struct ReplicaTemplate: Codable, Equatable, Sendable, Hashable {
    public var image: String?
    public var python: String?
    public var commands: [String]
    public var entrypoint: String?
    public var workingDir: String?
    public var user: String?
    public var shell: String?
    public var privileged: Bool
    public var env: [String: String]
    public var port: Int
    /// Normalized `resources` (configuration JSON text).
    public var resources: String
    public var probes: [ProbeTemplate]
    /// Seconds to wait for a graceful stop before killing; `nil` = off (wait forever is not
    /// allowed: treated as the default).
    public var stopDuration: Int
    public var registryUsername: String?
    public var registryPassword: String?
    /// The code to unpack in the working directory before the commands run.
    public var code: CodeArchive?
    /// `nvcc`: a default image with the CUDA compiler (container backends).
    public var nvcc: Bool?
    /// `spot_policy`: `spot`, `on-demand` or `auto`.
    public var spotPolicy: String?
    /// `backends` and `regions`: where the replica may run (nil: anywhere).
    public var backends: [String]?
    public var regions: [String]?
    /// The project secrets `env` and `registry_auth` refer to (`${{ secrets.NAME }}`), each
    /// with its value's digest: the values are filled in only when the workload is made, and a
    /// new value is a new template (a rollout). `nil` when none is used.
    public var secrets: [String: String]?

    /// Whether `env` or `registry_auth` still hold `${{ secrets.NAME }}` references.
    public var usesSecrets: Bool { !(secrets ?? [:]).isEmpty }

    public init(image: String? = nil, python: String? = nil, commands: [String] = [], entrypoint: String? = nil,
                workingDir: String? = nil, user: String? = nil, shell: String? = nil, privileged: Bool = false,
                env: [String: String] = [:], port: Int = 8000, resources: String = "{}", probes: [ProbeTemplate] = [],
                stopDuration: Int = 300, registryUsername: String? = nil, registryPassword: String? = nil, code: CodeArchive? = nil,
                nvcc: Bool? = nil, spotPolicy: String? = nil, backends: [String]? = nil, regions: [String]? = nil,
                secrets: [String: String]? = nil) {
        self.secrets = secrets
        self.image = image
        self.python = python
        self.commands = commands
        self.entrypoint = entrypoint
        self.workingDir = workingDir
        self.user = user
        self.shell = shell
        self.privileged = privileged
        self.env = env
        self.port = port
        self.resources = resources
        self.probes = probes
        self.stopDuration = stopDuration
        self.registryUsername = registryUsername
        self.registryPassword = registryPassword
        self.code = code
        self.nvcc = nvcc
        self.spotPolicy = spotPolicy
        self.backends = backends
        self.regions = regions
    }

    /// A stable digest of everything a rollout must replace (FNV-1a over canonical JSON).
    public var hash: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(self)) ?? Data()
        var h: UInt64 = 0xcbf29ce484222325
        for b in data { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return String(h, radix: 16)
    }
}

/// An HTTP readiness probe with dstack's defaults filled in.
public struct ProbeTemplate: Codable, Equatable, Sendable, Hashable {
    public var url: String
    public var method: String
    public var headers: [String: String]
    public var body: String?
    public var timeout: Int
    public var interval: Int
    public var readyAfter: Int
    public var untilReady: Bool

    public init(url: String = "/", method: String = "get", headers: [String: String] = [:], body: String? = nil,
                timeout: Int = 10, interval: Int = 15, readyAfter: Int = 1, untilReady: Bool = false) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.interval = interval
        self.readyAfter = readyAfter
        self.untilReady = untilReady
    }
}

/// A request from the run controller to end a replica.
public struct TerminationRequest: Codable, Equatable, Sendable {
    public var reason: TerminationReason
    /// Stop the command and wait up to `stopDuration` first (false = kill at once).
    public var graceful: Bool

    public init(reason: TerminationReason, graceful: Bool) {
        self.reason = reason
        self.graceful = graceful
    }
}

public struct ReplicaSpec: Codable, Equatable, Sendable {
    public var run: String
    public var group: String
    public var replicaNum: Int
    public var submissionNum: Int
    public var deploymentNum: Int
    public var template: ReplicaTemplate
    public var templateHash: String
    public var termination: TerminationRequest?

    public init(run: String, group: String, replicaNum: Int, submissionNum: Int, deploymentNum: Int,
                template: ReplicaTemplate, termination: TerminationRequest? = nil) {
        self.run = run
        self.group = group
        self.replicaNum = replicaNum
        self.submissionNum = submissionNum
        self.deploymentNum = deploymentNum
        self.template = template
        self.templateHash = template.hash
        self.termination = termination
    }
}

public struct ReplicaStatus: Codable, Equatable, Sendable, ConditionedStatus {
    public var phase: ReplicaPhase = .submitted
    public var terminationReason: TerminationReason?
    public var message: String?
    public var exitStatus: Int32?
    /// All probes reached `ready_after` consecutive successes (or there are none).
    public var ready: Bool = false
    /// `host:port` where the replica serves.
    public var endpoint: String?
    public var workloadID: String?
    public var startedAt: Date?
    public var finishedAt: Date?
    /// When a graceful stop was sent to the workload.
    public var stopRequestedAt: Date?
    /// When the replica left the proxy's rotation before being stopped.
    public var drainStartedAt: Date?
    public var observedGeneration: Int64 = 0
    /// `Ready` (serving: running and its probes pass), with the reason it is not
    /// (docs/status.md). Optional in storage: replicas stored before conditions existed read.
    public var conditions: [Condition] {
        get { storedConditions ?? [] }
        set { storedConditions = newValue }
    }
    private var storedConditions: [Condition]?

    public init() {}

    public mutating func noteRefusal(reason: String, message: String, now: Date) {
        conditions.set("Ready", false, reason: reason, message: message, now: now)
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case phase, terminationReason, message, exitStatus, ready, endpoint, workloadID, startedAt, finishedAt
        case stopRequestedAt, drainStartedAt, observedGeneration
        case storedConditions = "conditions"
    }
}

public enum ReplicaKind: ObjectKind {
    public typealias Spec = ReplicaSpec
    public typealias Status = ReplicaStatus
    public static let name = "Replica"
    public static let emptyStatus = ReplicaStatus()
}

public typealias Replica = Object<ReplicaKind>

extension Object where Kind == ReplicaKind {
    /// Replica objects are named `<run>.<group>-<replica>-<submission>`, deterministically, so a
    /// stale cache can never create a duplicate. The encoding is injective: run and group names
    /// never contain `.` (they are `[a-z0-9-]`), and the two numbers after the group have no `-`,
    /// so run `svc-a` group `0` (`svc-a.0-0-0`) and run `svc` group `a-0` (`svc.a-0-0-0`) differ.
    public static func name(run: String, group: String, replicaNum: Int, submissionNum: Int) -> String {
        "\(run).\(group)-\(replicaNum)-\(submissionNum)"
    }

    /// The name earlier versions gave (joined with `-`, not injective): replicas created before
    /// the change keep it, so workloads are matched by either.
    public static func legacyName(run: String, group: String, replicaNum: Int, submissionNum: Int) -> String {
        "\(run)-\(group)-\(replicaNum)-\(submissionNum)"
    }

    /// The replica slot (`group/num`) that submissions of the same replica share.
    public var slot: String { "\(spec.group)/\(spec.replicaNum)" }
}

/// Labels and finalizers Setpoint puts on its objects and workloads.
public enum Labels {
    public static let run = "setpoint.dev/run"
    public static let group = "setpoint.dev/group"
    public static let replica = "setpoint.dev/replica"
    public static let submission = "setpoint.dev/submission"
    public static let deployment = "setpoint.dev/deployment"
    public static let project = "setpoint.dev/project"
    public static let backendFinalizer = "setpoint.dev/backend-cleanup"
    public static let replicasFinalizer = "setpoint.dev/replicas-cleanup"
}
