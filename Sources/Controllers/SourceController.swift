import Backend
import Foundation
import Model
import Reconcile
import Store

/// A revision's configurations, read from the source's mirror.
public struct SourceCheckout: Sendable {
    public var revision: SourceRevision
    /// Each document of each `*.dstack.yml` under the source's path (file names relative to
    /// the repository's top, so errors name them as the repository does).
    public var documents: [(file: String, text: String)]
    /// The code the services run in: the repository at the revision without its
    /// configurations, a gzipped tar that depends on the content only.
    public var code: Data?
    /// The code's SHA-256 (hex), as the server names stored archives.
    public var codeHash: String?

    public init(revision: SourceRevision, documents: [(file: String, text: String)], code: Data?, codeHash: String?) {
        self.revision = revision
        self.documents = documents
        self.code = code
        self.codeHash = codeHash
    }
}

/// The credentials a fetch uses, filled in from project secrets just before it runs.
public struct SourceCredentials: Sendable {
    public var token: String?
    public var username: String?
    public var sshKey: String?
    public var knownHosts: String?

    public init(token: String? = nil, username: String? = nil, sshKey: String? = nil, knownHosts: String? = nil) {
        self.token = token
        self.username = username
        self.sshKey = sshKey
        self.knownHosts = knownHosts
    }
}

/// Git, as the source controller needs it: I/O only (the server's implementation runs the real
/// `git` client on a mirror per source).
public protocol SourceFetcher: Sendable {
    /// Fetches the source's ref into its mirror; the revision it points at.
    func fetch(_ source: Source, credentials: SourceCredentials) async throws -> SourceRevision
    /// The configurations (and code) at `commit`, which an earlier fetch brought in.
    func checkout(_ source: Source, commit: String) async throws -> SourceCheckout
    /// When the last fetch (successful or not) began, if one did since the server started.
    func lastFetch(_ source: Source) -> Date?
    /// Removes the source's mirror.
    func forget(_ source: Source) async
}

/// Why a revision cannot be applied: every problem, located in its file.
public struct SetInvalid: Error, Sendable {
    public var message: String
    public var issues: [API.ErrorBody.Issue]

    public init(message: String, issues: [API.ErrorBody.Issue]) {
        self.message = message
        self.issues = issues
    }
}

/// Applies a source's revision as one set (the API's set service): I/O only.
public protocol SetApplier: Sendable {
    /// What applying the checkout would do now (prune included, to show what would go);
    /// throws `SetInvalid` when any configuration cannot be applied.
    func plan(_ source: Source, _ checkout: SourceCheckout) async throws -> API.SetPlan
    /// Applies it (prune as the source says); throws `SetInvalid` as `plan`.
    func apply(_ source: Source, _ checkout: SourceCheckout) async throws -> API.SetResult
    /// The objects the source applied (carrying its name), with their health.
    func members(_ source: Source) async throws -> [SourceMember]
    /// Lets go of an object (it stays, applied by hand from now on) or deletes it.
    func release(_ source: Source, _ member: SourceMember, delete: Bool) async throws
}

/// An object a source applied, as its health is judged.
public struct SourceMember: Sendable, Equatable {
    public var kind: String
    public var name: String
    public var deleting: Bool
    /// `Healthy`, `Progressing` or `Degraded`.
    public var health: String
    public var message: String?

    public init(kind: String, name: String, deleting: Bool = false, health: String, message: String? = nil) {
        self.kind = kind
        self.name = name
        self.deleting = deleting
        self.health = health
        self.message = message
    }

    public var key: String { "\(kind)/\(name)" }

