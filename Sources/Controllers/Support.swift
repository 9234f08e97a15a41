import Foundation
import Model
import Reconcile
import Store

/// Where the run controller reads a run's replicas: the informer cache in the server, the
/// store itself in step-by-step tests.
public protocol ReplicaSource: Sendable {
    func replicas(project: String, run: String) async throws -> [Replica]
}

public struct StoreReplicaSource: ReplicaSource {
    let store: any ObjectStore
    public init(_ store: any ObjectStore) { self.store = store }

    public func replicas(project: String, run: String) async throws -> [Replica] {
        try await TypedStore<ReplicaKind>(store).list(project: project, labels: [Labels.run: run])
    }
}

public struct InformerReplicaSource: ReplicaSource {
    let informer: Informer
    public init(_ informer: Informer) { self.informer = informer }

    public func replicas(project: String, run: String) async throws -> [Replica] {
        try informer.list(project: project, indexed: run).map(TypedStore<ReplicaKind>.decode)
    }
}

/// The digests of a project's secrets (name → digest), for the templates that refer to them.
public protocol SecretDigestSource: Sendable {
    func digests(project: String) async throws -> [String: String]
}

public struct StoreSecretDigests: SecretDigestSource {
    let store: any ObjectStore
    public init(_ store: any ObjectStore) { self.store = store }

    public func digests(project: String) async throws -> [String: String] {
        Dictionary(try await TypedStore<SecretKind>(store).list(project: project).map { ($0.meta.name, $0.spec.digest) },
                   uniquingKeysWith: { a, _ in a })
    }
}

public struct InformerSecretDigests: SecretDigestSource {
    let informer: Informer
    public init(_ informer: Informer) { self.informer = informer }

    public func digests(project: String) async throws -> [String: String] {
        var result: [String: String] = [:]
        for o in informer.list({ $0.meta.project == project }) {
            let secret = try TypedStore<SecretKind>.decode(o)
            if !secret.meta.isDeleting { result[secret.meta.name] = secret.spec.digest }
        }
        return result
    }
}

/// Fills in a workload's `${{ secrets.NAME }}` references just before the backend makes it:
/// the values (decrypted) exist only in the request, never in a stored object.
public protocol SecretResolver: Sendable {
    /// The values of `names` in `project`; a name the project does not have is an error that
    /// says which.
    func values(project: String, names: [String]) async throws -> [String: String]
}

extension StoreError {
    var isConflictOrMissing: Bool { code == .conflict || code == .notFound }
}
