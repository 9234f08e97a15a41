/// Reads a `type: service` document. Properties are read in dstack's validation order, because
/// some checks look at properties read before them (`python` after `image`, `docker` after
/// `image`, `python` and `nvcc`), and cross-property rules run only when the properties they
/// compare are valid — as pydantic's model validators do.
extension Reader {
    func service(_ node: YAMLNode, _ root: FieldPath) -> ServiceConfiguration? {
        guard let obj = object(node, root, keys: ServiceConfiguration.propertyNames) else { return nil }
        let start = issues.count

        // Legacy replica groups: `replicas: [ ... ]` means `groups`.
        var replicasNode = obj["replicas"]
        var groupsNode = obj["groups"]
        var groupsKey = "groups"
        if groupsNode?.isNull ?? true, let r = replicasNode, r.value.isList {
            groupsNode = r
            replicasNode = nil
            groupsKey = "replicas"
        }
        if let g = groupsNode, !g.isNull, let r = replicasNode, !r.isNull {
            obj.fail("`replicas` and `groups` are mutually exclusive: set the replica count in each group", at: "replicas")
            return nil
        }

        let port = obj.required("port", what: "a port number 1..65535", servicePort)
        let gateway = obj.optional("gateway", gatewayReference)
        let stripPrefix = obj.nonNull("strip_prefix", what: "a boolean", default: true, bool)
        let model = obj.optional("model", serviceModel)
        let https = obj.optional("https") { v, p -> HTTPSMode? in
            if case .string("auto") = v.value { return .auto }
            if let b = Lax.bool(v.value) { return .enabled(b) }
            self.expected("true, false or `auto`", v, p)
            return nil
        }
        let auth = obj.nonNull("auth", what: "a boolean", default: true, bool)
        let scaling = obj.optional("scaling", scalingSpec)
        let rateLimits = obj.nonNull("rate_limits", what: "a list of rate limits", default: [], rateLimitList)
        let probes = obj.optional("probes", probeList)
        let replicas = replicasNode.flatMap { $0.isNull ? nil : replicaCount($0, obj.at("replicas")) }
        let groups = groupsNode.flatMap { $0.isNull ? nil : replicaGroups($0, obj.at(groupsKey)) }
        let commands = obj.nonNull("commands", what: "a list of shell commands", default: [], stringList)

        var config = ServiceConfiguration(port: port ?? PortMapping(localPort: nil, containerPort: 1))
        config.gateway = gateway
        config.stripPrefix = stripPrefix ?? true
        config.model = model
        config.https = https
        config.auth = auth ?? true
        config.scaling = scaling
        config.rateLimits = rateLimits ?? []
        config.probes = probes
        config.replicas = replicas
        config.groups = groups
        config.commands = commands ?? []

        readRunProperties(obj, into: &config)
        readProfile(obj, into: &config)

        guard issues.count == start, port != nil else { return nil }
        checkServiceRules(config, obj)
        guard issues.count == start else { return nil }
        return config
    }

    // MARK: run properties (shared with tasks in dstack)

    private func readRunProperties(_ obj: ObjectReader, into c: inout ServiceConfiguration) {
        c.name = obj.optional("name", string)
        c.image = obj.optional("image", string)
        c.user = obj.optional("user") { v, p in
            guard let s = self.string(v, p) else { return nil }
            if let problem = Self.unixUserProblem(s) {
                self.fail(p, v, "invalid user format `\(s)`: \(problem); expected `name_or_uid[:group_or_gid]`")
                return nil
            }
            return s
        }
        c.privileged = obj.nonNull("privileged", what: "a boolean", default: false, bool) ?? false
        c.entrypoint = obj.optional("entrypoint", string)
        c.workingDir = obj.optional("working_dir", string)
        c.homeDir = obj.nonNull("home_dir", what: "a string", default: "/root", string) ?? "/root"
        c.registryAuth = obj.optional("registry_auth", registryAuth)
        let imageSet = !(c.image ?? "").isEmpty
        c.python = obj.optional("python") { v, p in self.pythonVersion(v, p, imageSet: imageSet, scope: "fields") }
        c.nvcc = obj.optional("nvcc", bool)
        c.singleBranch = obj.optional("single_branch", bool)
        c.env = obj.nonNull("env", what: "a list or mapping of environment variables", default: [], environment) ?? []
        c.shell = obj.optional("shell") { v, p in
            guard let s = self.string(v, p) else { return nil }
            guard s == "sh" || s == "bash" || s.hasPrefix("/") else {
                self.fail(p, v, "the shell must be `sh`, `bash`, or an absolute path, got `\(s)`")
                return nil
            }
            return s
        }
        c.resources = obj.nonNull("resources", what: "a resources mapping", default: .defaults, resources) ?? .defaults
        c.priority = obj.optional("priority") { v, p in
            guard let i = self.int(v, p) else { return nil }
            guard (0...100).contains(i) else { self.fail(p, v, "priority must be between 0 and 100, got \(i)"); return nil }
            return i
        }
        c.volumes = obj.nonNull("volumes", what: "a list of volume mounts", default: []) { v, p in self.list(v, p, self.mountPoint) } ?? []
        let docker = obj.optional("docker", bool)
        if docker == true, let d = obj["docker"] {
            if imageSet { fail(obj.at("docker"), d, "`image` and `docker` are mutually exclusive fields") }
            else if c.python != nil { fail(obj.at("docker"), d, "`python` and `docker` are mutually exclusive fields") }
            else if c.nvcc == true { fail(obj.at("docker"), d, "`nvcc` and `docker` are mutually exclusive fields") }
        }
        c.docker = docker
        c.repos = obj.nonNull("repos", what: "a list of repos", default: []) { v, p in
            guard let repos = self.list(v, p, self.repoSpec) else { return nil }
            if repos.count > 1 { self.fail(p, v, "a maximum of one repo is currently supported, got \(repos.count)"); return nil }
            return repos
        } ?? []
        c.files = obj.nonNull("files", what: "a list of file mappings", default: []) { v, p in self.list(v, p, self.fileMapping) } ?? []
        c.dstack = obj.nonNull("dstack", what: "a boolean", default: false, bool) ?? false
        c.setup = obj.nonNull("setup", what: "a list of commands", default: [], stringList) ?? []
    }