    /// A run's health from its status: Ready is healthy; failed, stopped or Degraded is
    /// degraded (with the run's own words); anything else is on its way.
    public static func health(of run: Run) -> (String, String?) {
        let s = run.status
        if run.spec.stop != nil || s.phase == .terminated { return ("Degraded", "stopped") }
        if s.phase == .failed { return ("Degraded", s.message.nonEmptyText ?? s.terminationReason?.rawValue ?? "failed") }
        if let d = s.conditions["Degraded"], d.status == "True" { return ("Degraded", "\(d.reason): \(d.message)") }
        if let stalled = s.conditions["Stalled"], stalled.status == "True" { return ("Degraded", "\(stalled.reason): \(stalled.message)") }
        if s.conditions["Ready"]?.status == "True", s.observedGeneration >= run.meta.generation { return ("Healthy", nil) }
        return ("Progressing", s.conditions["Ready"]?.message.nonEmptyText ?? s.message.nonEmptyText ?? "starting")
    }

    public static func health(of gateway: Gateway) -> (String, String?) {
        let s = gateway.status
        if let stalled = s.conditions["Stalled"], stalled.status == "True" { return ("Degraded", "\(stalled.reason): \(stalled.message)") }
        if s.phase == .failed { return ("Degraded", s.message ?? "failed") }
        if s.conditions["Ready"]?.status == "True" { return ("Healthy", nil) }
        return ("Progressing", s.message ?? "starting")
    }
}

extension String {
    var nonEmptyText: String? { isEmpty ? nil : self }
}

/// What the source controller acts on besides the source.
public struct SourceObservation: Sendable {
    /// When the mirror was last fetched (since this server started).
    public var lastFetch: Date?
    /// The plan of the last attempted revision against what is stored now, or why it cannot
    /// be applied.
    public var attempted: Result<API.SetPlan, SetInvalid>?
    /// The plan of the last applied revision, when the attempted one cannot be applied (what
    /// runs is compared with it).
    public var applied: API.SetPlan?
    /// Reading a revision failed (a mirror that lost it).
    public var readError: String?
    /// The objects carrying the source's name.
    public var members: [SourceMember]

    public init(lastFetch: Date? = nil, attempted: Result<API.SetPlan, SetInvalid>? = nil, applied: API.SetPlan? = nil,
                readError: String? = nil, members: [SourceMember] = []) {
        self.lastFetch = lastFetch
        self.attempted = attempted
        self.applied = applied
        self.readError = readError
        self.members = members
    }
}

public enum SourceAction: Sendable {
    case addFinalizer
    /// Fetch the ref; then, when `apply`, apply the fetched revision at once (a sync asked for).
    case fetch(apply: Bool)
    /// Apply the last attempted revision.
    case apply
    /// Let go of (or, with `delete`, delete) the source's objects before it goes.
    case cleanup(delete: Bool)
    case removeFinalizer
}

/// The source controller's decisions, pure: when to fetch, whether to apply, each object's sync
/// state and health, and the conditions (docs/gitops.md).
public enum SourcePlanner {
    /// Backoff after the n-th failed fetch (capped by the interval).
    public static func fetchBackoff(failures: Int, interval: Int) -> TimeInterval {
        min(TimeInterval(interval), 5 * pow(2, Double(min(max(failures - 1, 0), 10))))
    }

    static func target(_ spec: SourceSpec) -> String { "\(spec.url)#\(spec.ref)#\(spec.path ?? "")" }

