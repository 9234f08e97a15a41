import Backend
import Controllers
import Foundation
import Model
import Reconcile
import SetpointConfiguration
import Store

/// What the API does with runs, independent of HTTP: plan and apply with optimistic
/// concurrency, stop, delete, and the API's view of runs and replicas.
public struct RunService: Sendable {
    public let store: any ObjectStore
    public let backend: any ComputeBackend
    /// Where the server is reached (`http://127.0.0.1:3000`), for published URLs.
    public let publicURL: String
    /// Where uploaded code archives are kept (one file per content hash).
    public let codeDirectory: String
    /// The largest code archive accepted (compressed).
    public static let codeLimit = 64 << 20
    /// The gateways (the informer's cache), for published URLs.
    let gatewayCache: Informer?

    public init(store: any ObjectStore, backend: any ComputeBackend, publicURL: String, codeDirectory: String, gateways: Informer? = nil) {
        self.gatewayCache = gateways
        self.store = store
        self.backend = backend
        self.publicURL = publicURL
        self.codeDirectory = codeDirectory
    }

    /// Stores the request's code archive (content-addressed) and describes it.
    func storeCode(_ request: API.ApplyRequest) throws -> CodeArchive? {
        guard let text = request.code else { return nil }
        guard let data = Data(base64Encoded: text) else { throw Failure.invalid("field `code` is not valid base64") }
        return try storeCode(data)
    }

    /// Stores a code archive (once per content hash) and describes it.
    public func storeCode(_ data: Data) throws -> CodeArchive {
        guard data.count <= Self.codeLimit else {
            throw Failure.invalid("the code archive is \(data.count >> 20) MB, over the \(Self.codeLimit >> 20) MB limit: leave large files out (.gitignore)")
        }
        let hash = Authenticator.hash(data: data)
        let path = codeDirectory + "/" + hash + ".tar.gz"
        if !FileManager.default.fileExists(atPath: path) {
            try Self.writeAtomically(data, to: path, directory: codeDirectory)
        }
        return CodeArchive(hash: hash, path: path, size: data.count)
    }

