import Foundation
import SetpointConfiguration

/// Capacity a backend offers, shown by `setpoint offer` and the apply plan (also the API's JSON).
public struct Offer: Sendable, Equatable, Codable {
    public var backend: String
    public var region: String
    public var instance: String
    public var cpus: Int
    public var memoryGB: Double
    public var diskGB: Double
    public var gpus: [String]
    public var spot: Bool
    public var price: Double
    /// CPU architecture (`amd64`, `arm64`) when the backend knows it.
    public var arch: String?

    public init(backend: String, region: String, instance: String, cpus: Int, memoryGB: Double, diskGB: Double,
                gpus: [String] = [], spot: Bool = false, price: Double = 0) {
        self.backend = backend
        self.region = region
        self.instance = instance
        self.cpus = cpus
        self.memoryGB = memoryGB
        self.diskGB = diskGB
        self.gpus = gpus
        self.spot = spot
        self.price = price
    }
}

/// The JSON bodies of the REST API (`/api/v1`, docs/api.md and the served OpenAPI file), shared
/// by the server and the client so the two cannot drift apart.
public enum API {
    public static let version = "v1"

    /// A plan or apply request: the configuration as the user wrote it, validated again by the
    /// server.
    public struct ApplyRequest: Codable, Sendable {
        /// The `.dstack.yml` text.
        public var configuration: String
        /// The file it came from, for messages.
        public var file: String?
        /// Values for `env` names without a value, and `-e` overrides.
        public var env: [String: String]
        /// Overrides the configuration's `name` (`apply -n`).
        public var name: String?
        /// Apply only if the run is still at this version (`null`: whatever it is).
        public var resourceVersion: Int64?
        /// Apply even when nothing changed or the version moved.
        public var force: Bool
        /// The code to run: a gzipped tar of the configuration's repository (tracked and
        /// untracked, not ignored files) or of its directory, base64-encoded.
        public var code: String?

        public init(configuration: String, file: String? = nil, env: [String: String] = [:], name: String? = nil,
                    resourceVersion: Int64? = nil, force: Bool = false, code: String? = nil) {
            self.configuration = configuration
            self.file = file
            self.env = env
            self.name = name
            self.resourceVersion = resourceVersion
            self.force = force
            self.code = code
        }

        enum CodingKeys: String, CodingKey { case configuration, file, env, name, resourceVersion, force, code }

