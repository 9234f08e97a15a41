import Backend
import Foundation
import Hummingbird
import Logging
import Model
import Primitives
import NIOCore
import ServiceLifecycle
import SetpointConfiguration
import Store
import Synchronization

/// The REST API under `/api/v1` (docs/api.md, `GET /api/v1/openapi.yaml`).
public struct APIRoutes: Sendable {
    let runs: RunService
    let auth: Authenticator
    let store: any ObjectStore
    let backend: any ComputeBackend
    let logger: Logger
    let gateways: GatewayService?
    let plane: GatewayPlane?
    let secrets: ProjectSecrets?
    let sources: SourceService?
    let watcher: WatchService
    /// Fired when the server begins to shut down: every open stream (watch, followed logs, the
    /// gateways' feed) ends, and clients reconnect to the next server.
    let streams: Signal
    /// The installation's servers, and which one leads (`GET /api/v1/servers`).
    let servers: (@Sendable () async throws -> API.ServerList)?

    /// Request bodies larger than this are refused: a configuration plus a base64 code archive.
    static let maxBody = (RunService.codeLimit / 3 * 4) + (1 << 20)

    public init(runs: RunService, auth: Authenticator, store: any ObjectStore, backend: any ComputeBackend, logger: Logger,
                gateways: GatewayService? = nil, plane: GatewayPlane? = nil, secrets: ProjectSecrets? = nil, sources: SourceService? = nil,
                streams: Signal = Signal(), servers: (@Sendable () async throws -> API.ServerList)? = nil) {
        self.streams = streams
        self.servers = servers
        self.secrets = secrets
        self.sources = sources
        self.watcher = WatchService(store: store, runs: runs)
        self.gateways = gateways
        self.plane = plane
        self.runs = runs
        self.auth = auth
        self.store = store
        self.backend = backend
        self.logger = logger
    }

