import Foundation
import Model
import NIOCore
import NIOHTTP1
import SetpointConfiguration

/// One request being forwarded: from the downstream request head to the end of the upstream
/// response. Lives on the downstream connection's event loop, as does its upstream connection.
final class Exchange: UpstreamDelegate {
    unowned let handler: ProxyHandler
    /// nil for the API server.
    let route: ServiceRoute?
    var endpoint: Endpoint?
    var head: HTTPRequestHead
    let keepAlive: Bool
    let version: HTTPVersion
    let readTimeout: TimeAmount?
    /// Parts not yet written upstream (while connecting or held).
    var pending: [HTTPClientRequestPart] = []
    /// A copy of what was sent, for a retry; nil once the request cannot be retried.
    var retained: [HTTPClientRequestPart]?
    var retainedBytes = 0
    var requestDone = false
    var sentAll = false
    var upstream: UpstreamConnection?
    var responseStarted = false
    var status = 0
    let started = NIODeadline.now()
    var tried: [String] = []
    /// Rounds of connect attempts over every replica (the backoff between them).
    var connectRounds = 0
    /// Part of the request was written to a replica (only a request kept in `retained` may be
    /// sent again then).
    var sentAny = false
    /// Why the last replica tried could not be reached, when what stands before it said so.
    var unreached: String?
    var holdID: Int?
    var holdTimer: Scheduled<Void>?
    var wasHeld = false
    var finished = false
    var bodyBytes = 0

    init(handler: ProxyHandler, route: ServiceRoute?, head: HTTPRequestHead, keepAlive: Bool, version: HTTPVersion,
         readTimeout: TimeAmount?, retriable: Bool) {
        self.handler = handler
        self.route = route
        self.head = head
        self.keepAlive = keepAlive
        self.version = version
        self.readTimeout = readTimeout
        self.retained = retriable ? [] : nil
    }

    func upstreamRead(_ part: HTTPClientResponsePart) { handler.upstreamRead(self, part) }
    func upstreamReadComplete() { handler.flushDownstream() }
    func upstreamWritabilityChanged(_ writable: Bool) { handler.pause(.upstreamFull, !writable) }
    func upstreamClosed(_ error: Error?) { handler.upstreamClosed(self, error) }
    func upstreamTimedOut() { handler.upstreamTimedOut(self) }
}

/// A `502` marked `ReplicaUnreached` (the pod relay could not deliver the request).
struct UnreachedReplica: Error {}

