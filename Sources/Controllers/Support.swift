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

/// Records Events: what a controller decided, about which object, and why.
public struct EventRecorder: Sendable {
    let store: any ObjectStore
    let clock: any ControllerClock
    let component: String

    public init(store: any ObjectStore, clock: any ControllerClock, component: String) {
        self.store = store
        self.clock = clock
        self.component = component
    }

    public func record(_ involved: ObjectKey, warning: Bool, reason: String, message: String) async {
        let now = clock.now()
        let name = "\(involved.name).\(Int64(now.timeIntervalSince1970 * 1000)).\(UInt32.random(in: 0...UInt32.max))"
        let event = Event(project: involved.project, name: name, labels: ["setpoint.dev/involved": involved.name, "setpoint.dev/component": component],
                          spec: EventSpec(involved: involved, type: warning ? "Warning" : "Normal", reason: reason,
                                          message: message, firstTimestamp: now, lastTimestamp: now))
        _ = try? await TypedStore<EventKind>(store).create(event)
    }
}

extension StoreError {
    var isConflictOrMissing: Bool { code == .conflict || code == .notFound }
}
