import Foundation
import Model
import SetpointConfiguration
import Store

/// What the API does with gateways, independent of HTTP: plan and apply (create, update in
/// place, replace), the project's default, list, get, delete, and the API's view.
public struct GatewayService: Sendable {
    public let store: any ObjectStore
    /// Gateway backends this server runs (`local`; others are refused at plan time).
    public let backends: Set<String>

    public init(store: any ObjectStore, backends: Set<String>) {
        self.store = store
        self.backends = backends
    }

    var gateways: TypedStore<GatewayKind> { TypedStore(store) }

    /// Properties applied to the running gateway; any other change replaces its processes.
    public static let inPlace: Set<String> = ["domain", "default", "replicas"]

    typealias Failure = RunService.Failure

    /// Parses and validates a gateway configuration (the request's only document).
    func resolve(_ request: API.ApplyRequest) throws -> GatewayConfiguration {
        let documents = ConfigurationParser.parse(request.configuration)
        guard documents.count == 1 else { throw Failure.invalid("send one configuration per request, got \(documents.count) documents") }
        let file = request.file ?? "configuration"
        var config: GatewayConfiguration
        switch documents[0].result {
        case .success(.gateway(let g)): config = g
        case .success(.service): throw Failure.invalid("\(file) is a service: apply it with `runs/apply`")
        case .failure(let errors):
            throw Failure.invalid("\(file) is invalid: \(errors.issues.count) error(s)",
                                  errors.issues.map { API.ErrorBody.Issue(path: $0.path, line: $0.location?.line, column: $0.location?.column, message: $0.message) })
        }
        if let name = request.name {
            guard ResourceName.isValid(name) else { throw Failure.invalid("invalid gateway name `\(name)`: it must match `^[a-z][a-z0-9-]{1,40}$`") }
            config.name = name
        }
        guard config.name != nil else { throw Failure.invalid("\(file): the gateway has no `name`: add one or pass a name") }
        if !backends.contains(config.backend) {
            let node = YAMLLoader.load(request.configuration).root?["backend"]
            let at = node.map { ":\($0.location.line):\($0.location.column)" } ?? ""
            let offered = backends.sorted().map { "`\($0)`" }.joined(separator: ", ")
            let why = "this server runs gateways on \(offered.isEmpty ? "no backend" : offered), not on `\(config.backend)`"
                + (config.backend == "kubernetes" ? " (configure a kubernetes backend in the server's config.yml)" : "")
            throw Failure.invalid("\(file)\(at): gateway.backend: \(why)",
                                  [API.ErrorBody.Issue(path: "gateway.backend", line: node?.location.line, column: node?.location.column, message: why)])
        }
        return config
    }

    /// The top-level properties that differ.
    static func changes(old: GatewayConfiguration, new: GatewayConfiguration) -> [String] {
        guard case .object(let a) = old.json, case .object(let b) = new.json else { return [] }
        let before = Dictionary(a, uniquingKeysWith: { $1 })
        return b.filter { before[$0.0] != $0.1 }.map(\.0)
    }

    public func plan(project: String, _ request: API.ApplyRequest) async throws -> API.GatewayPlan {
        let config = try resolve(request)
        let name = config.name ?? ""
        let current = try await gateways.get(project: project, name: name)
        var action = "create"
        var changes: [String] = []
        if let current {
            changes = Self.changes(old: current.spec.configuration, new: config)
            action = changes.isEmpty ? "none" : (changes.allSatisfy(Self.inPlace.contains) ? "update" : "replace")
        }
        return API.GatewayPlan(action: action, project: project, name: name, configuration: config.json, changes: changes.sorted(),
                               resourceVersion: current?.meta.resourceVersion, current: current.map(Self.view))
    }

    public func apply(project: String, user: String, _ request: API.ApplyRequest) async throws -> API.Gateway {
        let config = try resolve(request)
        return Self.view(try await storeGateway(project: project, user: user, config, file: request.file, expected: request.resourceVersion,
                                                force: request.force))
    }

    /// Stores a validated gateway: created, or its spec replaced when it is still at
    /// `expected` (unless `force`). `labels` are set on it (a set's inventory).
    func storeGateway(project: String, user: String, _ config: GatewayConfiguration, file: String?, expected: Int64?, force: Bool,
                      labels: [String: String] = [:]) async throws -> Gateway {
        let name = config.name ?? ""
        let all = try await gateways.list(project: project)
        let otherDefault = all.contains { $0.meta.name != name && $0.spec.isDefault && !$0.meta.isDeleting }
        let applied: Gateway
        if var current = all.first(where: { $0.meta.name == name }) {
            if current.meta.isDeleting { throw Failure.conflict("gateway \(name) is being deleted; wait for it to go, then apply again") }
            if let expected, expected != current.meta.resourceVersion, !force {
                throw Failure.conflict("gateway \(name) has changed since the plan (version \(current.meta.resourceVersion), not \(expected)): plan again, or apply with --force")
            }
            current.spec.configuration = config
            current.spec.isDefault = config.isDefault ?? (current.spec.isDefault || !otherDefault)
            current.spec.appliedBy = user
            current.spec.configurationPath = file
            current.meta.labels.merge(labels) { _, new in new }
            do { applied = try await gateways.update(current) } catch let e as StoreError where e.code == .conflict {
                throw Failure.conflict("gateway \(name) changed while applying: plan again, or apply with --force")
            }
        } else {
            // The project's first gateway becomes its default unless it says otherwise.
            if let expected, expected != 0, !force { throw Failure.conflict("gateway \(name) was deleted since the plan: plan again") }
            let spec = GatewaySpec(configuration: config, isDefault: config.isDefault ?? !otherDefault, appliedBy: user, configurationPath: file)
            do {
                applied = try await gateways.create(Gateway(project: project, name: name, labels: labels, finalizers: [Labels.gatewayFinalizer], spec: spec))
            } catch let e as StoreError where e.code == .alreadyExists {
                throw Failure.conflict("gateway \(name) was created meanwhile: plan again")
            }
        }
        if applied.spec.isDefault { try await clearOtherDefaults(project: project, keeping: name) }
        return applied
    }

