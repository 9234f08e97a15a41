import Foundation
import Model
import SetpointConfiguration
import Store

/// Several configurations applied as one unit (`setpoint apply -f DIR`, a source's
/// revision): every document is validated, server checks included (secrets, gateways,
/// backends), before anything is written; the plan lists each object as create, update (with
/// its diff), unchanged or delete; gateways go before the services that use them. With a set
/// name the objects carry it (`setpoint.dev/set`), and `prune` deletes the set's objects that
/// are no longer in it, never an object applied by hand or by another set.
public struct SetService: Sendable {
    let runs: RunService
    let gateways: GatewayService?

    public init(runs: RunService, gateways: GatewayService?) {
        self.runs = runs
        self.gateways = gateways
    }

    typealias Failure = RunService.Failure

    /// How a set is applied: by whom, under which name, and for a source, which.
    public struct Options: Sendable {
        public var set: String?
        public var prune: Bool
        public var force: Bool
        /// The source applying it (its objects are managed by it), nil for the CLI.
        public var source: String?
        /// A bare `env` name is the project secret of that name (no user environment).
        public var bareEnvFromSecrets: Bool
        /// Code archives already stored (a source's checkout), by hash.
        public var archives: [String: CodeArchive]
        /// Whether the applier may create, change or delete gateways (project admins and
        /// managers).
        public var mayChangeGateways = true

        public init(set: String?, prune: Bool = false, force: Bool = false, source: String? = nil, bareEnvFromSecrets: Bool = false,
                    archives: [String: CodeArchive] = [:]) {
            self.set = set
            self.prune = prune
            self.force = force
            self.source = source
            self.bareEnvFromSecrets = bareEnvFromSecrets
            self.archives = archives
        }
    }

    /// A valid set name: what a label value may be here (`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`).
    public static func isValidName(_ name: String) -> Bool {
        guard (1...63).contains(name.count), let f = name.first, let l = name.last,
              f.isLowercase || f.isNumber, l.isLowercase || l.isNumber else { return false }
        return name.allSatisfy { ($0.isLowercase && $0.isASCII) || ($0.isNumber && $0.isASCII) || $0 == "-" || $0 == "_" || $0 == "." }
    }

    enum Desired {
        case run(RunService.PreparedRun, code: CodeArchive?, current: Run?)
        case gateway(GatewayConfiguration, file: String, current: Gateway?)
        case deleteRun(Run)
        case deleteGateway(Gateway)
    }

    struct Evaluation {
        var plan: API.SetPlan
        var steps: [(entry: API.SetEntry, desired: Desired)]
    }

    public func plan(project: String, user: String, _ request: API.SetRequest, options: Options) async throws -> API.SetPlan {
        try await evaluate(project: project, user: user, request, options: options, archives: try archives(request, options, store: false)).plan
    }

    /// Validates again, checks that nothing moved since the plan (`expected`), then writes
    /// what changed in the plan's order. Unchanged objects are not written.
    public func apply(project: String, user: String, _ request: API.SetRequest, options: Options) async throws -> API.SetResult {
        let evaluation = try await evaluate(project: project, user: user, request, options: options, archives: try archives(request, options, store: true))
        if let expected = request.expected, !options.force {
            let now = evaluation.plan.expected
            let moved = Set(expected.keys).union(now.keys).filter { expected[$0] != now[$0] }.sorted()
            if !moved.isEmpty {
                throw Failure.conflict("the set changed since the plan (\(moved.joined(separator: ", "))): plan again, or apply with --force")
            }
        }
        if !options.mayChangeGateways,
           let g = evaluation.plan.entries.first(where: { $0.kind == GatewayKind.name && $0.action != "unchanged" }) {
            throw Failure(status: 403, body: API.ErrorBody(code: "forbidden",
                                                           message: "the set would \(g.action) gateway \(g.name): only an admin or manager of project \(project) changes its gateways"))
        }
        var labels: [String: String] = [:]
        if let set = options.set { labels[Labels.set] = set }
        if let source = options.source { labels[Labels.source] = source }
        var applied: [API.Run] = []
        var appliedGateways: [API.Gateway] = []
        for (entry, desired) in evaluation.steps where entry.action != "unchanged" {
            switch desired {
            case .gateway(let config, let file, let current):
                guard let gateways else { continue }
                let g = try await gateways.storeGateway(project: project, user: user, config, file: file, expected: current?.meta.resourceVersion ?? 0,
                                                        force: false, labels: labels)
                appliedGateways.append(GatewayService.view(g))
            case .run(let prepared, let code, let current):
                let run = try await runs.storeRun(project: project, user: user, prepared, code: code, expected: current?.meta.resourceVersion ?? 0,
                                                  force: false, labels: labels)
                applied.append(runs.view(run))
            case .deleteRun(let run):
                _ = try? await runs.delete(project: project, name: run.meta.name)
            case .deleteGateway(let gateway):
                _ = try? await gateways?.delete(project: project, name: gateway.meta.name)
            }
        }
        return API.SetResult(plan: evaluation.plan, runs: applied, gateways: appliedGateways)
    }

