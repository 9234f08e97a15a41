/// The parts of a `type: service` configuration, as typed values. Each has a `json` form with
/// dstack's property names and order (`model_dump(mode="json")`).

public struct PortMapping: Sendable, Equatable {
    /// The port on the user's side of a legacy `"local:container"` mapping (80 for a bare port).
    public var localPort: Int?
    /// The port the application listens on inside the replica.
    public var containerPort: Int

    var json: JSONValue { .object([("local_port", .num(localPort)), ("container_port", .int(containerPort))]) }
}

/// `gateway:` — `true`/`false`, or a reference `<name>` / `<project>/<name>`.
public enum GatewayReference: Sendable, Equatable {
    case enabled(Bool)
    case named(project: String?, name: String)

    var json: JSONValue {
        switch self {
        case .enabled(let b): return .bool(b)
        case .named(let project, let name): return .object([("project", .str(project)), ("name", .string(name))])
        }
    }
}

public enum HTTPSMode: Sendable, Equatable {
    case enabled(Bool)
    case auto

    var json: JSONValue {
        switch self {
        case .enabled(let b): return .bool(b)
        case .auto: return .string("auto")
        }
    }
}

/// `model:` — the model published on the OpenAI-compatible endpoint.
public struct ServiceModel: Sendable, Equatable {
    public enum Format: String, Sendable { case openai, tgi }
    public var type: String = "chat"
    public var name: String
    public var format: Format
    /// Base path of the OpenAI API inside the replica (openai format).
    public var prefix: String = "/v1"
    public var chatTemplate: String?
    public var eosToken: String?

    var json: JSONValue {
        switch format {
        case .openai:
            return .object([("type", .string(type)), ("name", .string(name)), ("format", .string("openai")), ("prefix", .string(prefix))])
        case .tgi:
            return .object([("type", .string(type)), ("name", .string(name)), ("format", .string("tgi")),
                            ("chat_template", .str(chatTemplate)), ("eos_token", .str(eosToken))])
        }
    }
}

public struct ScalingSpec: Sendable, Equatable {
    public static let windows = [30, 60, 300]
    public static let defaultWindow = 60
    /// The short window panic mode looks at for a stable window (Knative's 10%, at least 2 s).
    public static func panicWindow(_ stable: Int) -> Int { Swift.max(2, stable / 10) }
    /// Every window the autoscaler reads: the stable ones and their panic windows.
    public static var countedWindows: [Int] { Array(Set(windows + windows.map(panicWindow))).sorted() }
    public var metric: String = "rps"
    /// Requests per second per replica.
    public var target: Double
    /// Seconds; `nil` means the default (60 s).
    public var window: Int?
    public var scaleUpDelay: Int = 300
    public var scaleDownDelay: Int = 600

    public init(metric: String = "rps", target: Double, window: Int? = nil, scaleUpDelay: Int = 300, scaleDownDelay: Int = 600) {
        self.metric = metric
        self.target = target
        self.window = window
        self.scaleUpDelay = scaleUpDelay
        self.scaleDownDelay = scaleDownDelay
    }

    var json: JSONValue {
        .object([("metric", .string(metric)), ("target", .double(target)), ("window", .num(window)),
                 ("scale_up_delay", .int(scaleUpDelay)), ("scale_down_delay", .int(scaleDownDelay))])
    }
}

public struct RateLimit: Sendable, Equatable {
    public enum Key: Sendable, Equatable {
        case ipAddress
        case header(String)
    }
    public var prefix: String = "/"
    public var key: Key = .ipAddress
    public var rps: Double
    public var burst: Int = 0

    var json: JSONValue {
        let key: JSONValue
        switch self.key {
        case .ipAddress: key = .object([("type", .string("ip_address"))])
        case .header(let h): key = .object([("type", .string("header")), ("header", .string(h))])
        }
        return .object([("prefix", .string(prefix)), ("key", key), ("rps", .double(rps)), ("burst", .int(burst))])
    }
}

public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String
}

/// `probes[]`: an HTTP readiness probe. `nil` fields take dstack's defaults when run.
public struct ProbeSpec: Sendable, Equatable {
    public static let defaultURL = "/"
    public static let defaultTimeout = 10
    public static let defaultInterval = 15
    public static let defaultReadyAfter = 1
    public static let methods = ["get", "post", "put", "delete", "patch", "head"]

    public var type: String = "http"
    public var url: String?
    public var method: String?
    public var headers: [HTTPHeader] = []
    public var body: String?
    public var timeout: Int?
    public var interval: Int?
    public var readyAfter: Int?
    public var untilReady: Bool?

    var json: JSONValue {
        .object([
            ("type", .string(type)), ("url", .str(url)), ("method", .str(method)),
            ("headers", .array(headers.map { .object([("name", .string($0.name)), ("value", .string($0.value))]) })),
            ("body", .str(body)), ("timeout", .num(timeout)), ("interval", .num(interval)),
            ("ready_after", .num(readyAfter)), ("until_ready", .flag(untilReady)),
        ])
    }
}

/// One value of `env`: a literal, or a bare name to be filled from the applying user's
/// environment (dstack's `EnvSentinel`, serialized as `{"key": NAME}`).
public enum EnvValue: Sendable, Equatable {
    case value(String)
    case fromEnvironment(String)
}

public struct RegistryAuth: Sendable, Equatable {
    public var username: String
    public var password: String

    var json: JSONValue { .object([("username", .string(username)), ("password", .string(password))]) }
}

/// `groups[]` (or the legacy `replicas: [...]` list): a replica group of a heterogeneous service.
public struct ReplicaGroup: Sendable, Equatable {
    public var name: String
    public var replicas: ValueRange<Int>
    public var scaling: ScalingSpec?
    public var resources: ResourcesSpec = .defaults
    public var spotPolicy: String?
    public var reservation: String?
    public var commands: [String] = []
    public var image: String?
    public var python: String?
    public var nvcc: Bool?
    public var docker: Bool?
    public var privileged: Bool?
    /// `router.type`: `smg` (written `sglang` by dstack) or `dynamo`.
    public var router: String?

    var json: JSONValue {
        .object([
            ("name", .string(name)), ("replicas", replicas.json), ("scaling", .opt(scaling) { $0.json }),
            ("resources", resources.json), ("spot_policy", .str(spotPolicy)), ("reservation", .str(reservation)),
            ("commands", .array(commands.map(JSONValue.string))), ("image", .str(image)), ("python", .str(python)),
            ("nvcc", .flag(nvcc)), ("docker", .flag(docker)), ("privileged", .flag(privileged)),
            ("router", .opt(router) { .object([("type", .string($0 == "smg" ? "sglang" : $0))]) }),
        ])
    }
}

/// `retry:` — `true`/`false`, or `{on_events, duration}`.
public enum RetrySpec: Sendable, Equatable {
    case enabled(Bool)
    case policy(onEvents: [String]?, duration: Int?)

    public static let events = ["no-capacity", "interruption", "error"]
    public static let defaultDuration = 3600

    var json: JSONValue {
        switch self {
        case .enabled(let b): return .bool(b)
        case .policy(let events, let duration):
            return .object([("on_events", .strings(events)), ("duration", .num(duration))])
        }
    }
}

/// `max_duration` / `stop_duration`: seconds, or `off`.
public enum OffableDuration: Sendable, Equatable {
    case off
    case seconds(Int)

    var json: JSONValue {
        switch self {
        case .off: return .string("off")
        case .seconds(let s): return .int(s)
        }
    }
}