        /// Only `configuration` is required: `env` defaults to none, `force` to false.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            configuration = try c.decode(String.self, forKey: .configuration)
            file = try c.decodeIfPresent(String.self, forKey: .file)
            env = try c.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
            name = try c.decodeIfPresent(String.self, forKey: .name)
            resourceVersion = try c.decodeIfPresent(Int64.self, forKey: .resourceVersion)
            if let v = resourceVersion, v <= 0 {
                throw DecodingError.dataCorruptedError(forKey: .resourceVersion, in: c,
                                                       debugDescription: "expected the version a plan returned (a positive integer), got \(v)")
            }
            force = try c.decodeIfPresent(Bool.self, forKey: .force) ?? false
            code = try c.decodeIfPresent(String.self, forKey: .code)
        }
    }

    /// `POST /api/v1/projects` (global admins).
    public struct ProjectRequest: Codable, Sendable {
        public var name: String
        public var description: String?
        public init(name: String, description: String? = nil) {
            self.name = name
            self.description = description
        }
    }

    public struct ProjectInfo: Codable, Sendable, Equatable {
        public var name: String
        public var description: String
        public init(name: String, description: String) {
            self.name = name
            self.description = description
        }
    }

    public struct Changes: Codable, Sendable, Equatable {
        public var inPlace: [String]
        public var rolling: [String]
        public var recreate: [String]

        public init(inPlace: [String] = [], rolling: [String] = [], recreate: [String] = []) {
            self.inPlace = inPlace
            self.rolling = rolling
            self.recreate = recreate
        }
    }

    public typealias OfferInfo = Offer

    public struct Plan: Codable, Sendable {
        /// `create`, `update` or `none` (nothing changed).
        public var action: String
        public var project: String
        public var user: String
        public var runName: String
        /// The normalized configuration that would be stored (secrets redacted).
        public var configuration: JSONValue
        public var changes: Changes
        /// The offers that can hold the resources (of at least one replica group).
        public var offers: [OfferInfo]
        /// Set when no offer fits: what does not, and what the run will do.
        public var offersNote: String?
        /// The current run's version, to send back with `apply`.
        public var resourceVersion: Int64?
        public var current: Run?

        public init(action: String, project: String, user: String, runName: String, configuration: JSONValue,
                    changes: Changes, offers: [OfferInfo], offersNote: String? = nil, resourceVersion: Int64?, current: Run?) {
            self.offersNote = offersNote
            self.action = action
            self.project = project
            self.user = user
            self.runName = runName
            self.configuration = configuration
            self.changes = changes
            self.offers = offers
            self.resourceVersion = resourceVersion
            self.current = current
        }
    }

    public struct Run: Codable, Sendable {
        public var project: String
        public var name: String
        public var uid: String
        public var generation: Int64
        public var resourceVersion: Int64
        public var createdAt: Date
        public var deleting: Bool
        public var configuration: JSONValue
        public var desiredReplicas: [String: Int]?
        public var stopRequested: Bool
        public var status: RunStatus
        /// Where the service is published: `https://<run>.<domain>/` on a gateway (http while
        /// the gateway has no certificate), else the server's `/proxy/services/…` path.
        public var url: String
        public var modelURL: String?
        /// The gateway that publishes it, if any.
        public var gateway: String?
        /// The server's own path to it, which works with or without a gateway.
        public var proxyURL: String?
        /// The set it was applied in (`apply --set`, a source), if any.
        public var set: String?
        /// The source that manages it, if any: a change by other means is drift.
        public var managedBy: String?

        public init(project: String, name: String, uid: String, generation: Int64, resourceVersion: Int64, createdAt: Date,
                    deleting: Bool, configuration: JSONValue, desiredReplicas: [String: Int]?, stopRequested: Bool,
                    status: RunStatus, url: String, modelURL: String?, gateway: String? = nil, proxyURL: String? = nil) {
            self.gateway = gateway
            self.proxyURL = proxyURL
            self.project = project
            self.name = name
            self.uid = uid
            self.generation = generation
            self.resourceVersion = resourceVersion
            self.createdAt = createdAt
            self.deleting = deleting
            self.configuration = configuration
            self.desiredReplicas = desiredReplicas
            self.stopRequested = stopRequested
            self.status = status
            self.url = url
            self.modelURL = modelURL
        }
    }

    public struct Replica: Codable, Sendable {
        public var name: String
        public var group: String
        public var replicaNum: Int
        public var submissionNum: Int
        public var deploymentNum: Int
        public var terminationRequested: Bool
        public var status: ReplicaStatus
        /// The run it belongs to.
        public var run: String?
        public var createdAt: Date?
        public var resourceVersion: Int64?

        public init(name: String, group: String, replicaNum: Int, submissionNum: Int, deploymentNum: Int,
                    terminationRequested: Bool, status: ReplicaStatus, run: String? = nil, createdAt: Date? = nil, resourceVersion: Int64? = nil) {
            self.run = run
            self.createdAt = createdAt
            self.resourceVersion = resourceVersion
            self.name = name
            self.group = group
            self.replicaNum = replicaNum
            self.submissionNum = submissionNum
            self.deploymentNum = deploymentNum
            self.terminationRequested = terminationRequested
            self.status = status
        }
    }

    public struct UserRequest: Codable, Sendable {
        public var name: String
        /// `admin` or `user` (default).
        public var globalRole: String?
        /// Project → `admin`, `manager` or `user`.
        public var projects: [String: String]

        public init(name: String, globalRole: String? = nil, projects: [String: String]) {
            self.name = name
            self.globalRole = globalRole
            self.projects = projects
        }
    }

    public struct UserInfo: Codable, Sendable {
        public var name: String
        public var globalRole: String
        public var projects: [String: String]
        /// Only in the answer to a creation: shown once, stored only as a hash.
        public var token: String?

        public init(name: String, globalRole: String, projects: [String: String], token: String?) {
            self.name = name
            self.globalRole = globalRole
            self.projects = projects
            self.token = token
        }
    }

    /// A gateway as the API shows it (`setpoint gateway list|describe`).
    public struct Gateway: Codable, Sendable {
        public var project: String
        public var name: String
        public var uid: String
        public var generation: Int64
        public var resourceVersion: Int64
        public var createdAt: Date
        public var deleting: Bool
        public var isDefault: Bool
        public var configuration: JSONValue
        public var status: GatewayStatus
        /// Where services of this gateway are published (`https://<run>.<domain>/`), when it has a domain.
        public var serviceURLPattern: String?
        public var modelURL: String?

        public init(project: String, name: String, uid: String, generation: Int64, resourceVersion: Int64, createdAt: Date, deleting: Bool,
                    isDefault: Bool, configuration: JSONValue, status: GatewayStatus, serviceURLPattern: String?, modelURL: String?) {
            self.project = project
            self.name = name
            self.uid = uid
            self.generation = generation
            self.resourceVersion = resourceVersion
            self.createdAt = createdAt
            self.deleting = deleting
            self.isDefault = isDefault
            self.configuration = configuration
            self.status = status
            self.serviceURLPattern = serviceURLPattern
            self.modelURL = modelURL
        }
    }

    /// The plan for a gateway configuration: `create`, `update` (in place: `domain`,
    /// `default`, `replicas`), `replace` (anything else: its processes start again), or `none`.
    public struct GatewayPlan: Codable, Sendable {
        public var action: String
        public var project: String
        public var name: String
        public var configuration: JSONValue
        public var changes: [String]
        public var resourceVersion: Int64?
        public var current: Gateway?

        public init(action: String, project: String, name: String, configuration: JSONValue, changes: [String], resourceVersion: Int64?, current: Gateway?) {
            self.action = action
            self.project = project
            self.name = name
            self.configuration = configuration
            self.changes = changes
            self.resourceVersion = resourceVersion
            self.current = current
        }
    }

    /// The answer to a gateway's report.
    public struct Acknowledged: Codable, Sendable {
        public var ok: Bool
        public init(ok: Bool = true) { self.ok = ok }
    }

    public struct StopRequest: Codable, Sendable {
        public var abort: Bool
        public init(abort: Bool) { self.abort = abort }
    }

    /// An event as the API shows it: what a controller decided about which object, how often.
    public struct Event: Codable, Sendable, Equatable {
        public var name: String
        public var resourceVersion: Int64
        /// `Run`, `Replica`, `ProxyRoute`, `Gateway`, `Source`, …
        public var kind: String
        /// The object's name.
        public var object: String
        /// `Normal` or `Warning`.
        public var type: String
        public var reason: String
        public var message: String
        public var count: Int
        public var firstTimestamp: Date
        public var lastTimestamp: Date
        /// The controller that said it.
        public var component: String?
        /// The run it is about (a run's own events, its replicas' and its route's).
        public var run: String?

        public init(name: String, resourceVersion: Int64, kind: String, object: String, type: String, reason: String, message: String,
                    count: Int, firstTimestamp: Date, lastTimestamp: Date, component: String?, run: String?) {
            self.name = name
            self.resourceVersion = resourceVersion
            self.kind = kind
            self.object = object
            self.type = type
            self.reason = reason
            self.message = message
            self.count = count
            self.firstTimestamp = firstTimestamp
            self.lastTimestamp = lastTimestamp
            self.component = component
            self.run = run
        }
    }

    /// One line of the watch stream (NDJSON).
    public struct WatchEvent: Codable, Sendable {
        /// `added`, `modified`, `deleted`; `bookmark` (only the position: nothing of the
        /// requested kinds changed up to it) and `expired` (the position is too old: list again).
        public var type: String
        public var kind: String
        public var name: String
        public var resourceVersion: Int64
        public var run: Run?
        public var replica: Replica?
        public var source: SourceView?
        public var gateway: Gateway?
        public var event: Event?

        public init(type: String, kind: String, name: String, resourceVersion: Int64, run: Run?, replica: Replica?, source: SourceView? = nil,
                    gateway: Gateway? = nil, event: Event? = nil) {
            self.gateway = gateway
            self.event = event
            self.source = source
            self.type = type
            self.kind = kind
            self.name = name
            self.resourceVersion = resourceVersion
            self.run = run
            self.replica = replica
        }
    }

    /// One line of a replica's output, or (with `error`) why its output could not be read: the
    /// stream goes on with the other replicas.
    public struct LogLine: Codable, Sendable {
        public var replica: String
        public var text: String
        public var error: String?
        public init(replica: String, text: String, error: String? = nil) {
            self.replica = replica
            self.text = text
            self.error = error
        }
    }

    /// Every error body: a code, a message, and for invalid configurations the located issues.
    public struct ErrorBody: Codable, Sendable, Error {
        public struct Issue: Codable, Sendable {
            public var path: String
            public var line: Int?
            public var column: Int?
            public var message: String
            /// The file, when the request held several (a set).
            public var file: String?
            public init(path: String, line: Int?, column: Int?, message: String, file: String? = nil) {
                self.file = file
                self.path = path
                self.line = line
                self.column = column
                self.message = message
            }
        }

        public var code: String
        public var message: String
        public var issues: [Issue]?

        public init(code: String, message: String, issues: [Issue]? = nil) {
            self.code = code
            self.message = message
            self.issues = issues
        }
    }

    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(Timestamps.format(date))
        }
        return e
    }()

    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let text = try c.decode(String.self)
            guard let date = Timestamps.parse(text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected an RFC 3339 time, got `\(text)`")
            }
            return date
        }
        return d
    }()
}

