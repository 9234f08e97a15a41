import Foundation

/// A user of the server: a global role, project roles, and the SHA-256 of their token (the token
/// itself is never stored). Users live in the `_system` project.
public struct UserSpec: Codable, Equatable, Sendable {
    public var globalRole: String
    /// Hex SHA-256 of the token.
    public var tokenHash: String
    /// Project name → `admin`, `manager` or `user`.
    public var projectRoles: [String: String]

    public init(globalRole: String, tokenHash: String, projectRoles: [String: String]) {
        self.globalRole = globalRole
        self.tokenHash = tokenHash
        self.projectRoles = projectRoles
    }
}

public enum UserKind: ObjectKind {
    public typealias Spec = UserSpec
    public typealias Status = EmptyStatus
    public static let name = "User"
    public static let emptyStatus = EmptyStatus()
}

public typealias User = Object<UserKind>

public struct ProjectSpec: Codable, Equatable, Sendable {
    public var description: String
    public init(description: String = "") { self.description = description }
}

public enum ProjectKind: ObjectKind {
    public typealias Spec = ProjectSpec
    public typealias Status = EmptyStatus
    public static let name = "Project"
    public static let emptyStatus = EmptyStatus()
}

public typealias Project = Object<ProjectKind>

/// Where server-wide objects (users, projects) live.
public let systemProject = "_system"
