/// Placement and lifecycle properties (dstack's `ProfileParams`).
extension Reader {
    func readProfile(_ obj: ObjectReader, into c: inout ServiceConfiguration) {
        c.backends = obj.optional("backends") { v, p in self.list(v, p) { i, ip in self.oneOf(i, ip, ProfileProperties.backendTypes) } }
        c.regions = obj.optional("regions", stringList)
        c.availabilityZones = obj.optional("availability_zones", stringList)
        c.instanceTypes = obj.optional("instance_types", stringList)
        c.reservation = obj.optional("reservation", string)
        c.spotPolicy = obj.optional("spot_policy") { v, p in self.oneOf(v, p, ProfileProperties.spotPolicies) }
        c.retry = obj.optional("retry", retrySpec)
        c.maxDuration = obj.optional("max_duration", offableDuration)
        c.stopDuration = obj.optional("stop_duration", offableDuration)
        c.maxPrice = obj.optional("max_price") { v, p -> Double? in
            guard let d = self.float(v, p) else { return nil }
            guard d > 0 else { self.fail(p, v, "max_price must be greater than 0, got \(PythonFormat.float(d))"); return nil }
            return d
        }
        c.creationPolicy = obj.optional("creation_policy") { v, p in self.oneOf(v, p, ["reuse", "reuse-or-create"]) }
        c.idleDuration = obj.optional("idle_duration", idleDuration)
        c.utilizationPolicy = obj.optional("utilization_policy", utilizationPolicy)
        c.startupOrder = obj.optional("startup_order") { v, p in self.oneOf(v, p, ["any", "master-first", "workers-first"]) }
        c.stopCriteria = obj.optional("stop_criteria") { v, p in self.oneOf(v, p, ["all-done", "master-done"]) }
        c.schedule = obj.optional("schedule", schedule)
        c.fleets = obj.optional("fleets") { v, p in self.list(v, p, self.entityReferenceJSON) }
        c.instances = obj.optional("instances") { v, p -> [JSONValue]? in
            guard let items = self.list(v, p, self.instanceSelector) else { return nil }
            if items.isEmpty { self.fail(p, v, "`instances` needs at least one instance"); return nil }
            return items
        }
        c.tags = obj.optional("tags", tags)
        c.backendOptions = obj.optional("backend_options", backendOptions)
    }

    /// `retry`: a boolean, or `{on_events, duration}`.
    func retrySpec(_ node: YAMLNode, _ path: FieldPath) -> RetrySpec? {
        if case .map = node.value {
            guard let obj = object(node, path, keys: ["on_events", "duration"]) else { return nil }
            let events = obj.optional("on_events") { v, p -> [String]? in
                guard let e = self.list(v, p, { i, ip in self.oneOf(i, ip, RetrySpec.events) }) else { return nil }
                if e.isEmpty { self.fail(p, v, "`on_events` cannot be empty: list some of `no-capacity`, `interruption`, `error`"); return nil }
                return e
            }
            let duration = obj.optional("duration") { v, p -> Int? in
                guard let d = self.duration(v, p) else { return nil }
                if d < 0 { self.fail(p, v, "retry.duration cannot be negative"); return nil }
                return d
            }
            guard obj.isValid else { return nil }
            return .policy(onEvents: events, duration: duration)
        }
        if let b = Lax.bool(node.value) { return .enabled(b) }
        expected("true, false, or a mapping with `on_events` and `duration`", node, path)
        return nil
    }

    /// `max_duration` / `stop_duration`: `off`/`false` → off, `true` → default, else seconds ≥ 0.
    func offableDuration(_ node: YAMLNode, _ path: FieldPath) -> OffableDuration? {
        switch node.value {
        case .string("off"), .bool(false): return .off
        case .bool(true): return nil
        default:
            guard let d = duration(node, path) else { return nil }
            if d < 0 { fail(path, node, "duration cannot be negative, got \(d)"); return nil }
            return .seconds(d)
        }
    }

    /// `idle_duration`: `off`/`false`/`-1` → -1, `true` → default, else seconds.
    func idleDuration(_ node: YAMLNode, _ path: FieldPath) -> Int? {
        switch node.value {
        case .string("off"), .bool(false), .int(-1): return -1
        case .float(let d) where d == -1: return -1
        case .bool(true): return nil
        default: return duration(node, path)
        }
    }

    func utilizationPolicy(_ node: YAMLNode, _ path: FieldPath) -> JSONValue? {
        guard let obj = object(node, path, keys: ["min_gpu_utilization", "time_window"]) else { return nil }
        let min = obj.required("min_gpu_utilization", what: "a percentage 0..100") { v, p -> Int? in
            guard let i = self.int(v, p) else { return nil }
            guard (0...100).contains(i) else { self.fail(p, v, "min_gpu_utilization must be between 0 and 100, got \(i)"); return nil }
            return i
        }
        let window = obj.required("time_window", what: "a duration of at least 5m") { v, p -> Int? in
            guard let d = self.duration(v, p) else { return nil }
            if d < 300 { self.fail(p, v, "the minimum time_window is 5m, got \(d)s"); return nil }
            if d > 3600 { self.fail(p, v, "the maximum time_window is 3600s, got \(d)s"); return nil }
            return d
        }
        guard let min, let window else { return nil }
        return .object([("min_gpu_utilization", .int(min)), ("time_window", .int(window))])
    }

