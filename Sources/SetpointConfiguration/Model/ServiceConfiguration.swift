/// A validated, normalized `type: service` configuration.
///
/// Property names, defaults and meaning follow dstack's `ServiceConfiguration` (0.22.5); see
/// docs/configuration.md. `json` is the normalized form that `setpoint validate -o json` prints
/// and the store keeps.
public struct ServiceConfiguration: Sendable, Equatable {
    // Service properties
    public var port: PortMapping
    public var gateway: GatewayReference?
    public var stripPrefix: Bool = true
    public var model: ServiceModel?
    public var https: HTTPSMode?
    public var auth: Bool = true
    public var scaling: ScalingSpec?
    public var rateLimits: [RateLimit] = []
    /// `nil` = omitted (a model gets its default probe), `[]` = explicitly none.
    public var probes: [ProbeSpec]?
    public var replicas: ValueRange<Int>?
    public var groups: [ReplicaGroup]?
    public var commands: [String] = []
    // Run properties
    public var name: String?
    public var image: String?
    public var user: String?
    public var privileged: Bool = false
    public var entrypoint: String?
    public var workingDir: String?
    public var homeDir: String = "/root"
    public var registryAuth: RegistryAuth?
    public var python: String?
    public var nvcc: Bool?
    public var singleBranch: Bool?
    public var env: [(String, EnvValue)] = []
    public var shell: String?
    public var resources: ResourcesSpec = .defaults
    public var priority: Int?
    public var volumes: [JSONValue] = []
    public var docker: Bool?
    public var repos: [JSONValue] = []
    public var files: [JSONValue] = []
    public var dstack: Bool = false
    public var setup: [String] = []
    // Profile properties
    public var backends: [String]?
    public var regions: [String]?
    public var availabilityZones: [String]?
    public var instanceTypes: [String]?
    public var reservation: String?
    public var spotPolicy: String?
    public var retry: RetrySpec?
    public var maxDuration: OffableDuration?
    public var stopDuration: OffableDuration?
    public var maxPrice: Double?
    public var creationPolicy: String?
    public var idleDuration: Int?
    public var utilizationPolicy: JSONValue?
    public var startupOrder: String?
    public var stopCriteria: String?
    /// `schedule.cron`, always a list.
    public var schedule: [String]?
    public var fleets: [JSONValue]?
    public var instances: [JSONValue]?
    public var tags: [(String, String)]?
    public var backendOptions: [JSONValue]?

    public static func == (lhs: ServiceConfiguration, rhs: ServiceConfiguration) -> Bool {
        lhs.json == rhs.json
    }

    /// The replica groups the service runs: `groups`, or one group `"0"` built from the
    /// top-level `replicas` (default 1), `commands`, `resources` and `scaling`.
    public var replicaGroups: [ReplicaGroup] {
        if let groups { return groups }
        return [ReplicaGroup(name: "0", replicas: replicas ?? .exactly(1), scaling: scaling,
                             resources: resources, commands: commands)]
    }

    /// Environment as a dictionary of literal values; names without a value are listed in
    /// `unresolved`.
    public var literalEnvironment: (values: [String: String], unresolved: [String]) {
        var values: [String: String] = [:]
        var unresolved: [String] = []
        for (k, v) in env {
            switch v {
            case .value(let s): values[k] = s
            case .fromEnvironment: unresolved.append(k)
            }
        }
        return (values, unresolved)
    }

