import Foundation
import Model

/// An object as the store keeps it: metadata plus spec and status as canonical JSON bytes.
public struct StoredObject: Sendable, Equatable {
    public var meta: ObjectMeta
    public var spec: Data
    public var status: Data

    public init(meta: ObjectMeta, spec: Data, status: Data) {
        self.meta = meta
        self.spec = spec
        self.status = status
    }

    public var key: ObjectKey { meta.key }
}

public enum WatchEventType: String, Sendable, Codable {
    case added, modified, deleted
}

/// One change in the store's feed; `object.meta.resourceVersion` is the change's position.
public struct WatchEvent: Sendable, Equatable {
    public var type: WatchEventType
    public var object: StoredObject

    public init(type: WatchEventType, object: StoredObject) {
        self.type = type
        self.object = object
    }

    public var resourceVersion: Int64 { object.meta.resourceVersion }
}

public struct ListResult: Sendable {
    public var items: [StoredObject]
    /// The store's position when the list was taken: watch from here to miss nothing.
    public var resourceVersion: Int64

    public init(items: [StoredObject], resourceVersion: Int64) {
        self.items = items
        self.resourceVersion = resourceVersion
    }
}

/// What may go wrong in the store, as a struct with a code so it can grow.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The write's `resourceVersion` precondition did not match: re-read and retry.
        case conflict
        case notFound
        case alreadyExists
        /// The watch position is older than the retained change feed: list again.
        case resourceVersionTooOld
        case invalid
        case unavailable
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

public struct ListOptions: Sendable {
    public var kind: String
    public var project: String?
    /// Every label must match (equality selector).
    public var labels: [String: String]

    public init(kind: String, project: String? = nil, labels: [String: String] = [:]) {
        self.kind = kind
        self.project = project
        self.labels = labels
    }

    func matches(_ meta: ObjectMeta) -> Bool {
        meta.kind == kind && (project == nil || meta.project == project)
            && labels.allSatisfy { meta.labels[$0.key] == $0.value }
    }
}

/// Desired state, with optimistic concurrency and a change feed (Kubernetes API semantics).
///
/// - `create` fails with `alreadyExists`; it sets `uid`, `generation` 1 and `createdAt`.
/// - `update` writes metadata (labels, owners, finalizers) and spec; it requires the stored
///   `resourceVersion` (`conflict` otherwise), ignores the given status, and bumps `generation`
///   only when the spec changes. A write that changes nothing is not written.
/// - `updateStatus` writes only the status, with the same precondition; `generation` stays.
/// - `delete` of an object with finalizers only sets `deletionTimestamp`; the object goes when an
///   update removes its last finalizer.
/// - `watch(from:)` streams every change after the given position, in order; a position older
///   than the retained feed fails with `resourceVersionTooOld`, and the caller lists again.
public protocol ObjectStore: Sendable {
    func get(_ key: ObjectKey) async throws -> StoredObject?
    func list(_ options: ListOptions) async throws -> ListResult
    func create(_ object: StoredObject) async throws -> StoredObject
    func update(_ object: StoredObject) async throws -> StoredObject
    func updateStatus(_ object: StoredObject) async throws -> StoredObject
    func delete(_ key: ObjectKey, resourceVersion: Int64?) async throws -> StoredObject?
    func watch(kind: String?, from resourceVersion: Int64) -> AsyncThrowingStream<WatchEvent, Error>
    /// Writes performed so far (for benchmarks and tests).
    func writeCount() async -> Int
}

extension ObjectStore {
    public func delete(_ key: ObjectKey) async throws -> StoredObject? {
        try await delete(key, resourceVersion: nil)
    }
}

/// A store whose whole content can be read and written as it is (`setpoint store copy`): every
/// object with its metadata (uid, generation, resourceVersion, timestamps, finalizers) and the
/// store's version, so a copy continues where the original stopped.
public protocol CopyableStore: ObjectStore {
    /// Every object, and the version they are at, as one consistent snapshot.
    func snapshot() async throws -> (objects: [StoredObject], version: Int64)
    /// Writes `objects` exactly as given into this store, which must hold no object, and sets
    /// its version; the change feed starts there (older watch positions list again).
    func restore(_ objects: [StoredObject], version: Int64) async throws
}
