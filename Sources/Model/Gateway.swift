import Foundation
import SetpointConfiguration

/// What the user applied for a gateway: the normalized configuration, and whether it is the
/// project's default (the first gateway of a project is; `default: true` moves it).
public struct GatewaySpec: Codable, Equatable, Sendable {
    public var configuration: GatewayConfiguration
    public var isDefault: Bool
    public var appliedBy: String?
    public var configurationPath: String?

    public init(configuration: GatewayConfiguration, isDefault: Bool, appliedBy: String? = nil, configurationPath: String? = nil) {
        self.configuration = configuration
        self.isDefault = isDefault
        self.appliedBy = appliedBy
        self.configurationPath = configurationPath
    }

    enum CodingKeys: String, CodingKey { case configuration, isDefault, appliedBy, configurationPath }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let text = try c.decode(String.self, forKey: .configuration)
        do {
            configuration = try ConfigurationParser.readStored(gateway: text)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .configuration, in: c, debugDescription: "\(error)")
        }
        isDefault = try c.decodeIfPresent(Bool.self, forKey: .isDefault) ?? false
        appliedBy = try c.decodeIfPresent(String.self, forKey: .appliedBy)
        configurationPath = try c.decodeIfPresent(String.self, forKey: .configurationPath)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(configuration.json.serialized, forKey: .configuration)
        try c.encode(isDefault, forKey: .isDefault)
        try c.encodeIfPresent(appliedBy, forKey: .appliedBy)
        try c.encodeIfPresent(configurationPath, forKey: .configurationPath)
    }

    /// How many gateway processes serve it.
    public var replicas: Int { configuration.replicas ?? 1 }
}

/// dstack's gateway statuses.
public enum GatewayPhase: String, Codable, Sendable {
    case submitted, provisioning, running, failed
}

/// One gateway process as the gateway controller sees it.
public struct GatewayReplicaStatus: Codable, Equatable, Sendable {
    public var num: Int
    public var workloadID: String?
    /// `provisioning`, `running` (reporting to the control plane), `exited`.
    public var state: String
    public var ready: Bool
    /// Starts after an exit (the backoff counts them).
    public var restarts: Int
    public var lastExitAt: Date?
    public var message: String?

    public init(num: Int, workloadID: String? = nil, state: String, ready: Bool = false, restarts: Int = 0,
                lastExitAt: Date? = nil, message: String? = nil) {
        self.num = num
        self.workloadID = workloadID
        self.state = state
        self.ready = ready
        self.restarts = restarts
        self.lastExitAt = lastExitAt
        self.message = message
    }
}

/// A certificate for one domain the gateway serves.
public struct GatewayCertificateStatus: Codable, Equatable, Sendable {
    public var domain: String
    /// `provided` (the operator's files), `pending`, `issued`, `failed`.
    public var state: String
    public var notAfter: Date?
    public var message: String?

    public init(domain: String, state: String, notAfter: Date? = nil, message: String? = nil) {
        self.domain = domain
        self.state = state
        self.notAfter = notAfter
        self.message = message
    }
}

public struct GatewayStatus: Codable, Equatable, Sendable, ConditionedStatus {
    public var phase: GatewayPhase
    /// Where `*.<domain>` should point (a host name or an IP address), with the ports.
    public var address: String?
    public var httpPort: Int?
    public var httpsPort: Int?
    /// The wildcard domain, `${{ run.project_name }}` filled in.
    public var domain: String?
    public var desiredReplicas: Int
    public var readyReplicas: Int
    public var replicas: [GatewayReplicaStatus]
    public var certificates: [GatewayCertificateStatus]
    public var message: String?
    public var conditions: [Condition]
    public var observedGeneration: Int64

