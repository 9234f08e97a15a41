import AsyncHTTPClient
import Foundation
import Model
import NIOCore
import NIOHTTP1
import SetpointConfiguration

/// The typed client of `/api/v1`, used by the CLI.
public struct APIClient: Sendable {
    public var baseURL: String
    public var token: String
    public var project: String

    public init(baseURL: String, token: String, project: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.project = project
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var status: Int
        public var body: API.ErrorBody?
        public var text: String
        /// The server could not be reached at all (no answer, refused).
        public var unreachable = false

        public init(status: Int, body: API.ErrorBody?, text: String, unreachable: Bool = false) {
            self.status = status
            self.body = body
            self.text = text
            self.unreachable = unreachable
        }

        public var description: String {
            if let body { return body.message }
            if unreachable { return text }
            return "the server answered \(status): \(text)"
        }
    }

    var projectPath: String { "/api/v1/projects/\(project.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? project)" }

    func request(_ method: HTTPMethod, _ path: String, body: Data? = nil) -> HTTPClientRequest {
        var r = HTTPClientRequest(url: baseURL + path)
        r.method = method
        r.headers.add(name: "Authorization", value: "Bearer \(token)")
        r.headers.add(name: "Accept", value: "application/json")
        if let body {
            r.headers.add(name: "Content-Type", value: "application/json")
            r.body = .bytes(ByteBuffer(bytes: body))
        }
        return r
    }