    /// A file the server could not write, with the path and the system's reason.
    public struct StorageError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Writes `data` to a temporary file next to `path`, then renames it: a reader never sees
    /// half a file, and a failure names the path and the cause (`No space left on device`).
    static func writeAtomically(_ data: Data, to path: String, directory: String) throws {
        func failure(_ code: Int32) -> StorageError {
            var hint = ""
            if code == ENOSPC || code == EDQUOT { hint = ": free some space, then apply again" }
            if code == EROFS || code == EACCES || code == EPERM { hint = ": make \(directory) writable" }
            return StorageError(message: "cannot write \(path): \(String(cString: strerror(code)))\(hint)")
        }
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw StorageError(message: "cannot create \(directory): \(error.localizedDescription)")
        }
        let temporary = path + ".partial-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure(errno) }
        var offset = 0
        let result: Int32 = data.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return fsync(fd) == 0 ? 0 : errno }
            while offset < bytes.count {
                let n = write(fd, base + offset, bytes.count - offset)
                if n < 0 { return errno }
                offset += n
            }
            return fsync(fd) == 0 ? 0 : errno
        }
        close(fd)
        guard result == 0 else {
            unlink(temporary)
            throw failure(result)
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw failure(code)
        }
    }

    var runs: TypedStore<RunKind> { TypedStore(store) }

    public struct Failure: Error, Sendable {
        public var status: Int
        public var body: API.ErrorBody

        static func invalid(_ message: String, _ issues: [API.ErrorBody.Issue]? = nil) -> Failure {
            Failure(status: 400, body: API.ErrorBody(code: "invalid", message: message, issues: issues))
        }
        static func notFound(_ message: String) -> Failure { Failure(status: 404, body: API.ErrorBody(code: "not_found", message: message)) }
        static func conflict(_ message: String) -> Failure { Failure(status: 409, body: API.ErrorBody(code: "conflict", message: message)) }
    }

    /// What no configured backend can run (an image with only the local backend) is a located
    /// error at plan time, before anything is stored.
    func refuseUnsupported(_ config: ServiceConfiguration, _ request: API.ApplyRequest) throws {
        let root = YAMLLoader.load(request.configuration).root
        for (index, group) in config.replicaGroups.enumerated() {
            let image = group.image ?? config.image
            let docker = (group.docker ?? config.docker) == true
            guard let why = backend.refusal(image: image, docker: docker) else { continue }
            let key = image != nil ? "image" : "docker"
            let inGroup = group.image != nil || group.docker != nil
            let groupsKey = root?["groups"] != nil ? "groups" : "replicas"
            var groupNode: YAMLNode?
            if case .list(let items)? = root?[groupsKey]?.value, index < items.count { groupNode = items[index] }
            let node = inGroup ? groupNode?[key] : root?[key]
            let path = inGroup ? "service.\(groupsKey)[\(index)].\(key)" : "service.\(key)"
            let file = request.file ?? "configuration"
            let at = node.map { ":\($0.location.line):\($0.location.column)" } ?? ""
            throw Failure.invalid("\(file)\(at): \(path): \(why)",
                                  [API.ErrorBody.Issue(path: path, line: node?.location.line, column: node?.location.column, message: why)])
        }
    }

    /// Parses and validates the request's configuration and fills `env` values. With
    /// `bareEnvFromSecrets` (a configuration synced from Git, where no user's environment is
    /// at hand) a bare `env` name is the project secret of that name.
    func resolve(_ request: API.ApplyRequest, bareEnvFromSecrets: Bool = false) throws -> (ServiceConfiguration, secretEnv: [String]) {
        let documents = ConfigurationParser.parse(request.configuration)
        guard documents.count == 1 else {
            throw Failure.invalid("send one configuration per request, got \(documents.count) documents")
        }
        let config: ServiceConfiguration
        switch documents[0].result {
        case .success(.service(let s)): config = s
        case .success(.gateway): throw Failure.invalid("\(request.file ?? "the configuration") is a gateway: apply it with `gateways/apply`")
        case .failure(let errors):
            let file = request.file ?? "configuration"
            throw Failure.invalid("\(file) is invalid: \(errors.issues.count) error(s)",
                                  errors.issues.map { API.ErrorBody.Issue(path: $0.path, line: $0.location?.line, column: $0.location?.column, message: $0.message) })
        }
        var resolved = config
        if let name = request.name {
            guard ResourceName.isValid(name) else {
                throw Failure.invalid("invalid run name `\(name)`: it must match `^[a-z][a-z0-9-]{1,40}$`")
            }
            resolved.name = name
        }
        guard resolved.name != nil else { throw Failure.invalid("the configuration has no `name`: add one or pass a name") }
        try refuseUnsupported(resolved, request)
        var secret: [String] = []
        var env: [(String, EnvValue)] = []
        var missing: [String] = []
        for (key, value) in resolved.env {
            switch value {
            case .value(let v): env.append((key, .value(request.env[key] ?? v)))
            case .fromEnvironment:
                if let v = request.env[key] { env.append((key, .value(v))); secret.append(key) }
                else if bareEnvFromSecrets { env.append((key, .value("${{ secrets.\(key) }}"))) }
                else { missing.append(key) }
            }
        }
        for (key, value) in request.env.sorted(by: { $0.key < $1.key }) where !env.contains(where: { $0.0 == key }) && !missing.contains(key) {
            env.append((key, .value(value)))
        }
        if !missing.isEmpty {
            throw Failure.invalid("environment variable(s) \(missing.joined(separator: ", ")) have no value: set them in your environment or pass `-e NAME=value`")
        }
        resolved.env = env
        return (resolved, secret)
    }

    /// Every `${{ secrets.NAME }}` of the configuration must name a secret of the project: a
    /// reference that cannot be read or a secret that is not set is a located error at plan
    /// time, naming the property and the secret (never a value).
    func checkSecrets(_ config: ServiceConfiguration, project: String, _ request: API.ApplyRequest) async throws {
        let references = config.secretReferences
        guard !references.uses.isEmpty || !references.problems.isEmpty else { return }
        let known = Set(try await TypedStore<SecretKind>(store).list(project: project).filter { !$0.meta.isDeleting }.map(\.meta.name))
        var issues: [API.ErrorBody.Issue] = []
        let root = YAMLLoader.load(request.configuration).root
        func issue(_ property: String, _ message: String) {
            let node = Self.node(of: property, in: root)
            issues.append(API.ErrorBody.Issue(path: "service." + property, line: node?.location.line, column: node?.location.column, message: message))
        }
        for (property, problem) in references.problems { issue(property, problem.message) }
        for (property, name) in references.uses where !known.contains(name) {
            issue(property, "secret \(name) is not set in project \(project): `setpoint secret set \(name)` sets it")
        }
        guard !issues.isEmpty else { return }
        let file = request.file ?? "configuration"
        let first = issues[0]
        let at = first.line.map { ":\($0):\(first.column ?? 1)" } ?? ""
        throw Failure.invalid("\(file)\(at): \(first.path): \(first.message)" + (issues.count > 1 ? " (and \(issues.count - 1) more)" : ""), issues)
    }

    /// Where `env.NAME` or `registry_auth.FIELD` is written in the configuration.
    static func node(of property: String, in root: YAMLNode?) -> YAMLNode? {
        let parts = property.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, let parent = root?[parts[0]] else { return nil }
        if parts[0] == "env", case .list(let items) = parent.value {
            return items.first { item in
                guard case .string(let text) = item.value else { return false }
                return text == parts[1] || text.hasPrefix(parts[1] + "=")
            } ?? parent
        }
        return parent[parts[1]] ?? parent
    }

    /// The gateway `gateway:` names, with dstack's rules and messages: unset is the project's
    /// default gateway if it has one, `false` none, `true` the default (which must exist), a
    /// name that gateway of the project.
    ///
    /// `pending` are gateways applied in the same set (before the services): they count as
    /// existing, and one that says `default: true` (or the project's first) is the default.
    func resolveGateway(_ config: ServiceConfiguration, project: String, file: String?, text: String? = nil,
                        pending: [(name: String, isDefault: Bool?)] = []) async throws -> String? {
        func invalid(_ why: String) -> Failure {
            let node = text.flatMap { YAMLLoader.load($0).root?["gateway"] }
            let at = node.map { ":\($0.location.line):\($0.location.column)" } ?? ""
            return Failure.invalid("\(file ?? "configuration")\(at): service.gateway: \(why)",
                                   [API.ErrorBody.Issue(path: "service.gateway", line: node?.location.line, column: node?.location.column, message: why)])
        }
        var all = try await TypedStore<GatewayKind>(store).list(project: project).map { (name: $0.meta.name, isDefault: $0.spec.isDefault, deleting: $0.meta.isDeleting) }
        for p in pending {
            let hadDefault = all.contains { $0.isDefault && !$0.deleting && $0.name != p.name }
            let isDefault = p.isDefault ?? (all.first { $0.name == p.name }?.isDefault ?? !hadDefault)
            if isDefault { all = all.map { ($0.name, false, $0.deleting) } }
            all.removeAll { $0.name == p.name }
            all.append((p.name, isDefault, false))
        }
        let live = all.filter { !$0.deleting }
        switch config.gateway {
        case nil: return live.first { $0.isDefault }?.name
        case .enabled(false)?: return nil
        case .enabled(true)?:
            guard let d = live.first(where: { $0.isDefault }) else {
                throw invalid("the service requires a gateway, but there is no default gateway in project \(project) (`setpoint apply -f gateway.dstack.yml` creates one)")
            }
            return d.name
        case .named(let p, let name)?:
            if let p, p != project {
                throw invalid("gateway \(p)/\(name) belongs to another project; Setpoint publishes a service only on gateways of its own project (\(project))")
            }
            guard let g = all.first(where: { $0.name == name }) else {
                throw invalid("gateway \(name) does not exist in project \(project) (`setpoint gateway list` shows them)")
            }
            if g.deleting { throw invalid("gateway \(name) was marked for deletion") }
            return name
        }
    }

    /// A service configuration ready to store: validated, `env` filled, its secrets and
    /// backend checked, its gateway resolved.
    struct PreparedRun: Sendable {
        var config: ServiceConfiguration
        var secretEnv: [String]
        var gateway: String?
        var file: String?
        var name: String { config.name ?? "" }
    }

    func prepare(project: String, _ request: API.ApplyRequest, pending: [(name: String, isDefault: Bool?)] = [],
                 bareEnvFromSecrets: Bool = false) async throws -> PreparedRun {
        let (config, secret) = try resolve(request, bareEnvFromSecrets: bareEnvFromSecrets)
        try await checkSecrets(config, project: project, request)
        let gateway = try await resolveGateway(config, project: project, file: request.file, text: request.configuration, pending: pending)
        return PreparedRun(config: config, secretEnv: secret, gateway: gateway, file: request.file)
    }

    /// What applying `prepared` (with code `codeHash`) does to `current`: `create`, `update`
    /// (and how) or `none`. A stopped or finished run is created again.
    static func classify(_ prepared: PreparedRun, codeHash: String?, current: Run?) -> (action: String, changes: API.Changes) {
        guard let current else { return ("create", API.Changes()) }
        let c = SpecChanges.classify(old: current.spec.configuration, new: prepared.config)
        var changes = API.Changes(inPlace: c.inPlace, rolling: c.rolling, recreate: c.recreate)
        if current.spec.gateway != prepared.gateway, !changes.inPlace.contains("gateway") { changes.inPlace.append("gateway") }
        if let codeHash, codeHash != current.spec.code?.hash { changes.rolling.append("code") }
        let restarting = current.spec.stop != nil || current.status.phase.isFinished
        let unchanged = changes.inPlace.isEmpty && changes.rolling.isEmpty && changes.recreate.isEmpty
        return (restarting ? "create" : (unchanged ? "none" : "update"), changes)
    }

    /// The normalized configuration's differences (secrets hidden), with the gateway and the
    /// code when they change.
    static func diff(_ prepared: PreparedRun, codeHash: String?, current: Run?) -> [String] {
        let secretPaths = Set((current?.spec.secretEnv ?? []) + prepared.secretEnv).map { "env." + ConfigurationDiff.key($0) }
        var lines = ConfigurationDiff.lines(old: current?.spec.configuration.json, new: prepared.config.json) { path in
            secretPaths.contains(path) || (path == "registry_auth.password" && !Self.onlyReferences(prepared.config.registryAuth?.password))
        }
        if let current {
            if current.spec.gateway != prepared.gateway {
                if let g = current.spec.gateway { lines.append("- (published on gateway): \(g)") }
                if let g = prepared.gateway { lines.append("+ (published on gateway): \(g)") }
            }
            if let codeHash, codeHash != current.spec.code?.hash {
                lines.append("~ (code): \(current.spec.code.map { String($0.hash.prefix(12)) } ?? "none") → \(codeHash.prefix(12))")
            }
            if current.spec.stop != nil || current.status.phase.isFinished { lines.append("~ (run): \(current.status.phase.rawValue) → started again") }
        }
        return lines
    }

    /// Whether a text is only `${{ secrets.NAME }}` references (names, not values).
    static func onlyReferences(_ text: String?) -> Bool {
        guard let text, let parts = try? SecretReferences.parse(text) else { return false }
        return parts.allSatisfy { if case .secret = $0 { return true } else { return false } }
    }

    public func plan(project: String, user: String, _ request: API.ApplyRequest) async throws -> API.Plan {
        let prepared = try await prepare(project: project, request)
        let config = prepared.config
        let current = try await runs.get(project: project, name: prepared.name)
        let codeHash = try request.code.map { text in
            guard let data = Data(base64Encoded: text) else { throw Failure.invalid("field `code` is not valid base64") }
            return Authenticator.hash(data: data)
        }
        let (action, changes) = Self.classify(prepared, codeHash: codeHash, current: current)
        let all = try await backend.offers()
        let (offers, note) = Self.fittingOffers(all, config.replicaGroups.map(\.resources))
        return API.Plan(action: action, project: project, user: user, runName: prepared.name,
                        configuration: Self.redacted(config, secretEnv: prepared.secretEnv), changes: changes, offers: offers, offersNote: note,
                        resourceVersion: current?.meta.resourceVersion, current: current.map(view))
    }

    /// The offers that hold the resources, and when none does, a note that says why (against
    /// the largest offer) and what happens: a Kubernetes replica waits as unschedulable for a
    /// cluster autoscaler, up to the backend's `unschedulable_timeout`.
    static func fittingOffers(_ offers: [Offer], _ resources: [ResourcesSpec]) -> ([Offer], String?) {
        let fitting = OfferFit.fitting(offers, resources)
        guard fitting.isEmpty, let first = resources.first else { return (fitting, nil) }
        guard let largest = offers.max(by: { ($0.cpus, $0.memoryGB, $0.gpus.count) < ($1.cpus, $1.memoryGB, $1.gpus.count) }) else {
            return ([], "No backend offers anything yet: the run's replicas wait for capacity.")
        }
        let why = OfferFit.mismatch(largest, first) ?? "another replica group's resources"
        var note = "No offer fits the resources: they need \(why) (\(largest.instance), the largest of \(offers.count))."
        if offers.contains(where: { $0.backend == "kubernetes" }) {
            note += " On Kubernetes the replicas wait as unschedulable for a cluster autoscaler to add a node, up to the backend's unschedulable_timeout (600 s by default), then fail with no capacity."
        } else {
            note += " The replicas cannot get these resources here."
        }
        return ([], note)
    }

    /// Creates the run, or updates it in place / by rolling / by recreating, as the change
    /// requires. A stopped or finished run with the same name is started again.
    public func apply(project: String, user: String, _ request: API.ApplyRequest) async throws -> API.Run {
        let prepared = try await prepare(project: project, request)
        let code = try storeCode(request)
        return view(try await storeRun(project: project, user: user, prepared, code: code, expected: request.resourceVersion, force: request.force))
    }

    /// Stores a prepared run: created, or its spec replaced when it is still at `expected`
    /// (unless `force`). `labels` are set on the run (a set's inventory); others it has stay.
    func storeRun(project: String, user: String, _ prepared: PreparedRun, code: CodeArchive?, expected: Int64?, force: Bool,
               labels: [String: String] = [:]) async throws -> Run {
        let name = prepared.name
        if var current = try await runs.get(project: project, name: name) {
            if current.meta.isDeleting { throw Failure.conflict("run \(name) is being deleted; wait for it to go, then apply again") }
            if let expected, expected != current.meta.resourceVersion, !force {
                throw Failure.conflict("run \(name) has changed since the plan (version \(current.meta.resourceVersion), not \(expected)): plan again, or apply with --force")
            }
            current.spec.gateway = prepared.gateway
            current.spec.configuration = prepared.config
            current.spec.secretEnv = prepared.secretEnv
            current.spec.stop = nil
            current.spec.appliedBy = user
            current.spec.configurationPath = prepared.file
            current.spec.code = code
            current.meta.labels.merge(labels) { _, new in new }
            do {
                return try await runs.update(current)
            } catch let e as StoreError where e.code == .conflict {
                throw Failure.conflict("run \(name) changed while applying: plan again, or apply with --force")
            }
        }
        if let expected, expected != 0, !force { throw Failure.conflict("run \(name) was deleted since the plan: plan again") }
        var run = Run(project: project, name: name, labels: labels,
                      spec: RunSpec(configuration: prepared.config, appliedBy: user, configurationPath: prepared.file, secretEnv: prepared.secretEnv))
        run.spec.code = code
        run.spec.gateway = prepared.gateway
        do {
            return try await runs.create(run)
        } catch let e as StoreError where e.code == .alreadyExists {
            throw Failure.conflict("run \(name) was created meanwhile: plan again")
        }
    }

    public func get(project: String, name: String) async throws -> API.Run {
        guard let run = try await runs.get(project: project, name: name) else { throw Failure.notFound("run \(project)/\(name) not found") }
        return view(run)
    }

    public func list(project: String) async throws -> [API.Run] {
        try await runs.list(project: project).map(view)
    }

    public func stop(project: String, name: String, abort: Bool) async throws -> API.Run {
        for _ in 0..<5 {
            guard var run = try await runs.get(project: project, name: name) else { throw Failure.notFound("run \(project)/\(name) not found") }
            run.spec.stop = Model.StopRequest(abort: abort)
            do { return view(try await runs.update(run)) } catch let e as StoreError where e.code == .conflict { continue }
        }
        throw Failure.conflict("run \(name) keeps changing; try again")
    }

    public func delete(project: String, name: String) async throws -> API.Run {
        guard let run = try await runs.delete(project: project, name: name) else { throw Failure.notFound("run \(project)/\(name) not found") }
        return view(run)
    }

    public func replicas(project: String, name: String) async throws -> [API.Replica] {
        try await TypedStore<ReplicaKind>(store).list(project: project, labels: [Labels.run: name])
            .sorted { ($0.spec.group, $0.spec.replicaNum, $0.spec.submissionNum) < ($1.spec.group, $1.spec.replicaNum, $1.spec.submissionNum) }
            .map(Self.view)
    }

    public func events(project: String, name: String) async throws -> [EventSpec] {
        let runEvents = try await TypedStore<EventKind>(store).list(project: project, labels: ["setpoint.dev/involved": name])
        let replicaNames = Set(try await TypedStore<ReplicaKind>(store).list(project: project, labels: [Labels.run: name]).map(\.meta.name))
        let replicaEvents = try await TypedStore<EventKind>(store).list(project: project).filter { replicaNames.contains($0.spec.involved.name) }
        return (runEvents + replicaEvents).map(\.spec).sorted { $0.lastTimestamp < $1.lastTimestamp }
    }

    // MARK: views

    public func view(_ run: Run) -> API.Run {
        let proxyURL = "\(publicURL)/proxy/services/\(run.meta.project)/\(run.meta.name)/"
        var url = proxyURL
        var modelURL = run.spec.configuration.model.map { _ in "\(publicURL)/proxy/models/\(run.meta.project)/" }
        if let name = run.spec.gateway,
           let stored = gatewayCache?.get(ObjectKey(kind: GatewayKind.name, project: run.meta.project, name: name)),
           let gateway = try? TypedStore<GatewayKind>.decode(stored) {
            let shown = GatewayService.view(gateway)
            if let published = GatewayService.serviceURL(run: run.meta.name, gateway: gateway) { url = published }
            if modelURL != nil, let m = shown.modelURL { modelURL = m }
        }
        var shown = API.Run(project: run.meta.project, name: run.meta.name, uid: run.meta.uid, generation: run.meta.generation,
                       resourceVersion: run.meta.resourceVersion, createdAt: run.meta.createdAt, deleting: run.meta.isDeleting,
                       configuration: Self.redacted(run.spec.configuration, secretEnv: run.spec.secretEnv),
                       desiredReplicas: run.spec.desiredReplicas, stopRequested: run.spec.stop != nil, status: run.status,
                       url: url, modelURL: modelURL, gateway: run.spec.gateway, proxyURL: proxyURL)
        shown.set = run.meta.labels[Labels.set]
        shown.managedBy = run.meta.labels[Labels.source]
        return shown
    }

    public static func view(_ r: Replica) -> API.Replica {
        API.Replica(name: r.meta.name, group: r.spec.group, replicaNum: r.spec.replicaNum, submissionNum: r.spec.submissionNum,
                    deploymentNum: r.spec.deploymentNum, terminationRequested: r.spec.termination != nil, status: r.status,
                    run: r.spec.run, createdAt: r.meta.createdAt, resourceVersion: r.meta.resourceVersion)
    }

    /// The normalized configuration with secrets replaced: the registry password and `env`
    /// values that came from the user's environment.
    static func redacted(_ config: ServiceConfiguration, secretEnv: [String]) -> JSONValue {
        var c = config
        // A password that is only `${{ secrets.NAME }}` references shows them (they are names);
        // anything else written in it is hidden.
        if let password = c.registryAuth?.password,
           (try? SecretReferences.parse(password))?.allSatisfy({ if case .secret = $0 { return true } else { return false } }) != true {
            c.registryAuth?.password = "********"
        }
        c.env = c.env.map { key, value in secretEnv.contains(key) ? (key, .value("********")) : (key, value) }
        return c.json
    }
}