/// What `--for` names: `run/NAME` (the run with its replicas and route), `replica/NAME`,
/// `route/NAME`, `gateway/NAME`, `source/NAME`; shared by the events API and the CLI's watch.
public struct EventSelector: Sendable, Equatable {
    public var kind: String
    public var name: String

    /// The words a user types for the kinds events are about.
    public static let kinds: [String: String] = [
        "run": RunKind.name, "runs": RunKind.name, "replica": ReplicaKind.name, "replicas": ReplicaKind.name,
        "gateway": GatewayKind.name, "gateways": GatewayKind.name, "source": SourceKind.name, "sources": SourceKind.name,
        "route": ProxyRouteKind.name, "routes": ProxyRouteKind.name,
    ]
    public static let expected = "KIND/NAME with KIND one of run, replica, route, gateway, source"

    /// nil when `text` is not `KIND/NAME` of a known kind.
    public static func parse(_ text: String) -> EventSelector? {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty, let kind = kinds[parts[0].lowercased()] else { return nil }
        return EventSelector(kind: kind, name: parts[1])
    }

    public func matches(_ e: API.Event) -> Bool {
        if kind == RunKind.name { return e.run == name || (e.kind == RunKind.name && e.object == name) }
        return e.kind == kind && e.object == name
    }
}

/// RFC 3339 times as the API writes them: UTC with milliseconds (`2026-12-01T10:00:00.125Z`),
/// so that event order and watch latency can be read off them; read with or without fractions.
public enum Timestamps {
    static let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    static let whole = Date.ISO8601FormatStyle()

    public static func format(_ date: Date) -> String { fractional.format(date) }

    public static func parse(_ text: String) -> Date? {
        (try? fractional.parse(text)) ?? (try? whole.parse(text))
    }

    /// `--since`: a window back from `now` (`30s`, `10m`, `2h`, `1d`) or an RFC 3339 time.
    public static func since(_ text: String, now: Date) -> Date? {
        if let date = parse(text) { return date }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let unit = text.last.flatMap({ units[$0] }), let n = Double(text.dropLast()), n >= 0 else { return nil }
        return now.addingTimeInterval(-n * unit)
    }
}

extension API.ErrorBody.Issue {
    /// `file:line:column: path: message`, with the parts the issue has.
    public var located: String {
        let place = [file, line.map(String.init), line != nil ? String(column ?? 1) : nil].compactMap { $0 }.joined(separator: ":")
        return (place.isEmpty ? "" : place + ": ") + (path.isEmpty ? "" : path + ": ") + message
    }
}