    public func register(on router: Router<BasicRequestContext>) {
        WebUI.register(on: router)
        let api = router.group("api/v1")
        api.get("healthz") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n"))) }
        api.get("openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
        // The code archive by its SHA-256, for Pods that fetch their code from the server (the
        // hash is the capability: it names content the caller must already know of).
        api.get("code/:hash") { _, context in
            let name = context.parameters.get("hash") ?? ""
            let hash = name.hasSuffix(".tar.gz") ? String(name.dropLast(7)) : name
            guard hash.count == 64, hash.allSatisfy(\.isHexDigit),
                  let data = FileManager.default.contents(atPath: runs.codeDirectory + "/" + hash.lowercased() + ".tar.gz") else {
                return Response(status: .notFound, body: .init(byteBuffer: ByteBuffer(string: "no code archive \(hash.prefix(64))\n")))
            }
            return Response(status: .ok, headers: [.contentType: "application/gzip"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        api.get("offers") { request, _ in
            try await handle(request, project: nil) { _ in try await backend.offers() }
        }
        if let servers {
            // Any signed-in user may see which servers there are (no project's data in it).
            api.get("servers") { request, _ in
                try await handle(request, project: nil) { _ in try await servers() }
            }
        }
        api.post("users") { request, _ in
            try await handle(request, project: nil) { principal in
                guard principal.globalRole == "admin" else {
                    throw RunService.Failure(status: 403, body: API.ErrorBody(code: "forbidden", message: "only a global admin creates users"))
                }
                return try await auth.createUser(try await decode(API.UserRequest.self, request))
            }
        }
        api.get("users") { request, _ in
            try await handle(request, project: nil) { principal in
                guard principal.globalRole == "admin" else {
                    throw RunService.Failure(status: 403, body: API.ErrorBody(code: "forbidden", message: "only a global admin lists users"))
                }
                return try await auth.listUsers()
            }
        }
        api.post("projects") { request, _ in
            try await handle(request, project: nil) { principal in
                guard principal.globalRole == "admin" else {
                    throw RunService.Failure(status: 403, body: API.ErrorBody(code: "forbidden", message: "only a global admin creates projects"))
                }
                return try await auth.createProject(try await decode(API.ProjectRequest.self, request))
            }
        }
        api.delete("users/{name}") { request, context in
            try await handle(request, project: nil) { principal in
                guard principal.globalRole == "admin" else {
                    throw RunService.Failure(status: 403, body: API.ErrorBody(code: "forbidden", message: "only a global admin deletes users"))
                }
                let name = try context.name
                guard name != principal.name else { throw RunService.Failure.invalid("you cannot delete yourself (user \(name))") }
                return try await auth.deleteUser(name)
            }
        }
        api.get("projects") { request, _ in
            try await handle(request, project: nil) { principal in try await auth.listProjects(visibleTo: principal) }
        }
        let project = api.group("projects/{project}")
        project.post("runs/plan") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                try await runs.plan(project: try context.project, user: principal.name, try await decode(API.ApplyRequest.self, request))
            }
        }
        project.post("runs/apply") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                try await runs.apply(project: try context.project, user: principal.name, try await decode(API.ApplyRequest.self, request))
            }
        }
        let sets = SetService(runs: runs, gateways: gateways)
        project.post("sets/plan") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                let body = try await decode(API.SetRequest.self, request)
                return try await sets.plan(project: try context.project, user: principal.name, body,
                                           options: SetService.Options(set: body.set, prune: body.prune, force: body.force))
            }
        }
        project.post("sets/apply") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                let body = try await decode(API.SetRequest.self, request)
                let project = try context.project
                var options = SetService.Options(set: body.set, prune: body.prune, force: body.force)
                options.mayChangeGateways = (try? Self.requireManager(principal, project, changing: "gateways")) != nil
                return try await sets.apply(project: project, user: principal.name, body, options: options)
            }
        }
        project.get("runs") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in try await runs.list(project: try context.project) }
        }
        project.get("runs/{name}") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in
                try await runs.get(project: try context.project, name: try context.name)
            }
        }
        project.post("runs/{name}/stop") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in
                // An empty body is a graceful stop; a body that says something must say it right.
                let body = try await decode(API.StopRequest.self, request, empty: API.StopRequest(abort: false))
                return try await runs.stop(project: try context.project, name: try context.name, abort: body.abort)
            }
        }
        project.delete("runs/{name}") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in
                try await runs.delete(project: try context.project, name: try context.name)
            }
        }
        project.get("runs/{name}/replicas") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in
                try await runs.replicas(project: try context.project, name: try context.name)
            }
        }
        project.get("runs/{name}/events") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in
                try await runs.events(project: try context.project, name: try context.name)
            }
        }
        project.get("runs/{name}/logs") { request, context in
            try await logs(request, context)
        }
        project.get("watch") { request, context in
            try await watch(request, context)
        }
        project.get("replicas") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in try await watcher.replicas(project: try context.project) }
        }
        project.get("events") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in
                let query = request.uri.queryParameters
                let selector = try query.get("for").map { try WatchService.parseSelector(String($0)) }
                let since = try query.get("since").map { try WatchService.parseSince(String($0), now: Date()) }
                return try await watcher.events(project: try context.project, for: selector, since: since)
            }
        }
        if let gateways { registerGateways(project, gateways) }
        if let secrets { registerSecrets(project, secrets) }
        if let sources { registerSources(project, sources) }
        if let plane { plane.register(on: api, logger: logger, streams: streams) }
    }

    /// `…/gateways`: plan, apply, list, get, events, delete (project admins and managers
    /// change gateways; every member sees them).
    func registerGateways(_ project: RouterGroup<BasicRequestContext>, _ gateways: GatewayService) {
        @Sendable func manage(_ principal: Authenticator.Principal, _ project: String) throws {
            try Self.requireManager(principal, project, changing: "gateways")
        }
        project.post("gateways/plan") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                try await gateways.plan(project: try context.project, try await decode(API.ApplyRequest.self, request))
            }
        }
        project.post("gateways/apply") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                try manage(principal, try context.project)
                return try await gateways.apply(project: try context.project, user: principal.name, try await decode(API.ApplyRequest.self, request))
            }
        }
        project.get("gateways") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in try await gateways.list(project: try context.project) }
        }
        project.get("gateways/{name}") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in try await gateways.get(project: try context.project, name: try context.name) }
        }
        project.get("gateways/{name}/events") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in try await gateways.events(project: try context.project, name: try context.name) }
        }
        project.delete("gateways/{name}") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                try manage(principal, try context.project)
                return try await gateways.delete(project: try context.project, name: try context.name)
            }
        }
    }

    /// Project secrets: members list their names, admins and managers set and delete them.
    /// No route returns a value.
    func registerSecrets(_ project: RouterGroup<BasicRequestContext>, _ secrets: ProjectSecrets) {
        @Sendable func manage(_ principal: Authenticator.Principal, _ project: String) throws {
            try Self.requireManager(principal, project, changing: "secrets")
        }
        project.get("secrets") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in try await secrets.list(project: try context.project) }
        }
        project.put("secrets/{name}") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                try manage(principal, try context.project)
                let body = try await decode(API.SecretRequest.self, request)
                return try await secrets.set(project: try context.project, name: try context.name, value: body.value, user: principal.name)
            }
        }
        project.delete("secrets/{name}") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                try manage(principal, try context.project)
                return try await secrets.delete(project: try context.project, name: try context.name)
            }
        }
    }

    /// Sources: members see them; admins and managers create, change, sync and delete them.
    /// The webhook needs no token: the source's webhook secret signs each push.
    func registerSources(_ project: RouterGroup<BasicRequestContext>, _ sources: SourceService) {
        @Sendable func manage(_ principal: Authenticator.Principal, _ project: String) throws {
            try Self.requireManager(principal, project, changing: "sources")
        }
        project.post("sources/apply") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                try manage(principal, try context.project)
                return try await sources.apply(project: try context.project, user: principal.name, try await decode(API.SourceRequest.self, request))
            }
        }
        project.get("sources") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in try await sources.list(project: try context.project) }
        }
        project.get("sources/{name}") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in try await sources.get(project: try context.project, name: try context.name) }
        }
        project.get("sources/{name}/events") { request, context in
            try await handle(request, project: context.parameters.get("project")) { _ in try await sources.events(project: try context.project, name: try context.name) }
        }
        for (verb, body) in [("sync", 0), ("suspend", 1), ("resume", 2)] {
            project.post("sources/{name}/\(verb)") { request, context in
                try await handle(request, project: context.parameters.get("project")) { principal in
                    try manage(principal, try context.project)
                    if body == 0 { return try await sources.sync(project: try context.project, name: try context.name) }
                    return try await sources.suspend(project: try context.project, name: try context.name, body == 1)
                }
            }
        }
        project.delete("sources/{name}") { request, context in
            try await handle(request, project: context.parameters.get("project")) { principal in
                try manage(principal, try context.project)
                let cascade = ["1", "true", "yes"].contains(request.uri.queryParameters.get("cascade") ?? "")
                return try await sources.delete(project: try context.project, name: try context.name, cascade: cascade)
            }
        }
        project.post("sources/{name}/webhook") { request, context in
            guard let project = context.parameters.get("project"), let name = context.parameters.get("name") else {
                return Self.error(400, API.ErrorBody(code: "bad_request", message: "project and source are required"))
            }
            let buffer = try await request.body.collect(upTo: 4 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            do {
                let (status, outcome) = try await sources.webhook(project: project, name: name, headers: headers, body: Data(buffer.readableBytesView))
                return Self.json(status, outcome)
            } catch let f as RunService.Failure {
                return Self.error(f.status, f.body)
            }
        }
    }

    // MARK: plumbing

    /// Only a project's admins and managers change its gateways, secrets and sources (403).
    static func requireManager(_ principal: Authenticator.Principal, _ project: String, changing what: String) throws {
        guard let role = principal.role(in: project), role == "admin" || role == "manager" else {
            throw RunService.Failure(status: 403, body: API.ErrorBody(code: "forbidden", message: "only an admin or manager of project \(project) changes its \(what)"))
        }
    }

    /// Authenticates (and authorizes for `project`), runs `body`, encodes its result as JSON,
    /// and turns failures into JSON errors with the right status.
    func handle<T: Encodable>(_ request: Request, project: String?, _ body: (Authenticator.Principal) async throws -> T) async throws -> Response {
        let principal: Authenticator.Principal
        switch project.map({ auth.authorize(authorization: request.headers[.authorization], project: $0) })
            ?? auth.principal(authorization: request.headers[.authorization]).map(Authenticator.Decision.allowed) ?? .unauthenticated {
        case .allowed(let p): principal = p
        case .unauthenticated:
            return Self.error(401, API.ErrorBody(code: "unauthenticated", message: "a valid token is required: `Authorization: Bearer <token>`"))
        case .forbidden(let p):
            return Self.error(403, API.ErrorBody(code: "forbidden", message: "user \(p.name) has no role in project \(project ?? "")"))
        }
        do {
            if let project, let missing = try await missingProject(project) { return missing }
            return Self.json(200, try await body(principal))
        } catch let failure as RunService.Failure {
            return Self.error(failure.status, failure.body)
        } catch let e as BodyError {
            return Self.error(400, API.ErrorBody(code: "bad_request", message: e.message))
        } catch let e as StoreError where e.code == .conflict {
            return Self.error(409, API.ErrorBody(code: "conflict", message: e.message))
        } catch let e as StoreError where e.code == .notFound {
            return Self.error(404, API.ErrorBody(code: "not_found", message: e.message))
        } catch let e as StoreError where e.code == .unavailable {
            // The store cannot be read or written (a full disk, a read-only mount): say so.
            logger.error("store unavailable", metadata: ["error": "\(e.message)"])
            return Self.error(503, API.ErrorBody(code: "unavailable", message: "the server cannot use its store: \(e.message)"))
        } catch let e as RunService.StorageError {
            logger.error("storage failed", metadata: ["error": "\(e.message)"])
            return Self.error(503, API.ErrorBody(code: "unavailable", message: e.message))
        } catch {
            logger.error("request failed", metadata: ["error": "\(error)"])
            return Self.error(500, API.ErrorBody(code: "internal", message: "internal error: \(type(of: error))"))
        }
    }

    struct BodyError: Error { var message: String }

    /// A 404 for a project that does not exist (a global admin passes authorization for any
    /// name, so a typo would otherwise look like an empty project).
    func missingProject(_ project: String) async throws -> Response? {
        guard try await !auth.projectExists(project) else { return nil }
        return Self.error(404, API.ErrorBody(code: "not_found", message: "project \(project) does not exist (`setpoint project list` shows them)"))
    }

    /// Decodes a JSON request body; a malformed one names the field at fault and what it
    /// expects. `empty` is the value of an empty body, when one is allowed.
    func decode<T: Decodable>(_ type: T.Type, _ request: Request, empty: T? = nil) async throws -> T {
        let buffer = try await request.body.collect(upTo: Self.maxBody)
        let data = Data(buffer.readableBytesView)
        if let empty, data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return empty }
        func field(_ ctx: DecodingError.Context) -> String { ctx.codingPath.map(\.stringValue).joined(separator: ".") }
        func expected(_ type: Any.Type) -> String {
            switch type {
            case is Bool.Type: return "a boolean (true or false)"
            case is Int.Type, is Int64.Type: return "an integer"
            case is String.Type: return "a string"
            case is [String: String].Type: return "an object of strings"
            default: return "a value of type \(type)"
            }
        }
        do {
            return try API.decoder.decode(T.self, from: data)
        } catch DecodingError.keyNotFound(let key, _) {
            throw BodyError(message: "missing field `\(key.stringValue)` in the request body")
        } catch DecodingError.typeMismatch(let type, let ctx) {
            throw BodyError(message: "field `\(field(ctx))`: expected \(expected(type))")
        } catch DecodingError.valueNotFound(let type, let ctx) {
            throw BodyError(message: "field `\(field(ctx))`: expected \(expected(type)), got null")
        } catch DecodingError.dataCorrupted(let ctx) where !ctx.codingPath.isEmpty {
            throw BodyError(message: "field `\(field(ctx))`: \(ctx.debugDescription)")
        } catch {
            throw BodyError(message: "the request body is not valid JSON for this endpoint")
        }
    }

    static func json<T: Encodable>(_ status: Int, _ value: T) -> Response {
        let data = (try? API.encoder.encode(value)) ?? Data()
        return Response(status: .init(code: status), headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ status: Int, _ body: API.ErrorBody) -> Response { json(status, ["error": body]) }

    /// `GET …/runs/{name}/logs?replica=N&follow=1`: the replicas' output as NDJSON lines.
    func logs(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard let project = context.parameters.get("project"), let name = context.parameters.get("name") else {
            return Self.error(400, API.ErrorBody(code: "bad_request", message: "project and run are required"))
        }
        switch auth.authorize(authorization: request.headers[.authorization], project: project) {
        case .allowed: break
        case .unauthenticated: return Self.error(401, API.ErrorBody(code: "unauthenticated", message: "a valid token is required"))
        case .forbidden: return Self.error(403, API.ErrorBody(code: "forbidden", message: "no role in project \(project)"))
        }
        if let missing = try await missingProject(project) { return missing }
        let follow = ["1", "true", "yes"].contains(request.uri.queryParameters.get("follow") ?? "")
        // `replica=N`: replica number N (every submission of it); `replica=NAME`: that replica.
        var wanted: Int?
        var wantedName: String?
        if let text = request.uri.queryParameters.get("replica") {
            if let number = Int(text), number >= 0 {
                wanted = number
            } else if text.hasPrefix(name + "."), !text.contains("/") {
                wantedName = String(text)
            } else {
                return Self.error(400, API.ErrorBody(code: "bad_request",
                                                     message: "replica: expected a replica number (0, 1, …) or a replica's name (\(name).…), got `\(text)`"))
            }
        }
        let replicas = try await TypedStore<ReplicaKind>(store).list(project: project, labels: [Labels.run: name])
            .filter { wanted == nil || $0.spec.replicaNum == wanted }
            .filter { wantedName == nil || $0.meta.name == wantedName }
            .filter { $0.status.workloadID != nil }
            .sorted { ($0.spec.replicaNum, $0.spec.submissionNum, $0.meta.name) < ($1.spec.replicaNum, $1.spec.submissionNum, $1.meta.name) }
        guard !replicas.isEmpty else { return Self.error(404, API.ErrorBody(code: "not_found", message: "no logs for run \(project)/\(name)")) }
        let backend = self.backend
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
            try await Self.relay(&writer, ending: streams) { out in
                // One replica's failure is a line that says so; the others are still read.
                @Sendable func copy(_ replica: Replica) async {
                    guard let id = replica.status.workloadID else { return }
                    do {
                        for try await line in backend.logs(WorkloadID(id), follow: follow) {
                            out.yield(Self.line(API.LogLine(replica: replica.meta.name, text: line.text)))
                        }
                    } catch is CancellationError {
                    } catch {
                        out.yield(Self.line(API.LogLine(replica: replica.meta.name, text: "", error: "\(error)")))
                    }
                }
                if follow {
                    // Following: every replica at once, lines as they come (`kubectl logs -f -l`).
                    await withDiscardingTaskGroup { group in
                        for replica in replicas { group.addTask { await copy(replica) } }
                    }
                } else {
                    for replica in replicas { await copy(replica) }
                }
            }
        })
    }

    /// One NDJSON line.
    static func line<T: Encodable>(_ value: T) -> ByteBuffer {
        var data = (try? API.encoder.encode(value)) ?? Data()
        data.append(0x0A)
        return ByteBuffer(bytes: data)
    }

    /// Streams what `produce` yields to the response until it ends, the client goes away, or the
    /// server shuts down (open streams end then; clients resume from their last version). What
    /// was yielded while the previous write was under way goes out as one write.
    static func relay(_ writer: inout any ResponseBodyWriter, ending streams: Signal,
                      _ produce: @escaping @Sendable (Outbox) async throws -> Void) async throws {
        let outbox = Outbox()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { outbox.finish() }
                try? await cancelWhenGracefulShutdown { try await produce(outbox) }
            }
            // The server's shutdown ends the stream at once, before the front door drains (it
            // would otherwise wait on this response for its whole drain timeout).
            group.addTask {
                await streams.waitUnlessCancelled()
                outbox.finish()
            }
            while let buffers = await outbox.next() {
                if buffers.count == 1 {
                    try await writer.write(buffers[0])
                } else {
                    var joined = ByteBuffer()
                    joined.reserveCapacity(buffers.reduce(0) { $0 + $1.readableBytes })
                    for var b in buffers { joined.writeBuffer(&b) }
                    try await writer.write(joined)
                }
            }
            group.cancelAll()
        }
        try await writer.finish(nil)
    }

    /// `GET …/watch?resourceVersion=N&kind=run,replica`: the project's objects as they change
    /// (NDJSON, `WatchService.stream`), starting after N (or with the current state and a
    /// bookmark when N is absent).
    func watch(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard let project = context.parameters.get("project") else {
            return Self.error(400, API.ErrorBody(code: "bad_request", message: "project is required"))
        }
        switch auth.authorize(authorization: request.headers[.authorization], project: project) {
        case .allowed: break
        case .unauthenticated: return Self.error(401, API.ErrorBody(code: "unauthenticated", message: "a valid token is required"))
        case .forbidden: return Self.error(403, API.ErrorBody(code: "forbidden", message: "no role in project \(project)"))
        }
        if let missing = try await missingProject(project) { return missing }
        var start: Int64?
        if let text = request.uri.queryParameters.get("resourceVersion") {
            guard let version = Int64(text), version >= 0 else {
                return Self.error(400, API.ErrorBody(code: "bad_request",
                                                     message: "resourceVersion: expected a version from an earlier list or event (an integer ≥ 0), got `\(text)`"))
            }
            start = version
        }
        let kinds: Set<String>
        do { kinds = try WatchService.parseKinds(request.uri.queryParameters.get("kind").map { String($0) }) } catch let f as RunService.Failure {
            return Self.error(f.status, f.body)
        }
        let watcher = self.watcher
        let from = start
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson", .cacheControl: "no-store"], body: ResponseBody { writer in
            try await Self.relay(&writer, ending: streams) { out in
                try await watcher.lines(project: project, kinds: kinds, from: from) { out.yield($0) }
            }
        })
    }
}

