import Crypto
import Foundation
import Model
import SetpointConfiguration
import Store
import Synchronization

/// Bearer-token authentication and project roles. Tokens are stored only as SHA-256 hashes;
/// the index of users is kept in memory and reloaded when users change.
public final class Authenticator: Sendable {
    public struct Principal: Sendable, Equatable {
        public var name: String
        public var globalRole: String
        public var projectRoles: [String: String]

        /// The user's role in `project`: global admins are admins everywhere.
        public func role(in project: String) -> String? {
            globalRole == "admin" ? "admin" : projectRoles[project]
        }
    }

    public enum Decision: Sendable, Equatable {
        case allowed(Principal)
        /// No token, or a token nobody has: 401.
        case unauthenticated
        /// A valid token without a role in the project: 403.
        case forbidden(Principal)
    }

    private let store: any ObjectStore
    private let index = Mutex<[String: Principal]>([:])

    public init(store: any ObjectStore) {
        self.store = store
    }

    public static func hash(_ token: String) -> String {
        hash(data: Data(token.utf8))
    }

    /// Hex SHA-256.
    public static func hash(data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// A new random token (256 bits, hex).
    public static func newToken() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    public func reload() async throws {
        let users = try await TypedStore<UserKind>(store).list(project: systemProject)
        let fresh = Dictionary(users.map { u in
            (u.spec.tokenHash, Principal(name: u.meta.name, globalRole: u.spec.globalRole, projectRoles: u.spec.projectRoles))
        }, uniquingKeysWith: { a, _ in a })
        index.withLock { $0 = fresh }
    }

    /// Keeps the token index current with users written by any server on the same database
    /// (this server's own writes reload it at once too). Until cancelled.
    public func follow() async {
        var position: Int64?
        while !Task.isCancelled {
            do {
                if position == nil {
                    let listed = try await store.list(ListOptions(kind: UserKind.name, project: systemProject))
                    try await reload()
                    position = listed.resourceVersion
                }
                for try await event in store.watch(kind: UserKind.name, from: position ?? 0) {
                    position = event.resourceVersion
                    try await reload()
                }
                // The feed ended (the store is closing): look again in a moment.
                try? await Task.sleep(for: .seconds(1))
            } catch let e as StoreError where e.code == .resourceVersionTooOld {
                position = nil
            } catch {
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// The principal for an `Authorization` header value.
    public func principal(authorization: String?) -> Principal? {
        guard let header = authorization, header.lowercased().hasPrefix("bearer ") else { return nil }
        let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty else { return nil }
        let hash = Self.hash(token)
        return index.withLock { $0[hash] }
    }

    public func authorize(authorization: String?, project: String) -> Decision {
        guard let principal = principal(authorization: authorization) else { return .unauthenticated }
        return principal.role(in: project) == nil ? .forbidden(principal) : .allowed(principal)
    }

    public static let roles = ["admin", "manager", "user"]

    /// Creates a user with a new token (returned once); names follow the run-name rule.
    public func createUser(_ request: API.UserRequest) async throws -> API.UserInfo {
        guard ResourceName.isValid(request.name) else {
            throw RunService.Failure.invalid("invalid user name `\(request.name)`: it must match `^[a-z][a-z0-9-]{1,40}$`")
        }
        let global = request.globalRole ?? "user"
        guard global == "admin" || global == "user" else { throw RunService.Failure.invalid("globalRole must be `admin` or `user`") }
        for (project, role) in request.projects {
            guard Self.roles.contains(role) else {
                throw RunService.Failure.invalid("role `\(role)` for project \(project): use one of \(Self.roles.joined(separator: ", "))")
            }
            guard ResourceName.isValid(project) else { throw RunService.Failure.invalid("invalid project name `\(project)`") }
            guard try await projectExists(project) else {
                throw RunService.Failure.notFound("project \(project) does not exist: create it first (`setpoint project create \(project)`)")
            }
        }
        let token = Self.newToken()
        do {
            try await TypedStore<UserKind>(store).create(User(project: systemProject, name: request.name,
                spec: UserSpec(globalRole: global, tokenHash: Self.hash(token), projectRoles: request.projects)))
        } catch let e as StoreError where e.code == .alreadyExists {
            throw RunService.Failure.conflict("user \(request.name) already exists")
        }
        try await reload()
        return API.UserInfo(name: request.name, globalRole: global, projects: request.projects, token: token)
    }

    /// Deletes a user: their token stops working here at once, and on gateways with the next
    /// feed snapshot (within a second).
    public func deleteUser(_ name: String) async throws -> API.UserInfo {
        guard let user = try await TypedStore<UserKind>(store).delete(project: systemProject, name: name) else {
            throw RunService.Failure.notFound("user \(name) not found")
        }
        try await reload()
        return API.UserInfo(name: name, globalRole: user.spec.globalRole, projects: user.spec.projectRoles, token: nil)
    }

    public func projectExists(_ name: String) async throws -> Bool {
        try await TypedStore<ProjectKind>(store).get(project: systemProject, name: name) != nil
    }

    /// Creates a project (names follow the run-name rule).
    public func createProject(_ request: API.ProjectRequest) async throws -> API.ProjectInfo {
        guard ResourceName.isValid(request.name) else {
            throw RunService.Failure.invalid("invalid project name `\(request.name)`: it must match `^[a-z][a-z0-9-]{1,40}$`")
        }
        let spec = ProjectSpec(description: request.description ?? "")
        do {
            try await TypedStore<ProjectKind>(store).create(Project(project: systemProject, name: request.name, spec: spec))
        } catch let e as StoreError where e.code == .alreadyExists {
            throw RunService.Failure.conflict("project \(request.name) already exists")
        }
        return API.ProjectInfo(name: request.name, description: spec.description)
    }

    /// The projects `principal` has a role in (every project for a global admin).
    public func listProjects(visibleTo principal: Principal) async throws -> [API.ProjectInfo] {
        try await TypedStore<ProjectKind>(store).list(project: systemProject)
            .filter { principal.role(in: $0.meta.name) != nil }
            .map { API.ProjectInfo(name: $0.meta.name, description: $0.spec.description) }
            .sorted { $0.name < $1.name }
    }

    public func listUsers() async throws -> [API.UserInfo] {
        try await TypedStore<UserKind>(store).list(project: systemProject).map {
            API.UserInfo(name: $0.meta.name, globalRole: $0.spec.globalRole, projects: $0.spec.projectRoles, token: nil)
        }
    }

    /// First start: the admin user (token from `SETPOINT_ADMIN_TOKEN` or generated), the
    /// project `main`. Returns the admin token when it was generated or set now (and whether it
    /// was generated), so the caller can write it to `<data-dir>/admin-token` and show a
    /// generated one once.
    public func bootstrap(adminToken: String?) async throws -> (token: String, generated: Bool)? {
        do { return try await bootstrapOnce(adminToken: adminToken) } catch let e as StoreError where e.code == .alreadyExists || e.code == .conflict {
            // Another server on the same database did it at the same moment: its objects stand.
            return try await bootstrapOnce(adminToken: adminToken)
        }
    }

    private func bootstrapOnce(adminToken: String?) async throws -> (token: String, generated: Bool)? {
        let users = TypedStore<UserKind>(store)
        let projects = TypedStore<ProjectKind>(store)
        if try await projects.get(project: systemProject, name: "main") == nil {
            try await projects.create(Project(project: systemProject, name: "main", spec: ProjectSpec(description: "default project")))
        }
        var result: (String, Bool)?
        if var admin = try await users.get(project: systemProject, name: "admin") {
            if let adminToken, admin.spec.tokenHash != Self.hash(adminToken) {
                admin.spec.tokenHash = Self.hash(adminToken)
                try await users.update(admin)
                result = (adminToken, false)
            }
        } else {
            let token = adminToken ?? Self.newToken()
            try await users.create(User(project: systemProject, name: "admin",
                                        spec: UserSpec(globalRole: "admin", tokenHash: Self.hash(token), projectRoles: ["main": "admin"])))
            result = (token, adminToken == nil)
        }
        try await reload()
        return result
    }
}