    func schedule(_ node: YAMLNode, _ path: FieldPath) -> [String]? {
        guard let obj = object(node, path, keys: ["cron"]) else { return nil }
        return obj.required("cron", what: "a cron expression or a list of them") { v, p -> [String]? in
            var values: [String]
            if case .list = v.value {
                guard let l = self.stringList(v, p) else { return nil }
                values = l
            } else {
                guard let s = self.string(v, p) else { return nil }
                values = [s]
            }
            if values.isEmpty { self.fail(p, v, "at least one cron expression must be specified"); return nil }
            for value in values {
                if let problem = Cron.problem(value) {
                    self.fail(p, v, "invalid cron expression `\(value)`: \(problem)")
                    return nil
                }
            }
            return values
        }
    }

    func instanceSelector(_ node: YAMLNode, _ path: FieldPath) -> JSONValue? {
        if case .string(let s) = node.value {
            guard !s.isEmpty else { fail(path, node, "an instance name cannot be empty"); return nil }
            return .object([("name", .string(s))])
        }
        guard case .map(let pairs) = node.value else {
            expected("an instance name, or a mapping with `name`, `hostname` or `fleet` and `instance`", node, path)
            return nil
        }
        let keys = Set(pairs.compactMap { p -> String? in if case .string(let k) = p.key.value { k } else { nil } })
        func nonEmpty(_ v: YAMLNode, _ p: FieldPath) -> String? {
            guard let s = string(v, p) else { return nil }
            if s.isEmpty { fail(p, v, "cannot be empty"); return nil }
            return s
        }
        if keys.contains("fleet") || keys.contains("instance") {
            guard let obj = object(node, path, keys: ["fleet", "instance"]) else { return nil }
            let fleet = obj.required("fleet", what: "a fleet reference", entityReferenceJSON)
            let instance = obj.required("instance", what: "an instance number") { v, p -> Int? in
                guard let i = self.int(v, p) else { return nil }
                if i < 0 { self.fail(p, v, "the instance number must be 0 or more"); return nil }
                return i
            }
            guard let fleet, let instance else { return nil }
            return .object([("fleet", fleet), ("instance", .int(instance))])
        }
        if keys.contains("hostname") {
            guard let obj = object(node, path, keys: ["hostname"]) else { return nil }
            return obj.required("hostname", what: "a host name or IP address", nonEmpty).map { .object([("hostname", .string($0))]) }
        }
        guard let obj = object(node, path, keys: ["name"]) else { return nil }
        return obj.required("name", what: "an instance name", nonEmpty).map { .object([("name", .string($0))]) }
    }

    /// `tags`: keys `^[_\-a-zA-Z0-9]{1,60}$`, values `^[a-zA-Z0-9 .:/=_\-+@]{0,256}$`.
    func tags(_ node: YAMLNode, _ path: FieldPath) -> [(String, String)]? {
        guard case .map(let pairs) = node.value else {
            expected("a mapping of tag names to values", node, path)
            return nil
        }
        var result: [(String, String)] = []
        var ok = true
        for pair in pairs {
            guard case .string(let key) = pair.key.value else {
                fail(path, pair.key, "tag names must be strings, got \(pair.key.kindName) `\(pair.key.displayText)` (quote it)")
                ok = false
                continue
            }
            let p = path.appending(key)
            guard case .string(let value) = pair.value.value else {
                fail(p, pair.value, "tag values must be strings, got \(pair.value.kindName) \(show(pair.value, p)) (quote it)")
                ok = false
                continue
            }
            let keyOK = (1...60).contains(key.unicodeScalars.count) && key.unicodeScalars.allSatisfy {
                $0.isASCIILetterOrUnderscore || ("0"..."9").contains($0) || $0 == "-"
            }
            if !keyOK {
                fail(p, pair.key, "invalid tag key `\(key)`: use 1 to 60 letters, digits, `_` and `-`")
                ok = false
                continue
            }
            let valueOK = value.unicodeScalars.count <= 256 && value.unicodeScalars.allSatisfy {
                $0.isASCIILetterOrUnderscore || ("0"..."9").contains($0) || " .:/=-+@".unicodeScalars.contains($0)
            }
            if !valueOK {
                fail(p, pair.value, "invalid tag value `\(value)`: use at most 256 letters, digits, spaces and `. : / = _ - + @`")
                ok = false
                continue
            }
            result.append((key, value))
        }
        return ok ? result : nil
    }

    func backendOptions(_ node: YAMLNode, _ path: FieldPath) -> [JSONValue]? {
        guard let items = list(node, path, { v, p -> JSONValue? in
            guard let obj = self.object(v, p, keys: ["type", "offer_order", "min_reliability", "min_score"]) else { return nil }
            _ = obj.nonNull("type", what: "`vastai`", default: "vastai") { tv, tp in self.oneOf(tv, tp, ["vastai"]) }
            let order = obj.optional("offer_order") { ov, op in self.oneOf(ov, op, ["score", "price"]) }
            let reliability = obj.optional("min_reliability") { rv, rp -> Double? in
                guard let d = self.float(rv, rp) else { return nil }
                guard d >= 0, d <= 1 else { self.fail(rp, rv, "min_reliability must be between 0 and 1"); return nil }
                return d
            }
            let score = obj.optional("min_score") { sv, sp -> Int? in
                guard let i = self.int(sv, sp) else { return nil }
                guard i >= 0 else { self.fail(sp, sv, "min_score must be 0 or more"); return nil }
                return i
            }
            guard obj.isValid else { return nil }
            return .object([("type", .string("vastai")), ("offer_order", .str(order)),
                            ("min_reliability", .num(reliability)), ("min_score", .num(score))])
        }) else { return nil }
        if items.count > 1 {
            fail(path, node, "backend_options contains duplicate entry for backend 'vastai'")
            return nil
        }
        return items
    }
}
