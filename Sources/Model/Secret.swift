import Foundation

/// A project secret (`setpoint secret set NAME`), referred to as `${{ secrets.NAME }}` in a
/// service's `env` and `registry_auth`. The value is kept only sealed: `sealed` is AES-GCM
/// under a key derived from the server's secret (`<data-dir>/server-secret`), and `digest` an
/// HMAC of the value under another derived key, so a change of value changes the digest (and
/// rolls the services that use it) without the store holding anything a reader could turn back
/// into the value.
public struct SecretSpec: Codable, Equatable, Sendable {
    /// `base64(nonce ‖ ciphertext ‖ tag)`.
    public var sealed: String
    /// The first 16 hex digits of HMAC-SHA256(digest key, name ‖ value).
    public var digest: String
    /// Who set the value last.
    public var updatedBy: String?
    public var updatedAt: Date?

    public init(sealed: String, digest: String, updatedBy: String? = nil, updatedAt: Date? = nil) {
        self.sealed = sealed
        self.digest = digest
        self.updatedBy = updatedBy
        self.updatedAt = updatedAt
    }
}

public enum SecretKind: ObjectKind {
    public typealias Spec = SecretSpec
    public typealias Status = EmptyStatus
    public static let name = "Secret"
    public static let emptyStatus = EmptyStatus()
}

public typealias ProjectSecret = Object<SecretKind>

extension API {
    /// `PUT /api/v1/projects/{project}/secrets/{name}`.
    public struct SecretRequest: Codable, Sendable {
        public var value: String
        public init(value: String) { self.value = value }
    }

    /// A secret as the API shows it: never its value.
    public struct SecretInfo: Codable, Sendable, Equatable {
        public var name: String
        public var createdAt: Date
        public var updatedAt: Date
        public var updatedBy: String?
        /// Runs of the project whose configuration refers to it.
        public var usedBy: [String]

        public init(name: String, createdAt: Date, updatedAt: Date, updatedBy: String?, usedBy: [String]) {
            self.name = name
            self.createdAt = createdAt
            self.updatedAt = updatedAt
            self.updatedBy = updatedBy
            self.usedBy = usedBy
        }
    }
}