extension BasicRequestContext {
    var project: String {
        get throws {
            guard let p = parameters.get("project") else { throw APIRoutes.BodyError(message: "project is required") }
            return p
        }
    }

    var name: String {
        get throws {
            guard let n = parameters.get("name") else { throw APIRoutes.BodyError(message: "run name is required") }
            return n
        }
    }
}

/// A stream's lines between the task that makes them and the one that writes them: the writer
/// takes everything queued at once.
final class Outbox: Sendable {
    private struct State {
        var buffers: [ByteBuffer] = []
        var finished = false
        var waiter: CheckedContinuation<[ByteBuffer]?, Never>?
    }

    private let state = Mutex(State())

    func yield(_ buffer: ByteBuffer) {
        let waiter = state.withLock { s -> CheckedContinuation<[ByteBuffer]?, Never>? in
            guard !s.finished else { return nil }
            s.buffers.append(buffer)
            defer { s.waiter = nil }
            return s.waiter
        }
        if let waiter { waiter.resume(returning: take()) }
    }

    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<[ByteBuffer]?, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: take())
    }

    /// What is queued, or nil once finished and empty.
    private func take() -> [ByteBuffer]? {
        state.withLock { s in
            if s.buffers.isEmpty { return s.finished ? nil : [] }
            defer { s.buffers = [] }
            return s.buffers
        }
    }

    /// Everything queued, waiting for something when nothing is; nil at the end.
    func next() async -> [ByteBuffer]? {
        while true {
            let batch: [ByteBuffer]? = await withCheckedContinuation { c in
                let now = state.withLock { s -> [ByteBuffer]?? in
                    if !s.buffers.isEmpty { defer { s.buffers = [] }; return .some(s.buffers) }
                    if s.finished { return .some(nil) }
                    s.waiter = c
                    return .none
                }
                if let now { c.resume(returning: now) }
            }
            if let batch, batch.isEmpty { continue }   // woken for what another take had already got
            return batch
        }
    }
}
