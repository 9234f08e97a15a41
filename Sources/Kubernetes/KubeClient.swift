import AsyncHTTPClient
import Foundation
import Primitives
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import Synchronization

/// An error answered by the API server, decoded from its `Status` body.
public struct KubeAPIError: Error, CustomStringConvertible, Sendable {
    public var code: Int
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Expired`, `Forbidden`, `Invalid`, …
    public var reason: String?
    public var message: String
    public var verb: String
    public var path: String
    public var retryAfter: Int?

    public var description: String {
        "Kubernetes API \(verb) \(path): \(code)\(reason.map { " \($0)" } ?? ""): \(message)"
    }

    public var isNotFound: Bool { code == 404 }
    public var isConflict: Bool { code == 409 && reason != "AlreadyExists" }
    public var isAlreadyExists: Bool { code == 409 && reason == "AlreadyExists" }
    public var isGone: Bool { code == 410 || reason == "Expired" || reason == "Gone" }
    /// A watch from a version the server has not reached (`Too large resource version`,
    /// cause `ResourceVersionTooLarge`): its history is not the one the version came from.
    public var isResourceVersionTooLarge: Bool { message.contains("Too large resource version") || message.contains("ResourceVersionTooLarge") }
    /// Worth retrying: throttled, server errors, timeouts.
    public var isTransient: Bool { code == 429 || code >= 500 || code == 0 }
}

/// Client-side request rate limit: client-go's QPS and burst, on the one `TokenBucket`.
public final class RequestLimiter: Sendable {
    private let bucket: Mutex<TokenBucket>
    private let start: ContinuousClock.Instant
    private let qps: Double

    public init(qps: Double, burst: Int, start: ContinuousClock.Instant = .now) {
        self.qps = qps
        self.start = start
        bucket = Mutex(TokenBucket(rate: qps, capacity: Double(burst), now: 0))
    }

    /// Waits for a token (reserves it at once, so waiters are served in order).
    public func acquire() async throws {
        guard qps > 0 else { return }
        let wait = reserve(at: ContinuousClock.now)
        if wait > 0 { try await Task.sleep(for: .seconds(wait)) }
    }

    /// Takes a token at `now` and returns how many seconds the caller must wait for it.
    public func reserve(at now: ContinuousClock.Instant) -> Double {
        guard qps > 0 else { return 0 }
        let elapsed = now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return bucket.withLock { $0.reserve(now: seconds) }
    }
}

/// Counts of requests sent, by verb (`list`, `watch`, `get`, `create`, `patch`, `delete`,
/// `proxy`, `log`), for the request-efficiency figures and tests.
public final class RequestCounter: Sendable {
    private let counts = Mutex([String: Int]())
    public init() {}
    func add(_ verb: String) { counts.withLock { $0[verb, default: 0] += 1 } }
    public var snapshot: [String: Int] { counts.withLock { $0 } }
    public var total: Int { snapshot.values.reduce(0, +) }
}

/// A thin client of the Kubernetes API server: JSON over HTTP/1.1 (async-http-client), with the
/// connection's TLS and credentials, a QPS/burst limit, timeouts and `Status` errors.
public final class KubeClient: Sendable {
    public struct Options: Sendable {
        public var qps: Double = 20
        public var burst: Int = 40
        /// Timeout of a single non-watch request.
        public var requestTimeout: TimeAmount = .seconds(30)
        /// Server-side timeout of a watch (client-go picks 5–10 min); the reflector re-watches.
        public var watchTimeoutSeconds: Int = 300
        public var userAgent = "setpoint/1"
        public init() {}
    }

    public let connection: ClusterConnection
    public let options: Options
    public let counter = RequestCounter()
    let http: HTTPClient
    private let limiter: RequestLimiter
    private let credentials: CredentialSource
    private let logger: Logger

    public init(connection: ClusterConnection, options: Options = Options(), logger: Logger = Logger(label: "setpoint.kubernetes")) throws {
        self.connection = connection
        self.options = options
        self.logger = logger
        limiter = RequestLimiter(qps: options.qps, burst: options.burst)
        credentials = CredentialSource(connection.credentials)
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(10), read: nil)
        config.httpVersion = .http1Only
        config.decompression = .disabled
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        // A refused connection fails the request at once: by default the pool would keep
        // reconnecting until the connect timeout (10 s per attempt while the API server is
        // down), hiding the callers' own backoff.
        config.connectionPool.retryConnectionEstablishment = false
        if connection.server.scheme == "https" {
            var tls = TLSConfiguration.makeClientConfiguration()
            func load<T>(_ what: String, _ body: () throws -> T) throws -> T {
                do { return try body() } catch {
                    throw KubeConfigError("context `\(connection.context)`: cannot load the \(what) (PEM expected): \(error)")
                }
            }
            if let ca = connection.certificateAuthorityPEM {
                let roots = try load("certificate authority") { try NIOSSLCertificate.fromPEMBytes(ca) }
                if roots.isEmpty { throw KubeConfigError("context `\(connection.context)`: the certificate authority holds no PEM certificate") }
                tls.trustRoots = .certificates(roots)
            }
            if connection.insecureSkipTLSVerify { tls.certificateVerification = .none }
            if case .clientCertificate(let cert, let key) = connection.credentials {
                tls.certificateChain = try load("client certificate") { try NIOSSLCertificate.fromPEMBytes(cert).map { .certificate($0) } }
                tls.privateKey = .privateKey(try load("client key") { try NIOSSLPrivateKey(bytes: key, format: .pem) })
            }
            config.tlsConfiguration = tls
        }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    deinit {
        // Never block here: the last reference may go on an event loop.
        http.shutdown { _ in }
    }

    public func shutdown() async { try? await http.shutdown() }

    // MARK: paths

    public static func path<T: KubeObject>(_ type: T.Type, namespace: String?, name: String? = nil, subresource: String? = nil) -> String {
        let group = T.apiVersion.contains("/") ? "/apis/\(T.apiVersion)" : "/api/\(T.apiVersion)"
        var p = group
        if T.namespaced, let namespace { p += "/namespaces/\(namespace)" }
        p += "/\(T.resource)"
        if let name { p += "/\(name)" }
        if let subresource { p += "/\(subresource)" }
        return p
    }

    static func query(_ items: [(String, String?)]) -> String {
        let parts = items.compactMap { k, v in v.map { "\(k)=\(Self.escape($0))" } }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }

    static func escape(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    public var baseURL: String {
        var s = connection.server.absoluteString
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }

    // MARK: requests

    /// Sends one request and returns status and body; API errors are thrown as `KubeAPIError`.
    func send(_ method: HTTPMethod, _ pathAndQuery: String, verb: String, body: Data? = nil,
              contentType: String = "application/json", timeout: TimeAmount? = nil) async throws -> Data {
        let (status, data) = try await sendRaw(method, pathAndQuery, verb: verb, body: body, contentType: contentType, timeout: timeout)
        guard (200..<300).contains(status) else { throw Self.apiError(status: status, body: data, verb: method.rawValue, path: pathAndQuery) }
        return data
    }

    func sendRaw(_ method: HTTPMethod, _ pathAndQuery: String, verb: String, body: Data? = nil,
                 contentType: String = "application/json", timeout: TimeAmount? = nil) async throws -> (Int, Data) {
        var attempt = 0
        while true {
            attempt += 1
            var request = try await makeRequest(method, pathAndQuery, verb: verb)
            if let body {
                request.headers.replaceOrAdd(name: "Content-Type", value: contentType)
                request.body = .bytes(ByteBuffer(data: body))
            }
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: timeout ?? options.requestTimeout)
            } catch {
                throw KubeAPIError(code: 0, reason: "Unreachable", message: "\(error)", verb: method.rawValue, path: pathAndQuery)
            }
            let data = Data(buffer: try await response.body.collect(upTo: 64 << 20))
            let status = Int(response.status.code)
            if status == 401, attempt == 1, await credentials.invalidate() { continue }
            if status == 429, attempt < 4 {
                // Throttled by the server (APF): wait as told, then try again.
                let after = response.headers.first(name: "Retry-After").flatMap(Int.init) ?? 1
                try await Task.sleep(for: .seconds(min(after, 10)))
                continue
            }
            return (status, data)
        }
    }

    func makeRequest(_ method: HTTPMethod, _ pathAndQuery: String, verb: String, accept: String = "application/json") async throws -> HTTPClientRequest {
        try await limiter.acquire()
        counter.add(verb)
        var request = HTTPClientRequest(url: baseURL + pathAndQuery)
        request.method = method
        request.headers.add(name: "Accept", value: accept)
        request.headers.add(name: "User-Agent", value: options.userAgent)
        if let token = try await credentials.token() {
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        return request
    }

    static func apiError(status: Int, body: Data, verb: String, path: String) -> KubeAPIError {
        if let s = try? JSONDecoder().decode(Status.self, from: body), s.kind == "Status" || s.message != nil {
            return KubeAPIError(code: s.code ?? status, reason: s.reason, message: s.message ?? "(no message)", verb: verb, path: path,
                                retryAfter: s.details?.retryAfterSeconds)
        }
        let text = String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return KubeAPIError(code: status, reason: nil, message: text.isEmpty ? "HTTP \(status)" : text, verb: verb, path: path)
    }

    static let decoder = JSONDecoder()
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    // MARK: verbs

    public func get<T: KubeObject>(_ type: T.Type, namespace: String? = nil, name: String) async throws -> T? {
        do {
            return try Self.decoder.decode(T.self, from: try await send(.GET, Self.path(T.self, namespace: namespace, name: name), verb: "get"))
        } catch let e as KubeAPIError where e.isNotFound { return nil }
    }

    public func list<T: KubeObject>(_ type: T.Type, namespace: String? = nil, labelSelector: String? = nil,
                                    fieldSelector: String? = nil) async throws -> ObjectList<T> {
        // Pages of 500, as kubectl and client-go do.
        var items: [T] = []
        var next: String?
        var meta = ListMeta()
        repeat {
            let q = Self.query([("labelSelector", labelSelector), ("fieldSelector", fieldSelector), ("limit", "500"), ("continue", next)])
            let page = try Self.decoder.decode(ObjectList<T>.self, from: try await send(.GET, Self.path(T.self, namespace: namespace) + q, verb: "list"))
            items += page.items
            meta = page.metadata
            next = page.metadata.continue.flatMap { $0.isEmpty ? nil : $0 }
        } while next != nil
        return ObjectList(apiVersion: T.apiVersion, kind: T.kind + "List", metadata: meta, items: items)
    }

    /// The collection's current resourceVersion, for the price of a list of at most one item.
    public func currentVersion<T: KubeObject>(_ type: T.Type, namespace: String? = nil, labelSelector: String? = nil) async throws -> String? {
        let q = Self.query([("labelSelector", labelSelector), ("limit", "1")])
        return try Self.decoder.decode(ObjectList<T>.self, from: try await send(.GET, Self.path(T.self, namespace: namespace) + q, verb: "list"))
            .metadata.resourceVersion
    }

    public func create<T: KubeObject>(_ object: T, namespace: String? = nil) async throws -> T {
        let body = try Self.encoder.encode(object)
        return try Self.decoder.decode(T.self, from: try await send(.POST, Self.path(T.self, namespace: namespace), verb: "create", body: body))
    }

    /// Replaces the object (PUT). With `metadata.resourceVersion` set, the write only succeeds
    /// if nobody wrote since that version (`409 Conflict` otherwise).
    public func replace<T: KubeObject>(_ object: T, namespace: String? = nil) async throws -> T {
        guard let name = object.metadata.name else { throw KubeAPIError(code: 422, reason: "Invalid", message: "metadata.name is required", verb: "PUT", path: T.resource) }
        let data = try await send(.PUT, Self.path(T.self, namespace: namespace, name: name), verb: "update", body: try Self.encoder.encode(object))
        return try Self.decoder.decode(T.self, from: data)
    }

    /// A JSON merge patch (RFC 7386), optionally of a subresource (`status`).
    public func mergePatch<T: KubeObject>(_ type: T.Type, namespace: String? = nil, name: String, patch: Data,
                                          subresource: String? = nil) async throws -> T {
        let data = try await send(.PATCH, Self.path(T.self, namespace: namespace, name: name, subresource: subresource), verb: "patch",
                                  body: patch, contentType: "application/merge-patch+json")
        return try Self.decoder.decode(T.self, from: data)
    }

    /// Server-side apply: the fields this manager owns are set to `object`'s.
    public func apply<T: KubeObject>(_ object: T, namespace: String? = nil, fieldManager: String = "setpoint", force: Bool = true) async throws -> T {
        guard let name = object.metadata.name else { throw KubeAPIError(code: 422, reason: "Invalid", message: "metadata.name is required", verb: "PATCH", path: T.resource) }
        let q = Self.query([("fieldManager", fieldManager), ("force", force ? "true" : nil)])
        let data = try await send(.PATCH, Self.path(T.self, namespace: namespace, name: name) + q, verb: "patch",
                                  body: try Self.encoder.encode(object), contentType: "application/apply-patch+yaml")
        return try Self.decoder.decode(T.self, from: data)
    }

    /// Deletes; a missing object is not an error. Returns whether it existed.
    @discardableResult
    public func delete<T: KubeObject>(_ type: T.Type, namespace: String? = nil, name: String, gracePeriodSeconds: Int? = nil,
                                      preconditionUID: String? = nil) async throws -> Bool {
        var options: [String: Any] = ["kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"]
        if let g = gracePeriodSeconds { options["gracePeriodSeconds"] = g }
        if let uid = preconditionUID { options["preconditions"] = ["uid": uid] }
        let body = try JSONSerialization.data(withJSONObject: options, options: [.sortedKeys])
        do {
            _ = try await send(.DELETE, Self.path(T.self, namespace: namespace, name: name), verb: "delete", body: body)
            return true
        } catch let e as KubeAPIError where e.isNotFound { return false }
    }

    /// One watch request: events until the server ends it (timeout) or the connection drops.
    /// A `410 Gone` arrives as an `ERROR` event (or the HTTP status) and is thrown as a
    /// `KubeAPIError` with `isGone`.
    public func watch<T: KubeObject>(_ type: T.Type, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil,
                                     resourceVersion: String?, timeoutSeconds: Int? = nil) -> AsyncThrowingStream<WatchEvent<T>, Error> {
        let q = Self.query([("watch", "true"), ("labelSelector", labelSelector), ("fieldSelector", fieldSelector),
                            ("resourceVersion", resourceVersion), ("allowWatchBookmarks", "true"),
                            ("timeoutSeconds", String(timeoutSeconds ?? options.watchTimeoutSeconds))])
        let path = Self.path(T.self, namespace: namespace) + q
        return streamLines(path, verb: "watch", timeout: .seconds(Int64(timeoutSeconds ?? options.watchTimeoutSeconds) + 30)) { line in
            let event = try Self.decodeEvent(T.self, line)
            if event.type == .error {
                let s = event.status
                throw KubeAPIError(code: s?.code ?? 500, reason: s?.reason, message: s?.message ?? "watch error", verb: "GET", path: path)
            }
            return event
        }
    }

    /// A GET whose body is read line by line as it arrives (watches, logs), each line turned
    /// into an element by `transform`. A last line without a newline is kept only with
    /// `keepUnterminated` (a watch cut mid-event has no whole event there); with
    /// `missingIsEmpty`, a 404 is an empty stream (the log of a Pod that is gone).
    func streamLines<Element: Sendable>(_ path: String, verb: String, accept: String = "application/json", timeout: TimeAmount,
                                        keepUnterminated: Bool = false, missingIsEmpty: Bool = false,
                                        _ transform: @escaping @Sendable ([UInt8]) throws -> Element) -> AsyncThrowingStream<Element, Error> {
        // Read as the consumer asks, in its task (no task of its own): cancelling the consumer
        // cancels the request.
        let reader = StreamedLines(keepUnterminated: keepUnterminated, missingIsEmpty: missingIsEmpty, transform: transform) {
            let request = try await self.makeRequest(.GET, path, verb: verb, accept: accept)
            let response = try await self.http.execute(request, timeout: timeout)
            guard response.status == .ok else {
                let body = Data(buffer: try await response.body.collect(upTo: 1 << 20))
                throw Self.apiError(status: Int(response.status.code), body: body, verb: "GET", path: path)
            }
            return response.body
        }
        return AsyncThrowingStream { try await reader.next() }
    }

    static func decodeEvent<T: KubeObject>(_ type: T.Type, _ line: [UInt8]) throws -> WatchEvent<T> {
        let data = Data(line)
        let envelope = try decoder.decode(Envelope.self, from: data)
        guard let kind = WatchEvent<T>.Kind(rawValue: envelope.type) else {
            throw KubeAPIError(code: 500, reason: "BadWatchEvent", message: "unknown watch event type \(envelope.type)", verb: "GET", path: T.resource)
        }
        switch kind {
        case .error:
            return WatchEvent(type: .error, object: nil, status: try? decoder.decode(Typed<Status>.self, from: data).object)
        case .bookmark:
            return WatchEvent(type: .bookmark, object: nil, resourceVersion: try decoder.decode(Typed<BookmarkObject>.self, from: data).object.metadata.resourceVersion)
        default:
            let object = try decoder.decode(Typed<T>.self, from: data).object
            return WatchEvent(type: kind, object: object, resourceVersion: object.metadata.resourceVersion)
        }
    }

    /// The container's log, line by line, each turned into an element by `line`; with
    /// `follow`, until the container ends. A Pod that is gone has no (more) log: the stream ends.
    public func logs<Line: Sendable>(namespace: String, pod: String, container: String? = nil, follow: Bool, timestamps: Bool = true,
                                     line: @escaping @Sendable (String) -> Line) -> AsyncThrowingStream<Line, Error> {
        let q = Self.query([("container", container), ("follow", follow ? "true" : nil), ("timestamps", timestamps ? "true" : nil)])
        let path = Self.path(Pod.self, namespace: namespace, name: pod, subresource: "log") + q
        return streamLines(path, verb: "log", accept: "*/*", timeout: follow ? .hours(24 * 365) : options.requestTimeout,
                           keepUnterminated: true, missingIsEmpty: true) { line(String(decoding: $0, as: UTF8.self)) }
    }

    /// A request through the API server's pod proxy (`pods/<name>:<port>/proxy/<path>`), with
    /// this client's credentials; the caller sets method, headers and body and executes it.
    public func podProxyRequest(namespace: String, pod: String, port: Int, pathAndQuery: String) async throws -> HTTPClientRequest {
        let path = Self.path(Pod.self, namespace: namespace, name: "\(pod):\(port)", subresource: "proxy")
        let suffix = pathAndQuery.hasPrefix("/") ? pathAndQuery : "/" + pathAndQuery
        return try await makeRequest(.GET, path + suffix, verb: "proxy", accept: "*/*")
    }
}

private struct Envelope: Decodable { var type: String }
private struct Typed<O: Decodable>: Decodable { var object: O }
private struct BookmarkObject: Decodable { var metadata: ListMeta }

/// Splits a byte stream into `\n`-terminated lines.
/// The lines of one streamed response, turned into elements one `next()` at a time.
actor StreamedLines<Element: Sendable> {
    private let open: @Sendable () async throws -> HTTPClientResponse.Body
    private let transform: @Sendable ([UInt8]) throws -> Element
    private let keepUnterminated: Bool
    private let missingIsEmpty: Bool
    private var body: HTTPClientResponse.Body.AsyncIterator?
    private var lines = LineSplitter()
    private var ready: [Element] = []
    private var finished = false

    init(keepUnterminated: Bool, missingIsEmpty: Bool, transform: @escaping @Sendable ([UInt8]) throws -> Element,
         open: @escaping @Sendable () async throws -> HTTPClientResponse.Body) {
        self.open = open
        self.transform = transform
        self.keepUnterminated = keepUnterminated
        self.missingIsEmpty = missingIsEmpty
    }

    func next() async throws -> Element? {
        while true {
            if !ready.isEmpty { return ready.removeFirst() }
            if finished { return nil }
            var iterator: HTTPClientResponse.Body.AsyncIterator
            if let body {
                iterator = body
            } else {
                do {
                    iterator = try await open().makeAsyncIterator()
                } catch let e as KubeAPIError where missingIsEmpty && e.isNotFound {
                    finished = true
                    continue
                }
            }
            let chunk = try await iterator.next(isolation: self)
            body = iterator
            guard let chunk else {
                finished = true
                if keepUnterminated, let rest = lines.rest { ready.append(try transform(rest)) }
                continue
            }
            for line in lines.feed(chunk) { ready.append(try transform(line)) }
        }
    }
}

struct LineSplitter {
    private var pending: [UInt8] = []

    mutating func feed(_ buffer: ByteBuffer) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        buffer.withUnsafeReadableBytes { bytes in
            var start = 0
            for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") {
                pending.append(contentsOf: bytes[start..<i])
                if !pending.isEmpty { lines.append(pending) }
                pending = []
                start = i + 1
            }
            pending.append(contentsOf: bytes[start...])
        }
        return lines
    }

    var rest: [UInt8]? { pending.isEmpty ? nil : pending }
}

/// Bearer tokens: static, read from a file (re-read when refused), or from an exec credential
/// plugin (cached until it expires or is refused).
actor CredentialSource {
    private let credentials: ClusterConnection.Credentials
    private var cached: (token: String, expires: Date?)?

    init(_ credentials: ClusterConnection.Credentials) { self.credentials = credentials }

    func token() throws -> String? {
        switch credentials {
        case .none, .clientCertificate: return nil
        case .token(let t): return t
        case .tokenFile(let path):
            if let cached { return cached.token }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubeConfigError("cannot read the token file \(path)")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            cached = (token, nil)
            return token
        case .exec(let exec):
            if let cached, cached.expires.map({ $0.timeIntervalSinceNow > 10 }) ?? true { return cached.token }
            let (token, expires) = try ExecPlugin.run(exec)
            cached = (token, expires)
            return token
        }
    }

    /// Forgets a cached token after a 401; true when asking again may help.
    func invalidate() -> Bool {
        switch credentials {
        case .tokenFile, .exec:
            cached = nil
            return true
        default: return false
        }
    }
}

/// Runs a client.authentication.k8s.io credential plugin and reads its `ExecCredential`.
enum ExecPlugin {
    static func run(_ exec: ExecConfig) throws -> (String, Date?) {
        let process = Process()
        let command = exec.command.contains("/") && !exec.command.hasPrefix("/") ? exec.baseDirectory + "/" + exec.command : exec.command
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [command] + exec.args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in exec.env { env[k] = v }
        env["KUBERNETES_EXEC_INFO"] = #"{"apiVersion":"\#(exec.apiVersion)","kind":"ExecCredential","spec":{"interactive":false}}"#
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch {
            throw KubeConfigError("exec credential plugin `\(exec.command)` could not start: \(error.localizedDescription)")
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errors.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw KubeConfigError("exec credential plugin `\(exec.command)` exited with status \(process.terminationStatus)\(text.isEmpty ? "" : ": \(text)")")
        }
        struct Credential: Decodable {
            struct S: Decodable { var token: String?; var expirationTimestamp: String? }
            var kind: String?
            var status: S?
        }
        guard let credential = try? JSONDecoder().decode(Credential.self, from: data), let token = credential.status?.token else {
            throw KubeConfigError("exec credential plugin `\(exec.command)` did not print an ExecCredential with status.token")
        }
        let expires = credential.status?.expirationTimestamp.flatMap { ISO8601DateFormatter().date(from: $0) }
        return (token, expires)
    }
}
