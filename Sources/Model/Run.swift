import SetpointConfiguration
import Foundation

/// dstack's run statuses.
public enum RunPhase: String, Codable, Sendable {
    case pending, submitted, provisioning, running, terminating, terminated, failed, done

    public var isFinished: Bool { self == .terminated || self == .failed || self == .done }
}

public enum RunTerminationReason: String, Codable, Sendable {
    case allJobsDone = "all_jobs_done"
    case jobFailed = "job_failed"
    case retryLimitExceeded = "retry_limit_exceeded"
    case serverError = "server_error"
    case gatewayError = "gateway_error"
    case stoppedByUser = "stopped_by_user"
    case abortedByUser = "aborted_by_user"

    public var finalPhase: RunPhase {
        switch self {
        case .allJobsDone: return .done
        case .stoppedByUser, .abortedByUser: return .terminated
        default: return .failed
        }
    }
}

public struct StopRequest: Codable, Equatable, Sendable {
    /// Kill replicas at once instead of stopping them gracefully.
    public var abort: Bool

    public init(abort: Bool) { self.abort = abort }
}

/// What the user applied: the normalized service configuration, and what controllers and the
/// autoscaler add to it.
public struct RunSpec: Codable, Equatable, Sendable {
    public var configuration: ServiceConfiguration
    /// Desired replica count per group, written by the autoscaler; fixed counts otherwise.
    public var desiredReplicas: [String: Int]?
    public var stop: StopRequest?
    public var appliedBy: String?
    public var configurationPath: String?
    /// `env` names whose values came from the applying user's environment (shown redacted).
    public var secretEnv: [String]
    /// The uploaded code (content-addressed archive), run in each replica's working directory.
    public var code: CodeArchive?
    /// The gateway (of the run's project) that publishes the service, resolved when it was
    /// applied from `gateway:` (unset: the project's default gateway, if there is one).
    public var gateway: String?

    public init(configuration: ServiceConfiguration, desiredReplicas: [String: Int]? = nil, stop: StopRequest? = nil,
                appliedBy: String? = nil, configurationPath: String? = nil, secretEnv: [String] = []) {
        self.configuration = configuration
        self.desiredReplicas = desiredReplicas
        self.stop = stop
        self.appliedBy = appliedBy
        self.configurationPath = configurationPath
        self.secretEnv = secretEnv
    }

    enum CodingKeys: String, CodingKey {
        case configuration, desiredReplicas, stop, appliedBy, configurationPath, secretEnv, code, gateway
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // The configuration is kept as its normalized JSON text, read back without validating it
        // again (it was validated when applied).
        let text = try c.decode(String.self, forKey: .configuration)
        do {
            configuration = try ConfigurationParser.readStored(service: text)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .configuration, in: c, debugDescription: "\(error)")
        }
        desiredReplicas = try c.decodeIfPresent([String: Int].self, forKey: .desiredReplicas)
        stop = try c.decodeIfPresent(StopRequest.self, forKey: .stop)
        appliedBy = try c.decodeIfPresent(String.self, forKey: .appliedBy)
        configurationPath = try c.decodeIfPresent(String.self, forKey: .configurationPath)
        secretEnv = try c.decodeIfPresent([String].self, forKey: .secretEnv) ?? []
        code = try c.decodeIfPresent(CodeArchive.self, forKey: .code)
        gateway = try c.decodeIfPresent(String.self, forKey: .gateway)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(configuration.json.serialized, forKey: .configuration)
        try c.encodeIfPresent(desiredReplicas, forKey: .desiredReplicas)
        try c.encodeIfPresent(stop, forKey: .stop)
        try c.encodeIfPresent(appliedBy, forKey: .appliedBy)
        try c.encodeIfPresent(configurationPath, forKey: .configurationPath)
        if !secretEnv.isEmpty { try c.encode(secretEnv, forKey: .secretEnv) }
        try c.encodeIfPresent(code, forKey: .code)
        try c.encodeIfPresent(gateway, forKey: .gateway)
    }
}