    /// The request's archives (decoded, checked, and stored when applying) with the options'.
    func archives(_ request: API.SetRequest, _ options: Options, store: Bool) throws -> [String: CodeArchive] {
        var result = options.archives
        for (hash, text) in request.archives {
            guard let data = Data(base64Encoded: text) else { throw Failure.invalid("field `archives.\(hash)` is not valid base64") }
            let actual = Authenticator.hash(data: data)
            guard actual == hash else { throw Failure.invalid("field `archives.\(hash)`: the archive's SHA-256 is \(actual)") }
            result[hash] = store ? try runs.storeCode(data) : CodeArchive(hash: hash, path: "", size: data.count)
        }
        return result
    }

    func evaluate(project: String, user: String, _ request: API.SetRequest, options: Options,
                  archives: [String: CodeArchive]) async throws -> Evaluation {
        if let set = options.set, !Self.isValidName(set) {
            throw Failure.invalid("invalid set name `\(set)`: lowercase letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit, at most 63 characters")
        }
        guard !request.documents.isEmpty || options.prune || options.source != nil else {
            throw Failure.invalid("field `documents`: the set has no configurations")
        }
        var issues: [API.ErrorBody.Issue] = []
        func collect(_ file: String, _ body: () async throws -> Void) async throws {
            do { try await body() } catch let f as Failure {
                if let list = f.body.issues, !list.isEmpty {
                    issues += list.map { var i = $0; i.file = i.file ?? file; return i }
                } else {
                    issues.append(API.ErrorBody.Issue(path: "", line: nil, column: nil, message: Self.withoutFile(f.body.message, file), file: file))
                }
            }
        }

        // Parse: gateways and services, each name once.
        var gatewayDocs: [(file: String, text: String)] = []
        var serviceDocs: [(file: String, text: String, code: String?)] = []
        for doc in request.documents {
            let parsed = ConfigurationParser.parse(doc.configuration)
            guard parsed.count == 1 else {
                issues.append(.init(path: "", line: nil, column: nil, message: "send one document per entry, got \(parsed.count)", file: doc.file))
                continue
            }
            switch parsed[0].result {
            case .success(.gateway): gatewayDocs.append((doc.file, doc.configuration))
            case .success(.service): serviceDocs.append((doc.file, doc.configuration, doc.code))
            case .failure(let errors):
                issues += errors.issues.map { .init(path: $0.path, line: $0.location?.line, column: $0.location?.column, message: $0.message, file: doc.file) }
            }
        }

        var gatewaySteps: [(API.SetEntry, Desired)] = []
        var pending: [(name: String, isDefault: Bool?)] = []
        var gatewayFiles: [String: String] = [:]
        let gatewayStore = TypedStore<GatewayKind>(runs.store)
        for doc in gatewayDocs {
            try await collect(doc.file) {
                guard let gateways else { throw Failure.invalid("this server runs no gateways") }
                let config = try gateways.resolve(API.ApplyRequest(configuration: doc.text, file: doc.file))
                let name = config.name ?? ""
                if let other = gatewayFiles[name] { throw Failure.invalid("gateway \(name) is also defined in \(other)") }
                gatewayFiles[name] = doc.file
                let current = try await gatewayStore.get(project: project, name: name)
                try check(ownership: current?.meta, kind: "gateway", name: name, options: options)
                var entry = API.SetEntry(kind: GatewayKind.name, name: name, file: doc.file, action: "create",
                                         resourceVersion: current?.meta.resourceVersion)
                if let current {
                    if current.meta.isDeleting { throw Failure.conflict("gateway \(name) is being deleted; wait for it to go, then apply again") }
                    entry.diff = ConfigurationDiff.lines(old: current.spec.configuration.json, new: config.json)
                    entry.action = entry.diff.isEmpty ? "unchanged" : "update"
                }
                join(&entry, current?.meta, options)
                gatewaySteps.append((entry, .gateway(config, file: doc.file, current: current)))
                pending.append((name, config.isDefault))
            }
        }

        var runSteps: [(API.SetEntry, Desired)] = []
        var runFiles: [String: String] = [:]
        let runStore = TypedStore<RunKind>(runs.store)
        for doc in serviceDocs {
            try await collect(doc.file) {
                let applyRequest = API.ApplyRequest(configuration: doc.text, file: doc.file, env: request.env)
                let prepared = try await runs.prepare(project: project, applyRequest, pending: pending, bareEnvFromSecrets: options.bareEnvFromSecrets)
                let name = prepared.name
                if let other = runFiles[name] { throw Failure.invalid("run \(name) is also defined in \(other)") }
                runFiles[name] = doc.file
                var code: CodeArchive?
                if let hash = doc.code {
                    guard let archive = archives[hash] else { throw Failure.invalid("code \(hash.prefix(12)) is not among the request's archives") }
                    code = archive
                }
                let current = try await runStore.get(project: project, name: name)
                try check(ownership: current?.meta, kind: "run", name: name, options: options)
                if current?.meta.isDeleting == true { throw Failure.conflict("run \(name) is being deleted; wait for it to go, then apply again") }
                let (action, changes) = RunService.classify(prepared, codeHash: code?.hash, current: current)
                var entry = API.SetEntry(kind: RunKind.name, name: name, file: doc.file, action: action == "none" ? "unchanged" : action,
                                         diff: RunService.diff(prepared, codeHash: code?.hash, current: current),
                                         changes: current == nil ? nil : changes, resourceVersion: current?.meta.resourceVersion)
                if current == nil { entry.diff = [] }
                join(&entry, current?.meta, options)
                if options.set == nil, let source = current?.meta.labels[Labels.source] {
                    entry.note = "managed by source \(source): a change here shows as drift, and is reverted if the source heals itself"
                }
                runSteps.append((entry, .run(prepared, code: code, current: current)))
            }
        }

        if !issues.isEmpty {
            let files = Set(issues.compactMap(\.file)).count
            let first = issues[0]
            let at = [first.file, first.line.map(String.init), first.line != nil ? String(first.column ?? 1) : nil].compactMap { $0 }.joined(separator: ":")
            throw Failure.invalid("\(files) of \(request.documents.count) configuration(s) cannot be applied, so nothing was: \(at)\(at.isEmpty ? "" : ": ")\(first.path.isEmpty ? "" : first.path + ": ")\(first.message)"
                                  + (issues.count > 1 ? " (and \(issues.count - 1) more)" : ""), issues)
        }

        // Prune: the set's own objects that are no longer in it, services before gateways.
        var deletions: [(API.SetEntry, Desired)] = []
        if options.prune, let set = options.set {
            for run in try await runStore.list(project: project, labels: [Labels.set: set]) where runFiles[run.meta.name] == nil && !run.meta.isDeleting {
                deletions.append((API.SetEntry(kind: RunKind.name, name: run.meta.name, file: run.spec.configurationPath, action: "delete",
                                               resourceVersion: run.meta.resourceVersion), .deleteRun(run)))
            }
            let remaining = Set(try await runStore.list(project: project).filter { runFiles[$0.meta.name] == nil && $0.meta.labels[Labels.set] != set }
                .compactMap(\.spec.gateway))
            for g in try await gatewayStore.list(project: project, labels: [Labels.set: set]) where gatewayFiles[g.meta.name] == nil && !g.meta.isDeleting {
                deletions.append((API.SetEntry(kind: GatewayKind.name, name: g.meta.name, file: g.spec.configurationPath, action: "delete",
                                               resourceVersion: g.meta.resourceVersion,
                                               note: remaining.contains(g.meta.name) ? "services outside the set use it: they stay published on the server's path" : nil),
                                  .deleteGateway(g)))
            }
        }
        let steps = gatewaySteps + runSteps + deletions
        return Evaluation(plan: API.SetPlan(project: project, user: user, set: options.set, prune: options.prune, entries: steps.map(\.0)),
                          steps: steps)
    }