    /// The CLI's HTTP client: a refused connection fails at once (the shared client would keep
    /// reconnecting until its connect timeout), and a server that does not answer the connect
    /// within 5 s is reported as unreachable.
    static let http: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(5), read: nil)
        config.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    /// What a user reads when the server cannot be reached: the URL, the cause in words, and
    /// where the URL came from.
    func unreachable(_ error: Error) -> Failure {
        let text = "\(error)"
        let cause: String
        if text.contains("Connection refused") { cause = "connection refused" }
        else if text.contains("connectTimeout") || text.contains("Timed out") || text.contains("timeout") { cause = "no answer within 5 s" }
        else if text.contains("No such file") || text.contains("Name or service not known") || text.contains("nodename nor servname") { cause = "unknown host" }
        else { cause = text }
        return Failure(status: 0, body: nil,
                       text: "cannot reach the Setpoint server at \(baseURL): \(cause) — is it running? (SETPOINT_URL, \(ClientSettings.configPath))",
                       unreachable: true)
    }

    func call<T: Decodable>(_ method: HTTPMethod, _ path: String, body: Data? = nil, as type: T.Type) async throws -> T {
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request(method, path, body: body), timeout: .seconds(60))
        } catch {
            throw unreachable(error)
        }
        let data = Data((try await response.body.collect(upTo: 64 << 20)).readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else {
            let body = (try? API.decoder.decode([String: API.ErrorBody].self, from: data))?["error"]
            throw Failure(status: Int(response.status.code), body: body, text: String(decoding: data.prefix(500), as: UTF8.self))
        }
        return try API.decoder.decode(T.self, from: data)
    }

    public func plan(_ request: API.ApplyRequest) async throws -> API.Plan {
        try await call(.POST, projectPath + "/runs/plan", body: try API.encoder.encode(request), as: API.Plan.self)
    }

    public func apply(_ request: API.ApplyRequest) async throws -> API.Run {
        try await call(.POST, projectPath + "/runs/apply", body: try API.encoder.encode(request), as: API.Run.self)
    }

    public func runs() async throws -> [API.Run] { try await call(.GET, projectPath + "/runs", as: [API.Run].self) }
    public func run(_ name: String) async throws -> API.Run { try await call(.GET, projectPath + "/runs/\(name)", as: API.Run.self) }
    public func replicas(_ name: String) async throws -> [API.Replica] {
        try await call(.GET, projectPath + "/runs/\(name)/replicas", as: [API.Replica].self)
    }
    public func events(_ name: String) async throws -> [EventSpec] {
        try await call(.GET, projectPath + "/runs/\(name)/events", as: [EventSpec].self)
    }
    public func stop(_ name: String, abort: Bool) async throws -> API.Run {
        try await call(.POST, projectPath + "/runs/\(name)/stop", body: try API.encoder.encode(API.StopRequest(abort: abort)), as: API.Run.self)
    }
    public func delete(_ name: String) async throws -> API.Run {
        try await call(.DELETE, projectPath + "/runs/\(name)", as: API.Run.self)
    }
    public func offers() async throws -> [API.OfferInfo] { try await call(.GET, "/api/v1/offers", as: [API.OfferInfo].self) }
    public func createUser(_ request: API.UserRequest) async throws -> API.UserInfo {
        try await call(.POST, "/api/v1/users", body: try API.encoder.encode(request), as: API.UserInfo.self)
    }
    public func createProject(_ request: API.ProjectRequest) async throws -> API.ProjectInfo {
        try await call(.POST, "/api/v1/projects", body: try API.encoder.encode(request), as: API.ProjectInfo.self)
    }
    public func projects() async throws -> [API.ProjectInfo] { try await call(.GET, "/api/v1/projects", as: [API.ProjectInfo].self) }
    public func users() async throws -> [API.UserInfo] { try await call(.GET, "/api/v1/users", as: [API.UserInfo].self) }
    public func servers() async throws -> API.ServerList { try await call(.GET, "/api/v1/servers", as: API.ServerList.self) }

    /// An NDJSON stream (logs, watch), decoded line by line as the consumer asks (in its task:
    /// cancelling it cancels the request).
    func lines<T: Decodable & Sendable>(_ path: String, as type: T.Type) -> AsyncThrowingStream<T, Error> {
        let reader = NDJSONReader<T>(client: self, request: self.request(.GET, path))
        return AsyncThrowingStream { try await reader.next() }
    }

    public func logs(_ name: String, replica: Int?, follow: Bool) -> AsyncThrowingStream<API.LogLine, Error> {
        var path = projectPath + "/runs/\(name)/logs?follow=\(follow ? 1 : 0)"
        if let replica { path += "&replica=\(replica)" }
        return lines(path, as: API.LogLine.self)
    }

    // MARK: gateways

    public func planGateway(_ request: API.ApplyRequest) async throws -> API.GatewayPlan {
        try await call(.POST, projectPath + "/gateways/plan", body: try API.encoder.encode(request), as: API.GatewayPlan.self)
    }
    public func applyGateway(_ request: API.ApplyRequest) async throws -> API.Gateway {
        try await call(.POST, projectPath + "/gateways/apply", body: try API.encoder.encode(request), as: API.Gateway.self)
    }
    public func gateways() async throws -> [API.Gateway] { try await call(.GET, projectPath + "/gateways", as: [API.Gateway].self) }
    public func gateway(_ name: String) async throws -> API.Gateway { try await call(.GET, projectPath + "/gateways/\(name)", as: API.Gateway.self) }
    public func gatewayEvents(_ name: String) async throws -> [EventSpec] {
        try await call(.GET, projectPath + "/gateways/\(name)/events", as: [EventSpec].self)
    }
    public func deleteGateway(_ name: String) async throws -> API.Gateway {
        try await call(.DELETE, projectPath + "/gateways/\(name)", as: API.Gateway.self)
    }
    // MARK: sets

    public func planSet(_ request: API.SetRequest) async throws -> API.SetPlan {
        try await call(.POST, projectPath + "/sets/plan", body: try API.encoder.encode(request), as: API.SetPlan.self)
    }
    public func applySet(_ request: API.SetRequest) async throws -> API.SetResult {
        try await call(.POST, projectPath + "/sets/apply", body: try API.encoder.encode(request), as: API.SetResult.self)
    }

    // MARK: sources

    public func applySource(_ request: API.SourceRequest) async throws -> API.SourceView {
        try await call(.POST, projectPath + "/sources/apply", body: try API.encoder.encode(request), as: API.SourceView.self)
    }
    public func sources() async throws -> [API.SourceView] { try await call(.GET, projectPath + "/sources", as: [API.SourceView].self) }
    public func source(_ name: String) async throws -> API.SourceView { try await call(.GET, projectPath + "/sources/\(name)", as: API.SourceView.self) }
    public func sourceEvents(_ name: String) async throws -> [EventSpec] {
        try await call(.GET, projectPath + "/sources/\(name)/events", as: [EventSpec].self)
    }
    /// `sync`, `suspend` or `resume`.
    public func sourceAction(_ name: String, _ verb: String) async throws -> API.SourceView {
        try await call(.POST, projectPath + "/sources/\(name)/\(verb)", as: API.SourceView.self)
    }
    public func deleteSource(_ name: String, cascade: Bool) async throws -> API.SourceView {
        try await call(.DELETE, projectPath + "/sources/\(name)" + (cascade ? "?cascade=true" : ""), as: API.SourceView.self)
    }

    // MARK: secrets

    public func secrets() async throws -> [API.SecretInfo] { try await call(.GET, projectPath + "/secrets", as: [API.SecretInfo].self) }
    public func setSecret(_ name: String, value: String) async throws -> API.SecretInfo {
        try await call(.PUT, projectPath + "/secrets/\(name)", body: try API.encoder.encode(API.SecretRequest(value: value)), as: API.SecretInfo.self)
    }
    public func deleteSecret(_ name: String) async throws -> API.SecretInfo {
        try await call(.DELETE, projectPath + "/secrets/\(name)", as: API.SecretInfo.self)
    }

    public func deleteUser(_ name: String) async throws -> API.UserInfo {
        try await call(.DELETE, "/api/v1/users/\(name)", as: API.UserInfo.self)
    }

    /// A gateway process's view of the control plane (the client's token is its credential).
    public func gatewayFeed() -> AsyncThrowingStream<GatewayFeedMessage, Error> {
        lines("/api/v1/gateway/feed", as: GatewayFeedMessage.self)
    }

    public func gatewayReport(_ report: GatewayReport) async throws {
        _ = try await call(.POST, "/api/v1/gateway/report", body: try API.encoder.encode(report), as: API.Acknowledged.self)
    }

    /// The project's watch stream: every kind, or the named ones (`run`, `replica`, `gateway`,
    /// `source`, `event`); from a position, or with the current state first.
    public func watch(from resourceVersion: Int64? = nil, kinds: [String] = []) -> AsyncThrowingStream<API.WatchEvent, Error> {
        var query: [String] = []
        if let resourceVersion { query.append("resourceVersion=\(resourceVersion)") }
        if !kinds.isEmpty { query.append("kind=" + kinds.joined(separator: ",")) }
        return lines(projectPath + "/watch" + (query.isEmpty ? "" : "?" + query.joined(separator: "&")), as: API.WatchEvent.self)
    }

    /// The project's events (`--for KIND/NAME`, `--since 10m`), oldest first.
    public func projectEvents(for selector: String? = nil, since: String? = nil) async throws -> [API.Event] {
        var query: [String] = []
        if let selector { query.append("for=" + Self.escape(selector)) }
        if let since { query.append("since=" + Self.escape(since)) }
        return try await call(.GET, projectPath + "/events" + (query.isEmpty ? "" : "?" + query.joined(separator: "&")), as: [API.Event].self)
    }

    /// Every replica of the project.
    public func projectReplicas() async throws -> [API.Replica] { try await call(.GET, projectPath + "/replicas", as: [API.Replica].self) }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
    }
}

