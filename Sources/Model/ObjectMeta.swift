import Foundation

/// The identity of a stored object: what a work queue holds and a reconcile starts from.
public struct ObjectKey: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public var kind: String
    public var project: String
    public var name: String

    public init(kind: String, project: String, name: String) {
        self.kind = kind
        self.project = project
        self.name = name
    }

    public var description: String { "\(kind)/\(project)/\(name)" }

    public static func < (a: ObjectKey, b: ObjectKey) -> Bool {
        (a.kind, a.project, a.name) < (b.kind, b.project, b.name)
    }
}

public struct OwnerReference: Hashable, Sendable, Codable {
    public var kind: String
    public var name: String
    public var uid: String

    public init(kind: String, name: String, uid: String) {
        self.kind = kind
        self.name = name
        self.uid = uid
    }
}

/// Metadata every stored object carries (Kubernetes' ObjectMeta, trimmed to what Setpoint uses).
public struct ObjectMeta: Hashable, Sendable, Codable {
    public var kind: String
    public var project: String
    public var name: String
    public var uid: String
    /// Bumped by the store when the spec changes; status writes never touch it.
    public var generation: Int64
    /// Bumped by the store on every write; the optimistic-concurrency token and watch position.
    public var resourceVersion: Int64
    public var createdAt: Date
    public var labels: [String: String]
    public var ownerReferences: [OwnerReference]
    /// While non-empty, a delete only sets `deletionTimestamp`; the object goes when the last
    /// finalizer is removed.
    public var finalizers: [String]
    public var deletionTimestamp: Date?

    public init(kind: String, project: String, name: String, uid: String = UUID().uuidString.lowercased(),
                generation: Int64 = 0, resourceVersion: Int64 = 0, createdAt: Date = Date(timeIntervalSince1970: 0),
                labels: [String: String] = [:], ownerReferences: [OwnerReference] = [], finalizers: [String] = [],
                deletionTimestamp: Date? = nil) {
        self.kind = kind
        self.project = project
        self.name = name
        self.uid = uid
        self.generation = generation
        self.resourceVersion = resourceVersion
        self.createdAt = createdAt
        self.labels = labels
        self.ownerReferences = ownerReferences
        self.finalizers = finalizers
        self.deletionTimestamp = deletionTimestamp
    }

    public var key: ObjectKey { ObjectKey(kind: kind, project: project, name: name) }
    public var isDeleting: Bool { deletionTimestamp != nil }
}

/// A status condition (`Ready`, `Progressing`, `Degraded`, `Stalled`).
public struct Condition: Hashable, Sendable, Codable {
    public var type: String
    /// `True`, `False` or `Unknown`.
    public var status: String
    /// CamelCase, machine-readable.
    public var reason: String
    public var message: String
    /// Changes only when `status` flips.
    public var lastTransitionTime: Date

    public init(type: String, status: String, reason: String, message: String, lastTransitionTime: Date) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastTransitionTime = lastTransitionTime
    }
}

extension Array where Element == Condition {
    /// Sets a condition, keeping `lastTransitionTime` unless the status flips.
    public mutating func set(_ type: String, _ status: Bool?, reason: String, message: String, now: Date) {
        let text = status.map { $0 ? "True" : "False" } ?? "Unknown"
        if let i = firstIndex(where: { $0.type == type }) {
            let flipped = self[i].status != text
            self[i] = Condition(type: type, status: text, reason: reason, message: message,
                                lastTransitionTime: flipped ? now : self[i].lastTransitionTime)
        } else {
            append(Condition(type: type, status: text, reason: reason, message: message, lastTransitionTime: now))
        }
    }

    public subscript(type: String) -> Condition? { first { $0.type == type } }
}

/// A status with Kubernetes-style conditions, so the shell can say `Stalled` and which
/// generation the status describes.
public protocol ConditionedStatus: Equatable, Sendable {
    var conditions: [Condition] { get set }
    var observedGeneration: Int64 { get set }
    /// Says that an action was refused (`Ready` false with the reason); a status with a
    /// message of its own puts it there too.
    mutating func noteRefusal(reason: String, message: String, now: Date)
}

extension ConditionedStatus {
    public mutating func noteRefusal(reason: String, message: String, now: Date) {
        conditions.set("Ready", false, reason: reason, message: message, now: now)
    }
}

/// A kind of stored object with a typed spec and status.
public protocol ObjectKind: Sendable {
    associatedtype Spec: Codable & Equatable & Sendable
    associatedtype Status: Codable & Equatable & Sendable
    static var name: String { get }
    static var emptyStatus: Status { get }
}

/// A typed stored object.
public struct Object<Kind: ObjectKind>: Sendable, Equatable {
    public var meta: ObjectMeta
    public var spec: Kind.Spec
    public var status: Kind.Status

    public init(meta: ObjectMeta, spec: Kind.Spec, status: Kind.Status = Kind.emptyStatus) {
        self.meta = meta
        self.spec = spec
        self.status = status
    }

    /// A new object of this kind, ready to be created.
    public init(project: String, name: String, labels: [String: String] = [:], owner: OwnerReference? = nil,
                finalizers: [String] = [], spec: Kind.Spec) {
        self.meta = ObjectMeta(kind: Kind.name, project: project, name: name, labels: labels,
                               ownerReferences: owner.map { [$0] } ?? [], finalizers: finalizers)
        self.spec = spec
        self.status = Kind.emptyStatus
    }

    public var key: ObjectKey { meta.key }
    public var ownerReference: OwnerReference { OwnerReference(kind: Kind.name, name: meta.name, uid: meta.uid) }
}