/// The proxy's per-connection handler: routes each request (services, models, metrics, the
/// API), applies auth, rate limits and the body limit, holds requests while a service has no
/// ready replica, and streams requests and responses with backpressure in both directions.
final class ProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum Pause: Int { case upstreamFull = 1, held = 2 }

    let shared: ProxyShared
    var context: ChannelHandlerContext!
    var exchange: Exchange?
    /// Parts of the current request after it was answered locally (or early) are dropped.
    var discarding = false
    /// A models request whose body is read whole to find its `model`.
    var collecting: (head: HTTPRequestHead, project: String, operation: String, body: ByteBuffer)?
    var paused = 0
    var clientIP = "unknown"
    /// Set by the WebSocket upgrader when it answered the upgrade request's fate itself (no
    /// replica within the hold timeout); the request then gets this answer.
    var rejectedUpgrade: (HTTPResponseStatus, String, [(String, String)])?

    init(shared: ProxyShared) {
        self.shared = shared
    }

    /// Closes a connection whose next request head has not arrived in time.
    var waitTimer: Scheduled<Void>?
    /// When the connection is closed if no request head has arrived (nil while one is served).
    var waitDeadline: NIODeadline?
    var counted = false
    var overLimit = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientIP = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if context.channel.isActive { opened() }
    }

    func channelActive(context: ChannelHandlerContext) {
        if !counted { opened() }
        context.fireChannelActive()
    }

    /// A client connection is open: counted against the limit, then given the header timeout.
    private func opened() {
        let open = shared.connections.wrappingAdd(1, ordering: .relaxed).newValue
        counted = true
        // Too many clients at once: the first request is answered 503, then the connection closes.
        overLimit = open > shared.settings.maxConnections
        awaitRequest(within: shared.settings.headerTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        waitTimer?.cancel()
        waitTimer = nil
        // A WebSocket tunnel takes the connection over: it counts no more here.
        if counted { shared.connections.wrappingSubtract(1, ordering: .relaxed) }
        counted = false
    }

    /// Arms the wait for the next request head: a connection that sends none (or only part of
    /// one) within `timeout` is closed. One timer per connection, moved lazily: a busy
    /// keep-alive connection sets a deadline per request, not a timer.
    func awaitRequest(within timeout: TimeAmount) {
        let deadline = NIODeadline.now() + timeout
        waitDeadline = deadline
        if waitTimer == nil { scheduleWait(at: deadline) }
    }

    private func scheduleWait(at deadline: NIODeadline) {
        waitTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            self.waitTimer = nil
            // A request came meanwhile: armed again when it is answered.
            guard let due = self.waitDeadline, self.exchange == nil, self.collecting == nil else { return }
            if due > .now() { return self.scheduleWait(at: due) }
            self.context.close(promise: nil)
        }
    }

    // MARK: downstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            waitDeadline = nil
            discarding = false
            if overLimit {
                return respond(.serviceUnavailable, "Too many connections (\(shared.settings.maxConnections)); try again later",
                               head: head, keepAlive: false, extra: [("Retry-After", "1")])
            }
            route(head)
        case .body(let buffer):
            if discarding { return }
            if var c = collecting {
                collecting = nil   // avoid a copy on write
                guard c.body.readableBytes + buffer.readableBytes <= shared.settings.maxBodySize else {
                    discarding = true
                    return openAIError(.payloadTooLarge, "request body is larger than \(shared.settings.maxBodySize) bytes", type: "invalid_request_error")
                }
                var b = buffer
                c.body.writeBuffer(&b)
                collecting = c
                return
            }
            guard let ex = exchange else { return }
            ex.bodyBytes += buffer.readableBytes
            if ex.bodyBytes > shared.settings.maxBodySize {
                discarding = true
                return failExchange(ex, .payloadTooLarge, "Request body is larger than \(shared.settings.maxBodySize) bytes")
            }
            send(ex, .body(.byteBuffer(buffer)))
        case .end(let trailers):
            if discarding { discarding = false; return }
            if let c = collecting {
                collecting = nil
                return routeModel(c.head, project: c.project, operation: c.operation, body: c.body)
            }
            guard let ex = exchange else { return }
            ex.requestDone = true
            send(ex, .end(trailers))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let up = exchange?.upstream { up.channel.flush() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client reads slower than the replica writes: stop reading the replica.
        if let up = exchange?.upstream { up.channel.setAutoRead(context.channel.isWritable) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let ex = exchange {
            // The client went away: nothing to answer; the upstream connection cannot be reused.
            ex.upstream?.handler.delegate = nil
            ex.upstream?.channel.close(promise: nil)
            ex.upstream = nil
            finish(ex, status: 499)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // The upgrade handler reports a refused WebSocket upgrade this way before it hands the
        // request to this handler as an ordinary one.
        if error is TunnelUpgrader.NotUpgrading { return }
        context.close(promise: nil)
    }

    func pause(_ reason: Pause, _ on: Bool) {
        let before = paused
        paused = on ? paused | reason.rawValue : paused & ~reason.rawValue
        if (before == 0) != (paused == 0) { context.channel.setAutoRead(paused == 0) }
    }

    func flushDownstream() { context.flush() }

    // MARK: routing

    private func route(_ head: HTTPRequestHead) {
        let uri = head.uri
        let path: Substring
        let query: Substring?
        if let q = uri.firstIndex(of: "?") {
            path = uri[..<q]
            query = uri[uri.index(after: q)...]
        } else {
            path = uri[...]
            query = nil
        }
        if let site = shared.table.site {
            return routeHost(head, site: site, path: path, query: query)
        }
        if path.hasPrefix("/proxy/services/") {
            return routeService(head, path: path, query: query)
        }
        if path.hasPrefix("/proxy/models/") {
            return startModelRequest(head, path: path)
        }
        if path == "/metrics" && (head.method == .GET || head.method == .HEAD) {
            return respond(.ok, shared.metrics(), contentType: "text/plain; version=0.0.4; charset=utf-8", head: head)
        }
        guard let api = shared.api else { return respond(.notFound, "Not found", head: head) }
        var upstreamHead = head
        upstreamHead.version = .http1_1
        upstreamHead.headers = forwardedHeaders(head, dropAuthorization: false, prefix: nil)
        let ex = Exchange(handler: self, route: nil, head: upstreamHead, keepAlive: head.isKeepAlive, version: head.version,
                          readTimeout: nil, retriable: false)
        exchange = ex
        connect(ex, api)
    }

    enum ServiceDecision {
        case redirect(String)
        case refuse(HTTPResponseStatus, String, [(String, String)])
        case forward(ServiceRoute, HTTPRequestHead)
    }

    /// Where a service request goes, or why it does not: by path on the server
    /// (`/proxy/services/<project>/<run>/…`), by `Host` on a gateway (`<run>.<domain>`, the
    /// whole path). Nil: not a service request.
    func resolveRequest(_ head: HTTPRequestHead, path: Substring, query: Substring?, keeping: Set<String> = []) -> ServiceDecision? {
        if let site = shared.table.site {
            guard case .service(let run) = site.target(host: head.headers.first(name: "host")) else { return nil }
            return decide(head, project: site.project, run: run, limitPath: path, keeping: keeping) { _ in (head.uri, nil) }
        }
        guard path.hasPrefix("/proxy/services/") else { return nil }
        return resolveService(head, path: path, query: query, keeping: keeping)
    }

    /// Where a `/proxy/services/<project>/<run>/…` request goes, or why it does not.
    func resolveService(_ head: HTTPRequestHead, path: Substring, query: Substring?, keeping: Set<String> = []) -> ServiceDecision {
        let parts = path.dropFirst("/proxy/services/".count).split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, !parts[0].isEmpty, !parts[1].isEmpty else { return .refuse(.notFound, "Not found", []) }
        let project = String(parts[0]), run = String(parts[1])
        if parts.count == 2 {
            var location = String(path) + "/"
            if let query { location += "?" + query }
            return .redirect(location)
        }
        let rest = "/" + parts[2]
        return decide(head, project: project, run: run, limitPath: rest[...], keeping: keeping) { route in
            var target = route.spec.stripPrefix ? rest : String(path)
            if let query { target += "?" + query }
            return (target, route.spec.stripPrefix ? route.pathPrefix : nil)
        }
    }

    /// Auth, the route, its rate limits and the body limit; then the replica's request head.
    /// `upstream` gives the path the replica gets and the prefix that was removed from it.
    private func decide(_ head: HTTPRequestHead, project: String, run: String, limitPath: Substring, keeping: Set<String>,
                        upstream: (ServiceRoute) -> (String, String?)) -> ServiceDecision {
        // The token is checked before the caller hears whether the service exists: without
        // access to the project, an unknown service and a private one answer alike (only
        // `auth: false` services are public).
        let route = shared.table.route(project: project, run: run)
        if route?.spec.auth ?? true, let denied = deny(head, project: project) { return .refuse(denied.0, denied.1, []) }
        guard let route else {
            return .refuse(.notFound, "Service \(project)/\(run) not found", [])
        }
        if let limiter = route.limiter,
           let wait = limiter.check(path: limitPath, clientIP: clientIP, header: { head.headers.first(name: $0) }) {
            return .refuse(.tooManyRequests, "Too many requests: the rate limit of \(project)/\(run) was reached",
                           [("Retry-After", String(Int(wait.rounded(.up))))])
        }
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > shared.settings.maxBodySize {
            return .refuse(.payloadTooLarge, "Request body is larger than \(shared.settings.maxBodySize) bytes", [])
        }
        let (target, prefix) = upstream(route)
        var upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: target)
        upstreamHead.headers = Headers.forwarded(head, clientIP: clientIP, dropAuthorization: route.spec.auth,
                                                 prefix: prefix, keeping: keeping, secure: shared.secure)
        return .forward(route, upstreamHead)
    }

    /// A gateway: `<run>.<domain>` is the service (the whole path), `gateway.<domain>` the
    /// project's models API (`/models`, `/chat/completions`, …, with or without `/v1`).
    private func routeHost(_ head: HTTPRequestHead, site: GatewaySite, path: Substring, query: Substring?) {
        // ACME HTTP-01: the CA asks any of the gateway's names for the token.
        if path.hasPrefix(GatewaySite.challengePath) {
            let token = String(path.dropFirst(GatewaySite.challengePath.count))
            // The key authorization exactly (no trailing newline: `text/plain` answers get one).
            if let answer = site.challenges[token] { return respond(.ok, answer, contentType: "application/octet-stream", head: head) }
            return respond(.notFound, "no such challenge", head: head)
        }
        if !shared.secure, let location = site.secureLocation(host: head.headers.first(name: "host"), uri: head.uri) {
            return respond(.permanentRedirect, "", head: head, extra: [("Location", location)])
        }
        switch site.target(host: head.headers.first(name: "host")) {
        case .service:
            return routeService(head, path: path, query: query)
        case .models:
            var operation = path.drop { $0 == "/" }
            if operation.hasPrefix("v1/") { operation = operation.dropFirst(3) }
            return startModelRequest(head, project: site.project, operation: String(operation))
        case .unknown:
            if path == "/healthz" { return respond(.ok, "ok", head: head) }
            return respond(.notFound, "Not found: this gateway serves <run>.\(site.domain ?? "<domain>") and gateway.\(site.domain ?? "<domain>")", head: head)
        }
    }

    private func routeService(_ head: HTTPRequestHead, path: Substring, query: Substring?) {
        if let (status, message, extra) = rejectedUpgrade {
            rejectedUpgrade = nil
            return respond(status, message, head: head, extra: extra)
        }
        switch resolveRequest(head, path: path, query: query) ?? .refuse(.notFound, "Not found", []) {
        case .redirect(let location):
            respond(.permanentRedirect, "", head: head, extra: [("Location", location)])
        case .refuse(let status, let message, let extra):
            respond(status, message, head: head, extra: extra)
        case .forward(let route, let upstreamHead):
            forward(route, upstreamHead, original: head)
        }
    }

    /// 401 / 403 for a request without a member's token.
    private func deny(_ head: HTTPRequestHead, project: String) -> (HTTPResponseStatus, String)? {
        switch shared.authorize(head.headers.first(name: "authorization"), project) {
        case .allowed: return nil
        case .unauthenticated: return (.unauthorized, "Unauthenticated: send `Authorization: Bearer <token>` of a member of project \(project)")
        case .forbidden: return (.forbidden, "Unauthorized to access project \(project)")
        }
    }

    private func forwardedHeaders(_ head: HTTPRequestHead, dropAuthorization: Bool, prefix: String?) -> HTTPHeaders {
        Headers.forwarded(head, clientIP: clientIP, dropAuthorization: dropAuthorization, prefix: prefix, secure: shared.secure)
    }

    private func forward(_ route: ServiceRoute, _ upstreamHead: HTTPRequestHead, original: HTTPRequestHead, body: ByteBuffer? = nil) {
        let retriable = Headers.idempotent.contains(original.method)
        let ex = Exchange(handler: self, route: route, head: upstreamHead, keepAlive: original.isKeepAlive, version: original.version,
                          readTimeout: shared.settings.readTimeout, retriable: retriable)
        exchange = ex
        route.stats.arrived()
        if body == nil { continueIfExpected(original) }
        if let body {
            send(ex, .body(.byteBuffer(body)))
            ex.requestDone = true
            send(ex, .end(nil))
        }
        pick(ex)
    }

    // MARK: models endpoint

    private static let modelOperations: Set<String> = ["chat/completions", "completions", "embeddings"]

    private func startModelRequest(_ head: HTTPRequestHead, path: Substring) {
        let parts = path.dropFirst("/proxy/models/".count).split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty else {
            return openAIError(.notFound, "Not found", type: "invalid_request_error", head: head)
        }
        startModelRequest(head, project: String(parts[0]), operation: String(parts[1]))
    }

    private func startModelRequest(_ head: HTTPRequestHead, project: String, operation: String) {
        if let denied = deny(head, project: project) {
            return openAIError(denied.0, denied.1, type: denied.0 == .unauthorized ? "authentication_error" : "permission_error", head: head)
        }
        if operation == "models" && (head.method == .GET || head.method == .HEAD) {
            let data = shared.table.models(project: project).map { r -> JSONValue in
                .object([("id", .string(r.spec.model!.name)), ("object", .string("model")),
                         ("created", .int(Int(r.spec.runCreatedAt.timeIntervalSince1970))), ("owned_by", .string(project))])
            }
            let body = JSONValue.object([("object", .string("list")), ("data", .array(data))]).serialized
            return respond(.ok, body, contentType: "application/json", head: head)
        }
        guard head.method == .POST, Self.modelOperations.contains(operation) else {
            return openAIError(.notFound, "Unknown endpoint \(head.method.rawValue) /\(operation): use GET models, or POST chat/completions, completions or embeddings",
                               type: "invalid_request_error", head: head)
        }
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > shared.settings.maxBodySize {
            return openAIError(.payloadTooLarge, "request body is larger than \(shared.settings.maxBodySize) bytes", type: "invalid_request_error", head: head)
        }
        collecting = (head, project, operation, context.channel.allocator.buffer(capacity: 1024))
        continueIfExpected(head)
    }

    /// The client waits for `100 Continue` before it sends the body: the proxy answers it
    /// itself (`Expect` is not forwarded).
    private func continueIfExpected(_ head: HTTPRequestHead) {
        guard head.headers.first(name: "expect")?.lowercased() == "100-continue" else { return }
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
    }

    private func routeModel(_ head: HTTPRequestHead, project: String, operation: String, body: ByteBuffer) {
        let text = String(buffer: body)
        guard let json = try? JSONParser.parse(text), case .object = json else {
            return openAIError(.badRequest, "the request body is not a JSON object", type: "invalid_request_error", head: head)
        }
        guard case .string(let model)? = json["model"] else {
            return openAIError(.badRequest, "`model` is required and must be a string", type: "invalid_request_error", head: head, param: "model")
        }
        guard let route = shared.table.model(project: project, name: model) else {
            return openAIError(.notFound, "Model \(model) not found in project \(project)", type: "invalid_request_error",
                               head: head, param: "model", code: "model_not_found")
        }
        guard let spec = route.spec.model, spec.format == "openai" else {
            return openAIError(.badRequest, "Model \(model) is published in the tgi format, which the models endpoint does not translate; call its service URL \(route.pathPrefix)/ directly",
                               type: "invalid_request_error", head: head, param: "model")
        }
        let prefix = spec.prefix.hasSuffix("/") ? String(spec.prefix.dropLast()) : spec.prefix
        let target = prefix + "/" + operation
        if let limiter = route.limiter,
           let wait = limiter.check(path: target[...], clientIP: clientIP, header: { head.headers.first(name: $0) }) {
            return openAIError(.tooManyRequests, "Rate limit reached for model \(model)", type: "rate_limit_error", head: head,
                               extra: [("Retry-After", String(Int(wait.rounded(.up))))])
        }
        var upstreamHead = HTTPRequestHead(version: .http1_1, method: .POST, uri: target)
        upstreamHead.headers = forwardedHeaders(head, dropAuthorization: true, prefix: nil)
        upstreamHead.headers.remove(name: "transfer-encoding")
        upstreamHead.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        forward(route, upstreamHead, original: head, body: body)
    }

    private func openAIError(_ status: HTTPResponseStatus, _ message: String, type: String, head: HTTPRequestHead? = nil,
                             param: String? = nil, code: String? = nil, extra: [(String, String)] = []) {
        let body = JSONValue.object([("error", .object([
            ("message", .string(message)), ("type", .string(type)),
            ("param", param.map(JSONValue.string) ?? .null), ("code", code.map(JSONValue.string) ?? .null),
        ]))]).serialized
        respond(status, body, contentType: "application/json", head: head, extra: extra)
    }

    // MARK: replicas

    /// Sends the exchange to a replica: least outstanding of two random choices, or waits for
    /// one when there is none.
    private func pick(_ ex: Exchange) {
        guard let route = ex.route else { return }
        if let (_, endpoint) = shared.table.pick(route.key, excluding: ex.tried) {
            ex.endpoint = endpoint
            return connect(ex, endpoint.target)
        }
        if !ex.tried.isEmpty && !ex.wasHeld {
            // Every replica refused (a full listen backlog under load, a replica restarting):
            // nothing was sent, so the same replicas are tried again after a short backoff
            // (10 ms doubling to 200 ms) for as long as a connect may take.
            if !ex.sentAny, NIODeadline.now() - ex.started < shared.settings.connectTimeout {
                let delay = TimeAmount.milliseconds(Int64(min(200, 10 << min(ex.connectRounds, 5))))
                ex.connectRounds += 1
                ex.tried = []
                context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
                    guard let self, !ex.finished, self.exchange === ex else { return }
                    self.pick(ex)
                }
                return
            }
            return failExchange(ex, .badGateway, "Error requesting upstream: could not connect to any replica of \(route.key)"
                                + (ex.unreached.map { " (\($0))" } ?? ""))
        }
        hold(ex, route)
    }

    /// No replica is ready: wait (bounded) for one, counted as demand.
    private func hold(_ ex: Exchange, _ route: ServiceRoute) {
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, ex), eventLoop: loop)
        let outcome = shared.table.hold(route.key, limit: shared.settings.holdQueue) { ready in
            loop.execute {
                let (handler, ex) = bound.value
                handler.resume(ex, ready)
            }
        }
        switch outcome {
        case .ready:
            ex.tried = []
            pick(ex)
        case .gone:
            failExchange(ex, .notFound, "Service \(route.key) not found")
        case .full:
            failExchange(ex, .serviceUnavailable, "Service \(route.key) has no ready replica and \(shared.settings.holdQueue) requests already wait for one",
                         retryAfter: 5)
        case .waiting(let id):
            ex.holdID = id
            ex.tried = []
            if !ex.wasHeld {
                ex.wasHeld = true
                route.stats.holding(1)
            }
            pause(.held, true)
            let timeout = shared.settings.holdTimeout
            ex.holdTimer = loop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
                guard let self, ex.holdID != nil, !ex.finished else { return }
                self.shared.table.cancelHold(route.key, id: id)
                ex.holdID = nil
                self.failExchange(ex, .serviceUnavailable, "Service \(route.key) has no ready replica after \(timeout.nanoseconds / 1_000_000_000) s",
                                  retryAfter: 5)
            }
            shared.table.demandAtZero(project: route.project, run: route.run)
        }
    }

    private func resume(_ ex: Exchange, _ route: ServiceRoute?) {
        guard !ex.finished, ex.holdID != nil else { return }
        ex.holdID = nil
        ex.holdTimer?.cancel()
        ex.holdTimer = nil
        guard route != nil else { return failExchange(ex, .notFound, "Service \(ex.route?.key ?? "") not found") }
        pick(ex)
    }

    private func connect(_ ex: Exchange, _ target: UpstreamAddress) {
        let pool = shared.pool(context.eventLoop)
        if let conn = pool.idleConnection(target) { return attach(ex, conn) }
        pool.acquire(target, readTimeout: ex.readTimeout).assumeIsolated().whenComplete { [weak self] result in
            guard let self, !ex.finished, self.exchange === ex else {
                if case .success(let conn) = result { pool.release(conn) }
                return
            }
            switch result {
            case .success(let conn):
                self.attach(ex, conn)
            case .failure(let error):
                self.connectFailed(ex, error)
            }
        }
    }

    private func connectFailed(_ ex: Exchange, _ error: Error) {
        guard let endpoint = ex.endpoint else {
            return failExchange(ex, .badGateway, "Error requesting upstream: the API server is not reachable")
        }
        shared.logger.debug("replica unreachable", metadata: ["endpoint": "\(endpoint.address)", "error": "\(error)"])
        shared.table.release(endpoint)
        ex.endpoint = nil
        ex.tried.append(endpoint.address)
        if ex.wasHeld {
            // Waiting for a replica that has just started: it may not listen yet. Try again
            // shortly, within the hold timeout.
            let elapsed = NIODeadline.now() - ex.started
            guard elapsed < shared.settings.holdTimeout else {
                return failExchange(ex, .serviceUnavailable, "Service \(ex.route?.key ?? "") has no reachable replica", retryAfter: 5)
            }
            ex.tried = []
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(50)) { [weak self] in
                guard let self, !ex.finished, self.exchange === ex else { return }
                self.pick(ex)
            }
            return
        }
        // Nothing reached the replica (the parts wait in `pending`): any request may go to
        // another one, idempotent or not.
        pick(ex)
    }

    private func attach(_ ex: Exchange, _ conn: UpstreamConnection) {
        ex.upstream = conn
        ex.sentAny = true
        conn.handler.delegate = ex
        if paused != 0 { pause(.held, false) }
        if !context.channel.isWritable { conn.channel.setAutoRead(false) } else if conn.reused { conn.channel.setAutoRead(true) }
        conn.channel.write(HTTPClientRequestPart.head(ex.head), promise: nil)
        for part in ex.pending { write(ex, conn, part) }
        ex.pending = []
        conn.channel.flush()
        if !conn.channel.isWritable { pause(.upstreamFull, true) }
    }

    private func write(_ ex: Exchange, _ conn: UpstreamConnection, _ part: HTTPClientRequestPart) {
        if case .end = part { ex.sentAll = true }
        conn.channel.write(part, promise: nil)
    }

    /// A request part from the client: to the replica, or kept until there is one.
    private func send(_ ex: Exchange, _ part: HTTPClientRequestPart) {
        if ex.retained != nil {
            if case .body(.byteBuffer(let b)) = part { ex.retainedBytes += b.readableBytes }
            if ex.retainedBytes > shared.settings.retryBodyLimit { ex.retained = nil } else { ex.retained!.append(part) }
        }
        if let conn = ex.upstream {
            write(ex, conn, part)
            if case .end = part { conn.channel.flush() }
        } else {
            ex.pending.append(part)
        }
    }

    // MARK: upstream events

    func upstreamRead(_ ex: Exchange, _ part: HTTPClientResponsePart) {
        guard exchange === ex, !ex.finished else { return }
        switch part {
        case .head(let response):
            if response.status.code >= 100 && response.status.code < 200 { return }
            var headers = response.headers
            if response.status == .badGateway, let reason = headers.first(name: ReplicaUnreached.header) {
                headers.remove(name: ReplicaUnreached.header)
                ex.unreached = reason
                // The request never reached the app: like a refused connect, when it can be sent again.
                if let retained = ex.retained {
                    let conn = ex.upstream
                    ex.upstream = nil
                    conn?.handler.delegate = nil
                    conn?.channel.close(promise: nil)
                    ex.pending = retained
                    return connectFailed(ex, UnreachedReplica())
                }
            }
            ex.responseStarted = true
            ex.status = Int(response.status.code)
            var head = HTTPResponseHead(version: ex.version, status: response.status, headers: Headers.endToEnd(headers))
            if !ex.keepAlive { head.headers.replaceOrAdd(name: "Connection", value: "close") }
            else if ex.version == .http1_0 { head.headers.replaceOrAdd(name: "Connection", value: "keep-alive") }
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            let conn = ex.upstream
            ex.upstream = nil
            conn?.handler.delegate = nil
            if let conn {
                // Reusable when the replica keeps the connection and got the whole request.
                if ex.sentAll { shared.pool(context.eventLoop).release(conn) } else { conn.channel.close(promise: nil) }
            }
            if !ex.requestDone { discarding = true }
            end(ex, trailers: trailers)
        }
    }

    func upstreamClosed(_ ex: Exchange, _ error: Error?) {
        guard exchange === ex, !ex.finished else { return }
        let conn = ex.upstream
        ex.upstream = nil
        if !ex.responseStarted {
            // Nothing came back. An idempotent request on a reused connection the replica had
            // closed never reached it: send it again on a fresh connection.
            if let retained = ex.retained, conn?.reused == true, let endpoint = ex.endpoint {
                ex.pending = retained
                return connect(ex, endpoint.target)
            }
            let what = error.map { "\($0)" } ?? "it closed the connection"
            shared.logger.debug("replica failed", metadata: ["endpoint": "\(ex.endpoint?.address ?? "api")", "error": "\(what)"])
            return failExchange(ex, .badGateway, "Error requesting upstream: the replica did not answer")
        }
        // The response was cut short: the client must see it, so its connection closes too.
        finish(ex, status: ex.status)
        context.close(promise: nil)
    }

    func upstreamTimedOut(_ ex: Exchange) {
        guard exchange === ex, !ex.finished, ex.sentAll else { return }
        let conn = ex.upstream
        ex.upstream = nil
        conn?.handler.delegate = nil
        conn?.channel.close(promise: nil)
        if ex.responseStarted {
            finish(ex, status: ex.status)
            context.close(promise: nil)
        } else {
            failExchange(ex, .gatewayTimeout, "Timed out requesting upstream")
        }
    }

    // MARK: answers

    /// Ends the exchange with an error of the proxy's own (or closes when the response has
    /// already started).
    private func failExchange(_ ex: Exchange, _ status: HTTPResponseStatus, _ message: String, retryAfter: Int? = nil) {
        guard !ex.finished else { return }
        if let conn = ex.upstream {
            conn.handler.delegate = nil
            conn.channel.close(promise: nil)
            ex.upstream = nil
        }
        if ex.responseStarted {
            finish(ex, status: ex.status)
            context.close(promise: nil)
            return
        }
        if !ex.requestDone { discarding = true }
        ex.status = Int(status.code)
        finish(ex, status: Int(status.code))
        respond(status, message, keepAlive: ex.keepAlive, version: ex.version,
                extra: retryAfter.map { [("Retry-After", String($0))] } ?? [])
    }

    private func end(_ ex: Exchange, trailers: HTTPHeaders?) {
        finish(ex, status: ex.status)
        guard !ex.keepAlive else {
            awaitRequest(within: shared.settings.idleTimeout)
            return context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlushPromise(wrapOutboundOut(.end(trailers))).whenComplete { _ in channel.close(promise: nil) }
    }

    private func finish(_ ex: Exchange, status: Int) {
        guard !ex.finished else { return }
        ex.finished = true
        if let id = ex.holdID, let route = ex.route { shared.table.cancelHold(route.key, id: id) }
        ex.holdID = nil
        ex.holdTimer?.cancel()
        if exchange === ex { exchange = nil }
        if paused != 0 {
            pause(.held, false)
            pause(.upstreamFull, false)
        }
        if let endpoint = ex.endpoint { shared.table.release(endpoint) }
        if let route = ex.route {
            if ex.wasHeld { route.stats.holding(-1) }
            let seconds = Double((NIODeadline.now() - ex.started).nanoseconds) / 1e9
            route.stats.finished(status: status, seconds: seconds)
        }
    }

    private func respond(_ status: HTTPResponseStatus, _ message: String, contentType: String = "text/plain; charset=utf-8",
                         head: HTTPRequestHead? = nil, keepAlive: Bool? = nil, version: HTTPVersion? = nil, extra: [(String, String)] = []) {
        let keep = keepAlive ?? head?.isKeepAlive ?? false
        let version = version ?? head?.version ?? .http1_1
        // Answered at the head: the rest of the request is read and dropped.
        if head != nil { discarding = true }
        var body = context.channel.allocator.buffer(capacity: message.utf8.count + 1)
        if !message.isEmpty {
            body.writeString(message)
            if contentType.hasPrefix("text/plain") { body.writeString("\n") }
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        for (k, v) in extra { headers.add(name: k, value: v) }
        if !keep { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if head?.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let written = context.writeAndFlushPromise(wrapOutboundOut(.end(nil)))
        if !keep {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        } else {
            awaitRequest(within: shared.settings.idleTimeout)
        }
    }
}

extension ChannelHandlerContext {
    func writeAndFlushPromise(_ data: NIOAny) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: promise)
        return promise.futureResult
    }
}

extension Channel {
    /// Turns reading on or off (backpressure between the two sides of an exchange).
    func setAutoRead(_ on: Bool) {
        if let sync = syncOptions { try? sync.setOption(.autoRead, value: on) } else { setOption(.autoRead, value: on).whenComplete { _ in } }
    }
}
