import Foundation

/// One replica in a route's rotation.
public struct RouteEndpoint: Codable, Equatable, Sendable, Hashable {
    /// The Replica object's name.
    public var replica: String
    /// Where it serves: `unix:/path` or `host:port`.
    public var address: String

    public init(replica: String, address: String) {
        self.replica = replica
        self.address = address
    }
}

/// A `502` that carries this response header says the request never reached the replica's
/// app: whatever stands in front of it (the Kubernetes pod relay) could not deliver it, and the
/// header's value says why. The proxy treats it as a refused connect (tried again on another
/// replica when the request can be, the reason named when none could be reached) and never
/// passes the header on. The relay removes it from the apps' own answers.
public enum ReplicaUnreached {
    public static let header = "X-Setpoint-Replica-Unreached"
}

/// The OpenAI-compatible model a route publishes on `/proxy/models/<project>/`.
public struct RouteModel: Codable, Equatable, Sendable {
    public var name: String
    /// `openai` or `tgi`.
    public var format: String
    /// Base path of the OpenAI API inside the replica (`/v1`).
    public var prefix: String

    public init(name: String, format: String, prefix: String) {
        self.name = name
        self.format = format
        self.prefix = prefix
    }
}

/// A `rate_limits` entry: requests under `prefix` are limited per client IP (`header` nil) or
/// per value of `header`.
public struct RouteRateLimit: Codable, Equatable, Sendable {
    public var prefix: String
    public var header: String?
    public var rps: Double
    public var burst: Int

    public init(prefix: String, header: String?, rps: Double, burst: Int) {
        self.prefix = prefix
        self.header = header
        self.rps = rps
        self.burst = burst
    }
}

/// What the proxy needs to serve one service, kept by the route controller from the run and
/// its replicas: only ready replicas that are not leaving are in `endpoints`.
public struct ProxyRouteSpec: Codable, Equatable, Sendable {
    public var run: String
    public var auth: Bool
    public var stripPrefix: Bool
    public var endpoints: [RouteEndpoint]
    public var model: RouteModel?
    public var rateLimits: [RouteRateLimit]
    /// Some replica group can scale to zero (a request at zero is demand, not an error).
    public var scalesToZero: Bool
    /// When the run was first applied (the newest run wins a model name).
    public var runCreatedAt: Date
    /// The gateway of the run's project that also publishes it (`<run>.<domain>`), if any.
    public var gateway: String?

    public init(run: String, auth: Bool, stripPrefix: Bool, endpoints: [RouteEndpoint], model: RouteModel? = nil,
                rateLimits: [RouteRateLimit] = [], scalesToZero: Bool = false, runCreatedAt: Date, gateway: String? = nil) {
        self.run = run
        self.auth = auth
        self.stripPrefix = stripPrefix
        self.endpoints = endpoints
        self.model = model
        self.rateLimits = rateLimits
        self.scalesToZero = scalesToZero
        self.runCreatedAt = runCreatedAt
        self.gateway = gateway
    }
}

public enum ProxyRouteKind: ObjectKind {
    public typealias Spec = ProxyRouteSpec
    public typealias Status = EmptyStatus
    public static let name = "ProxyRoute"
    public static let emptyStatus = EmptyStatus()
}

public typealias ProxyRoute = Object<ProxyRouteKind>