    /// `default: true` moves the default: the other gateways of the project stop being it.
    func clearOtherDefaults(project: String, keeping name: String) async throws {
        for var other in try await gateways.list(project: project) where other.meta.name != name && other.spec.isDefault {
            for _ in 0..<5 {
                other.spec.isDefault = false
                do { _ = try await gateways.update(other); break } catch let e as StoreError where e.code == .conflict {
                    guard let fresh = try await gateways.get(project: project, name: other.meta.name) else { break }
                    other = fresh
                }
            }
        }
    }

    public func list(project: String) async throws -> [API.Gateway] {
        try await gateways.list(project: project).sorted { $0.meta.name < $1.meta.name }.map(Self.view)
    }

    public func get(project: String, name: String) async throws -> API.Gateway {
        guard let g = try await gateways.get(project: project, name: name) else { throw Failure.notFound("gateway \(project)/\(name) not found") }
        return Self.view(g)
    }

    /// Deletes the gateway (its processes are stopped first). Services that use it stay
    /// published on the server's own path.
    public func delete(project: String, name: String) async throws -> API.Gateway {
        guard let g = try await gateways.delete(project: project, name: name) else { throw Failure.notFound("gateway \(project)/\(name) not found") }
        return Self.view(g)
    }

    /// The gateway's events and its certificates' (`Issued`, `Renewing`, `OrderFailed`).
    public func events(project: String, name: String) async throws -> [EventSpec] {
        let events = TypedStore<EventKind>(store)
        var all = try await events.list(project: project, labels: ["setpoint.dev/involved": name])
            .map(\.spec).filter { $0.involved.kind == GatewayKind.name }
        for certificate in try await TypedStore<CertificateKind>(store).list(project: project, labels: [Labels.gateway: name]) {
            all += try await events.list(project: project, labels: ["setpoint.dev/involved": certificate.meta.name])
                .map(\.spec).filter { $0.involved.kind == CertificateKind.name }
        }
        return all.sorted { $0.lastTimestamp < $1.lastTimestamp }
    }

    public static func view(_ g: Gateway) -> API.Gateway {
        let domain = g.status.domain ?? g.spec.configuration.resolvedDomain(project: g.meta.project)
        let scheme = Self.serves(https: g) ? "https" : "http"
        let port = scheme == "https" ? g.status.httpsPort.flatMap { $0 == 443 ? nil : $0 } : g.status.httpPort.flatMap { $0 == 80 ? nil : $0 }
        let suffix = (domain ?? "") + (port.map { ":\($0)" } ?? "")
        return API.Gateway(project: g.meta.project, name: g.meta.name, uid: g.meta.uid, generation: g.meta.generation,
                           resourceVersion: g.meta.resourceVersion, createdAt: g.meta.createdAt, deleting: g.meta.isDeleting,
                           isDefault: g.spec.isDefault, configuration: g.spec.configuration.json, status: g.status,
                           serviceURLPattern: domain.map { _ in "\(scheme)://<run>.\(suffix)/" },
                           modelURL: domain.map { url(host: "gateway.\($0)", gateway: g) })
    }

    /// Whether the gateway serves HTTPS (it has a certificate configured and listens for it).
    static func serves(https g: Gateway) -> Bool { g.status.httpsPort != nil }

    /// A service's published URL on gateway `g`: https once its domain's certificate is
    /// issued (or the operator's wildcard is served), http until then.
    public static func serviceURL(run: String, gateway g: Gateway) -> String? {
        guard let domain = g.status.domain ?? g.spec.configuration.resolvedDomain(project: g.meta.project) else { return nil }
        return url(host: "\(run).\(domain)", gateway: g)
    }

    static func url(host: String, gateway g: Gateway) -> String {
        let secure = g.status.certificates.contains { c in
            (c.domain == host && c.state == "issued") || (c.state == "provided" && c.domain.hasPrefix("*.") && host.hasSuffix(c.domain.dropFirst()))
        } || g.status.certificates.contains { $0.domain == host && $0.state == "failed" && $0.notAfter.map { $0 > Date() } == true }
        let port = secure ? g.status.httpsPort.flatMap { $0 == 443 ? nil : $0 } : g.status.httpPort.flatMap { $0 == 80 ? nil : $0 }
        return "\(secure ? "https" : "http")://\(host)\(port.map { ":\($0)" } ?? "")/"
    }
}
