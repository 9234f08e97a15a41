import Foundation

/// Which revision of the repository a source follows: a branch (its newest commit), a tag, or
/// one commit.
public enum SourceRef: Codable, Equatable, Sendable, CustomStringConvertible {
    case branch(String)
    case tag(String)
    case commit(String)

    enum CodingKeys: String, CodingKey { case branch, tag, commit }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let b = try c.decodeIfPresent(String.self, forKey: .branch) { self = .branch(b) }
        else if let t = try c.decodeIfPresent(String.self, forKey: .tag) { self = .tag(t) }
        else if let s = try c.decodeIfPresent(String.self, forKey: .commit) { self = .commit(s) }
        else { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "expected one of `branch`, `tag`, `commit`")) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .branch(let b): try c.encode(b, forKey: .branch)
        case .tag(let t): try c.encode(t, forKey: .tag)
        case .commit(let s): try c.encode(s, forKey: .commit)
        }
    }

    public var description: String {
        switch self {
        case .branch(let b): return "branch \(b)"
        case .tag(let t): return "tag \(t)"
        case .commit(let s): return "commit \(s.prefix(12))"
        }
    }
}

/// A Git repository of configurations the server keeps applied (Argo CD's Application, Flux's
/// GitRepository plus Kustomization): which repository and revision, which folder, how often,
/// and what to do about objects removed from it and changes made by hand.
public struct SourceSpec: Codable, Equatable, Sendable {
    /// `https://…`, `ssh://…`, `git@host:path`, `git://…` or a local path (`file://…`).
    public var url: String
    public var ref: SourceRef
    /// The folder of the repository whose configurations are applied (nil: all of it).
    public var path: String?
    /// Seconds between fetches.
    public var interval: Int
    /// Delete the objects it applied that the repository no longer has.
    public var prune: Bool
    /// Apply again when an object it applied was changed by other means (drift).
    public var selfHeal: Bool
    /// Neither fetch nor apply; what runs keeps running.
    public var suspend: Bool
    /// Project secrets holding the credentials: an HTTPS token (sent as Basic auth with
    /// `username`), an SSH private key (with `knownHosts`, the server's host keys).
    public var tokenSecret: String?
    public var username: String?
    public var sshKeySecret: String?
    public var knownHosts: String?
    /// The project secret webhooks are checked with (HMAC for GitHub and Gitea, the token for
    /// GitLab); nil: no webhook.
    public var webhookSecret: String?
    /// Raised by each `source sync` and accepted webhook: while it is above the status's
    /// `handledSyncRequest`, the source fetches (and applies) now.
    public var syncRequest: Int64
    /// When the last sync was asked for.
    public var syncRequestedAt: Date?
    /// Delete the source's objects with it (`source delete --cascade`).
    public var cascade: Bool
    public var createdBy: String?

    public init(url: String, ref: SourceRef = .branch("main"), path: String? = nil, interval: Int = 60, prune: Bool = false,
                selfHeal: Bool = false, suspend: Bool = false, tokenSecret: String? = nil, username: String? = nil,
                sshKeySecret: String? = nil, knownHosts: String? = nil, webhookSecret: String? = nil, syncRequest: Int64 = 0, syncRequestedAt: Date? = nil,
                cascade: Bool = false, createdBy: String? = nil) {
        self.url = url
        self.ref = ref
        self.path = path
        self.interval = interval
        self.prune = prune
        self.selfHeal = selfHeal
        self.suspend = suspend
        self.tokenSecret = tokenSecret
        self.username = username
        self.sshKeySecret = sshKeySecret
        self.knownHosts = knownHosts
        self.webhookSecret = webhookSecret
        self.syncRequest = syncRequest
        self.syncRequestedAt = syncRequestedAt
        self.cascade = cascade
        self.createdBy = createdBy
    }
}

/// One object a source applies, as the source sees it.
public struct SourceObjectStatus: Codable, Equatable, Sendable {
    /// `Run` or `Gateway`.
    public var kind: String
    public var name: String
    public var file: String?
    /// `Synced` (as the revision says), `OutOfSync` (changed by hand, not applied yet, or no
    /// longer in the repository with prune off), `Pruned` (deleted by the last apply).
    public var sync: String
    /// `Healthy`, `Progressing`, `Degraded`, or `Missing` (not there).
    public var health: String
    /// Why it is out of sync (what differs).
    public var message: String?
    /// Why it is not healthy (the run's own words).
    public var healthMessage: String?

