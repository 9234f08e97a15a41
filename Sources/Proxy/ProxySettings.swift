import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The proxy's limits and timeouts (`setpoint server` flags; docs/server.md lists them).
public struct ProxySettings: Sendable {
    /// Connecting to a replica (502 past it).
    public var connectTimeout: TimeAmount = .seconds(5)
    /// Longest silence from a replica once the request is sent (504 past it before the
    /// response starts), dstack's 60 s.
    public var readTimeout: TimeAmount = .seconds(60)
    /// Largest request body (413 past it), dstack's gateway default of 64 MiB.
    public var maxBodySize: Int = 64 << 20
    /// How long a request waits for a first ready replica (503 with `Retry-After` past it).
    public var holdTimeout: TimeAmount = .seconds(300)
    /// On shutdown: how long requests in flight may take to finish once the proxy stopped
    /// accepting (Kubernetes' default grace period); then the server exits regardless.
    public var drainTimeout: TimeAmount = .seconds(30)
    /// How many requests may wait per service (503 with `Retry-After` past it).
    public var holdQueue: Int = 1000
    /// Idle keep-alive connections kept per replica and event loop.
    public var maxIdlePerEndpoint: Int = 64
    /// A request this idempotent is retried on another replica when it could not be sent; its
    /// body is kept for that only up to this size.
    public var retryBodyLimit: Int = 1 << 20
    /// A new connection's first request head must have arrived whole within this (slow or
    /// silent clients are closed: the slow-header attack).
    public var headerTimeout: TimeAmount = .seconds(30)
    /// A keep-alive connection with no request for this long is closed (nginx's 75 s); the
    /// next request's head must also arrive whole within it.
    public var idleTimeout: TimeAmount = .seconds(75)
    /// Client connections open at once; past it a new one gets a 503 and is closed.
    public var maxConnections: Int = 10_000

    public init() {}
}

/// Whether a token may reach a project's services.
public enum Access: Sendable { case allowed, unauthenticated, forbidden }

/// What every proxy connection shares.
final class ProxyShared: Sendable {
    /// Client connections open now (`maxConnections`).
    let connections = Atomic<Int>(0)
    let table: RouteTable
    let settings: ProxySettings
    let authorize: @Sendable (_ authorization: String?, _ project: String) -> Access
    let metrics: @Sendable () -> String
    /// Where requests that are not for `/proxy/…` or `/metrics` go: the API server.
    let api: UpstreamAddress?
    let logger: Logger
    private let pools: [ObjectIdentifier: ConnectionPool]

    /// Connections arrive over TLS (`X-Forwarded-Proto: https`).
    let secure: Bool

    init(table: RouteTable, settings: ProxySettings, group: EventLoopGroup, api: UpstreamAddress?, logger: Logger,
         authorize: @escaping @Sendable (String?, String) -> Access, metrics: @escaping @Sendable () -> String, secure: Bool = false) {
        self.secure = secure
        self.table = table
        self.settings = settings
        self.api = api
        self.logger = logger
        self.authorize = authorize
        self.metrics = metrics
        var pools: [ObjectIdentifier: ConnectionPool] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = ConnectionPool(eventLoop: loop, connectTimeout: settings.connectTimeout,
                                                           maxIdle: settings.maxIdlePerEndpoint)
        }
        self.pools = pools
    }

    func pool(_ loop: EventLoop) -> ConnectionPool {
        if let p = pools[ObjectIdentifier(loop)] { return p }
        preconditionFailure("proxy connection on an event loop outside the proxy's group")
    }
}

extension ConnectionPool: @unchecked Sendable {}
extension UpstreamConnection: @unchecked Sendable {}

/// HTTP header handling shared by the forwarding paths (RFC 9110 §7.6.1).
enum Headers {
    /// `headers` minus hop-by-hop fields and the fields the `Connection` header names.
    static func endToEnd(_ headers: HTTPHeaders, keeping: Set<String> = []) -> HTTPHeaders {
        // Usually nothing is removed: keep the same storage and drop only what must go.
        var named: [Substring] = []
        var drop: [String] = []
        for (name, value) in headers where isHopByHop(name) {
            if equalsIgnoringCase(name, "connection") {
                named += value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces)[...] }
            }
            if !keeping.contains(name.lowercased()) { drop.append(name) }
        }
        if !named.isEmpty {
            for (name, _) in headers where named.contains(where: { equalsIgnoringCase(name, $0) }) && !keeping.contains(name.lowercased()) {
                drop.append(name)
            }
        }
        guard !drop.isEmpty else { return headers }
        var out = headers
        for name in drop { out.remove(name: name) }
        return out
    }

    /// ASCII case-insensitive equality, without allocating.
    static func equalsIgnoringCase<S: StringProtocol>(_ a: String, _ lower: S) -> Bool {
        let x = a.utf8, y = lower.utf8
        guard x.count == y.count else { return false }
        return zip(x, y).allSatisfy { p in p.0 == p.1 || (p.0 | 0x20 == p.1 | 0x20 && (p.0 | 0x20) >= 97 && (p.0 | 0x20) <= 122) }
    }

    /// RFC 9110 §7.6.1's connection-specific fields, plus the proxy authentication ones.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return equalsIgnoringCase(name, "te")
        case 7: return equalsIgnoringCase(name, "upgrade") || equalsIgnoringCase(name, "trailer")
        case 10: return equalsIgnoringCase(name, "connection") || equalsIgnoringCase(name, "keep-alive")
        case 16: return equalsIgnoringCase(name, "proxy-connection")
        case 17: return equalsIgnoringCase(name, "transfer-encoding")
        case 18: return equalsIgnoringCase(name, "proxy-authenticate")
        case 19: return equalsIgnoringCase(name, "proxy-authorization")
        default: return false
        }
    }

    /// The request's headers as a replica gets them: end-to-end fields only, the Setpoint token
    /// removed, `X-Forwarded-For` appended to, `X-Forwarded-Proto`/`-Host` set unless a proxy
    /// in front set them, `X-Forwarded-Prefix` set to what `strip_prefix` removed.
    static func forwarded(_ head: HTTPRequestHead, clientIP: String, dropAuthorization: Bool, prefix: String?,
                          keeping: Set<String> = [], secure: Bool = false) -> HTTPHeaders {
        var headers = endToEnd(head.headers, keeping: keeping)
        if dropAuthorization { headers.remove(name: "authorization") }
        if head.headers.first(name: "transfer-encoding")?.lowercased().contains("chunked") == true {
            headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        }
        headers.remove(name: "expect")
        let forwardedFor = head.headers["x-forwarded-for"].joined(separator: ", ")
        headers.replaceOrAdd(name: "X-Forwarded-For", value: forwardedFor.isEmpty ? clientIP : forwardedFor + ", " + clientIP)
        if !headers.contains(name: "x-forwarded-proto") { headers.add(name: "X-Forwarded-Proto", value: secure ? "https" : "http") }
        if !headers.contains(name: "x-forwarded-host"), let host = head.headers.first(name: "host") {
            headers.add(name: "X-Forwarded-Host", value: host)
        }
        if let prefix { headers.replaceOrAdd(name: "X-Forwarded-Prefix", value: prefix) }
        return headers
    }

    static let idempotent: [HTTPMethod] = [.GET, .HEAD, .OPTIONS, .PUT, .DELETE, .TRACE]
}