    public static func plan(_ source: Source, _ observed: SourceObservation, now: Date) -> Plan<SourceStatus, SourceAction> {
        var status = source.status
        let spec = source.spec
        if source.meta.isDeleting {
            let remaining = observed.members.filter { !spec.cascade || !$0.deleting }
            if observed.members.isEmpty {
                return Plan(status: status, actions: source.meta.finalizers.contains(Labels.sourceFinalizer) ? [.removeFinalizer] : [])
            }
            status.message = spec.cascade ? "deleting \(observed.members.count) object(s)" : "letting go of \(observed.members.count) object(s)"
            return Plan(status: status, actions: remaining.isEmpty ? [] : [.cleanup(delete: spec.cascade)])
        }
        var plan = Plan<SourceStatus, SourceAction>(status: status)
        if !source.meta.finalizers.contains(Labels.sourceFinalizer) { plan.actions.append(.addFinalizer) }

        objects(&status, observed, prune: spec.prune)

        if spec.suspend {
            status.conditions.set("Reconciling", false, reason: "Suspended", message: "suspended: it neither fetches nor applies", now: now)
            status.message = "suspended" + (status.lastApplied.map { "; \($0.short) keeps running" } ?? "")
            status.observedGeneration = source.meta.generation
            plan.status = status
            return plan
        }

        // Fetch when due, asked for (`source sync`, a webhook) or pointed elsewhere.
        let requested = spec.syncRequest > status.handledSyncRequest
        let retarget = status.target != target(spec)
        let wait = status.fetchFailures > 0 ? fetchBackoff(failures: status.fetchFailures, interval: spec.interval) : TimeInterval(spec.interval)
        let nextFetch = observed.lastFetch.map { $0.addingTimeInterval(wait) }
        let due = nextFetch.map { now >= $0 } ?? true
        if requested || retarget || due {
            // A routine fetch changes nothing stored unless it finds something new.
            if requested { status.handledSyncRequest = spec.syncRequest }
            if requested || retarget {
                status.conditions.set("Reconciling", true, reason: "Fetching", message: "fetching \(spec.ref) of \(spec.url)", now: now)
            }
            plan.actions.append(.fetch(apply: requested))
            plan.requeue(after: wait)
            if requested || retarget {
                plan.status = status
                return plan
            }
        } else if let nextFetch {
            plan.requeue(after: max(0, nextFetch.timeIntervalSince(now)))
        }

        if status.fetchFailures > 0 {
            // The message says why; what runs keeps running.
            status.conditions.set("Ready", false, reason: "FetchFailed", message: status.message ?? "the fetch failed", now: now)
            status.conditions.set("Reconciling", true, reason: "Retrying", message: "fetching again in \(Int(wait)) s", now: now)
            plan.status = status
            return plan
        }

        guard let attempted = status.lastAttempted else {
            plan.status = status
            return plan
        }
        if let error = observed.readError {
            status.message = error
            status.conditions.set("Ready", false, reason: "ReadFailed", message: error, now: now)
            plan.status = status
            return plan
        }
        switch observed.attempted {
        case .failure(let invalid)?:
            let message = "commit \(attempted.commit.prefix(12)) cannot be applied, so nothing of it was: \(invalid.message)"
                + (status.lastApplied.map { "; \($0.short) keeps running" } ?? "")
            status.error = message
            status.message = message
            plan.stall = ("InvalidRevision", message)
            status.conditions.set("Reconciling", false, reason: "InvalidRevision", message: "waiting for a commit that fixes it", now: now)
            status.observedGeneration = source.meta.generation
        case .success(let desired)?:
            status.error = nil
            let drift = desired.entries.contains { $0.action == "create" || $0.action == "update" || ($0.action == "delete" && spec.prune) }
            let newRevision = attempted.commit != status.lastApplied?.commit
            if newRevision || (drift && spec.selfHeal) {
                status.conditions.set("Reconciling", true, reason: "Applying", message: "applying \(attempted.short)", now: now)
                plan.actions.append(.apply)
            } else {
                conditions(&status, drift: drift, now: now)
                status.observedGeneration = source.meta.generation
            }
        case nil:
            break
        }
        plan.status = status
        return plan
    }