    // MARK: cross-property rules of ServiceConfiguration

    private func checkServiceRules(_ c: ServiceConfiguration, _ obj: ObjectReader) {
        if c.groups == nil {
            if c.commands.isEmpty && (c.image ?? "").isEmpty {
                obj.fail("either `commands` or `image` must be set: give the commands that start the service, or an image whose entrypoint does")
            }
            if c.replicas == nil, c.scaling != nil {
                // dstack accepts this at parse time and fails with an internal error when it
                // builds the replica group; say what is wrong instead.
                obj.fail("`scaling` needs `replicas` set to a range (like `replicas: 1..4`); without `replicas` the service runs a fixed single replica", at: "scaling")
            }
            if let r = c.replicas {
                if r.min != r.max && c.scaling == nil {
                    obj.fail("when you set `replicas` to a range (\(r.text)), also specify `scaling` (like `scaling: {metric: rps, target: 10}`), or set a fixed count", at: "replicas")
                }
                if r.min == r.max && c.scaling != nil {
                    obj.fail("to use `scaling`, `replicas` must be set to a range (like `0..4`), got a fixed count \(r.text)", at: "scaling")
                }
            }
            return
        }
        let groups = c.groups ?? []
        if c.scaling != nil {
            obj.fail("top-level `scaling` is not allowed when `groups` is set: specify `scaling` in each replica group instead", at: "scaling")
        }
        if !c.commands.isEmpty {
            obj.fail("top-level `commands` is not allowed when `groups` is set: specify `commands` in each replica group instead", at: "commands")
        }
        let both: [(String, Bool, (ReplicaGroup) -> Bool)] = [
            ("image", c.image != nil, { $0.image != nil }),
            ("docker", c.docker == true, { $0.docker != nil }),
            ("privileged", c.privileged, { $0.privileged != nil }),
            ("python", c.python != nil, { $0.python != nil }),
            ("nvcc", c.nvcc == true, { $0.nvcc != nil }),
            ("spot_policy", c.spotPolicy != nil, { $0.spotPolicy != nil }),
            ("reservation", c.reservation != nil, { $0.reservation != nil }),
        ]
        for (field, serviceSet, groupSet) in both where serviceSet {
            let conflicting = groups.filter(groupSet).map(\.name)
            if !conflicting.isEmpty {
                obj.fail("`\(field)` is set at both the service level and in replica group(s) \(pyList(conflicting)): set it in one place only — at the service level (all groups inherit) or per group", at: field)
            }
        }
        let conflicts: [(String, Bool, String, (ReplicaGroup) -> Bool)] = [
            ("image", c.image != nil, "docker", { $0.docker != nil }),
            ("image", c.image != nil, "python", { $0.python != nil }),
            ("image", c.image != nil, "nvcc", { $0.nvcc != nil }),
            ("docker", c.docker == true, "image", { $0.image != nil }),
            ("docker", c.docker == true, "python", { $0.python != nil }),
            ("docker", c.docker == true, "nvcc", { $0.nvcc != nil }),
            ("python", c.python != nil, "image", { $0.image != nil }),
            ("python", c.python != nil, "docker", { $0.docker != nil }),
            ("nvcc", c.nvcc == true, "image", { $0.image != nil }),
            ("nvcc", c.nvcc == true, "docker", { $0.docker != nil }),
        ]
        for (serviceField, serviceSet, groupField, groupSet) in conflicts where serviceSet {
            let conflicting = groups.filter(groupSet).map(\.name)
            if !conflicting.isEmpty {
                obj.fail("service-level `\(serviceField)` conflicts with group-level `\(groupField)` in replica group(s) \(pyList(conflicting)): these image sources are mutually exclusive", at: serviceField)
            }
        }
        for g in groups where g.commands.isEmpty && g.image == nil && c.image == nil {
            obj.fail("replica group '\(g.name)': either `commands` or `image` must be set in the group, or `image` at the service level")
        }
        let routers = groups.filter { $0.router != nil }
        if routers.count > 1 {
            obj.fail("at most one replica group may specify `router`")
        } else if let r = routers.first, r.replicas.min != 1 || r.replicas.max != 1 {
            obj.fail("replica group '\(r.name)' has a `router`, so it must have `replicas: 1`")
        }
    }

    // MARK: service properties

