import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// `/proxy/services/<project>/<run>/…`: forwards to a ready replica of the run (round robin),
/// with dstack's semantics: 308 to the slash form, `strip_prefix`, token auth for project
/// members unless `auth: false`, 404 for an unknown service, 502 when the replica fails, 504
/// when it does not answer in time. Bodies stream in both directions.
public struct ServiceProxy: Sendable {
    public enum Access: Sendable { case allowed, unauthenticated, forbidden }

    let table: RouteTable
    let client: HTTPClient
    let authorize: @Sendable (_ authorization: String?, _ project: String) -> Access
    let timeout: TimeAmount
    let logger: Logger

    public init(table: RouteTable, client: HTTPClient, timeout: TimeAmount = .seconds(60), logger: Logger,
                authorize: @escaping @Sendable (String?, String) -> Access) {
        self.table = table
        self.client = client
        self.timeout = timeout
        self.logger = logger
        self.authorize = authorize
    }

    static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                                        "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length"]

    public func register(on router: Router<BasicRequestContext>) {
        let methods: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch, .head, .options]
        for method in methods {
            router.on("proxy/services/{project}/{run}", method: method) { request, context in
                // The router matches `/…/{run}/` here too: that one is a request for the root.
                if request.uri.path.hasSuffix("/") { return try await forward(request, context) }
                var location = request.uri.path + "/"
                if let q = request.uri.query { location += "?" + q }
                return Response(status: .permanentRedirect, headers: [.location: location])
            }
            router.on("proxy/services/{project}/{run}/**", method: method) { request, context in
                try await forward(request, context)
            }
        }
    }

    static func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }

    func forward(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard let project = context.parameters.get("project"), let run = context.parameters.get("run") else {
            return Self.text(.notFound, "Not found")
        }
        guard let route = table.route(project: project, run: run) else {
            return Self.text(.notFound, "Service \(project)/\(run) not found")
        }
        if route.auth {
            switch authorize(request.headers[.authorization], project) {
            case .allowed: break
            case .unauthenticated: return Self.text(.unauthorized, "Unauthenticated: send `Authorization: Bearer <token>` of a member of project \(project)")
            case .forbidden: return Self.text(.forbidden, "Unauthorized to access project \(project)")
            }
        }
        guard let first = table.pick(route) else {
            return Self.text(.serviceUnavailable, "Service \(project)/\(run) has no ready replica")
        }
        let rest = context.parameters.getCatchAll().joined(separator: "/")
        var path = route.stripPrefix ? "/" + rest : request.uri.path
        if request.uri.path.hasSuffix("/"), !path.hasSuffix("/") { path += "/" }
        if let q = request.uri.query { path += "?" + q }

        var upstream = HTTPClientRequest(url: Self.url(endpoint: first, path: path))
        upstream.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.hopByHop.contains(field.name.canonicalName) && field.name != .authorization {
            upstream.headers.add(name: field.name.rawName, value: field.value)
        }
        if let host = request.head.authority { upstream.headers.replaceOrAdd(name: "X-Forwarded-Host", value: host) }
        upstream.headers.replaceOrAdd(name: "X-Forwarded-Proto", value: "http")
        upstream.headers.replaceOrAdd(name: "X-Forwarded-Prefix", value: "/proxy/services/\(project)/\(run)")
        if let length = request.headers[.contentLength].flatMap(Int64.init) {
            upstream.body = .stream(request.body, length: .known(length))
        } else if request.method != .get && request.method != .head {
            upstream.body = .stream(request.body, length: .unknown)
        }

        var response: HTTPClientResponse?
        var endpoint = first
        // A bodiless idempotent request whose connection could not even be made (the replica just
        // went away) is tried once more on another replica; nothing else is retried.
        let retriable = (request.method == .get || request.method == .head || request.method == .options) && upstream.body == nil
        for attempt in 0..<2 {
            do {
                response = try await client.execute(upstream, timeout: timeout)
                break
            } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
                return Self.text(.gatewayTimeout, "Timed out requesting upstream")
            } catch {
                logger.debug("upstream failed", metadata: ["service": "\(project)/\(run)", "endpoint": "\(endpoint)", "error": "\(error)"])
                guard attempt == 0, retriable, Self.isConnectFailure(error),
                      let fresh = table.route(project: project, run: run), let next = table.pick(fresh), next != endpoint else {
                    return Self.text(.badGateway, "Error requesting upstream: the replica did not answer")
                }
                endpoint = next
                upstream.url = Self.url(endpoint: endpoint, path: path)
            }
        }
        guard let response else { return Self.text(.badGateway, "Error requesting upstream: the replica did not answer") }
        var headers = HTTPFields()
        for (name, value) in response.headers where !Self.hopByHop.contains(name.lowercased()) {
            if let field = HTTPField.Name(name) { headers.append(HTTPField(name: field, value: value)) }
        }
        if let length = response.headers.first(name: "content-length") {
            headers[.contentLength] = length
        }
        return Response(status: HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase),
                        headers: headers, body: ResponseBody(asyncSequence: response.body))
    }

    /// Connection refused / no such socket: the request never reached the replica.
    static func isConnectFailure(_ error: Error) -> Bool {
        let text = String(describing: error)
        return text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("No such file")
            || text.contains("ECONNREFUSED") || text.contains("ENOENT") || (error as? HTTPClientError) == .remoteConnectionClosed
    }

    /// `unix:/path` → `http+unix://%2Fpath/…`, `host:port` → `http://host:port/…`.
    static func url(endpoint: String, path: String) -> String {
        if endpoint.hasPrefix("unix:") {
            let socket = String(endpoint.dropFirst(5))
            let encoded = socket.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? socket
            return "http+unix://\(encoded)\(path)"
        }
        return "http://\(endpoint)\(path)"
    }
}