    /// Each object's sync state (from the plan of the revision that should run) and health.
    static func objects(_ status: inout SourceStatus, _ observed: SourceObservation, prune: Bool) {
        var plan: API.SetPlan?
        switch observed.attempted {
        case .success(let p)?: plan = p
        default: plan = observed.applied
        }
        let health = Dictionary(observed.members.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        guard let plan else {
            status.objects = observed.members.map { SourceObjectStatus(kind: $0.kind, name: $0.name, file: nil, sync: "Unknown", health: $0.health, healthMessage: $0.message) }
            return
        }
        var result: [SourceObjectStatus] = []
        for e in plan.entries {
            let h = health[e.key]
            var sync = "Synced"
            var message: String?
            switch e.action {
            case "create" where h == nil: sync = "OutOfSync"; message = "not applied yet"
            case "create", "update":
                sync = "OutOfSync"
                message = Self.difference(e.diff)
            case "delete":
                sync = "OutOfSync"
                message = "no longer in the repository" + (prune ? "; to be pruned" : " (prune is off)")
            default: break
            }
            result.append(SourceObjectStatus(kind: e.kind, name: e.name, file: e.file, sync: sync, health: h?.health ?? "Missing", message: message,
                                             healthMessage: h?.message))
        }
        // What the last apply pruned stays listed (as Pruned) until it is gone from view.
        for old in status.objects where old.sync == "Pruned" && !result.contains(where: { $0.kind == old.kind && $0.name == old.name }) {
            result.append(old)
        }
        status.objects = result
    }

    /// What differs, in words: the first changed property, here and in the repository.
    static func difference(_ diff: [String]) -> String {
        var here: [String: String] = [:]
        var order: [String] = []
        var there: [String: String] = [:]
        for line in diff {
            let body = line.dropFirst(2)
            guard let colon = body.range(of: ": ") else { continue }
            let path = String(body[..<colon.lowerBound])
            let value = String(body[colon.upperBound...])
            if !order.contains(path) { order.append(path) }
            if line.hasPrefix("- ") { here[path] = value } else if line.hasPrefix("+ ") { there[path] = value } else { here[path] = value }
        }
        guard let first = order.first else { return "differs from the repository" }
        let more = order.count > 1 ? " (and \(order.count - 1) more)" : ""
        switch (here[first], there[first]) {
        case (let a?, let b?): return "\(first) is \(a) here, \(b) in the repository\(more)"
        case (let a?, nil): return first.hasPrefix("(") ? "\(first): \(a)\(more)" : "\(first) is \(a) here, unset in the repository\(more)"
        case (nil, let b?): return "\(first) is unset here, \(b) in the repository\(more)"
        default: return "differs from the repository"
        }
    }

    /// Ready and Reconciling once nothing is left to apply: synced and healthy, or which object
    /// is not, and why.
    static func conditions(_ status: inout SourceStatus, drift: Bool, now: Date) {
        let live = status.objects.filter { $0.sync != "Pruned" }
        let revision = status.lastApplied?.short ?? "-"
        if let degraded = live.first(where: { $0.health == "Degraded" }) {
            let m = "\(degraded.kind.lowercased()) \(degraded.name) is degraded: \(degraded.healthMessage ?? "")"
            status.conditions.set("Ready", false, reason: "Degraded", message: m, now: now)
            status.conditions.set("Reconciling", false, reason: "Degraded", message: m, now: now)
            status.message = m
        } else if let progressing = live.first(where: { $0.health == "Progressing" || $0.health == "Missing" }) {
            let m = "\(progressing.kind.lowercased()) \(progressing.name) is \(progressing.health == "Missing" ? "missing" : "progressing"): \(progressing.healthMessage ?? progressing.message ?? "")"
            status.conditions.set("Ready", false, reason: "Progressing", message: m, now: now)
            status.conditions.set("Reconciling", true, reason: "Progressing", message: m, now: now)
            status.message = m
        } else if drift, let out = live.first(where: { $0.sync == "OutOfSync" && $0.message?.hasPrefix("no longer") != true }) {
            let m = "\(out.kind.lowercased()) \(out.name) is out of sync: \(out.message ?? "") (self-heal is off: `setpoint source sync` applies \(revision) again)"
            status.conditions.set("Ready", false, reason: "OutOfSync", message: m, now: now)
            status.conditions.set("Reconciling", false, reason: "OutOfSync", message: m, now: now)
            status.message = m
        } else {
            let m = "\(revision) applied: \(live.count) object(s) synced and healthy"
            status.conditions.set("Ready", true, reason: "Synced", message: m, now: now)
            status.conditions.set("Reconciling", false, reason: "Synced", message: m, now: now)
            status.message = m
        }
    }

    /// Folds a fetch: the revision (a new one clears the previous error), or the failure.
    public static func fetched(_ result: Result<SourceRevision, Error>, _ source: Source, _ plan: inout Plan<SourceStatus, SourceAction>, now: Date) {
        switch result {
        case .success(let revision):
            if plan.status.lastAttempted?.commit != revision.commit {
                plan.events.append(.normal("NewRevision", "fetched \(revision.short) (\(source.spec.ref))"))
                plan.status.error = nil
            }
            plan.status.lastAttempted = revision
            plan.status.fetchFailures = 0
            plan.status.target = target(source.spec)
        case .failure(let error):
            plan.status.fetchFailures += 1
            let m = "fetching \(source.spec.ref) of \(source.spec.url) failed: \((error as? BackendError)?.message ?? "\(error)")"
            if plan.status.message != m { plan.events.append(.warning("FetchFailed", m)) }
            plan.status.message = m
            plan.status.conditions.set("Ready", false, reason: "FetchFailed", message: m, now: now)
            plan.requeueAfter = fetchBackoff(failures: plan.status.fetchFailures, interval: source.spec.interval)
        }
    }

    /// Folds an apply: what it did (an event when anything changed), or why nothing was.
    public static func applied(_ result: Result<API.SetResult, SetInvalid>, _ source: Source, _ plan: inout Plan<SourceStatus, SourceAction>, now: Date) {
        guard let revision = plan.status.lastAttempted else { return }
        switch result {
        case .success(let done):
            plan.status.lastApplied = revision
            plan.status.lastAppliedAt = now
            plan.status.error = nil
            let count = { (action: String) in done.plan.entries.filter { $0.action == action }.count }
            let pruned = done.plan.entries.filter { $0.action == "delete" }
            plan.status.objects.removeAll { o in pruned.contains { $0.kind == o.kind && $0.name == o.name } }
            plan.status.objects += pruned.map { SourceObjectStatus(kind: $0.kind, name: $0.name, file: $0.file, sync: "Pruned", health: "Missing", message: "pruned by \(revision.short)") }
            let summary = [("created", count("create")), ("updated", count("update")), ("pruned", pruned.count)]
                .filter { $0.1 > 0 }.map { "\($0.1) \($0.0)" }.joined(separator: ", ")
            plan.events.append(.normal("Applied", "applied \(revision.short)" + (summary.isEmpty ? ": nothing to change" : ": " + summary)))
            // Ready again once the next look finds its objects synced and healthy.
            let waiting = "applied \(revision.short); waiting for its objects"
            plan.status.conditions.set("Reconciling", true, reason: "Progressing", message: waiting, now: now)
            plan.status.conditions.set("Ready", false, reason: "Progressing", message: waiting, now: now)
        case .failure(let invalid):
            let message = "commit \(revision.commit.prefix(12)) cannot be applied, so nothing of it was: \(invalid.message)"
                + (plan.status.lastApplied.map { "; \($0.short) keeps running" } ?? "")
            plan.status.error = message
            plan.status.message = message
            plan.stall = ("InvalidRevision", message)
            plan.events.append(.warning("InvalidRevision", message))
        }
    }
}

/// Converges a Source: fetches its repository with the real `git` client, applies each new
/// revision as one set, reports every object's sync state and health, corrects drift when it
/// heals itself, and lets go of (or deletes) its objects when it goes. The one shape: `observe`
/// reads (the mirror, the set's plan, the objects), `SourcePlanner` decides, `perform` fetches
/// and applies.
public struct SourceController: PlanningController {
    public typealias Kind = SourceKind