/// An uploaded code archive: a gzipped tar, stored once per content hash.
public struct CodeArchive: Codable, Equatable, Sendable, Hashable {
    /// Hex SHA-256 of the archive.
    public var hash: String
    /// Where the server keeps it.
    public var path: String
    public var size: Int

    public init(hash: String, path: String, size: Int) {
        self.hash = hash
        self.path = path
        self.size = size
    }
}

/// Retry bookkeeping for one replica slot (`group/num`).
public struct SlotRetry: Codable, Equatable, Sendable {
    /// Resubmissions made so far for the current failure streak.
    public var attempts: Int
    /// When the streak's first failure happened (retry `duration` counts from here).
    public var firstFailureAt: Date
    /// Not before this time is the next submission created.
    public var nextAttemptAt: Date

    public init(attempts: Int, firstFailureAt: Date, nextAttemptAt: Date) {
        self.attempts = attempts
        self.firstFailureAt = firstFailureAt
        self.nextAttemptAt = nextAttemptAt
    }
}

public struct RunStatus: Codable, Equatable, Sendable, ConditionedStatus {
    public var phase: RunPhase = .submitted
    public var terminationReason: RunTerminationReason?
    public var message: String = ""
    /// The spec generation the status describes as converged; set only when it is.
    public var observedGeneration: Int64 = 0
    public var deploymentNum: Int = 0
    /// Template digest per group for the current deployment.
    public var templateHashes: [String: String] = [:]
    public var desiredReplicas: Int = 0
    public var readyReplicas: Int = 0
    public var runningReplicas: Int = 0
    public var conditions: [Condition] = []
    public var retries: [String: SlotRetry] = [:]
    /// Slots that failed with no retry left.
    public var failedSlots: [String] = []
    /// Per group, the template digest whose rollout was halted because its replicas failed.
    public var haltedTemplates: [String: String] = [:]
    /// Digest of the properties that need a stop-and-recreate when they change.
    public var recreateDigest: String = ""
    /// Set while the previous deployment's replicas are being stopped for a recreate.
    public var recreating: Bool = false
    public var lastScaledAt: Date?

    public init() {}

    public mutating func noteRefusal(reason: String, message: String, now: Date) {
        conditions.set("Ready", false, reason: reason, message: message, now: now)
        self.message = message
    }
}

public enum RunKind: ObjectKind {
    public typealias Spec = RunSpec
    public typealias Status = RunStatus
    public static let name = "Run"
    public static let emptyStatus = RunStatus()
}

public typealias Run = Object<RunKind>

/// An Event: what a controller decided about an object, for `describe` and `events`.
public struct EventSpec: Codable, Equatable, Sendable {
    public var involved: ObjectKey
    /// `Normal` or `Warning`.
    public var type: String
    public var reason: String
    public var message: String
    public var count: Int
    public var firstTimestamp: Date
    public var lastTimestamp: Date

    public init(involved: ObjectKey, type: String, reason: String, message: String, count: Int = 1,
                firstTimestamp: Date, lastTimestamp: Date) {
        self.involved = involved
        self.type = type
        self.reason = reason
        self.message = message
        self.count = count
        self.firstTimestamp = firstTimestamp
        self.lastTimestamp = lastTimestamp
    }
}

/// The status of a kind that has none (events, routes): no conditions to keep.
public struct EmptyStatus: Codable, Equatable, Sendable, ConditionedStatus {
    public init() {}

    public var conditions: [Condition] {
        get { [] }
        set {}   // swiftlint:disable:this unused_setter_value
    }

    public var observedGeneration: Int64 {
        get { 0 }
        set {}   // swiftlint:disable:this unused_setter_value
    }
}

public enum EventKind: ObjectKind {
    public typealias Spec = EventSpec
    public typealias Status = EmptyStatus
    public static let name = "Event"
    public static let emptyStatus = EmptyStatus()
}

public typealias Event = Object<EventKind>