    public init(kind: String, name: String, file: String?, sync: String, health: String, message: String? = nil, healthMessage: String? = nil) {
        self.healthMessage = healthMessage
        self.kind = kind
        self.name = name
        self.file = file
        self.sync = sync
        self.health = health
        self.message = message
    }
}

/// A commit as the source reports it.
public struct SourceRevision: Codable, Equatable, Sendable {
    public var commit: String
    public var subject: String
    public var author: String
    public var date: Date?

    public init(commit: String, subject: String = "", author: String = "", date: Date? = nil) {
        self.commit = commit
        self.subject = subject
        self.author = author
        self.date = date
    }

    /// `abc123def456 "subject"`.
    public var short: String { "\(commit.prefix(12))" + (subject.isEmpty ? "" : " \"\(subject)\"") }
}

public struct SourceStatus: Codable, Equatable, Sendable, ConditionedStatus {
    /// The newest revision fetched (the one the source wants applied).
    public var lastAttempted: SourceRevision?
    /// The revision whose configurations were last applied (what runs).
    public var lastApplied: SourceRevision?
    public var lastAppliedAt: Date?
    /// Why the last attempted revision cannot be applied: `commit: file:line: property: message`.
    public var error: String?
    public var objects: [SourceObjectStatus]
    public var message: String?
    /// The last `syncRequest` handled.
    public var handledSyncRequest: Int64
    /// Consecutive failed fetches (their backoff).
    public var fetchFailures: Int
    /// What was fetched (`url#ref#path`): a change of any of them fetches again at once.
    public var target: String?
    public var conditions: [Condition]
    public var observedGeneration: Int64

    public init(lastAttempted: SourceRevision? = nil, lastApplied: SourceRevision? = nil, lastAppliedAt: Date? = nil, error: String? = nil,
                objects: [SourceObjectStatus] = [], message: String? = nil, handledSyncRequest: Int64 = 0, fetchFailures: Int = 0,
                conditions: [Condition] = [], observedGeneration: Int64 = 0) {
        self.lastAttempted = lastAttempted
        self.lastApplied = lastApplied
        self.lastAppliedAt = lastAppliedAt
        self.error = error
        self.objects = objects
        self.message = message
        self.handledSyncRequest = handledSyncRequest
        self.fetchFailures = fetchFailures
        self.conditions = conditions
        self.observedGeneration = observedGeneration
    }

    public mutating func noteRefusal(reason: String, message: String, now: Date) {
        conditions.set("Ready", false, reason: reason, message: message, now: now)
        self.message = message
    }
}

public enum SourceKind: ObjectKind {
    public typealias Spec = SourceSpec
    public typealias Status = SourceStatus
    public static let name = "Source"
    public static let emptyStatus = SourceStatus()
}

public typealias Source = Object<SourceKind>

extension Labels {
    /// A source lets go of its objects (or deletes them, with `cascade`) before it goes.
    public static let sourceFinalizer = "setpoint.dev/source-cleanup"
}

extension API {
    /// `POST /api/v1/projects/{project}/sources/apply`: create or change a source.
    public struct SourceRequest: Codable, Sendable, Equatable {
        public var name: String
        public var spec: SourceSpec
        public init(name: String, spec: SourceSpec) {
            self.name = name
            self.spec = spec
        }
    }

    public struct SourceView: Codable, Sendable {
        public var project: String
        public var name: String
        public var generation: Int64
        public var resourceVersion: Int64
        public var createdAt: Date
        public var deleting: Bool
        public var spec: SourceSpec
        public var status: SourceStatus
        /// Where pushes are sent (relative to the server's address), when webhooks are on.
        public var webhookPath: String?

        public init(project: String, name: String, generation: Int64, resourceVersion: Int64, createdAt: Date, deleting: Bool,
                    spec: SourceSpec, status: SourceStatus, webhookPath: String?) {
            self.project = project
            self.name = name
            self.generation = generation
            self.resourceVersion = resourceVersion
            self.createdAt = createdAt
            self.deleting = deleting
            self.spec = spec
            self.status = status
            self.webhookPath = webhookPath
        }
    }
}