/// Where the CLI finds its server: `SETPOINT_URL`, `SETPOINT_TOKEN`, `SETPOINT_PROJECT`, else
/// `~/.setpoint/config.yml` (`url`, `token`, `project`), which the server writes on first start.
public struct ClientSettings: Sendable {
    public var url: String
    public var token: String
    public var project: String

    public static var configPath: String {
        (ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()) + "/.setpoint/config.yml"
    }

    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ClientSettings {
        var url = environment["SETPOINT_URL"]
        var token = environment["SETPOINT_TOKEN"]
        var project = environment["SETPOINT_PROJECT"]
        if url == nil || token == nil || project == nil, let text = try? String(contentsOfFile: configPath, encoding: .utf8),
           let root = YAMLLoader.load(text).root {
            func field(_ key: String) -> String? {
                if case .string(let s)? = root[key]?.value { return s }
                return root[key].map(\.displayText)
            }
            url = url ?? field("url")
            token = token ?? field("token")
            project = project ?? field("project")
        }
        guard let url, let token else {
            throw SettingsError(message: "no server configured: start one with `setpoint server` (it writes \(configPath)), or set SETPOINT_URL and SETPOINT_TOKEN")
        }
        return ClientSettings(url: url, token: token, project: project ?? "main")
    }

    /// Writes the settings file (mode 0600), as the server does for its admin on first start.
    public static func write(url: String, token: String, project: String, to path: String = configPath) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let text = "url: \(url)\ntoken: \(token)\nproject: \(project)\n"
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw SettingsError(message: "cannot write \(path)")
        }
    }

    public var client: APIClient { APIClient(baseURL: url, token: token, project: project) }
}

public struct SettingsError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

/// The lines of one NDJSON response, decoded one `next()` at a time.
actor NDJSONReader<T: Decodable & Sendable> {
    private let client: APIClient
    private let request: HTTPClientRequest
    private var body: HTTPClientResponse.Body.AsyncIterator?
    private var pending = Data()
    private var finished = false

    init(client: APIClient, request: HTTPClientRequest) {
        self.client = client
        self.request = request
    }

    func next() async throws -> T? {
        do {
            while true {
                if let newline = pending.firstIndex(of: 0x0A) {
                    let line = pending[pending.startIndex..<newline]
                    pending.removeSubrange(pending.startIndex...newline)
                    if !line.isEmpty { return try API.decoder.decode(T.self, from: line) }
                    continue
                }
                if finished { return nil }
                var iterator: HTTPClientResponse.Body.AsyncIterator
                if let body { iterator = body } else { iterator = try await open() }
                let chunk = try await iterator.next(isolation: self)
                body = iterator
                guard let chunk else {
                    finished = true
                    continue
                }
                pending.append(contentsOf: chunk.readableBytesView)
            }
        } catch let f as APIClient.Failure {
            throw f
        } catch is DecodingError {
            throw APIClient.Failure(status: 0, body: nil, text: "the Setpoint server at \(client.baseURL) sent a line this client cannot read (a newer server?)")
        } catch {
            throw APIClient.Failure(status: 0, body: nil, text: "the stream from the Setpoint server at \(client.baseURL) broke off (did the server stop?): \(error)",
                                    unreachable: true)
        }
    }

    private func open() async throws -> HTTPClientResponse.Body.AsyncIterator {
        let response: HTTPClientResponse
        do { response = try await APIClient.http.execute(request, timeout: .hours(24)) } catch { throw client.unreachable(error) }
        guard response.status == .ok else {
            let data = Data((try await response.body.collect(upTo: 1 << 20)).readableBytesView)
            let body = (try? API.decoder.decode([String: API.ErrorBody].self, from: data))?["error"]
            throw APIClient.Failure(status: Int(response.status.code), body: body, text: String(decoding: data, as: UTF8.self))
        }
        return response.body.makeAsyncIterator()
    }
}
