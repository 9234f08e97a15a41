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

extension StoreError {
    var isConflictOrMissing: Bool { code == .conflict || code == .notFound }
}
