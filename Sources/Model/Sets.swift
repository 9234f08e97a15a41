import Foundation
import SetpointConfiguration

extension Labels {
    /// The set an object was applied in (`apply --set`, a source): its inventory. Pruning
    /// deletes only objects that carry the set's name.
    public static let set = "setpoint.dev/set"
    /// On objects a source applies: the source's name. Such objects are managed by it.
    public static let source = "setpoint.dev/source"
}

extension API {
    /// One configuration of a set: its text as written and where it came from.
    public struct SetDocument: Codable, Sendable, Equatable {
        public var file: String
        /// The `.dstack.yml` text of one document.
        public var configuration: String
        /// The code archive (a hash of `archives`) the service runs in, if any.
        public var code: String?

        public init(file: String, configuration: String, code: String? = nil) {
            self.file = file
            self.configuration = configuration
            self.code = code
        }
    }

    /// `POST /api/v1/projects/{project}/sets/plan` and `…/sets/apply`: several configurations
    /// validated together and applied as one unit.
    public struct SetRequest: Codable, Sendable {
        /// The set's name: its objects carry it, and `prune` deletes the set's objects that are
        /// no longer in `documents`. `nil`: the objects join no set (a plain apply of many).
        public var set: String?
        public var documents: [SetDocument]
        /// Code archives by SHA-256, base64 (a repository shared by many services travels once).
        public var archives: [String: String]
        /// Values for `env` names without a value, and `-e` overrides (every service).
        public var env: [String: String]
        public var prune: Bool
        /// Apply even when objects moved since the plan.
        public var force: Bool
        /// From the plan: each object's version (`Run/web` → version; 0: it did not exist).
        /// Apply refuses (409) when any differs, unless `force`.
        public var expected: [String: Int64]?

        public init(set: String? = nil, documents: [SetDocument], archives: [String: String] = [:], env: [String: String] = [:],
                    prune: Bool = false, force: Bool = false, expected: [String: Int64]? = nil) {
            self.set = set
            self.documents = documents
            self.archives = archives
            self.env = env
            self.prune = prune
            self.force = force
            self.expected = expected
        }

        enum CodingKeys: String, CodingKey { case set, documents, archives, env, prune, force, expected }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            set = try c.decodeIfPresent(String.self, forKey: .set)
            documents = try c.decode([SetDocument].self, forKey: .documents)
            archives = try c.decodeIfPresent([String: String].self, forKey: .archives) ?? [:]
            env = try c.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
            prune = try c.decodeIfPresent(Bool.self, forKey: .prune) ?? false
            force = try c.decodeIfPresent(Bool.self, forKey: .force) ?? false
            expected = try c.decodeIfPresent([String: Int64].self, forKey: .expected)
        }
    }

    /// What a set plan does to one object.
    public struct SetEntry: Codable, Sendable, Equatable {
        /// `Run` or `Gateway`.
        public var kind: String
        public var name: String
        /// The file it comes from (none for a deletion).
        public var file: String?
        /// `create`, `update`, `unchanged` or `delete` (pruned).
        public var action: String
        /// The normalized configuration's differences, one property per line: `- path: old`,
        /// `+ path: new` (secrets hidden).
        public var diff: [String]
        /// For runs: how the change is applied (in place, rolling, recreate).
        public var changes: Changes?
        /// The object's version now (nil: it does not exist).
        public var resourceVersion: Int64?
        /// Something to know (a run managed by a source, a gateway other services use).
        public var note: String?

        public init(kind: String, name: String, file: String?, action: String, diff: [String] = [], changes: Changes? = nil,
                    resourceVersion: Int64? = nil, note: String? = nil) {
            self.kind = kind
            self.name = name
            self.file = file
            self.action = action
            self.diff = diff
            self.changes = changes
            self.resourceVersion = resourceVersion
            self.note = note
        }

        /// `Run/web`: the key of `SetRequest.expected`.
        public var key: String { "\(kind)/\(name)" }
    }

    public struct SetPlan: Codable, Sendable {
        public var project: String
        public var user: String
        public var set: String?
        public var prune: Bool
        /// In the order apply goes: gateways, services, then deletions (services first).
        public var entries: [SetEntry]

        public init(project: String, user: String, set: String?, prune: Bool, entries: [SetEntry]) {
            self.project = project
            self.user = user
            self.set = set
            self.prune = prune
            self.entries = entries
        }

        /// Whether applying would change anything.
        public var inSync: Bool { entries.allSatisfy { $0.action == "unchanged" } }

        /// The versions apply checks.
        public var expected: [String: Int64] {
            Dictionary(entries.map { ($0.key, $0.resourceVersion ?? 0) }, uniquingKeysWith: { a, _ in a })
        }
    }

    public struct SetResult: Codable, Sendable {
        public var plan: SetPlan
        public var runs: [Run]
        public var gateways: [Gateway]

        public init(plan: SetPlan, runs: [Run], gateways: [Gateway]) {
            self.plan = plan
            self.runs = runs
            self.gateways = gateways
        }
    }
}
