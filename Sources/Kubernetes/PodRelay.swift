import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Model
import NIOCore
import Primitives
import ServiceLifecycle

/// Reaches a Pod from outside its cluster: a listener on loopback that sends each HTTP request
/// through the API server's pod proxy (`pods/<name>:<port>/proxy/…`) with the backend's
/// credentials, streaming bodies both ways. The replica's endpoint is the listener's address,
/// so the proxy and probes need not know. WebSocket upgrades are not relayed.
///
/// Its listener is a Hummingbird `Application` (which keeps its server in a ServiceGroup of its
/// own, so that one relay stops gracefully when its Pod goes); `run()` is a child task of the
/// backend's `run()`, the one owner of every relay's lifetime.
final class PodRelay: Sendable {
    private let group: ServiceGroup
    private let pod: String
    private let logger: Logger
    private let bound: OnceValue<Int>

    private init(group: ServiceGroup, pod: String, logger: Logger, bound: OnceValue<Int>) {
        self.group = group
        self.pod = pod
        self.logger = logger
        self.bound = bound
    }

    /// `127.0.0.1:<port>` once listening.
    var address: String { "127.0.0.1:\(bound.value ?? 0)" }

    /// Serves until `close()`.
    func run() async {
        do { try await group.run() } catch { logger.warning("pod relay stopped", metadata: ["pod": "\(pod)", "error": "\(error)"]) }
        bound.set(0)   // a relay that ended before listening: waiters hear it failed
    }

    /// True once listening, false if it ended first.
    func waitUntilListening() async -> Bool { (await bound.wait()) > 0 }

    /// A graceful shutdown: cancelling the serving task could drop a just-accepted connection
    /// unserved, which NIO treats as a programming error (apple/swift-nio#3481).
    func close() async { await group.triggerGracefulShutdown() }

    static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
                                        "host", "content-length", "authorization"]

    /// The message of an API server `Status` failure (`{"kind":"Status","apiVersion":"v1",
    /// "status":"Failure",…}`), nil for any other body.
    static func apiServerRefusal(_ body: ByteBuffer) -> String? {
        guard let status = try? JSONDecoder().decode(Status.self, from: Data(body.readableBytesView)),
              status.kind == "Status", status.apiVersion == "v1", status.status == "Failure" else { return nil }
        return [status.code.map { "\($0)" }, status.reason, status.message].compactMap { $0 }.joined(separator: " ")
    }

    /// A relay to `pod`'s `port`, listening once `run()` runs.
    static func make(client: KubeClient, namespace: String, pod: String, port: Int, logger: Logger) throws -> PodRelay {
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            var outbound = try await client.podProxyRequest(namespace: namespace, pod: pod, port: port, pathAndQuery: request.uri.description)
            outbound.method = .init(rawValue: request.method.rawValue)
            for field in request.headers where !hopByHop.contains(field.name.canonicalName) {
                outbound.headers.add(name: field.name.rawName, value: field.value)
            }
            if let length = request.headers[.contentLength].flatMap(Int.init) {
                outbound.body = .stream(request.body, length: .known(Int64(length)))
            } else if request.headers[.transferEncoding] != nil {
                outbound.body = .stream(request.body, length: .unknown)
            }
            let response: HTTPClientResponse
            do {
                response = try await client.http.execute(outbound, timeout: .hours(24))
            } catch {
                return Response(status: .badGateway, headers: [.contentType: "text/plain"],
                                body: .init(byteBuffer: ByteBuffer(string: "cannot reach pod \(pod) through the API server: \(error)\n")))
            }
            var headers = HTTPFields()
            let dropped: Set<String> = ["connection", "keep-alive", "transfer-encoding", ReplicaUnreached.header.lowercased()]
            for (name, value) in response.headers where !dropped.contains(name.lowercased()) {
                if let n = HTTPField.Name(name) { headers.append(HTTPField(name: n, value: value)) }
            }
            let status = HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
            // An error with a small JSON body may be the API server's own `Status` (it could not
            // dial the Pod, or refused to): not the app's answer, so a 502 the proxy retries.
            if response.status.code >= 400, let length = response.headers.first(name: "content-length").flatMap(Int.init), length <= 65536,
               response.headers.first(name: "content-type")?.hasPrefix("application/json") == true {
                let body = try await response.body.collect(upTo: 65536)
                if let refusal = apiServerRefusal(body) {
                    let reason = "the API server could not reach pod \(pod): \(refusal)"
                    var marked: HTTPFields = [.contentType: "text/plain"]
                    // The reason goes in the header too (one line, bounded): the proxy names it when
                    // no replica could be reached.
                    let line = String(reason.map { $0.isASCII && !$0.isNewline ? $0 : " " }.prefix(300))
                    if let name = HTTPField.Name(ReplicaUnreached.header) { marked[name] = line }
                    return Response(status: .badGateway, headers: marked, body: .init(byteBuffer: ByteBuffer(string: reason + "\n")))
                }
                return Response(status: status, headers: headers, body: .init(byteBuffer: body))
            }
            return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: response.body))
        }
        let bound = OnceValue<Int>()  // the port; 0 = it never listened
        var relayLogger = logger
        relayLogger.logLevel = .critical   // its own shutdown on cancellation is not news
        let app = Application(responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                              onServerRunning: { channel in bound.set(channel.localAddress?.port ?? 0) },
                              logger: relayLogger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: relayLogger))
        return PodRelay(group: group, pod: pod, logger: logger, bound: bound)
    }
}
