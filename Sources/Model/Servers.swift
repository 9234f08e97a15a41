import Foundation

// Objects of the control plane itself, in the `_system` project: what several servers on one
// database share (the installation, the leader lease) and what each says of itself.

/// The installation: what every server of it must agree on. One object, `installation`.
public struct InstallationSpec: Codable, Equatable, Sendable {
    /// The `setpoint.dev/installation` label of its workloads (so servers adopt each other's).
    public var id: String
    /// HMAC-SHA256 of a fixed text under the server secret: a server with another secret (whose
    /// project secrets would not open) is refused at start. Not the secret, nor derived keys.
    public var secretCheck: String

    public init(id: String, secretCheck: String) {
        self.id = id
        self.secretCheck = secretCheck
    }
}

public enum InstallationKind: ObjectKind {
    public typealias Spec = InstallationSpec
    public typealias Status = EmptyStatus
    public static let name = "Installation"
    public static let emptyStatus = EmptyStatus()
}

/// The leader lease, as coordination.k8s.io/v1 Lease has it: one object, `setpoint-leader`.
public struct LeaseSpec: Codable, Equatable, Sendable {
    public var holderIdentity: String?
    public var leaseDurationSeconds: Int
    public var acquireTime: Date?
    public var renewTime: Date?
    public var leaseTransitions: Int

    public init(holderIdentity: String?, leaseDurationSeconds: Int, acquireTime: Date?, renewTime: Date?, leaseTransitions: Int) {
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
    }
}

public enum LeaseKind: ObjectKind {
    public typealias Spec = LeaseSpec
    public typealias Status = EmptyStatus
    public static let name = "Lease"
    public static let emptyStatus = EmptyStatus()
}

/// One server of the installation, as it reports itself (named by its identity).
public struct ServerSpec: Codable, Equatable, Sendable {
    /// Where it serves (its public URL).
    public var address: String
    public var startedAt: Date
    public var version: String

    public init(address: String, startedAt: Date, version: String) {
        self.address = address
        self.startedAt = startedAt
        self.version = version
    }
}

public struct ServerStatus: Codable, Equatable, Sendable {
    /// When it last said it is alive.
    public var heartbeat: Date?
    /// Its proxy's traffic per service, for the leader's autoscaler (as a gateway reports it).
    public var services: [GatewayReport.Service]
    /// The gateway reports this server received lately, for the leader (a gateway reports to
    /// whichever server its address reaches).
    public var gateways: [RelayedGatewayReport]

    public init(heartbeat: Date? = nil, services: [GatewayReport.Service] = [], gateways: [RelayedGatewayReport] = []) {
        self.heartbeat = heartbeat
        self.services = services
        self.gateways = gateways
    }

    enum CodingKeys: String, CodingKey { case heartbeat, services, gateways }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        heartbeat = try c.decodeIfPresent(Date.self, forKey: .heartbeat)
        services = try c.decodeIfPresent([GatewayReport.Service].self, forKey: .services) ?? []
        gateways = try c.decodeIfPresent([RelayedGatewayReport].self, forKey: .gateways) ?? []
    }
}

/// A gateway replica's last report as one server received it, and how long before the
/// server wrote it down.
public struct RelayedGatewayReport: Codable, Equatable, Sendable {
    public var project: String
    public var gateway: String
    public var report: GatewayReport
    public var age: Double

    public init(project: String, gateway: String, report: GatewayReport, age: Double) {
        self.project = project
        self.gateway = gateway
        self.report = report
        self.age = age
    }
}

public enum ServerKind: ObjectKind {
    public typealias Spec = ServerSpec
    public typealias Status = ServerStatus
    public static let name = "Server"
    public static let emptyStatus = ServerStatus()
}

/// The server list's row (`GET /api/v1/servers`).
extension API {
    public struct Server: Codable, Equatable, Sendable {
        public var name: String
        public var address: String
        /// `leader` or `follower`; `gone` once its heartbeat is older than three intervals.
        public var role: String
        public var startedAt: Date
        /// Since when it leads (the leader only).
        public var leaderSince: Date?
        public var heartbeat: Date?
        public var version: String

        public init(name: String, address: String, role: String, startedAt: Date, leaderSince: Date?, heartbeat: Date?, version: String) {
            self.name = name
            self.address = address
            self.role = role
            self.startedAt = startedAt
            self.leaderSince = leaderSince
            self.heartbeat = heartbeat
            self.version = version
        }
    }

    public struct ServerList: Codable, Equatable, Sendable {
        /// `sqlite` or `postgres`.
        public var store: String
        public var leader: String?
        public var leaseDurationSeconds: Int?
        public var servers: [Server]

        public init(store: String, leader: String?, leaseDurationSeconds: Int?, servers: [Server]) {
            self.store = store
            self.leader = leader
            self.leaseDurationSeconds = leaseDurationSeconds
            self.servers = servers
        }
    }
}

/// This build's version, as the server list shows it (servers of one installation should agree).
public enum SetpointVersion {
    public static let current = "0.1.0-dev"
}