    /// `port`: `8000`, `"8000"`, legacy `"80:8000"`, or `{container_port, local_port}`.
    func servicePort(_ node: YAMLNode, _ path: FieldPath) -> PortMapping? {
        func valid(_ p: Int) -> Bool { p > 0 && p <= 65535 }
        let range = "a port number between 1 and 65535"
        switch node.value {
        case .int, .float, .bool:
            guard let p = int(node, path) else { return nil }
            guard valid(p) else { fail(path, node, "port \(p) is out of range: expected \(range)"); return nil }
            return PortMapping(localPort: 80, containerPort: p)
        case .string(let s):
            if let p = Lax.parseInt(s) {
                guard valid(p) else { fail(path, node, "port \(p) is out of range: expected \(range)"); return nil }
                return PortMapping(localPort: 80, containerPort: p)
            }
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            if parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
               parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }),
               let local = Int(parts[0]), let container = Int(parts[1]) {
                guard valid(local), valid(container) else {
                    fail(path, node, "port mapping `\(s)` is out of range: both ports must be between 1 and 65535")
                    return nil
                }
                return PortMapping(localPort: local, containerPort: container)
            }
            fail(path, node, "invalid port `\(s)`: expected \(range) (like `8000`)")
            return nil
        case .map:
            guard let obj = object(node, path, keys: ["local_port", "container_port"]) else { return nil }
            let local = obj.optional("local_port") { v, p -> Int? in
                guard let i = self.int(v, p) else { return nil }
                guard valid(i) else { self.fail(p, v, "port \(i) is out of range: expected \(range)"); return nil }
                return i
            }
            let container = obj.required("container_port", what: range) { v, p -> Int? in
                guard let i = self.int(v, p) else { return nil }
                guard valid(i) else { self.fail(p, v, "port \(i) is out of range: expected \(range)"); return nil }
                return i
            }
            guard obj.isValid, let container else { return nil }
            return PortMapping(localPort: local, containerPort: container)
        default:
            expected(range, node, path)
            return nil
        }
    }

    /// `gateway`: booleans first (pydantic `left_to_right`: `yes` means true), then a reference.
    func gatewayReference(_ node: YAMLNode, _ path: FieldPath) -> GatewayReference? {
        if let b = Lax.bool(node.value) { return .enabled(b) }
        if case .map = node.value { return entityReference(node, path).map { .named(project: $0.project, name: $0.name) } }
        guard let s = string(node, path) else { return nil }
        guard let ref = parseEntityReference(s) else {
            fail(path, node, "invalid gateway reference `\(s)`: only `<name>` or `<project>/<name>` are allowed")
            return nil
        }
        return .named(project: ref.project, name: ref.name)
    }

    func parseEntityReference(_ s: String) -> (project: String?, name: String)? {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.contains(where: \.isEmpty) { return nil }
        if parts.count == 1 { return (nil, parts[0]) }
        if parts.count == 2 { return (parts[0], parts[1]) }
        return nil
    }

    /// `{project?, name}` or `"<project>/<name>"` / `"<name>"`.
    func entityReference(_ node: YAMLNode, _ path: FieldPath) -> (project: String?, name: String)? {
        if case .map = node.value {
            guard let obj = object(node, path, keys: ["project", "name"]) else { return nil }
            let project = obj.optional("project", string)
            let name = obj.required("name", what: "a name", string)
            guard obj.isValid, let name else { return nil }
            return (project, name)
        }
        guard let s = string(node, path) else { return nil }
        guard let ref = parseEntityReference(s) else {
            fail(path, node, "invalid reference `\(s)`: only `<name>` or `<project>/<name>` are allowed")
            return nil
        }
        return ref
    }

    func entityReferenceJSON(_ node: YAMLNode, _ path: FieldPath) -> JSONValue? {
        entityReference(node, path).map { .object([("project", .str($0.project)), ("name", .string($0.name))]) }
    }

    /// `model`: a name (an OpenAI-compatible chat model at `/v1`) or a mapping with `format`.
    func serviceModel(_ node: YAMLNode, _ path: FieldPath) -> ServiceModel? {
        if case .string(let s) = node.value { return ServiceModel(name: s, format: .openai) }
        guard case .map = node.value else {
            expected("a model name or a mapping with `name` and `format`", node, path)
            return nil
        }
        guard let formatNode = node["format"] else {
            fail(path, node, "a model mapping needs `format`: `openai` or `tgi`")
            return nil
        }
        guard case .string(let format) = formatNode.value, let f = ServiceModel.Format(rawValue: format) else {
            _ = oneOf(formatNode, path.appending("format"), ["tgi", "openai"])
            return nil
        }
        let keys = f == .openai ? ["type", "name", "format", "prefix"] : ["type", "name", "format", "chat_template", "eos_token"]
        guard let obj = object(node, path, keys: keys) else { return nil }
        _ = obj.optional("type") { v, p in self.oneOf(v, p, ["chat"]) }
        if obj["type"]?.isNull == true { obj.fail("`type` cannot be null: expected `chat`", at: "type") }
        let name = obj.required("name", what: "the model name clients send", string)
        var model = ServiceModel(name: name ?? "", format: f)
        if f == .openai {
            model.prefix = obj.nonNull("prefix", what: "a URL path prefix", default: "/v1", string) ?? "/v1"
        } else {
            model.chatTemplate = obj.optional("chat_template", string)
            model.eosToken = obj.optional("eos_token", string)
        }
        return obj.isValid && name != nil ? model : nil
    }

    func scalingSpec(_ node: YAMLNode, _ path: FieldPath) -> ScalingSpec? {
        guard let obj = object(node, path, keys: ["metric", "target", "window", "scale_up_delay", "scale_down_delay"]) else { return nil }
        _ = obj.required("metric", what: "`rps`") { v, p in self.oneOf(v, p, ["rps"]) }
        let target = obj.required("target", what: "requests per second per replica, greater than 0") { v, p -> Double? in
            guard let d = self.float(v, p) else { return nil }
            guard d > 0 else { self.fail(p, v, "the scaling target must be greater than 0, got \(PythonFormat.float(d))"); return nil }
            return d
        }
        let window = obj.optional("window") { v, p -> Int? in
            guard let d = self.duration(v, p) else { return nil }
            guard ScalingSpec.windows.contains(d) else {
                self.fail(p, v, "the scaling window must be one of `30s`, `60s`, `300s`, got \(d)s")
                return nil
            }
            return d
        }
        let up = obj.nonNull("scale_up_delay", what: "a duration", default: 300, duration)
        let down = obj.nonNull("scale_down_delay", what: "a duration", default: 600, duration)
        guard obj.isValid, let target, let up, let down else { return nil }
        return ScalingSpec(target: target, window: window, scaleUpDelay: up, scaleDownDelay: down)
    }

    func rateLimitList(_ node: YAMLNode, _ path: FieldPath) -> [RateLimit]? {
        guard let limits = list(node, path, rateLimit) else { return nil }
        var seen: [String] = []
        var duplicates: [String] = []
        for l in limits {
            if seen.contains(l.prefix) { if !duplicates.contains(l.prefix) { duplicates.append(l.prefix) } }
            else { seen.append(l.prefix) }
        }
        if !duplicates.isEmpty {
            fail(path, node, "prefixes \(pyList(duplicates)) are used more than once: each rate limit needs its own path prefix")
            return nil
        }
        return limits
    }

    func rateLimit(_ node: YAMLNode, _ path: FieldPath) -> RateLimit? {
        guard let obj = object(node, path, keys: ["prefix", "key", "rps", "burst"]) else { return nil }
        let prefix = obj.nonNull("prefix", what: "a URL path prefix", default: "/") { v, p -> String? in
            guard let s = self.string(v, p) else { return nil }
            let bad = s.unicodeScalars.contains { $0.properties.isWhitespace || $0 == "\\" || $0 == "{" || $0 == "}" }
            guard s.hasPrefix("/"), !bad, s.count <= 4094 else {
                self.fail(p, v, "invalid prefix `\(s)`: it must start with `/` and contain no spaces, `\\`, `{` or `}` (at most 4094 characters)")
                return nil
            }
            return s
        }
        let key = obj.nonNull("key", what: "a partitioning key", default: RateLimit.Key.ipAddress) { v, p -> RateLimit.Key? in
            guard case .map = v.value else { self.expected("a mapping like `{type: ip_address}` or `{type: header, header: X-API-Key}`", v, p); return nil }
            guard let typeNode = v["type"] else { self.fail(p, v, "a rate limit key needs `type`: `ip_address` or `header`"); return nil }
            guard let type = self.oneOf(typeNode, p.appending("type"), ["ip_address", "header"]) else { return nil }
            if type == "ip_address" {
                guard let o = self.object(v, p, keys: ["type"]) else { return nil }
                return o.isValid ? .ipAddress : nil
            }
            guard let o = self.object(v, p, keys: ["type", "header"]) else { return nil }
            let header = o.required("header", what: "a header name") { hv, hp -> String? in
                guard let h = self.string(hv, hp) else { return nil }
                guard !h.isEmpty, h.count <= 500, h.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                    self.fail(hp, hv, "invalid header name `\(h)`: use letters, digits, `-` and `_` (at most 500)")
                    return nil
                }
                return h
            }
            return header.map { .header($0) }
        }
        let rps = obj.required("rps", what: "requests per second, at least 1/60") { v, p -> Double? in
            guard let d = self.float(v, p) else { return nil }
            guard d >= 1.0 / 60.0, d <= Double(Int64.max / 60) else {
                self.fail(p, v, "rps must be at least 1/60 (one request per minute), got \(PythonFormat.float(d))")
                return nil
            }
            return d
        }
        let burst = obj.nonNull("burst", what: "a non-negative integer", default: 0) { v, p -> Int? in
            guard let i = self.int(v, p) else { return nil }
            guard i >= 0 else { self.fail(p, v, "burst must be 0 or more, got \(i)"); return nil }
            return i
        }
        guard obj.isValid, let prefix, let key, let rps, let burst else { return nil }
        return RateLimit(prefix: prefix, key: key, rps: rps, burst: burst)
    }

    func probeList(_ node: YAMLNode, _ path: FieldPath) -> [ProbeSpec]? {
        guard let probes = list(node, path, probe) else { return nil }
        for i in probes.indices where probes[..<i].contains(probes[i]) {
            fail(path[i], node, "probes must be unique: this probe repeats an earlier one")
            return nil
        }
        if probes.count > 10 {
            fail(path, node, "cannot configure more than 10 probes, got \(probes.count)")
            return nil
        }
        return probes
    }

    func probe(_ node: YAMLNode, _ path: FieldPath) -> ProbeSpec? {
        guard let obj = object(node, path, keys: ["type", "url", "method", "headers", "body", "timeout", "interval", "ready_after", "until_ready"]) else { return nil }
        _ = obj.required("type", what: "`http`") { v, p in self.oneOf(v, p, ["http"]) }
        var probe = ProbeSpec()
        probe.url = obj.optional("url") { v, p -> String? in
            guard let s = self.string(v, p) else { return nil }
            if !s.hasPrefix("/") { self.fail(p, v, "the probe URL must start with `/`, got `\(s)`"); return nil }
            if s.count > 2048 { self.fail(p, v, "the probe URL cannot be longer than 2048 characters"); return nil }
            if !Self.isPrintable(s) { self.fail(p, v, "the probe URL cannot contain non-printable characters"); return nil }
            return s
        }
        probe.method = obj.optional("method") { v, p in self.oneOf(v, p, ProbeSpec.methods) }
        probe.headers = obj.nonNull("headers", what: "a list of headers", default: []) { v, p -> [HTTPHeader]? in
            guard let headers = self.list(v, p, self.header) else { return nil }
            if headers.count > 16 { self.fail(p, v, "at most 16 probe headers are allowed, got \(headers.count)"); return nil }
            return headers
        } ?? []
        probe.body = obj.optional("body") { v, p -> String? in
            guard let s = self.string(v, p) else { return nil }
            guard (1...2048).contains(s.count) else { self.fail(p, v, "the probe body must be 1 to 2048 characters long"); return nil }
            return s
        }
        probe.timeout = obj.optional("timeout") { v, p -> Int? in
            guard let d = self.duration(v, p) else { return nil }
            if d < 1 { self.fail(p, v, "probe timeout cannot be shorter than 1s"); return nil }
            if d > 300 { self.fail(p, v, "probe timeout cannot be longer than 300s, got \(d)s"); return nil }
            return d
        }
        probe.interval = obj.optional("interval") { v, p -> Int? in
            guard let d = self.duration(v, p) else { return nil }
            if d < 1 { self.fail(p, v, "probe interval cannot be shorter than 1s"); return nil }
            return d
        }
        probe.readyAfter = obj.optional("ready_after") { v, p -> Int? in
            guard let i = self.int(v, p) else { return nil }
            if i < 1 { self.fail(p, v, "ready_after must be at least 1, got \(i)"); return nil }
            return i
        }
        probe.untilReady = obj.optional("until_ready", bool)
        guard obj.isValid else { return nil }
        if probe.body != nil, let m = probe.method, m == "get" || m == "head" {
            obj.fail("cannot set a request body for the `\(m)` method: use `post`, `put`, `patch` or `delete`", at: "body")
            return nil
        }
        return probe
    }

    func header(_ node: YAMLNode, _ path: FieldPath) -> HTTPHeader? {
        guard let obj = object(node, path, keys: ["name", "value"]) else { return nil }
        let name = obj.required("name", what: "a header name") { v, p -> String? in
            guard let s = self.string(v, p) else { return nil }
            guard (1...256).contains(s.count) else { self.fail(p, v, "a header name must be 1 to 256 characters long"); return nil }
            return s
        }
        let value = obj.required("value", secret: true, what: "a header value") { v, p -> String? in
            guard let s = self.string(v, p) else { return nil }
            guard (1...2048).contains(s.count) else { self.fail(p, v, "a header value must be 1 to 2048 characters long"); return nil }
            return s
        }
        guard let name, let value else { return nil }
        return HTTPHeader(name: name, value: value)
    }

    /// `replicas`: a count or a range; the maximum is required and the minimum is at least 0.
    func replicaCount(_ node: YAMLNode, _ path: FieldPath) -> ValueRange<Int>? {
        guard var r = intRange(node, path) else { return nil }
        guard r.max != nil else {
            fail(path, node, "the maximum number of replicas is required: write a range like `\(r.min ?? 0)..4`")
            return nil
        }
        if r.min == nil { r.min = 0 }
        if let min = r.min, min < 0 {
            fail(path, node, "the minimum number of replicas must be 0 or more, got \(min)")
            return nil
        }
        return r
    }

    func replicaGroups(_ node: YAMLNode, _ path: FieldPath) -> [ReplicaGroup]? {
        guard let items = list(node, path) else { return nil }
        if items.isEmpty {
            fail(path, node, "`groups` cannot be an empty list")
            return nil
        }
        var groups: [ReplicaGroup] = []
        var ok = true
        for (i, item) in items.enumerated() {
            if var g = replicaGroup(item, path[i]) {
                if g.name.isEmpty { g.name = String(i) }
                groups.append(g)
            } else { ok = false }
        }
        guard ok else { return nil }
        var seen = Set<String>()
        var duplicates: [String] = []
        for g in groups {
            if !seen.insert(g.name).inserted, !duplicates.contains(g.name) { duplicates.append(g.name) }
        }
        if !duplicates.isEmpty {
            fail(path, node, "duplicate replica group names \(pyList(duplicates)): each replica group needs a unique name")
            return nil
        }
        return groups
    }

    func replicaGroup(_ node: YAMLNode, _ path: FieldPath) -> ReplicaGroup? {
        let keys = ["name", "replicas", "count", "scaling", "resources", "spot_policy", "reservation", "commands",
                    "image", "python", "nvcc", "docker", "privileged", "router"]
        guard let obj = object(node, path, keys: keys) else { return nil }
        let name = obj.optional("name") { v, p -> String? in
            guard let s = self.string(v, p) else { return nil }
            guard Self.matches(s, first: { $0.isLowercaseAlnum }, rest: { $0.isLowercaseAlnum || $0 == "-" }, max: 40) else {
                self.fail(p, v, "invalid replica group name `\(s)`: use lowercase letters, digits and `-`, starting with a letter or digit (at most 40)")
                return nil
            }
            return s
        }
        let replicasKey = obj.has("replicas") ? "replicas" : "count"
        let replicas = obj.required(replicasKey, what: "a replica count or range, like `1` or `0..4`", replicaCount)
        let scaling = obj.optional("scaling", scalingSpec)
        let resources = obj.nonNull("resources", what: "a resources mapping", default: .defaults, self.resources)
        let spot = obj.optional("spot_policy") { v, p in self.oneOf(v, p, ProfileProperties.spotPolicies) }
        let reservation = obj.optional("reservation", string)
        let commands = obj.nonNull("commands", what: "a list of shell commands", default: [], stringList)
        let image = obj.optional("image", string)
        let python = obj.optional("python") { v, p in self.pythonVersion(v, p, imageSet: !(image ?? "").isEmpty, scope: "within a replica group") }
        let nvcc = obj.optional("nvcc", bool)
        let docker = obj.optional("docker", bool)
        if docker == true, let d = obj["docker"] {
            if !(image ?? "").isEmpty { fail(obj.at("docker"), d, "`image` and `docker` are mutually exclusive within a replica group") }
            else if python != nil { fail(obj.at("docker"), d, "`python` and `docker` are mutually exclusive within a replica group") }
            else if nvcc == true { fail(obj.at("docker"), d, "`nvcc` and `docker` are mutually exclusive within a replica group") }
        }
        let privileged = obj.optional("privileged", bool)
        if privileged == false, docker == true, let p = obj["privileged"] {
            fail(obj.at("privileged"), p, "`privileged: false` is incompatible with `docker: true` within a replica group (docker-in-docker requires privileged mode)")
        }
        let router = obj.optional("router") { v, p -> String? in
            guard let o = self.object(v, p, keys: ["type"]) else { return nil }
            let type = o.nonNull("type", what: "`smg` or `dynamo`", default: "smg") { tv, tp -> String? in
                if case .string("sglang") = tv.value { return "smg" }
                return self.oneOf(tv, tp, ["smg", "dynamo"])
            }
            return o.isValid ? type : nil
        }
        guard obj.isValid, let replicas, let resources, let commands else { return nil }
        if replicas.min != replicas.max && scaling == nil {
            obj.fail("when you set `replicas` to a range (\(replicas.text)), also specify `scaling`", at: replicasKey)
            return nil
        }
        if replicas.min == replicas.max && scaling != nil {
            obj.fail("to use `scaling`, `replicas` must be set to a range, got a fixed count \(replicas.text)", at: "scaling")
            return nil
        }
        return ReplicaGroup(name: name ?? "", replicas: replicas, scaling: scaling, resources: resources,
                            spotPolicy: spot, reservation: reservation, commands: commands, image: image,
                            python: python, nvcc: nvcc, docker: docker, privileged: privileged, router: router)
    }

    /// `python`: `"3.9"` … `"3.15"`; the float `3.1` is read as `3.10` (YAML reads `3.10` as 3.1).
    func pythonVersion(_ node: YAMLNode, _ path: FieldPath, imageSet: Bool, scope: String) -> String? {
        if imageSet {
            fail(path, node, "`image` and `python` are mutually exclusive \(scope): the image brings its own Python")
            return nil
        }
        var text: String?
        switch node.value {
        case .float(let d):
            let s = PythonFormat.float(d)
            text = s == "3.1" ? "3.10" : s
        case .string(let s): text = s
        default: text = nil
        }
        if let text, ProfileProperties.pythonVersions.contains(text) { return text }
        let shown = text.map { "`\($0)`" } ?? show(node, path)
        fail(path, node, "unsupported Python version \(shown): expected one of \(ProfileProperties.pythonVersions.map { "`\($0)`" }.joined(separator: ", ")) (quote it: `python: \"3.10\"`)")
        return nil
    }

    func registryAuth(_ node: YAMLNode, _ path: FieldPath) -> RegistryAuth? {
        guard let obj = object(node, path, keys: ["username", "password"]) else { return nil }
        let user = obj.required("username", what: "the registry user name", string)
        let password = obj.required("password", secret: true, what: "the registry password or token", string)
        guard let user, let password else { return nil }
        return RegistryAuth(username: user, password: password)
    }

    /// `env`: a list of `NAME=value` / `NAME`, or a mapping; values are never shown in errors.
    func environment(_ node: YAMLNode, _ path: FieldPath) -> [(String, EnvValue)]? {
        switch node.value {
        case .list(let items):
            var result: [(String, EnvValue)] = []
            var ok = true
            for (i, item) in items.enumerated() {
                let itemPath = FieldPath(path[i].description, isSecret: true)
                guard let s = string(item, itemPath) else { ok = false; continue }
                let key: String
                let value: EnvValue
                if let eq = s.firstIndex(of: "=") {
                    key = String(s[..<eq])
                    value = .value(String(s[s.index(after: eq)...]))
                } else {
                    key = s
                    value = .fromEnvironment(s)
                }
                let rest: Substring = s.firstIndex(of: "=").map { s[$0...] } ?? ""
                guard Self.isEnvName(key) else {
                    let shown = key.count > 60 ? String(key.prefix(60)) + "…" : key
                    fail(itemPath, item, "invalid environment variable `\(shown)`: expected `NAME=value` or `NAME`, where NAME is letters, digits and `_`, not starting with a digit")
                    ok = false
                    continue
                }
                if rest.hasSubstring("\n") {
                    fail(itemPath, item, "environment variable `\(key)`: a value cannot span lines in the list form; use the mapping form `env: {\(key): ...}`")
                    ok = false
                    continue
                }
                if result.contains(where: { $0.0 == key }) {
                    fail(itemPath, item, "duplicate environment variable `\(key)`")
                    ok = false
                    continue
                }
                result.append((key, value))
            }
            return ok ? result : nil
        case .map(let pairs):
            var result: [(String, EnvValue)] = []
            var ok = true
            for pair in pairs {
                let key: String
                switch pair.key.value {
                case .string(let s): key = s
                case .int, .float: key = pair.key.displayText
                default:
                    fail(path, pair.key, "environment variable names must be strings, got \(pair.key.kindName)")
                    ok = false
                    continue
                }
                let p = path.appending(key, secret: true)
                switch pair.value.value {
                case .string(let s): result.append((key, .value(s)))
                case .int, .float: result.append((key, .value(string(pair.value, p) ?? "")))
                case .map:
                    guard let o = object(pair.value, p, keys: ["key"]) else { ok = false; continue }
                    guard let k = o.required("key", what: "a variable name", string) else { ok = false; continue }
                    result.append((key, .fromEnvironment(k)))
                default:
                    fail(p, pair.value, "expected a string value, got \(pair.value.kindName) (quote it, or use the list form `- \(key)` to take it from your environment)")
                    ok = false
                }
            }
            return ok ? result : nil
        default:
            expected("a list (`- NAME=value`) or a mapping (`NAME: value`) of environment variables", node, path)
            return nil
        }
    }

    // MARK: volumes, repos, files

    /// `name:/path` (network volume), `/host:/path` (instance volume) or their mapping forms.
    func mountPoint(_ node: YAMLNode, _ path: FieldPath) -> JSONValue? {
        if case .string(let s) = node.value {
            let parts = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 else {
                fail(path, node, "invalid mount point `\(s)`: expected `volume-name:/container/path` or `/instance/path:/container/path`")
                return nil
            }
            guard let dest = mountPath(parts[1], node, path) else { return nil }
            if parts[0].hasSubstring("/") {
                guard let src = mountPath(parts[0], node, path) else { return nil }
                return .object([("instance_path", .string(src)), ("path", .string(dest)), ("optional", .bool(false))])
            }
            return .object([("name", .string(parts[0])), ("path", .string(dest))])
        }
        guard case .map = node.value else {
            expected("a mount point like `my-volume:/data` or a mapping", node, path)
            return nil
        }
        if node["instance_path"] != nil {
            guard let obj = object(node, path, keys: ["instance_path", "path", "optional"]) else { return nil }
            let src = obj.required("instance_path", what: "an absolute path") { v, p in self.string(v, p).flatMap { self.mountPath($0, v, p) } }
            let dest = obj.required("path", what: "an absolute path") { v, p in self.string(v, p).flatMap { self.mountPath($0, v, p) } }
            let optional = obj.nonNull("optional", what: "a boolean", default: false, bool)
            guard obj.isValid, let src, let dest, let optional else { return nil }
            return .object([("instance_path", .string(src)), ("path", .string(dest)), ("optional", .bool(optional))])
        }
        guard let obj = object(node, path, keys: ["name", "path"]) else { return nil }
        let name = obj.required("name", what: "a volume name or a list of names") { v, p -> JSONValue? in
            if case .list = v.value { return self.stringList(v, p).map { .array($0.map(JSONValue.string)) } }
            return self.string(v, p).map(JSONValue.string)
        }
        let dest = obj.required("path", what: "an absolute path") { v, p in self.string(v, p).flatMap { self.mountPath($0, v, p) } }
        guard obj.isValid, let name, let dest else { return nil }
        return .object([("name", name), ("path", .string(dest))])
    }

    /// An absolute container path without `..`, normalized like Python's `PurePosixPath`, and
    /// valid as a Docker mount target.
    func mountPath(_ s: String, _ node: YAMLNode, _ path: FieldPath) -> String? {
        if s.isEmpty { fail(path, node, "empty mount path"); return nil }
        guard s.hasPrefix("/") else { fail(path, node, "mount path must be absolute: `\(s)`"); return nil }
        let parts = s.split(separator: "/").filter { $0 != "." }
        if parts.contains("..") { fail(path, node, "`..` is not allowed in mount paths: `\(s)`"); return nil }
        let lead = s.hasPrefix("//") && !s.hasPrefix("///") ? "//" : "/"
        let normalized = lead + parts.joined(separator: "/")
        if normalized.hasSubstring("\0") { fail(path, node, "invalid volume mount path `\(s)`"); return nil }
        return normalized
    }

    func repoSpec(_ node: YAMLNode, _ path: FieldPath) -> JSONValue? {
        var localPath: String?
        var url: String?
        var branch: String?
        var hash: String?
        var repoPath = "."
        var ifExists = "error"
        switch node.value {
        case .string(let s):
            var parts = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            var isURL = false
            if parts.count > 1 {
                if parts[0].hasSubstring("@") || parts[1].hasPrefix("//") {
                    parts = ["\(parts[0]):\(parts[1])"] + parts[2...]
                    isURL = true
                } else if parts[0].count == 1, parts[0].first!.isASCII, parts[0].first!.isLetter,
                          parts[1].hasPrefix("\\") || parts[1].hasPrefix("/") {
                    parts = ["\(parts[0]):\(parts[1])"] + parts[2...]
                }
            }
            guard parts.count <= 2 else { fail(path, node, "invalid repo `\(s)`: expected `path-or-url[:container-path]`"); return nil }
            if isURL { url = parts[0] } else { localPath = parts[0] }
            if parts.count == 2 { repoPath = parts[1] }
        case .map:
            guard let obj = object(node, path, keys: ["local_path", "url", "branch", "hash", "path", "if_exists"]) else { return nil }
            localPath = obj.optional("local_path", string)
            url = obj.optional("url", string)
            branch = obj.optional("branch", string)
            hash = obj.optional("hash", string)
            repoPath = obj.nonNull("path", what: "a path", default: ".", string) ?? "."
            ifExists = obj.nonNull("if_exists", what: "`error` or `skip`", default: "error") { v, p in self.oneOf(v, p, ["error", "skip"]) } ?? "error"
            guard obj.isValid else { return nil }
        default:
            expected("a repo path or URL, or a mapping", node, path)
            return nil
        }
        if repoPath.hasPrefix("~"), repoPath.split(separator: "/", omittingEmptySubsequences: true).first != "~" {
            fail(path, node, "`~username` syntax is not supported in the repo path `\(repoPath)`")
            return nil
        }
        if !(localPath ?? "").isEmpty && !(url ?? "").isEmpty {
            fail(path, node, "`local_path` and `url` are mutually exclusive")
            return nil
        }
        if (localPath ?? "").isEmpty && (url ?? "").isEmpty {
            fail(path, node, "either `local_path` or `url` must be specified")
            return nil
        }
        return .object([("local_path", .str(localPath)), ("url", .str(url)), ("branch", .str(branch)),
                        ("hash", .str(hash)), ("path", .string(repoPath)), ("if_exists", .string(ifExists))])
    }

    func fileMapping(_ node: YAMLNode, _ path: FieldPath) -> JSONValue? {
        var local: String?
        var target: String?
        switch node.value {
        case .string(let s):
            var parts = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            if parts.count > 1, parts[0].count == 1, parts[0].first!.isASCII, parts[0].first!.isLetter,
               parts[1].hasPrefix("\\") || parts[1].hasPrefix("/") {
                parts = ["\(parts[0]):\(parts[1])"] + parts[2...]
            }
            guard parts.count <= 2 else { fail(path, node, "invalid file path mapping `\(s)`: expected `local[:container]`"); return nil }
            local = parts[0]
            target = parts.count == 2 ? parts[1] : parts[0]
        case .map:
            guard let obj = object(node, path, keys: ["local_path", "path"]) else { return nil }
            local = obj.required("local_path", what: "a local path", string)
            target = obj.required("path", what: "a container path", string)
            guard obj.isValid else { return nil }
        default:
            expected("a file mapping like `local/path:/container/path`, or a mapping", node, path)
            return nil
        }
        guard let local, let target else { return nil }
        if Self.isWindowsAbsolute(target) {
            fail(path, node, "path must be a Unix file path: `\(target)`")
            return nil
        }
        return .object([("local_path", .string(local)), ("path", .string(target))])
    }

    // MARK: helpers

    static func isEnvName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first.isASCIILetterOrUnderscore else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIILetterOrUnderscore || ("0"..."9").contains($0) }
    }

    static func matches(_ s: String, first: (Unicode.Scalar) -> Bool, rest: (Unicode.Scalar) -> Bool, min: Int = 1, max: Int) -> Bool {
        let scalars = Array(s.unicodeScalars)
        guard scalars.count >= min, scalars.count <= max, let f = scalars.first, first(f) else { return false }
        return scalars.dropFirst().allSatisfy(rest)
    }

    /// Python's `str.isprintable()`.
    static func isPrintable(_ s: String) -> Bool {
        s.unicodeScalars.allSatisfy { u in
            if u == " " { return true }
            switch u.properties.generalCategory {
            case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
                return false
            default:
                return true
            }
        }
    }

    /// Python's `PureWindowsPath(p).is_absolute()`: a drive and a root, or a UNC share.
    static func isWindowsAbsolute(_ p: String) -> Bool {
        let s = p.replacingOccurrences(of: "/", with: "\\")
        let c = Array(s)
        if c.count >= 3, c[0].isASCII, c[0].isLetter, c[1] == ":", c[2] == "\\" { return true }
        if s.hasPrefix("\\\\") {
            let parts = s.dropFirst(2).split(separator: "\\", omittingEmptySubsequences: false)
            return parts.count >= 2 && !parts[0].isEmpty && !parts[1].isEmpty
        }
        return false
    }

    /// `UnixUser.parse`: `user[:group]` with names or non-negative ids.
    static func unixUserProblem(_ s: String) -> String? {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count > 2 { return "too many parts" }
        if parts[0].isEmpty { return "empty user name or id" }
        if let uid = Lax.parseInt(String(parts[0])), !parts[0].hasSubstring("."), uid < 0 { return "negative uid \(uid)" }
        if parts.count == 2 {
            if parts[1].isEmpty { return "empty group name or id" }
            if let gid = Lax.parseInt(String(parts[1])), !parts[1].hasSubstring("."), gid < 0 { return "negative gid \(gid)" }
        }
        return nil
    }
}

/// Python's list repr of strings, as dstack prints them: `['a', 'b']`.
func pyList(_ items: [String]) -> String {
    "[" + items.map { "'\($0)'" }.joined(separator: ", ") + "]"
}

extension Unicode.Scalar {
    var isASCIILetterOrUnderscore: Bool {
        ("a"..."z").contains(self) || ("A"..."Z").contains(self) || self == "_"
    }
    var isLowercaseAlnum: Bool { ("a"..."z").contains(self) || ("0"..."9").contains(self) }
    var isLowercase: Bool { ("a"..."z").contains(self) }
}