    /// An object already in another set, or managed by a source other than the one applying,
    /// is not this set's to change: an error, not a fight.
    func check(ownership meta: ObjectMeta?, kind: String, name: String, options: Options) throws {
        guard let meta, let set = options.set else { return }
        let theirs = meta.labels[Labels.set]
        let source = meta.labels[Labels.source]
        if let source, source != options.source {
            throw Failure.conflict("\(kind) \(name) is managed by source \(source); "
                + (options.source != nil ? "two sources cannot manage one object: remove it from one of them" : "change it in that source's repository, or apply it without --set"))
        }
        if let theirs, theirs != set {
            throw Failure.conflict("\(kind) \(name) belongs to set \(theirs), not \(set): a set changes only its own objects (apply it without --set, or delete it from \(theirs) first)")
        }
    }

    /// An existing object that does not carry the set's name yet joins it: an update.
    func join(_ entry: inout API.SetEntry, _ meta: ObjectMeta?, _ options: Options) {
        guard let set = options.set, let meta, meta.labels[Labels.set] != set else { return }
        entry.diff.append("+ (set): \(set)")
        if entry.action == "unchanged" { entry.action = "update" }
    }

    /// A message without a leading `file:` or `file is invalid` (the issue names the file).
    static func withoutFile(_ message: String, _ file: String) -> String {
        var m = Substring(message)
        if m.hasPrefix(file) {
            m = m.dropFirst(file.count)
            while let c = m.first, c == ":" || c.isNumber || c == " " { m.removeFirst() }
        }
        return String(m)
    }
}
