import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SetpointConfiguration

extension FakeKubernetes {
    struct Failure: Error {
        var code: Int
        var reason: String
        var message: String
        var name: String?
        var kind: String?
    }

    func handle(_ request: Request) async throws -> Response {
        let method = request.method.rawValue
        let path = request.uri.path
        let query = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { _, b in b })
        let (latency, failure, token) = state.withLock { s -> (Double, (status: Int, message: String?)?, String?) in
            var failure: (status: Int, message: String?)?
            if let i = s.failures.firstIndex(where: { "\(method) \(path)".contains($0.match) && $0.remaining > 0 }) {
                failure = (s.failures[i].status, s.failures[i].message)
                s.failures[i].remaining -= 1
                if s.failures[i].remaining == 0 { s.failures.remove(at: i) }
            }
            return (s.latency, failure, s.token)
        }
        // Counters for benchmarks (not counted themselves, no token needed).
        if path == "/debug/requests" {
            let counts = requests.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int($0.value)) }
            return Self.json(.object(counts))
        }
        if path == "/debug/reset", method == "POST" {
            resetRequests()
            return Self.json(.object([]))
        }
        if latency > 0 { try await Task.sleep(for: .seconds(latency)) }
        if let token, request.headers[.authorization] != "Bearer \(token)" {
            return Self.status(Failure(code: 401, reason: "Unauthorized", message: "Unauthorized"))
        }
        if let failure {
            count("fault", method, path)
            return Self.status(Failure(code: failure.status, reason: failure.status == 429 ? "TooManyRequests" : "InternalError",
                                       message: failure.message ?? "injected failure \(failure.status)"))
        }
        do {
            return try await route(request, method: method, path: path, query: query)
        } catch let f as Failure {
            return Self.status(f)
        } catch let e as Selector.ParseError {
            return Self.status(Failure(code: 400, reason: "BadRequest", message: e.message))
        }
    }

    func count(_ verb: String, _ method: String, _ path: String) {
        state.withLock { s in
            s.requests[verb, default: 0] += 1
            s.log.append("\(verb) \(method) \(path)")
        }
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: value.serialized)))
    }

    static func status(_ f: Failure) -> Response {
        var details: [(String, JSONValue)] = []
        if let n = f.name { details.append(("name", .string(n))) }
        if let k = f.kind { details.append(("kind", .string(k))) }
        let body: JSONValue = .object([
            ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object([])), ("status", .string("Failure")),
            ("message", .string(f.message)), ("reason", .string(f.reason)), ("details", .object(details)), ("code", .int(f.code)),
        ])
        return json(body, status: .init(code: f.code))
    }

    private func route(_ request: Request, method: String, path: String, query: [String: String]) async throws -> Response {
        var segments = path.split(separator: "/").map(String.init)
        // Discovery (what kubectl reads first).
        switch path {
        case "/version":
            return Self.json(.object([("major", .string("1")), ("minor", .string("32")), ("gitVersion", .string("v1.32.0-setpoint-fake")),
                                      ("platform", .string("linux/amd64"))]))
        case "/api":
            return Self.json(.object([("kind", .string("APIVersions")), ("versions", .array([.string("v1")])),
                                      ("serverAddressByClientCIDRs", .array([.object([("clientCIDR", .string("0.0.0.0/0")),
                                                                                      ("serverAddress", .string("127.0.0.1:\(port)"))])]))]))
        case "/apis":
            let groups = Set(Self.resources.map(\.group)).filter { !$0.isEmpty }.sorted().map { g -> JSONValue in
                let gv: JSONValue = .object([("groupVersion", .string("\(g)/v1")), ("version", .string("v1"))])
                return .object([("name", .string(g)), ("versions", .array([gv])), ("preferredVersion", gv)])
            }
            return Self.json(.object([("kind", .string("APIGroupList")), ("apiVersion", .string("v1")), ("groups", .array(groups))]))
        case "/openapi/v3":
            // kubectl reads this to learn that the server validates fields itself
            // (`fieldValidation`), so it does not need the OpenAPI v2 schema.
            var paths: [(String, JSONValue)] = [("api/v1", .object([("serverRelativeURL", .string("/openapi/v3/api/v1?hash=fake"))]))]
            for g in Set(Self.resources.map(\.group)).filter({ !$0.isEmpty }).sorted() {
                paths.append(("apis/\(g)/v1", .object([("serverRelativeURL", .string("/openapi/v3/apis/\(g)/v1?hash=fake"))])))
            }
            return Self.json(.object([("paths", .object(paths))]))
        case "/openapi/v2":
            // Older kubectl (Debian's 1.20) validates against the v2 schema, in protobuf: an
            // empty document has no schema for any kind, so nothing is refused client-side.
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init())
        default:
            if path.hasPrefix("/openapi/v3/") { return Self.json(openAPIv3(String(path.dropFirst("/openapi/v3/".count)))) }
        }
        var group = ""
        if segments.first == "api", segments.count >= 2 { segments.removeFirst(2) } else if segments.first == "apis", segments.count >= 3 {
            group = segments[1]
            segments.removeFirst(3)
        } else {
            throw Failure(code: 404, reason: "NotFound", message: "the server could not find the requested resource")
        }
        if segments.isEmpty {
            let resources = Self.resources.filter { $0.group == group }.flatMap { r -> [JSONValue] in
                let verbs: [JSONValue] = ["create", "delete", "get", "list", "patch", "update", "watch"].map(JSONValue.string)
                var list: [JSONValue] = [.object([("name", .string(r.name)), ("singularName", .string(r.singular)), ("namespaced", .bool(r.namespaced)),
                                                  ("kind", .string(r.kind)), ("verbs", .array(verbs)), ("shortNames", .array(r.shortNames.map(JSONValue.string)))])]
                if r.name == "pods" {
                    list.append(.object([("name", .string("pods/status")), ("singularName", .string("")), ("namespaced", .bool(true)), ("kind", .string("Pod")),
                                         ("verbs", .array(["get", "patch", "update"].map(JSONValue.string)))]))
                    list.append(.object([("name", .string("pods/log")), ("singularName", .string("")), ("namespaced", .bool(true)), ("kind", .string("Pod")),
                                         ("verbs", .array([.string("get")]))]))
                    list.append(.object([("name", .string("pods/proxy")), ("singularName", .string("")), ("namespaced", .bool(true)), ("kind", .string("PodProxyOptions")),
                                         ("verbs", .array(["create", "delete", "get", "patch", "update"].map(JSONValue.string)))]))
                }
                return list
            }
            return Self.json(.object([("kind", .string("APIResourceList")), ("apiVersion", .string("v1")),
                                      ("groupVersion", .string(group.isEmpty ? "v1" : "\(group)/v1")), ("resources", .array(resources))]))
        }
        var namespace: String?
        let resourceName: String
        var name: String?
        var sub: [String] = []
        if segments[0] == "namespaces", segments.count >= 3 {
            namespace = segments[1]
            resourceName = segments[2]
            name = segments.count > 3 ? segments[3] : nil
            sub = Array(segments.dropFirst(4))
        } else {
            resourceName = segments[0]
            name = segments.count > 1 ? segments[1] : nil
            sub = Array(segments.dropFirst(2))
        }
        guard let resource = Self.resources.first(where: { $0.name == resourceName && $0.group == group }) else {
            throw Failure(code: 404, reason: "NotFound", message: "the server could not find the requested resource")
        }
        if !resource.namespaced { namespace = nil }

        if resource.name == "pods", let pod = name, sub.first == "proxy" {
            return try await proxy(request, method: method, namespace: namespace ?? "default", pod: pod, rest: Array(sub.dropFirst()), rawQuery: request.uri.query)
        }
        if resource.name == "pods", let pod = name, sub == ["log"] {
            count("log", method, path)
            return try log(namespace: namespace ?? "default", pod: pod, timestamps: query["timestamps"] == "true")
        }
        let subresource = sub.first
        if let subresource, subresource != "status" {
            throw Failure(code: 404, reason: "NotFound", message: "the server could not find the requested resource")
        }

        switch method {
        case "GET":
            if let name {
                count("get", method, path)
                guard let o = object(resource.name, namespace: namespace, name: name) else { throw notFound(resource, name) }
                return Self.json(o)
            }
            let labels = try Selector.parse(query["labelSelector"])
            let fields = try Selector.parse(query["fieldSelector"])
            if query["watch"] == "true" || query["watch"] == "1" {
                count("watch", method, path)
                return try watch(resource, namespace: namespace, labels: labels, fields: fields, from: query["resourceVersion"],
                                 timeout: query["timeoutSeconds"].flatMap(Double.init))
            }
            count("list", method, path)
            var (items, rv) = state.withLock { s in
                ((s.objects[resource.name] ?? [:]).sorted { $0.key < $1.key }.map(\.value).filter { o in
                    (namespace == nil || o.value(at: ["metadata", "namespace"])?.stringValue == namespace) && Self.select(o, labels: labels, fields: fields)
                }, s.rv)
            }
            // Pages: `limit` items from the offset the `continue` token names.
            var meta: [(String, JSONValue)] = [("resourceVersion", .string(String(rv)))]
            let offset = query["continue"].flatMap(Int.init) ?? 0
            if let limit = query["limit"].flatMap(Int.init), limit > 0 {
                let page = Array(items.dropFirst(offset).prefix(limit))
                if offset + page.count < items.count { meta.append(("continue", .string(String(offset + page.count)))) }
                items = page
            }
            return Self.json(.object([("kind", .string(resource.kind + "List")), ("apiVersion", .string(resource.apiVersion)),
                                      ("metadata", .object(meta)), ("items", .array(items))]))
        case "POST":
            count("create", method, path)
            let body = try await Self.body(request)
            return try create(resource, namespace: namespace, body)
        case "PUT":
            count("update", method, path)
            guard let name else { throw Failure(code: 405, reason: "MethodNotAllowed", message: "PUT needs a name") }
            return try update(resource, namespace: namespace, name: name, try await Self.body(request), status: subresource == "status")
        case "PATCH":
            count("patch", method, path)
            guard let name else { throw Failure(code: 405, reason: "MethodNotAllowed", message: "PATCH needs a name") }
            let type = request.headers[.contentType] ?? ""
            guard type.contains("merge-patch") || type.contains("apply-patch") else {
                throw Failure(code: 415, reason: "UnsupportedMediaType", message: "the fake supports merge, strategic-merge and apply patches, not \(type)")
            }
            return try patch(resource, namespace: namespace, name: name, try await Self.body(request), status: subresource == "status",
                             apply: type.contains("apply-patch"))
        case "DELETE":
            count("delete", method, path)
            guard let name else { throw Failure(code: 405, reason: "MethodNotAllowed", message: "DELETE needs a name") }
            let body = (try? await Self.body(request)) ?? .object([])
            let grace = query["gracePeriodSeconds"].flatMap(Int.init) ?? { if case .int(let g)? = body["gracePeriodSeconds"] { return g } else { return nil } }()
            var uid: String?
            if let precondition = body.value(at: ["preconditions", "uid"])?.stringValue { uid = precondition }
            return try delete(resource, namespace: namespace, name: name, grace: grace, uid: uid)
        default:
            throw Failure(code: 405, reason: "MethodNotAllowed", message: "method \(method) is not allowed")
        }
    }

    /// A minimal OpenAPI v3 document of one group version: each kind's PATCH operation with the
    /// `fieldValidation` query parameter.
    func openAPIv3(_ groupVersion: String) -> JSONValue {
        let group = groupVersion.hasPrefix("apis/") ? String(groupVersion.dropFirst(5).split(separator: "/").first ?? "") : ""
        var paths: [(String, JSONValue)] = []
        for r in Self.resources where r.group == group {
            let base = group.isEmpty ? "/api/v1" : "/apis/\(group)/v1"
            let p = r.namespaced ? "\(base)/namespaces/{namespace}/\(r.name)/{name}" : "\(base)/\(r.name)/{name}"
            let op: JSONValue = .object([
                ("x-kubernetes-group-version-kind", .object([("group", .string(group)), ("version", .string("v1")), ("kind", .string(r.kind))])),
                ("x-kubernetes-action", .string("patch")),
                ("parameters", .array([.object([("name", .string("fieldValidation")), ("in", .string("query")),
                                                ("schema", .object([("type", .string("string"))]))])])),
                ("responses", .object([("200", .object([("description", .string("OK"))]))])),
            ])
            paths.append((p, .object([("patch", op)])))
        }
        return .object([("openapi", .string("3.0.0")), ("info", .object([("title", .string("Kubernetes")), ("version", .string("v1.32.0"))])),
                        ("paths", .object(paths)), ("components", .object([]))])
    }

    static func body(_ request: Request) async throws -> JSONValue {
        if let type = request.headers[.contentType], type.contains("protobuf") || type.contains("cbor") {
            throw Failure(code: 415, reason: "UnsupportedMediaType", message: "the fake API server reads JSON bodies only, not \(type)")
        }
        let bytes = try await bodyBytes(request)
        if bytes.isEmpty { return .object([]) }
        do { return try JSONParser.parse(bytes: bytes) } catch {
            throw Failure(code: 400, reason: "BadRequest", message: "the body is not JSON: \(error)")
        }
    }

    func notFound(_ r: Resource, _ name: String) -> Failure {
        Failure(code: 404, reason: "NotFound", message: "\(r.name) \"\(name)\" not found", name: name, kind: r.name)
    }

    static func validName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 253 && name.allSatisfy { ($0.isLowercase && $0.isASCII) || ($0.isNumber && $0.isASCII) || $0 == "-" || $0 == "." }
            && name.first!.isLetter || name.first?.isNumber == true
    }

    private func create(_ r: Resource, namespace: String?, _ body: JSONValue) throws -> Response {
        var object = body
        if object.value(at: ["metadata", "name"]) == nil, let prefix = object.value(at: ["metadata", "generateName"])?.stringValue {
            object = object.setting(["metadata", "name"], .string(prefix + String(UUID().uuidString.lowercased().prefix(5))))
        }
        guard let name = object.value(at: ["metadata", "name"])?.stringValue, Self.validName(name) else {
            throw Failure(code: 422, reason: "Invalid", message: "\(r.kind) is invalid: metadata.name: Invalid value: a lowercase RFC 1123 subdomain is required", kind: r.kind)
        }
        // As the NamespaceLifecycle admission plugin does, before validation.
        if let namespace, state.withLock({ $0.objects["namespaces"]?[namespace] == nil }) {
            throw Failure(code: 404, reason: "NotFound", message: "namespaces \"\(namespace)\" not found", name: namespace, kind: "namespaces")
        }
        if r.name == "pods" {
            guard case .array(let containers)? = object.value(at: ["spec", "containers"]), !containers.isEmpty,
                  containers.allSatisfy({ $0["name"]?.stringValue != nil && $0["image"]?.stringValue != nil }) else {
                throw Failure(code: 422, reason: "Invalid", message: "Pod \"\(name)\" is invalid: spec.containers: Required value (each needs a name and an image)", name: name, kind: "Pod")
            }
            object = object.setting(["status"], .object([("phase", .string("Pending"))]))
        }
        object = object.setting(["apiVersion"], .string(r.apiVersion)).setting(["kind"], .string(r.kind))
        return try state.withLock { s in
            if let namespace, s.objects["namespaces"]?[namespace] == nil {
                throw Failure(code: 404, reason: "NotFound", message: "namespaces \"\(namespace)\" not found", name: namespace, kind: "namespaces")
            }
            if s.objects[r.name]?[Self.key(namespace, name)] != nil {
                throw Failure(code: 409, reason: "AlreadyExists", message: "\(r.name) \"\(name)\" already exists", name: name, kind: r.name)
            }
            let change = Self.insert(&s, r.name, namespace, object)
            notify(change, &s)
            return Self.json(change.object, status: .created)
        }
    }

    /// A write naming a `resourceVersion` succeeds only on that version (optimistic concurrency).
    static func requireVersion(of body: JSONValue, matches current: JSONValue, _ r: Resource, _ name: String) throws {
        if let rv = body.value(at: ["metadata", "resourceVersion"])?.stringValue, rv != current.value(at: ["metadata", "resourceVersion"])?.stringValue {
            throw Failure(code: 409, reason: "Conflict",
                          message: "Operation cannot be fulfilled on \(r.name) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
                          name: name, kind: r.name)
        }
    }

    private func update(_ r: Resource, namespace: String?, name: String, _ body: JSONValue, status: Bool) throws -> Response {
        try state.withLock { s in
            guard let current = s.objects[r.name]?[Self.key(namespace, name)] else { throw notFound(r, name) }
            try Self.requireVersion(of: body, matches: current, r, name)
            var next: JSONValue
            if status {
                next = current.setting(["status"], body["status"] ?? .object([]))
            } else {
                next = body.setting(["metadata", "uid"], current.value(at: ["metadata", "uid"]))
                    .setting(["metadata", "creationTimestamp"], current.value(at: ["metadata", "creationTimestamp"]))
                    .setting(["metadata", "namespace"], current.value(at: ["metadata", "namespace"]))
                    .setting(["apiVersion"], .string(r.apiVersion)).setting(["kind"], .string(r.kind))
                // The main resource ignores status; the status subresource ignores the rest.
                if let st = current["status"] { next = next.setting(["status"], st) }
            }
            let change = Self.replace(&s, r.name, namespace, next, type: "MODIFIED")
            notify(change, &s)
            return Self.json(change.object)
        }
    }

    private func patch(_ r: Resource, namespace: String?, name: String, _ body: JSONValue, status: Bool, apply: Bool) throws -> Response {
        let exists = state.withLock { $0.objects[r.name]?[Self.key(namespace, name)] != nil }
        if !exists {
            if apply { return try create(r, namespace: namespace, body.setting(["metadata", "name"], .string(name))) }
            throw notFound(r, name)
        }
        return try state.withLock { s in
            guard let current = s.objects[r.name]?[Self.key(namespace, name)] else { throw notFound(r, name) }
            try Self.requireVersion(of: body, matches: current, r, name)
            var next: JSONValue
            if status {
                next = current.setting(["status"], (current["status"] ?? .object([])).merged(with: body["status"] ?? .object([])))
            } else {
                next = current.merged(with: body.setting(["status"], nil).setting(["metadata", "uid"], nil).setting(["metadata", "resourceVersion"], nil))
            }
            let change = Self.replace(&s, r.name, namespace, next, type: "MODIFIED")
            notify(change, &s)
            return Self.json(change.object)
        }
    }

    private func delete(_ r: Resource, namespace: String?, name: String, grace: Int?, uid: String?) throws -> Response {
        try state.withLock { s in
            guard let current = s.objects[r.name]?[Self.key(namespace, name)] else { throw notFound(r, name) }
            if let uid, current.value(at: ["metadata", "uid"])?.stringValue != uid {
                throw Failure(code: 409, reason: "Conflict",
                              message: "Precondition failed: UID in precondition: \(uid), UID in object meta: \(current.value(at: ["metadata", "uid"])?.stringValue ?? "")",
                              name: name, kind: r.name)
            }
            let scheduled = current.value(at: ["spec", "nodeName"]) != nil
            let finished = ["Succeeded", "Failed"].contains(current.value(at: ["status", "phase"])?.stringValue ?? "")
            let g = grace ?? { if case .int(let g)? = current.value(at: ["spec", "terminationGracePeriodSeconds"]) { return g } else { return 30 } }()
            if r.name == "pods", scheduled, !finished, g > 0 {
                // Graceful: marked, then removed once the kubelet has stopped it.
                if current.value(at: ["metadata", "deletionTimestamp"]) != nil { return Self.json(current) }
                let marked = current.setting(["metadata", "deletionTimestamp"], .string(Self.now()))
                    .setting(["metadata", "deletionGracePeriodSeconds"], .int(g))
                let change = Self.replace(&s, r.name, namespace, marked, type: "MODIFIED")
                notify(change, &s)
                return Self.json(change.object)
            }
            s.rv += 1
            let gone = current.setting(["metadata", "resourceVersion"], .string(String(s.rv)))
            s.objects[r.name]?[Self.key(namespace, name)] = nil
            notify(Change(rv: s.rv, type: "DELETED", resource: r.name, object: gone), &s)
            return Self.json(gone)
        }
    }

    private func watch(_ r: Resource, namespace: String?, labels: Selector, fields: Selector, from: String?, timeout: Double?) throws -> Response {
        let (stream, continuation) = AsyncStream<JSONValue>.makeStream()
        state.withLock { s in
            let w = Watcher(resource: r.name, namespace: namespace, labels: labels, fields: fields, continuation: continuation)
            if let from, let rv = Int64(from), rv > 0 {
                if rv < s.compactedBefore {
                    // As the real server does: a 200 whose one event is an ERROR with 410.
                    continuation.yield(.object([("type", .string("ERROR")), ("object", .object([
                        ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object([])), ("status", .string("Failure")),
                        ("message", .string("too old resource version: \(rv) (\(s.compactedBefore))")), ("reason", .string("Expired")), ("code", .int(410)),
                    ]))]))
                    continuation.finish()
                    return
                }
                for c in s.history where c.rv > rv && matches(w, c.resource, c.object) {
                    continuation.yield(.object([("type", .string(c.type)), ("object", c.object)]))
                }
            } else {
                // No version (or 0): the current state as ADDED events first.
                for o in (s.objects[r.name] ?? [:]).sorted(by: { $0.key < $1.key }).map(\.value) where matches(w, r.name, o) {
                    continuation.yield(.object([("type", .string("ADDED")), ("object", o)]))
                }
            }
            let id = s.nextWatcher
            s.nextWatcher += 1
            s.watchers[id] = w
            continuation.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) } }
        }
        if let timeout {
            Task {
                try? await Task.sleep(for: .seconds(timeout))
                continuation.finish()
            }
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody { writer in
            for await event in stream {
                try await writer.write(ByteBuffer(string: event.serialized + "\n"))
            }
            try await writer.finish(nil)
        })
    }

    private func proxy(_ request: Request, method: String, namespace: String, pod: String, rest: [String], rawQuery: String?) async throws -> Response {
        count("proxy", method, request.uri.path)
        let parts = pod.split(separator: ":")
        let name = String(parts[0])
        let port = parts.count > 1 ? Int(parts[1]) ?? 80 : 80
        guard let object = object("pods", namespace: namespace, name: name) else { throw notFound(Self.resources[0], name) }
        guard object.value(at: ["status", "phase"])?.stringValue == "Running" else {
            throw Failure(code: 503, reason: "ServiceUnavailable", message: "pod \(name) is not running")
        }
        // The API server itself refuses to dial the Pod (its own `Status`, not the app's answer).
        if let refusal = state.withLock({ $0.proxyRefusals[name] }) {
            throw Failure(code: refusal.status, reason: refusal.status == 400 ? "BadRequest" : "ServiceUnavailable", message: refusal.message)
        }
        let body = try await Self.bodyBytes(request)
        let path = "/" + rest.joined(separator: "/") + (rawQuery.map { $0.isEmpty ? "" : "?" + $0 } ?? "")
        let (status, text) = podServer.withLock { $0 }(name, port, method, path, body)
        return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func bodyBytes(_ request: Request) async throws -> [UInt8] {
        var r = request
        return Array(try await r.collectBody(upTo: 16 << 20).readableBytesView)
    }

    private func log(namespace: String, pod: String, timestamps: Bool) throws -> Response {
        guard object("pods", namespace: namespace, name: pod) != nil else { throw notFound(Self.resources[0], pod) }
        let lines = state.withLock { $0.podLogs[pod] ?? [] }
        let stamp = Self.now().replacingOccurrences(of: "Z", with: ".000000000Z")
        let text = lines.map { (timestamps ? stamp + " " : "") + $0 + "\n" }.joined()
        return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