    let store: any ObjectStore
    let fetcher: any SourceFetcher
    let applier: any SetApplier
    let secrets: (any SecretResolver)?

    public init(store: any ObjectStore, fetcher: any SourceFetcher, applier: any SetApplier, secrets: (any SecretResolver)?) {
        self.store = store
        self.fetcher = fetcher
        self.applier = applier
        self.secrets = secrets
    }

    var sources: TypedStore<SourceKind> { TypedStore(store) }

    public func load(_ key: ObjectKey) async throws -> Source? { try await load(from: store, key) }

    public func observe(_ source: Source) async throws -> SourceObservation {
        var observed = SourceObservation(lastFetch: fetcher.lastFetch(source), members: try await applier.members(source))
        guard !source.meta.isDeleting, !source.spec.suspend || source.status.lastApplied != nil else { return observed }
        func planned(_ revision: SourceRevision) async throws -> Result<API.SetPlan, SetInvalid> {
            let checkout = try await fetcher.checkout(source, commit: revision.commit)
            do { return .success(try await applier.plan(source, checkout)) } catch let invalid as SetInvalid { return .failure(invalid) }
        }
        do {
            let target = source.spec.suspend ? source.status.lastApplied : source.status.lastAttempted
            if let revision = target {
                observed.attempted = try await planned(revision)
                if case .failure = observed.attempted, let applied = source.status.lastApplied, applied.commit != revision.commit,
                   case .success(let p) = try await planned(applied) {
                    observed.applied = p
                }
            }
        } catch let e as BackendError {
            observed.readError = e.message
        }
        return observed
    }