    public var json: JSONValue {
        .object([
            ("port", port.json),
            ("gateway", .opt(gateway) { $0.json }),
            ("strip_prefix", .bool(stripPrefix)),
            ("model", .opt(model) { $0.json }),
            ("https", .opt(https) { $0.json }),
            ("auth", .bool(auth)),
            ("scaling", .opt(scaling) { $0.json }),
            ("rate_limits", .array(rateLimits.map(\.json))),
            ("probes", .opt(probes) { .array($0.map(\.json)) }),
            ("replicas", .opt(replicas) { $0.json }),
            ("groups", .opt(groups) { .array($0.map(\.json)) }),
            ("commands", .array(commands.map(JSONValue.string))),
            ("type", .string("service")),
            ("name", .str(name)),
            ("image", .str(image)),
            ("user", .str(user)),
            ("privileged", .bool(privileged)),
            ("entrypoint", .str(entrypoint)),
            ("working_dir", .str(workingDir)),
            ("home_dir", .string(homeDir)),
            ("registry_auth", .opt(registryAuth) { $0.json }),
            ("python", .str(python)),
            ("nvcc", .flag(nvcc)),
            ("single_branch", .flag(singleBranch)),
            ("env", .object(env.map { k, v in
                switch v {
                case .value(let s): return (k, .string(s))
                case .fromEnvironment(let key): return (k, .object([("key", .string(key))]))
                }
            })),
            ("shell", .str(shell)),
            ("resources", resources.json),
            ("priority", .num(priority)),
            ("volumes", .array(volumes)),
            ("docker", .flag(docker)),
            ("repos", .array(repos)),
            ("files", .array(files)),
            ("dstack", .bool(dstack)),
            ("setup", .array(setup.map(JSONValue.string))),
            ("backends", .strings(backends)),
            ("regions", .strings(regions)),
            ("availability_zones", .strings(availabilityZones)),
            ("instance_types", .strings(instanceTypes)),
            ("reservation", .str(reservation)),
            ("spot_policy", .str(spotPolicy)),
            ("retry", .opt(retry) { $0.json }),
            ("max_duration", .opt(maxDuration) { $0.json }),
            ("stop_duration", .opt(stopDuration) { $0.json }),
            ("max_price", .num(maxPrice)),
            ("creation_policy", .str(creationPolicy)),
            ("idle_duration", .num(idleDuration)),
            ("utilization_policy", utilizationPolicy ?? .null),
            ("startup_order", .str(startupOrder)),
            ("stop_criteria", .str(stopCriteria)),
            ("schedule", .opt(schedule) { .object([("cron", .array($0.map(JSONValue.string)))]) }),
            ("fleets", .opt(fleets) { .array($0) }),
            ("instances", .opt(instances) { .array($0) }),
            ("tags", .opt(tags) { .object($0.map { ($0.0, JSONValue.string($0.1)) }) }),
            ("backend_options", .opt(backendOptions) { .array($0) }),
        ])
    }

    /// Every property a service accepts, for unknown-key checks and suggestions.
    public static let propertyNames = [
        "type", "port", "gateway", "strip_prefix", "model", "https", "auth", "scaling", "rate_limits",
        "probes", "replicas", "groups", "commands", "name", "image", "user", "privileged", "entrypoint",
        "working_dir", "home_dir", "registry_auth", "python", "nvcc", "single_branch", "env", "shell",
        "resources", "priority", "volumes", "docker", "repos", "files", "dstack", "setup",
    ] + ProfileProperties.names
}

enum ProfileProperties {
    static let names = [
        "backends", "regions", "availability_zones", "instance_types", "reservation", "spot_policy",
        "retry", "max_duration", "stop_duration", "max_price", "creation_policy", "idle_duration",
        "utilization_policy", "startup_order", "stop_criteria", "schedule", "fleets", "instances",
        "tags", "backend_options",
    ]
    static let backendTypes = [
        "amddevcloud", "aws", "azure", "cloudrift", "crusoe", "cudo", "datacrunch", "daytona",
        "digitalocean", "dstack", "gcp", "hotaisle", "jarvislabs", "kubernetes", "lambda", "lium",
        "remote", "nebius", "oci", "runpod", "seeweb", "tensordock", "vastai", "verda", "vultr", "slurm",
    ]
    static let spotPolicies = ["spot", "on-demand", "auto"]
    static let pythonVersions = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]
}