    public init(phase: GatewayPhase = .submitted, address: String? = nil, httpPort: Int? = nil, httpsPort: Int? = nil, domain: String? = nil,
                desiredReplicas: Int = 0, readyReplicas: Int = 0, replicas: [GatewayReplicaStatus] = [],
                certificates: [GatewayCertificateStatus] = [], message: String? = nil, conditions: [Condition] = [],
                observedGeneration: Int64 = 0) {
        self.phase = phase
        self.address = address
        self.httpPort = httpPort
        self.httpsPort = httpsPort
        self.domain = domain
        self.desiredReplicas = desiredReplicas
        self.readyReplicas = readyReplicas
        self.replicas = replicas
        self.certificates = certificates
        self.message = message
        self.conditions = conditions
        self.observedGeneration = observedGeneration
    }

    public mutating func noteRefusal(reason: String, message: String, now: Date) {
        conditions.set("Ready", false, reason: reason, message: message, now: now)
        self.message = message
    }
}

public enum GatewayKind: ObjectKind {
    public typealias Spec = GatewaySpec
    public typealias Status = GatewayStatus
    public static let name = "Gateway"
    public static let emptyStatus = GatewayStatus()
}

public typealias Gateway = Object<GatewayKind>

extension Labels {
    /// On a gateway's workloads: the gateway's name (with `project` and `gatewayUID`).
    public static let gateway = "setpoint.dev/gateway"
    public static let gatewayUID = "setpoint.dev/gateway-uid"
    public static let gatewayReplica = "setpoint.dev/gateway-replica"
    public static let gatewayFinalizer = "setpoint.dev/gateway-cleanup"
}

/// What a gateway process gets from the control plane (`GET /api/v1/gateway/feed`, NDJSON):
/// a full snapshot on connect and after every change, and `keepalive` lines in between.
public struct GatewayFeedMessage: Codable, Sendable, Equatable {
    public var type: String
    public var snapshot: GatewaySnapshot?

    public init(type: String, snapshot: GatewaySnapshot? = nil) {
        self.type = type
        self.snapshot = snapshot
    }
}

public struct GatewaySnapshot: Codable, Sendable, Equatable {
    public struct Route: Codable, Sendable, Equatable {
        public var project: String
        public var spec: ProxyRouteSpec
        public init(project: String, spec: ProxyRouteSpec) {
            self.project = project
            self.spec = spec
        }
    }

    public var project: String
    public var gateway: String
    /// Services are `<run>.<domain>`, models `gateway.<domain>`; nil: the gateway serves nothing yet.
    public var domain: String?
    /// Seconds a replica may stay silent once a request is sent (long model prefills).
    public var readTimeout: Int?
    public var routes: [Route]
    /// SHA-256 (hex) of the tokens that may reach this project's services. Hashes only: a
    /// token cannot be recovered from them, and a revoked token leaves the next snapshot.
    public var tokenHashes: [String]
    /// HTTP-01 challenges to answer at `/.well-known/acme-challenge/<token>`.
    public var challenges: [HTTPChallenge]
    /// What to serve HTTPS with, by SNI.
    public var certificates: [ServedCertificate]
    public var version: Int64

    public init(project: String, gateway: String, domain: String?, readTimeout: Int?, routes: [Route], tokenHashes: [String],
                challenges: [HTTPChallenge] = [], certificates: [ServedCertificate] = [], version: Int64) {
        self.challenges = challenges
        self.certificates = certificates
        self.project = project
        self.gateway = gateway
        self.domain = domain
        self.readTimeout = readTimeout
        self.routes = routes
        self.tokenHashes = tokenHashes
        self.version = version
    }
}

/// What a gateway replica reports about its traffic (`POST /api/v1/gateway/report`), every
/// second and at once when a request waits at a service with no ready replica.
public struct GatewayReport: Codable, Sendable, Equatable {
    public struct Service: Codable, Sendable, Equatable {
        public var project: String
        public var run: String
        /// Requests in the last N seconds, keyed by N.
        public var requests: [String: Int]
        public var inFlight: Int
        public var held: Int
        public var observed: Double

