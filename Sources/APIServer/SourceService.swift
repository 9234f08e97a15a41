import Crypto
import Foundation
import Model
import SetpointConfiguration
import Store

/// What the API does with sources, independent of HTTP: create or change one, list, get,
/// ask for a sync, suspend and resume, delete (keeping or deleting its objects), its events,
/// and the webhook that makes a push fetched at once.
public struct SourceService: Sendable {
    public let store: any ObjectStore
    let secrets: ProjectSecrets?

    public init(store: any ObjectStore, secrets: ProjectSecrets?) {
        self.store = store
        self.secrets = secrets
    }

    var sources: TypedStore<SourceKind> { TypedStore(store) }
    typealias Failure = RunService.Failure

    /// Checks a source's fields, each error naming its field.
    static func validate(_ request: API.SourceRequest) throws {
        func bad(_ field: String, _ why: String) -> Failure {
            Failure.invalid("field `\(field)`: \(why)", [API.ErrorBody.Issue(path: field, line: nil, column: nil, message: why)])
        }
        guard ResourceName.isValid(request.name) else { throw bad("name", "invalid source name `\(request.name)`: it must match `^[a-z][a-z0-9-]{1,40}$`") }
        let spec = request.spec
        let url = spec.url.trimmingCharacters(in: .whitespaces)
        guard !url.isEmpty else { throw bad("spec.url", "the repository's URL is required") }
        let schemes = ["https://", "http://", "ssh://", "git://", "file://"]
        let scp = !url.contains("://") && url.contains(":") && url.contains("@")
        guard schemes.contains(where: url.hasPrefix) || scp || url.hasPrefix("/") else {
            throw bad("spec.url", "`\(url)` is not a Git URL: use https://, ssh://, git@host:path, git:// or a local path")
        }
        if let components = URLComponents(string: url), components.password != nil {
            throw bad("spec.url", "the URL holds a password: put the token in a project secret and name it with --token-secret (the URL is shown to anyone who lists sources)")
        }
        switch spec.ref {
        case .branch(let b) where b.isEmpty || b.hasPrefix("-") || b.contains(".."): throw bad("spec.ref.branch", "invalid branch name `\(b)`")
        case .tag(let t) where t.isEmpty || t.hasPrefix("-") || t.contains(".."): throw bad("spec.ref.tag", "invalid tag name `\(t)`")
        case .commit(let c) where !(7...40).contains(c.count) || !c.allSatisfy(\.isHexDigit):
            throw bad("spec.ref.commit", "`\(c)` is not a commit hash (7 to 40 hexadecimal digits)")
        default: break
        }
        if let path = spec.path, path.split(separator: "/").contains("..") { throw bad("spec.path", "`\(path)` leaves the repository") }
        guard (5...86_400).contains(spec.interval) else { throw bad("spec.interval", "the interval must be between 5 s and 24 h, got \(spec.interval) s") }
        for (field, name) in [("spec.tokenSecret", spec.tokenSecret), ("spec.sshKeySecret", spec.sshKeySecret), ("spec.webhookSecret", spec.webhookSecret)] {
            if let name, !SecretReferences.isValidName(name) { throw bad(field, "invalid secret name `\(name)`") }
        }
        if spec.tokenSecret != nil, spec.sshKeySecret != nil { throw bad("spec.sshKeySecret", "give a token or an SSH key, not both") }
        if spec.sshKeySecret != nil, !(url.hasPrefix("ssh://") || scp) { throw bad("spec.sshKeySecret", "an SSH key is for ssh:// or git@host:path URLs") }
        if spec.tokenSecret != nil, !(url.hasPrefix("https://") || url.hasPrefix("http://")) { throw bad("spec.tokenSecret", "a token is for https:// URLs") }
    }

    /// The secrets the spec names must exist (their values are read at each fetch).
    func checkSecrets(project: String, _ spec: SourceSpec) async throws {
        let names = [("spec.tokenSecret", spec.tokenSecret), ("spec.sshKeySecret", spec.sshKeySecret), ("spec.webhookSecret", spec.webhookSecret)]
            .compactMap { f, n in n.map { (f, $0) } }
        guard !names.isEmpty else { return }
        let known = try await secrets?.names(project: project) ?? []
        for (field, name) in names where !known.contains(name) {
            let why = "secret \(name) is not set in project \(project): `setpoint secret set \(name)` sets it"
            throw Failure.invalid("field `\(field)`: \(why)", [API.ErrorBody.Issue(path: field, line: nil, column: nil, message: why)])
        }
    }

    /// Creates the source, or changes it (the status, sync requests and the creator stay).
    public func apply(project: String, user: String, _ request: API.SourceRequest) async throws -> API.SourceView {
        try Self.validate(request)
        try await checkSecrets(project: project, request.spec)
        for _ in 0..<5 {
            if var current = try await sources.get(project: project, name: request.name) {
                if current.meta.isDeleting { throw Failure.conflict("source \(request.name) is being deleted; wait for it to go, then create it again") }
                var spec = request.spec
                spec.syncRequestedAt = current.spec.syncRequestedAt
                spec.syncRequest = current.spec.syncRequest
                spec.createdBy = current.spec.createdBy
                spec.cascade = false
                current.spec = spec
                do { return Self.view(try await sources.update(current)) } catch let e as StoreError where e.code == .conflict { continue }
            }
            var spec = request.spec
            spec.createdBy = user
            spec.cascade = false
            do {
                return Self.view(try await sources.create(Source(project: project, name: request.name, finalizers: [Labels.sourceFinalizer], spec: spec)))
            } catch let e as StoreError where e.code == .alreadyExists {
                continue
            }
        }
        throw Failure.conflict("source \(request.name) keeps changing; try again")
    }

