import Controllers
import Foundation
import Hummingbird
import Logging
import Model
import Primitives
import NIOCore
import Store

/// The control plane's side of the gateways' data plane, under `/api/v1/gateway` and
/// authenticated with a gateway credential (not a user token):
///
/// - `GET feed`: NDJSON; a full `snapshot` of what the gateway serves on connect and within
///   ~50 ms of any change to its routes, its gateway or the project's users, and a `keepalive`
///   line every 10 s (a gateway that hears nothing for 30 s reconnects);
/// - `POST report`: the replica's traffic per service (for the autoscaler) and its liveness
///   (for the gateway controller).
public struct GatewayPlane: Sendable {
    let store: any ObjectStore
    let credentials: GatewayCredentials
    let reports: GatewayReports
    /// The read timeout gateways get (seconds), unless the gateway says otherwise.
    let readTimeout: Int
    /// The operator's wildcard certificate (PEM files), served for every name of the domain.
    let providedCertificate: (certificate: String, key: String)?

    public init(store: any ObjectStore, credentials: GatewayCredentials, reports: GatewayReports, readTimeout: Int,
                providedCertificate: (certificate: String, key: String)? = nil) {
        self.providedCertificate = providedCertificate
        self.store = store
        self.credentials = credentials
        self.reports = reports
        self.readTimeout = readTimeout
    }

    /// The gateway whose credential the request carries, or nil.
    func authenticate(_ request: Request) async throws -> Gateway? {
        guard let claim = GatewayCredentials.claimed(authorization: request.headers[.authorization]),
              let gateway = try await TypedStore<GatewayKind>(store).get(project: claim.project, name: claim.name),
              credentials.verify(claim.mac, gateway: gateway) else { return nil }
        return gateway
    }

    static func unauthenticated() -> Response {
        APIRoutes.error(401, API.ErrorBody(code: "unauthenticated", message: "a gateway credential is required: `Authorization: Bearer spgw.…`"))
    }

    func register(on api: RouterGroup<BasicRequestContext>, logger: Logger, streams: Signal) {
        let plane = self
        api.get("gateway/feed") { request, _ in
            guard let gateway = try await plane.authenticate(request) else { return Self.unauthenticated() }
            let key = gateway.key
            let start = try await plane.store.list(ListOptions(kind: GatewayKind.name, project: key.project)).resourceVersion
            let changes = plane.store.watch(kind: nil, from: start)
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
                try await APIRoutes.relay(&writer, ending: streams) { out in
                    let (ticks, tick) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            defer { tick.finish() }
                            do {
                                for try await change in changes where plane.matters(change.object.meta, to: key) { tick.yield() }
                            } catch let e as StoreError where e.code == .resourceVersionTooOld {
                                // The history moved on: the gateway reconnects and gets everything again.
                            }
                        }
                        group.addTask {
                            while true {
                                try await Task.sleep(for: .seconds(10))
                                out.yield(APIRoutes.line(GatewayFeedMessage(type: "keepalive")))
                            }
                        }
                        group.addTask {
                            guard let first = try await plane.snapshot(key) else { return }
                            out.yield(APIRoutes.line(GatewayFeedMessage(type: "snapshot", snapshot: first)))
                            var last = first
                            for await _ in ticks {
                                // Changes come in bursts (a rollout): one snapshot for the burst.
                                try await Task.sleep(for: .milliseconds(50))
                                guard let next = try await plane.snapshot(key) else { return }
                                var comparable = next
                                comparable.version = last.version
                                if comparable != last { out.yield(APIRoutes.line(GatewayFeedMessage(type: "snapshot", snapshot: next))) }
                                last = next
                            }
                        }
                        // The first task to end (the feed broke, the gateway went) ends the stream.
                        try await group.next()
                        group.cancelAll()
                    }
                }
            })
        }
        api.post("gateway/report") { request, _ in
            guard let gateway = try await plane.authenticate(request) else { return Self.unauthenticated() }
            let buffer = try await request.body.collect(upTo: 4 << 20)
            guard let report = try? API.decoder.decode(GatewayReport.self, from: Data(buffer.readableBytesView)) else {
                return APIRoutes.error(400, API.ErrorBody(code: "bad_request", message: "the body is not a gateway report"))
            }
            // A gateway reports only its own project's services.
            var own = report
            own.services = report.services.filter { $0.project == gateway.meta.project }
            plane.reports.record(gateway: gateway.key, own, now: Date())
            return APIRoutes.json(200, API.Acknowledged())
        }
    }

    /// Whether a stored change can change what gateway `key` serves.
    func matters(_ meta: ObjectMeta, to key: ObjectKey) -> Bool {
        switch meta.kind {
        case ProxyRouteKind.name: return meta.project == key.project
        case GatewayKind.name: return meta.project == key.project && meta.name == key.name
        case CertificateKind.name: return meta.project == key.project && meta.labels[Labels.gateway] == key.name
        case UserKind.name: return true
        default: return false
        }
    }

    /// What gateway `key` serves now; nil once it is gone.
    func snapshot(_ key: ObjectKey) async throws -> GatewaySnapshot? {
        guard let gateway = try await TypedStore<GatewayKind>(store).get(project: key.project, name: key.name) else { return nil }
        let routes = try await store.list(ListOptions(kind: ProxyRouteKind.name, project: key.project))
        let users = try await TypedStore<UserKind>(store).list(project: systemProject)
        let servedRoutes = try routes.items.map(TypedStore<ProxyRouteKind>.decode).filter { $0.spec.gateway == key.name }
            .sorted { $0.meta.name < $1.meta.name }
            .map { GatewaySnapshot.Route(project: $0.meta.project, spec: $0.spec) }
        let hashes = users.filter { $0.spec.globalRole == "admin" || $0.spec.projectRoles[key.project] != nil }.map(\.spec.tokenHash).sorted()
        let domain = gateway.spec.configuration.resolvedDomain(project: key.project)
        let certificates = try await TypedStore<CertificateKind>(store).list(project: key.project, labels: [Labels.gateway: key.name])
            .sorted { $0.meta.name < $1.meta.name }
        var served = certificates.compactMap { c -> ServedCertificate? in
            guard let chain = c.status.chainPEM, let pem = c.status.keyPEM else { return nil }
            return ServedCertificate(domain: c.spec.domain, chainPEM: chain, keyPEM: pem)
        }
        if let provided = providedCertificate, let domain, gateway.spec.configuration.certificate != nil,
           let chain = FileManager.default.contents(atPath: provided.certificate), let pem = FileManager.default.contents(atPath: provided.key) {
            served = [ServedCertificate(domain: "*." + domain, chainPEM: String(decoding: chain, as: UTF8.self), keyPEM: String(decoding: pem, as: UTF8.self))]
        }
        return GatewaySnapshot(project: key.project, gateway: key.name, domain: domain,
                               readTimeout: readTimeout, routes: servedRoutes, tokenHashes: hashes,
                               challenges: certificates.compactMap(\.status.challenge), certificates: served,
                               version: max(routes.resourceVersion, gateway.meta.resourceVersion))
    }
}
