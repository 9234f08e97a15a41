import Foundation
import Model

/// A store that applies `StoreSemantics` rules atomically (read the current object, decide,
/// write, publish) gets the write methods of `ObjectStore` from this extension, so the
/// implementations differ only in how they hold objects.
public protocol RuleApplyingStore: ObjectStore {
    /// The time used for `createdAt` and `deletionTimestamp`.
    func currentTime() -> Date
    /// Reads the object at `key`, applies `rule` with the next resourceVersion, persists and
    /// publishes the outcome, all atomically.
    func apply(_ key: ObjectKey, _ rule: @escaping (StoredObject?, Int64) throws -> StoreSemantics.Outcome) async throws -> StoredObject
}

extension RuleApplyingStore {
    public func create(_ object: StoredObject) async throws -> StoredObject {
        let time = currentTime()
        return try await apply(object.key) { existing, version in
            try StoreSemantics.create(object, existing: existing, version: version, now: time)
        }
    }

    public func update(_ object: StoredObject) async throws -> StoredObject {
        try await apply(object.key) { existing, version in
            try StoreSemantics.update(object, existing: existing, version: version)
        }
    }

    public func updateStatus(_ object: StoredObject) async throws -> StoredObject {
        try await apply(object.key) { existing, version in
            try StoreSemantics.updateStatus(object, existing: existing, version: version)
        }
    }

    public func delete(_ key: ObjectKey, resourceVersion: Int64?) async throws -> StoredObject? {
        let time = currentTime()
        return try await apply(key) { existing, version in
            try StoreSemantics.delete(key, expected: resourceVersion, existing: existing, version: version, now: time)
        }
    }
}