    public func list(project: String) async throws -> [API.SourceView] {
        try await sources.list(project: project).sorted { $0.meta.name < $1.meta.name }.map(Self.view)
    }

    public func get(project: String, name: String) async throws -> API.SourceView {
        guard let s = try await sources.get(project: project, name: name) else { throw Failure.notFound("source \(project)/\(name) not found") }
        return Self.view(s)
    }

    /// Changes the spec with `change` (retrying on conflicts).
    func change(project: String, name: String, _ change: (inout SourceSpec) -> Void) async throws -> API.SourceView {
        for _ in 0..<5 {
            guard var s = try await sources.get(project: project, name: name) else { throw Failure.notFound("source \(project)/\(name) not found") }
            if s.meta.isDeleting { throw Failure.conflict("source \(name) is being deleted") }
            change(&s.spec)
            do { return Self.view(try await sources.update(s)) } catch let e as StoreError where e.code == .conflict { continue }
        }
        throw Failure.conflict("source \(name) keeps changing; try again")
    }

    /// Fetch now, and apply what the repository says even if its revision did not change (drift
    /// reverted once, self-heal or not).
    public func sync(project: String, name: String) async throws -> API.SourceView {
        try await change(project: project, name: name) {
            $0.syncRequest += 1
            $0.syncRequestedAt = Date()
        }
    }

    public func suspend(project: String, name: String, _ suspended: Bool) async throws -> API.SourceView {
        try await change(project: project, name: name) { $0.suspend = suspended }
    }

    /// Deletes the source: its objects stay (applied by hand from now on) unless `cascade`.
    public func delete(project: String, name: String, cascade: Bool) async throws -> API.SourceView {
        if cascade { _ = try await change(project: project, name: name) { $0.cascade = true } }
        guard let s = try await sources.delete(project: project, name: name) else { throw Failure.notFound("source \(project)/\(name) not found") }
        return Self.view(s)
    }

    public func events(project: String, name: String) async throws -> [EventSpec] {
        try await TypedStore<EventKind>(store).list(project: project, labels: ["setpoint.dev/involved": name])
            .map(\.spec).filter { $0.involved.kind == SourceKind.name }.sorted { $0.lastTimestamp < $1.lastTimestamp }
    }

    public static func view(_ s: Source) -> API.SourceView {
        API.SourceView(project: s.meta.project, name: s.meta.name, generation: s.meta.generation, resourceVersion: s.meta.resourceVersion,
                       createdAt: s.meta.createdAt, deleting: s.meta.isDeleting, spec: s.spec, status: s.status,
                       webhookPath: s.spec.webhookSecret.map { _ in Self.webhookPath(project: s.meta.project, name: s.meta.name) })
    }

    public static func webhookPath(project: String, name: String) -> String { "/api/v1/projects/\(project)/sources/\(name)/webhook" }

    // MARK: webhooks

    public struct WebhookOutcome: Codable, Sendable {
        public var accepted: Bool
        public var message: String
    }

    /// A push from GitHub (`X-Hub-Signature-256`), Gitea (`X-Gitea-Signature`) or GitLab
    /// (`X-Gitlab-Token`), checked against the source's webhook secret: a push to the branch
    /// (or tag) the source follows asks for a sync; anything else is acknowledged and ignored.
    /// Every refusal answers alike (no hint of which part was wrong).
    public func webhook(project: String, name: String, headers: [String: String], body: Data) async throws -> (Int, WebhookOutcome) {
        let refused = (401, WebhookOutcome(accepted: false, message: "the webhook's signature or token does not match"))
        guard let source = try await sources.get(project: project, name: name), let secretName = source.spec.webhookSecret,
              let secrets, let secret = try? await secrets.values(project: project, names: [secretName])[secretName] else {
            return refused
        }
        let h = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        let key = SymmetricKey(data: Data(secret.utf8))
        func hex(_ mac: HashedAuthenticationCode<SHA256>) -> String { mac.map { String(format: "%02x", $0) }.joined() }
        let mac = hex(HMAC<SHA256>.authenticationCode(for: body, using: key))
        let valid: Bool
        let event: String
        if let signature = h["x-hub-signature-256"] {
            valid = Self.equal(signature, "sha256=" + mac)
            event = h["x-github-event"] ?? "push"
        } else if let signature = h["x-gitea-signature"] ?? h["x-gogs-signature"] {
            valid = Self.equal(signature, mac)
            event = h["x-gitea-event"] ?? h["x-gogs-event"] ?? "push"
        } else if let token = h["x-gitlab-token"] {
            valid = Self.equal(token, secret)
            event = (h["x-gitlab-event"] ?? "Push Hook").lowercased().hasPrefix("push") || (h["x-gitlab-event"] ?? "").lowercased().hasPrefix("tag push") ? "push" : "other"
        } else {
            return refused
        }
        guard valid else { return refused }
        if event == "ping" { return (200, WebhookOutcome(accepted: false, message: "pong")) }
        guard event == "push" else { return (202, WebhookOutcome(accepted: false, message: "ignored: `\(event)` is not a push")) }
        let ref = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["ref"] as? String
        let wanted: String?
        switch source.spec.ref {
        case .branch(let b): wanted = "refs/heads/\(b)"
        case .tag(let t): wanted = "refs/tags/\(t)"
        case .commit: wanted = nil
        }
        if let ref, let wanted, ref != wanted {
            return (202, WebhookOutcome(accepted: false, message: "ignored: a push to \(ref), and source \(name) follows \(source.spec.ref)"))
        }
        _ = try await sync(project: project, name: name)
        return (202, WebhookOutcome(accepted: true, message: "source \(name) fetches now"))
    }

    /// Compared in constant time.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for (p, q) in zip(x, y) { diff |= p ^ q }
        return diff == 0
    }
}