        public init(project: String, run: String, requests: [String: Int], inFlight: Int, held: Int, observed: Double) {
            self.project = project
            self.run = run
            self.requests = requests
            self.inFlight = inFlight
            self.held = held
            self.observed = observed
        }
    }

    public var replica: Int
    public var services: [Service]
    /// Services with a request waiting for a first replica (scale from zero now).
    public var waiting: [String]

    public init(replica: Int, services: [Service], waiting: [String] = []) {
        self.replica = replica
        self.services = services
        self.waiting = waiting
    }
}

/// A certificate a gateway serves for one domain (`<run>.<domain>` or `gateway.<domain>`),
/// obtained by the server from an ACME CA. An internal kind: the API never serves it (it holds
/// the private key); the gateway's status says each domain's state.
public struct CertificateSpec: Codable, Equatable, Sendable {
    public var gateway: String
    public var domain: String

    public init(gateway: String, domain: String) {
        self.gateway = gateway
        self.domain = domain
    }
}

/// An HTTP-01 challenge the gateway must answer while the CA checks it.
public struct HTTPChallenge: Codable, Equatable, Sendable {
    public var token: String
    public var keyAuthorization: String

    public init(token: String, keyAuthorization: String) {
        self.token = token
        self.keyAuthorization = keyAuthorization
    }
}

public struct CertificateStatus: Codable, Equatable, Sendable, ConditionedStatus {
    /// `pending`, `issued`, `failed`.
    public var state: String
    public var notAfter: Date?
    public var issuedAt: Date?
    /// What the CA said, when it refused.
    public var message: String?
    public var challenge: HTTPChallenge?
    /// Failed orders in a row, and when the next may be tried (30 s, doubling, at most 1 h).
    public var failures: Int = 0
    public var nextAttemptAt: Date?
    public var chainPEM: String?
    public var keyPEM: String?
    public var conditions: [Condition]
    public var observedGeneration: Int64

    public init(state: String = "pending", notAfter: Date? = nil, issuedAt: Date? = nil, message: String? = nil, challenge: HTTPChallenge? = nil,
                chainPEM: String? = nil, keyPEM: String? = nil, conditions: [Condition] = [], observedGeneration: Int64 = 0) {
        self.state = state
        self.notAfter = notAfter
        self.issuedAt = issuedAt
        self.message = message
        self.challenge = challenge
        self.chainPEM = chainPEM
        self.keyPEM = keyPEM
        self.conditions = conditions
        self.observedGeneration = observedGeneration
    }

    public mutating func noteRefusal(reason: String, message: String, now: Date) {
        conditions.set("Ready", false, reason: reason, message: message, now: now)
        self.message = message
    }
}

public enum CertificateKind: ObjectKind {
    public typealias Spec = CertificateSpec
    public typealias Status = CertificateStatus
    public static let name = "Certificate"
    public static let emptyStatus = CertificateStatus()
}

public typealias GatewayCertificate = Object<CertificateKind>

/// The server's ACME account for one directory (its key), so restarts reuse it.
public struct AcmeAccountSpec: Codable, Equatable, Sendable {
    public var directory: String
    public var keyPEM: String

    public init(directory: String, keyPEM: String) {
        self.directory = directory
        self.keyPEM = keyPEM
    }
}

public enum AcmeAccountKind: ObjectKind {
    public typealias Spec = AcmeAccountSpec
    public typealias Status = EmptyStatus
    public static let name = "AcmeAccount"
    public static let emptyStatus = EmptyStatus()
}

/// A certificate and its key, as a gateway serves it (in the feed's snapshot).
public struct ServedCertificate: Codable, Sendable, Equatable {
    /// The domain, or `*.<domain>` for an operator's wildcard.
    public var domain: String
    public var chainPEM: String
    public var keyPEM: String

    public init(domain: String, chainPEM: String, keyPEM: String) {
        self.domain = domain
        self.chainPEM = chainPEM
        self.keyPEM = keyPEM
    }
}
