import Foundation
import Model
import Proxy
import Testing
import TestSupport

/// The proxy with real upstream processes (Tests/Apps/testapp.py) on Unix sockets and real
/// HTTP on loopback.
@Suite(.serialized) struct ProxyTests {
    @Test func leastOutstandingRequestsFavourTheFastReplica() async throws {
        let h = try await ProxyHarness()
        defer { h.stop() }
        let fast = try await h.app("fast", delayMs: 5)
        let slow = try await h.app("slow", delayMs: 300)
        h.route("svc", endpoints: [fast, slow])
        let port = h.port
        // 8 clients, 12 requests each: round robin would send half of them to the slow one.
        let names = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var seen: [String] = []
                    for _ in 0..<12 {
                        let r = try await RawHTTP.request(port: port, method: "GET", path: "/proxy/services/main/svc/work")
                        #expect(r.status == 200)
                        seen.append(r.body)
                    }
                    return seen
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let toFast = names.filter { $0 == "fast" }.count
        #expect(names.count == 96)
        #expect(toFast >= 72, "only \(toFast) of 96 requests went to the fast replica")
        #expect(h.table.route(project: "main", run: "svc")!.endpoints.allSatisfy { $0.inFlight == 0 })
    }

    @Test func webSocketEchoThroughTheProxy() async throws {
        let h = try await ProxyHarness()
        defer { h.stop() }
        h.route("ws", endpoints: [try await h.app("ws")], auth: true)
        let port = h.port
        let table = h.table
        try await onThreadThrowing {
            let conn = try RawHTTP(port: port)
            conn.send("GET /proxy/services/main/ws/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer good\r\n\r\n")
            guard let (status, headers) = conn.readHead() else { throw TestFailure(message: "no 101") }
            #expect(status == 101)
            #expect(headers.contains { $0.0.lowercased() == "sec-websocket-accept" && $0.1 == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" })
            for text in ["hello", "second message"] {
                conn.send(Self.maskedFrame(opcode: 1, Array(text.utf8)))
                guard let head = conn.take(2), let payload = conn.take(Int(head[1] & 0x7F)) else { throw TestFailure(message: "no echo") }
                #expect(head[0] == 0x81)
                #expect(String(decoding: payload, as: UTF8.self) == "echo: \(text)")
            }
            // The open tunnel counts as a request in flight (a draining replica waits for it).
            #expect(table.route(project: "main", run: "ws")!.endpoints[0].inFlight == 1)
            conn.send(Self.maskedFrame(opcode: 8, []))
            #expect(conn.take(2) == [0x88, 0x00])
        }
        try await waitFor(timeout: 5) { h.table.route(project: "main", run: "ws")!.endpoints[0].inFlight == 0 }
        // Without a token the upgrade is refused like any request.
        let denied = try await h.request("GET", "/proxy/services/main/ws/ws",
                                         headers: [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "x")])
        #expect(denied.status == 401)
    }

    static func maskedFrame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let mask: [UInt8] = [1, 2, 3, 4]
        return [0x80 | opcode, 0x80 | UInt8(payload.count)] + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    @Test func modelsEndpointRoutesByModelAndStreams() async throws {
        let h = try await ProxyHarness()
        defer { h.stop() }
        let model = RouteModel(name: "llama", format: "openai", prefix: "/v1")
        h.route("old", endpoints: [try await h.app("old")], auth: true, model: model, created: Date(timeIntervalSince1970: 1_000))
        h.route("new", endpoints: [try await h.app("new")], auth: true, model: model, created: Date(timeIntervalSince1970: 2_000))
        h.route("embed", endpoints: [try await h.app("embedder")], auth: true,
                model: RouteModel(name: "e5", format: "openai", prefix: "/v1/"))
        let auth = [("Authorization", "Bearer good"), ("Content-Type", "application/json")]

        let list = try await h.request("GET", "/proxy/models/main/models", headers: auth)
        #expect(list.status == 200)
        #expect(list.body.contains(#""object":"list""#) && list.body.contains(#""id":"llama""#) && list.body.contains(#""id":"e5""#))
        #expect(list.body.contains(#""owned_by":"main""#))

        // The most recently created service wins a model name; the body goes to `<prefix>/chat/completions`.
        let chat = try await h.request("POST", "/proxy/models/main/chat/completions", headers: auth,
                                       body: Data(#"{"model":"llama","messages":[{"role":"user","content":"hi"}]}"#.utf8))
        #expect(chat.status == 200)
        #expect(chat.body.contains(#""served_by": "new""#) && chat.body.contains(#""path": "/v1/chat/completions""#), "\(chat.body)")
        let embedding = try await h.request("POST", "/proxy/models/main/embeddings", headers: auth,
                                            body: Data(#"{"model":"e5","input":"x"}"#.utf8))
        #expect(embedding.status == 200 && embedding.body.contains(#""served_by": "embedder""#))

        // Streaming passes through as it is produced (the app waits 200 ms between events).
        let port = h.port
        let times = TimeLog()
        let stream = try await RawHTTP.request(port: port, method: "POST", path: "/proxy/models/main/chat/completions", headers: auth,
                                               body: Data(#"{"model":"llama","stream":true,"messages":[]}"#.utf8)) { chunk in
            times.note(chunk)
        }
        #expect(stream.status == 200)
        #expect(stream.header("content-type") == "text/event-stream")
        #expect(stream.body.hasPrefix("data: {") && stream.body.hasSuffix("data: [DONE]\n\n"))
        #expect(stream.body.components(separatedBy: "data: ").count - 1 == 4)
        #expect(times.spread >= 0.35, "events arrived within \(times.spread) s: the stream was buffered")

        let unknown = try await h.request("POST", "/proxy/models/main/chat/completions", headers: auth,
                                          body: Data(#"{"model":"nope"}"#.utf8))
        #expect(unknown.status == 404)
        #expect(unknown.body.contains(#""code":"model_not_found""#) && unknown.body.contains("Model nope not found in project main"))
        let anonymous = try await h.request("POST", "/proxy/models/main/chat/completions", body: Data(#"{"model":"llama"}"#.utf8))
        #expect(anonymous.status == 401 && anonymous.body.contains(#""error""#))
        let noModel = try await h.request("POST", "/proxy/models/main/chat/completions", headers: auth, body: Data("{}".utf8))
        #expect(noModel.status == 400 && noModel.body.contains(#""param":"model""#))
    }

    @Test func requestsAtZeroAreHeldThenAllServed() async throws {
        let h = try await ProxyHarness()
        defer { h.stop() }
        h.route("cold", endpoints: [], scalesToZero: true)
        let port = h.port
        let n = 24
        let requests = Task {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<n {
                    group.addTask { try await RawHTTP.request(port: port, method: "GET", path: "/proxy/services/main/cold/name?i=\(i)").status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        // Held, not answered, and reported as demand.
        try await waitFor(timeout: 10) { h.table.route(project: "main", run: "cold")!.stats.snapshot.held == n }
        #expect(h.demanded.value >= 1)
        #expect(h.table.route(project: "main", run: "cold")!.stats.requests(last: 30) == n)
        // A replica becomes ready: every held request is forwarded to it.
        h.route("cold", endpoints: [try await h.app("warm")], scalesToZero: true)
        let statuses = try await requests.value
        #expect(statuses == Array(repeating: 200, count: n))
        #expect(h.table.route(project: "main", run: "cold")!.stats.snapshot.held == 0)
    }

    @Test func heldRequestsGiveUpWith503AndRetryAfter() async throws {
        let h = try await ProxyHarness { $0.holdTimeout = .milliseconds(300); $0.holdQueue = 2 }
        defer { h.stop() }
        h.route("cold", endpoints: [], scalesToZero: true)
        let port = h.port
        let first = Task { try await RawHTTP.request(port: port, method: "GET", path: "/proxy/services/main/cold/") }
        let second = Task { try await RawHTTP.request(port: port, method: "GET", path: "/proxy/services/main/cold/") }
        try await waitFor(timeout: 5) { h.table.route(project: "main", run: "cold")!.stats.snapshot.held == 2 }
        // The queue is full: the third is refused at once.
        let third = try await h.request("GET", "/proxy/services/main/cold/")
        #expect(third.status == 503 && third.header("Retry-After") == "5" && third.body.contains("already wait"))
        for r in [try await first.value, try await second.value] {
            #expect(r.status == 503 && r.header("Retry-After") == "5" && r.body.contains("no ready replica after"))
        }
    }

    @Test func rateLimitsAnswer429WithRetryAfter() async throws {
        let h = try await ProxyHarness()
        defer { h.stop() }
        h.route("lim", endpoints: [try await h.app("lim")], limits: [
            RouteRateLimit(prefix: "/", header: nil, rps: 0.5, burst: 2),
            RouteRateLimit(prefix: "/api", header: "X-Key", rps: 0.5, burst: 0),
        ])
        var statuses: [Int] = []
        for _ in 0..<4 { statuses.append(try await h.request("GET", "/proxy/services/main/lim/name").status) }
        #expect(statuses == [200, 200, 200, 429])
        let limited = try await h.request("GET", "/proxy/services/main/lim/name")
        #expect(limited.status == 429 && Int(limited.header("Retry-After") ?? "") ?? 0 >= 1)
        // The longest prefix applies, keyed by the header; requests without it are not limited.
        #expect(try await h.request("GET", "/proxy/services/main/lim/api/a", headers: [("X-Key", "k1")]).status == 404)
        #expect(try await h.request("GET", "/proxy/services/main/lim/api/a", headers: [("X-Key", "k1")]).status == 429)
        #expect(try await h.request("GET", "/proxy/services/main/lim/api/a", headers: [("X-Key", "k2")]).status == 404)
        #expect(try await h.request("GET", "/proxy/services/main/lim/api/a").status == 404)
    }

    @Test func headersBodiesAndErrors() async throws {
        let h = try await ProxyHarness { $0.maxBodySize = 1024; $0.readTimeout = .milliseconds(400) }
        defer { h.stop() }
        let app = try await h.app("h")
        h.route("h", endpoints: [app], auth: true)
        h.route("open", endpoints: [app], auth: false, stripPrefix: false)
        h.route("body", endpoints: [app])

        let r = try await h.request("GET", "/proxy/services/main/h/headers?x=1", headers: [
            ("Authorization", "Bearer good"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"), ("Proxy-Authorization", "Basic x"), ("X-Custom", "kept"), ("X-Forwarded-For", "10.0.0.1"),
        ])
        #expect(r.status == 200)
        let json = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as! [String: Any]
        let seen = json["headers"] as! [String: String]
        #expect(json["path"] as? String == "/headers?x=1")
        #expect(seen["authorization"] == nil, "the Setpoint token must not reach the app")
        for hop in ["x-hop", "keep-alive", "te", "proxy-authorization"] { #expect(seen[hop] == nil, "\(hop) was forwarded") }
        #expect(seen["x-custom"] == "kept")
        #expect(seen["x-forwarded-for"] == "10.0.0.1, 127.0.0.1")
        #expect(seen["x-forwarded-proto"] == "http" && seen["x-forwarded-host"] == "proxy.test")
        #expect(seen["x-forwarded-prefix"] == "/proxy/services/main/h")
        #expect(seen["host"] == "proxy.test")
        // auth: false leaves the app's own Authorization alone; strip_prefix: false keeps the path.
        let open = try await h.request("GET", "/proxy/services/main/open/headers", headers: [("Authorization", "Bearer app-key")])
        #expect(open.body.contains(#""authorization": "Bearer app-key""#) && open.body.contains(#""path": "/proxy/services/main/open/headers""#))

        // Bodies stream both ways, with a length or chunked.
        let payload = Data(repeating: UInt8(ascii: "a"), count: 1000)
        let echoed = try await h.request("POST", "/proxy/services/main/body/echo", body: payload)
        #expect(echoed.status == 200 && echoed.body.count == 1000)
        let chunked = try await h.request("POST", "/proxy/services/main/body/echo", body: payload, chunked: true)
        #expect(chunked.status == 200 && chunked.body.count == 1000)
        let times = TimeLog()
        let streamed = try await RawHTTP.request(port: h.port, method: "GET", path: "/proxy/services/main/body/stream?n=3&ms=200") { times.note($0) }
        #expect(streamed.body == "part 0\npart 1\npart 2\n" && times.spread >= 0.3)

        // The body limit, by length and while streaming.
        let big = Data(repeating: 1, count: 2000)
        #expect(try await h.request("POST", "/proxy/services/main/body/echo", body: big).status == 413)
        #expect(try await h.request("POST", "/proxy/services/main/body/echo", body: big, chunked: true).status == 413)

        // 504 when the replica is silent past the read timeout; 502 when it is unreachable.
        let slow = try await h.request("GET", "/proxy/services/main/body/delay?ms=3000")
        #expect(slow.status == 504 && slow.body.contains("Timed out requesting upstream"))
        h.route("dead", endpoints: ["unix:" + h.dir.appendingPathComponent("none.sock").path])
        let dead = try await h.request("POST", "/proxy/services/main/dead/echo", body: Data("x".utf8))
        #expect(dead.status == 502 && dead.body.contains("could not connect"))
        // The token is checked first: without access, an unknown service and a private one look
        // the same (status and body); a member hears that it does not exist.
        for headers in [[], [("Authorization", "Bearer other")]] {
            let missing = try await h.request("GET", "/proxy/services/main/missing/", headers: headers)
            let existing = try await h.request("GET", "/proxy/services/main/h/", headers: headers)
            #expect(missing.status == existing.status && missing.body == existing.body && [401, 403].contains(missing.status))
        }
        #expect(try await h.request("GET", "/proxy/services/main/missing/", headers: [("Authorization", "Bearer good")]).status == 404)
        #expect(try await h.request("GET", "/proxy/services/main/h/name").status == 401)
        #expect(try await h.request("GET", "/proxy/services/main/h/name", headers: [("Authorization", "Bearer other")]).status == 403)
        let redirect = try await h.request("GET", "/proxy/services/main/h?a=b")
        #expect(redirect.status == 308 && redirect.header("Location") == "/proxy/services/main/h/?a=b")
    }

    @Test func idempotentRequestsThatNeverReachedAReplicaAreRetried() async throws {
        let h = try await ProxyHarness()
        defer { h.stop() }
        let alive = try await h.app("alive")
        let gone = "unix:" + h.dir.appendingPathComponent("gone.sock").path
        h.route("mixed", endpoints: [gone, alive])
        for _ in 0..<20 {
            let r = try await h.request("GET", "/proxy/services/main/mixed/name")
            #expect(r.status == 200 && r.body == "alive")
        }
    }

    @Test func refusedConnectsAreRetriedForAnyRequestUntilAReplicaAccepts() async throws {
        let h = try await ProxyHarness { $0.connectTimeout = .seconds(3) }
        defer { h.stop() }
        let alive = try await h.app("alive")
        let gone = "unix:" + h.dir.appendingPathComponent("gone.sock").path
        h.route("mixed", endpoints: [gone, alive])
        // A POST never reached the refusing replica either: it goes to the other one.
        for _ in 0..<10 {
            let r = try await h.request("POST", "/proxy/services/main/mixed/echo", body: Data("hello".utf8))
            #expect(r.status == 200, "\(r.status) \(r.body)")
        }
        // The only replica refuses for a moment (a full listen backlog, a restart): the request
        // waits with a short backoff instead of failing at once.
        let late = h.dir.appendingPathComponent("late.sock").path
        h.route("late", endpoints: ["unix:" + late])
        let port = h.port
        let pending = Task { try await RawHTTP.request(port: port, method: "GET", path: "/proxy/services/main/late/name") }
        try await Task.sleep(for: .milliseconds(300))
        _ = try await h.app("late")
        let r = try await pending.value
        #expect(r.status == 200 && r.body == "late", "\(r.status) \(r.body)")
        // Refused for longer than the connect timeout: 502.
        h.route("never", endpoints: [gone])
        let never = try await h.request("GET", "/proxy/services/main/never/name")
        #expect(never.status == 502 && never.body.contains("could not connect to any replica"))
    }

    @Test func aDrainingReplicaIsPendingUntilItsRequestsFinish() async throws {
        let h = try await ProxyHarness()
        defer { h.stop() }
        let app = try await h.app("d")
        h.route("d", endpoints: [app])
        let address = app
        #expect(h.table.pending(address: address) == 1, "in rotation")
        let port = h.port
        let slow = Task { try await RawHTTP.request(port: port, method: "GET", path: "/proxy/services/main/d/delay?ms=600") }
        try await waitFor(timeout: 5) { h.table.pending(address: address) == 2 }
        h.route("d", endpoints: [])   // out of rotation
        #expect(h.table.pending(address: address) == 1, "one request still in flight")
        #expect(try await slow.value.status == 200)
        try await waitFor(timeout: 5) { h.table.pending(address: address) == 0 }
    }
}

/// When stream chunks arrived.
final class TimeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var times: [Date] = []
    func note(_: String) { lock.lock(); times.append(Date()); lock.unlock() }
    var spread: TimeInterval {
        lock.lock(); defer { lock.unlock() }
        guard let first = times.first, let last = times.last else { return 0 }
        return last.timeIntervalSince(first)
    }
}


/// Slow, silent and too many clients (the slow-header attack, idle keep-alive connections).
@Suite(.timeLimit(.minutes(1))) struct ProxyConnectionLimitTests {
    /// True when the server closed `raw` within `seconds` (a read returns end of stream).
    /// (Read on a thread of its own: a blocking read must not hold a cooperative thread.)
    static func closed(_ raw: RawHTTP, within seconds: TimeInterval) async -> Bool {
        await onThread {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline { if !raw.fill() { return true } }
            return false
        }
    }

    static func head(_ raw: RawHTTP) async -> (Int, [(String, String)])? {
        await onThread { raw.readHead().map { ($0.0, $0.1) } }
    }

    @Test func silentSlowAndIdleConnectionsAreClosed() async throws {
        let h = try await ProxyHarness { $0.headerTimeout = .milliseconds(300); $0.idleTimeout = .milliseconds(600) }
        defer { h.stop() }
        // Silent: nothing sent at all.
        let silent = try RawHTTP(port: h.port, timeout: 5)
        // Slow: a head that never ends.
        let slow = try RawHTTP(port: h.port, timeout: 5)
        slow.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        let silentClosed = await Self.closed(silent, within: 5)
        let slowClosed = await Self.closed(slow, within: 5)
        #expect(silentClosed && slowClosed)
        // Idle after a request: served, kept alive, then closed once idle.
        // The idle clock starts once the response is written, which is after the request was
        // sent: measured from the send, the close cannot come before the idle timeout however
        // late this test reads (reading after the body would race the server's timer).
        let idle = try RawHTTP(port: h.port, timeout: 5)
        let sent = Date()
        idle.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try #require(await Self.head(idle))
        #expect(head.0 == 200)
        _ = await onThread { idle.readBody(head.1, method: "GET", status: 200) }
        #expect(await Self.closed(idle, within: 5))
        #expect(Date().timeIntervalSince(sent) >= 0.58, "kept open for the idle timeout, not the header one")
    }

    @Test func connectionsPastTheLimitGet503AndAreClosed() async throws {
        let h = try await ProxyHarness { $0.maxConnections = 2 }
        defer { h.stop() }
        let a = try RawHTTP(port: h.port, timeout: 5)
        let b = try RawHTTP(port: h.port, timeout: 5)
        a.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        b.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let aHead = await Self.head(a)
        let bHead = await Self.head(b)
        #expect(aHead?.0 == 200 && bHead?.0 == 200)
        let c = try RawHTTP(port: h.port, timeout: 5)
        c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let refused = try #require(await Self.head(c))
        #expect(refused.0 == 503 && refused.1.contains { $0.0 == "Retry-After" })
        #expect(await Self.closed(c, within: 5))
        // One leaves: a new client is served again.
        a.hangUp()
        try await waitFor(timeout: 5) {
            let d = try RawHTTP(port: h.port, timeout: 5)
            d.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            return await Self.head(d)?.0 == 200
        }
    }
}
