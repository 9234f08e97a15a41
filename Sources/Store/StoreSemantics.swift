import Foundation
import Model

/// The write rules of `ObjectStore`, as pure functions from the stored object (if any) and the
/// request to what must be written and announced. Every implementation uses these, so the
/// in-memory and SQLite stores cannot drift apart.
public enum StoreSemantics {
    public enum Outcome: Sendable, Equatable {
        /// Write this object (with the next resourceVersion already set) and announce it.
        case write(StoredObject, WatchEventType)
        /// Remove the object and announce its deletion (the object carries the new version).
        case remove(StoredObject)
        /// Nothing changes; return the stored object.
        case unchanged(StoredObject)
    }

    public static func create(_ object: StoredObject, existing: StoredObject?, version: Int64, now: Date) throws -> Outcome {
        if existing != nil { throw StoreError(.alreadyExists, "\(object.key) already exists") }
        try validate(object.meta)
        var o = object
        if o.meta.uid.isEmpty { o.meta.uid = UUID().uuidString.lowercased() }
        o.meta.generation = 1
        o.meta.resourceVersion = version
        o.meta.createdAt = now
        o.meta.deletionTimestamp = nil
        return .write(o, .added)
    }

    public static func update(_ object: StoredObject, existing: StoredObject?, version: Int64) throws -> Outcome {
        guard let current = existing else { throw StoreError(.notFound, "\(object.key) not found") }
        try precondition(object.meta.resourceVersion, current)
        var o = current
        o.meta.labels = object.meta.labels
        o.meta.ownerReferences = object.meta.ownerReferences
        o.meta.finalizers = object.meta.finalizers
        o.spec = object.spec
        if o.spec != current.spec { o.meta.generation += 1 }
        if o.meta.isDeleting && o.meta.finalizers.isEmpty {
            o.meta.resourceVersion = version
            return .remove(o)
        }
        if o == current { return .unchanged(current) }
        o.meta.resourceVersion = version
        return .write(o, .modified)
    }

    public static func updateStatus(_ object: StoredObject, existing: StoredObject?, version: Int64) throws -> Outcome {
        guard let current = existing else { throw StoreError(.notFound, "\(object.key) not found") }
        try precondition(object.meta.resourceVersion, current)
        if object.status == current.status { return .unchanged(current) }
        var o = current
        o.status = object.status
        o.meta.resourceVersion = version
        return .write(o, .modified)
    }

    public static func delete(_ key: ObjectKey, expected: Int64?, existing: StoredObject?, version: Int64, now: Date) throws -> Outcome {
        guard let current = existing else { throw StoreError(.notFound, "\(key) not found") }
        if let expected { try precondition(expected, current) }
        if current.meta.finalizers.isEmpty {
            var o = current
            o.meta.resourceVersion = version
            return .remove(o)
        }
        if current.meta.isDeleting { return .unchanged(current) }
        var o = current
        o.meta.deletionTimestamp = now
        o.meta.resourceVersion = version
        return .write(o, .modified)
    }

    static func precondition(_ given: Int64, _ current: StoredObject) throws {
        if given != current.meta.resourceVersion {
            throw StoreError(.conflict, "\(current.key) was modified (resourceVersion \(current.meta.resourceVersion), not \(given)): read it again and retry")
        }
    }

    static func validate(_ meta: ObjectMeta) throws {
        if meta.kind.isEmpty || meta.project.isEmpty || meta.name.isEmpty {
            throw StoreError(.invalid, "kind, project and name are required")
        }
    }
}