    public func plan(_ source: Source, _ observed: SourceObservation, now: Date) throws -> Plan<SourceStatus, SourceAction> {
        SourcePlanner.plan(source, observed, now: now)
    }

    public func perform(_ action: SourceAction, on source: inout Source, plan: inout Plan<SourceStatus, SourceAction>, now: Date) async throws {
        switch action {
        case .addFinalizer:
            source.meta.finalizers.append(Labels.sourceFinalizer)
            source = try await sources.update(source)
        case .fetch(let apply):
            do {
                let credentials = try await credentials(source)
                SourcePlanner.fetched(.success(try await fetcher.fetch(source, credentials: credentials)), source, &plan, now: now)
            } catch {
                SourcePlanner.fetched(.failure(error), source, &plan, now: now)
                return
            }
            if apply { try await applyAttempted(source, &plan, now: now) }
        case .apply:
            try await applyAttempted(source, &plan, now: now)
        case .cleanup(let delete):
            for member in try await applier.members(source) where !(delete && member.deleting) {
                try await applier.release(source, member, delete: delete)
            }
        case .removeFinalizer:
            await fetcher.forget(source)
            source.meta.finalizers.removeAll { $0 == Labels.sourceFinalizer }
            do { try await sources.update(source) } catch let e as StoreError where e.code == .notFound {}
        }
    }

    func applyAttempted(_ source: Source, _ plan: inout Plan<SourceStatus, SourceAction>, now: Date) async throws {
        guard let revision = plan.status.lastAttempted else { return }
        let checkout = try await fetcher.checkout(source, commit: revision.commit)
        var current = source
        current.status = plan.status
        do {
            SourcePlanner.applied(.success(try await applier.apply(current, checkout)), source, &plan, now: now)
        } catch let invalid as SetInvalid {
            SourcePlanner.applied(.failure(invalid), source, &plan, now: now)
        }
    }

    /// The credentials the spec names, from project secrets.
    func credentials(_ source: Source) async throws -> SourceCredentials {
        let names = [source.spec.tokenSecret, source.spec.sshKeySecret].compactMap { $0 }
        guard !names.isEmpty else { return SourceCredentials(knownHosts: source.spec.knownHosts) }
        guard let secrets else { throw BackendError(.invalid, "this server keeps no project secrets for the source's credentials") }
        let values = try await secrets.values(project: source.meta.project, names: names)
        return SourceCredentials(token: source.spec.tokenSecret.flatMap { values[$0] }, username: source.spec.username,
                                 sshKey: source.spec.sshKeySecret.flatMap { values[$0] }, knownHosts: source.spec.knownHosts)
    }

    public func writeStatus(_ source: Source) async throws { try await sources.updateStatus(source) }
}

/// The source controller in its shell.
public typealias SourceReconciler = PlanReconciler<SourceController>
