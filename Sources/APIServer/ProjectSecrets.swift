import Controllers
import Backend
import Crypto
import Foundation
import Model
import SetpointConfiguration
import Store

/// The server's secret, `<data-dir>/server-secret` (32 random bytes, created on first start,
/// mode 0600): the root of the gateways' credentials and of the project secrets' keys. Backing
/// up the data directory backs it up; losing it makes the sealed secrets unreadable.
public enum ServerSecret {
    /// The secret in `SETPOINT_SERVER_SECRET_FILE` (several servers sharing a database share
    /// one: a mounted Secret, say), else `<data-dir>/server-secret`, made on first start.
    public static func load(dataDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Data {
        if let file = environment["SETPOINT_SERVER_SECRET_FILE"], !file.isEmpty {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw RunService.StorageError(message: "SETPOINT_SERVER_SECRET_FILE: cannot read \(file)")
            }
            guard data.count >= 32 else {
                throw RunService.StorageError(message: "SETPOINT_SERVER_SECRET_FILE: \(file) has \(data.count) bytes; a server secret has at least 32 (head -c 32 /dev/urandom > FILE)")
            }
            return data
        }
        let path = dataDirectory + "/server-secret"
        if let data = FileManager.default.contents(atPath: path), data.count >= 32 { return data }
        var bytes = [UInt8](repeating: 0, count: 32)
        var g = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &g) }
        let data = Data(bytes)
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw RunService.StorageError(message: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        return data
    }
}

/// Seals and opens project secret values: AES-256-GCM under a key derived from the server
/// secret (HKDF-SHA256, its own label), the project and name bound in as authenticated data (a
/// sealed value copied to another name does not open), and an HMAC digest under a second
/// derived key.
public struct SecretBox: Sendable {
    let sealing: SymmetricKey
    let digesting: SymmetricKey

    public init(serverSecret: Data) {
        let root = SymmetricKey(data: serverSecret)
        sealing = HKDF<SHA256>.deriveKey(inputKeyMaterial: root, info: Data("setpoint project secrets: sealing v1".utf8), outputByteCount: 32)
        digesting = HKDF<SHA256>.deriveKey(inputKeyMaterial: root, info: Data("setpoint project secrets: digest v1".utf8), outputByteCount: 32)
    }

    static func context(project: String, name: String) -> Data { Data("\(project)\u{0}\(name)".utf8) }

    public func seal(_ value: String, project: String, name: String) throws -> (sealed: String, digest: String) {
        let box = try AES.GCM.seal(Data(value.utf8), using: sealing, authenticating: Self.context(project: project, name: name))
        guard let combined = box.combined else { throw RunService.StorageError(message: "cannot seal the secret \(name)") }
        return (combined.base64EncodedString(), digest(value, project: project, name: name))
    }

    public func open(_ sealed: String, project: String, name: String) throws -> String {
        guard let data = Data(base64Encoded: sealed), let box = try? AES.GCM.SealedBox(combined: data),
              let plain = try? AES.GCM.open(box, using: sealing, authenticating: Self.context(project: project, name: name)) else {
            throw BackendError(.invalid, "secret \(name) of project \(project) cannot be opened with this server's key (<data-dir>/server-secret changed?): set it again")
        }
        return String(decoding: plain, as: UTF8.self)
    }

    public func digest(_ value: String, project: String, name: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Self.context(project: project, name: name) + Data([0]) + Data(value.utf8), using: digesting)
        return mac.prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}

/// Project secrets over the store: set, list, delete for the API, and the resolver the replica
/// controller fills workloads with. Values leave only through `values(project:names:)`, into a
/// workload request.
public struct ProjectSecrets: SecretResolver {
    public let store: any ObjectStore
    public let box: SecretBox

    public init(store: any ObjectStore, box: SecretBox) {
        self.store = store
        self.box = box
    }

    var secrets: TypedStore<SecretKind> { TypedStore(store) }

    /// Creates or replaces the value. Setting the same value again writes nothing.
    public func set(project: String, name: String, value: String, user: String) async throws -> API.SecretInfo {
        guard SecretReferences.isValidName(name) else {
            throw RunService.Failure.invalid("invalid secret name `\(name)`: it must match `^[A-Za-z_][A-Za-z0-9_]*$` (at most 100 characters), the names `${{ secrets.NAME }}` can spell")
        }
        guard value.utf8.count <= 64 << 10 else { throw RunService.Failure.invalid("field `value`: a secret holds at most 64 KiB") }
        for _ in 0..<5 {
            let (sealed, digest) = try box.seal(value, project: project, name: name)
            do {
                if var current = try await secrets.get(project: project, name: name) {
                    if current.spec.digest == digest { return try await info(current) }
                    current.spec = SecretSpec(sealed: sealed, digest: digest, updatedBy: user, updatedAt: Date())
                    return try await info(try await secrets.update(current))
                }
                let created = try await secrets.create(ProjectSecret(project: project, name: name, spec: SecretSpec(sealed: sealed, digest: digest, updatedBy: user, updatedAt: Date())))
                return try await info(created)
            } catch let e as StoreError where e.code == .conflict || e.code == .alreadyExists {
                continue
            }
        }
        throw RunService.Failure.conflict("secret \(name) keeps changing; try again")
    }

    public func list(project: String) async throws -> [API.SecretInfo] {
        let runs = try await TypedStore<RunKind>(store).list(project: project)
        return try await secrets.list(project: project).sorted { $0.meta.name < $1.meta.name }.map { Self.info($0, runs: runs) }
    }

    public func delete(project: String, name: String) async throws -> API.SecretInfo {
        guard let gone = try await secrets.delete(project: project, name: name) else {
            throw RunService.Failure.notFound("secret \(name) not found in project \(project)")
        }
        return try await info(gone)
    }

    /// Names of the project's secrets.
    public func names(project: String) async throws -> Set<String> {
        Set(try await secrets.list(project: project).filter { !$0.meta.isDeleting }.map(\.meta.name))
    }

    public func values(project: String, names: [String]) async throws -> [String: String] {
        var result: [String: String] = [:]
        for name in names {
            guard let secret = try await secrets.get(project: project, name: name), !secret.meta.isDeleting else {
                throw BackendError(.invalid, "secret \(name) is not set in project \(project): `setpoint secret set \(name)` sets it")
            }
            result[name] = try box.open(secret.spec.sealed, project: project, name: name)
        }
        return result
    }

    func info(_ secret: ProjectSecret) async throws -> API.SecretInfo {
        Self.info(secret, runs: try await TypedStore<RunKind>(store).list(project: secret.meta.project))
    }

    static func info(_ secret: ProjectSecret, runs: [Run]) -> API.SecretInfo {
        let users = runs.filter { run in run.spec.configuration.secretReferences.uses.contains { $0.secret == secret.meta.name } }
            .map(\.meta.name).sorted()
        return API.SecretInfo(name: secret.meta.name, createdAt: secret.meta.createdAt, updatedAt: secret.spec.updatedAt ?? secret.meta.createdAt,
                              updatedBy: secret.spec.updatedBy, usedBy: users)
    }
}
