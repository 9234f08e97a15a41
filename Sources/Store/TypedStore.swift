import Foundation
import Model

/// Typed access to one kind over any `ObjectStore`: specs and statuses as canonical JSON
/// (sorted keys), so equal values are equal bytes and the store can compare specs.
public struct TypedStore<Kind: ObjectKind>: Sendable {
    public let store: any ObjectStore

    public init(_ store: any ObjectStore) { self.store = store }

    public func get(project: String, name: String) async throws -> Object<Kind>? {
        try await store.get(ObjectKey(kind: Kind.name, project: project, name: name)).map(Self.decode)
    }

    public func list(project: String? = nil, labels: [String: String] = [:]) async throws -> [Object<Kind>] {
        try await store.list(ListOptions(kind: Kind.name, project: project, labels: labels)).items.map(Self.decode)
    }

    @discardableResult
    public func create(_ object: Object<Kind>) async throws -> Object<Kind> {
        try Self.decode(await store.create(Self.encode(object)))
    }

    @discardableResult
    public func update(_ object: Object<Kind>) async throws -> Object<Kind> {
        try Self.decode(await store.update(Self.encode(object)))
    }

    @discardableResult
    public func updateStatus(_ object: Object<Kind>) async throws -> Object<Kind> {
        try Self.decode(await store.updateStatus(Self.encode(object)))
    }

    @discardableResult
    public func delete(project: String, name: String) async throws -> Object<Kind>? {
        try await store.delete(ObjectKey(kind: Kind.name, project: project, name: name)).map(Self.decode)
    }

    public static func encode(_ object: Object<Kind>) throws -> StoredObject {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .deferredToDate
        return StoredObject(meta: object.meta, spec: try encoder.encode(object.spec), status: try encoder.encode(object.status))
    }

    public static func decode(_ stored: StoredObject) throws -> Object<Kind> {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .deferredToDate
        return Object(meta: stored.meta, spec: try decoder.decode(Kind.Spec.self, from: stored.spec),
                      status: try decoder.decode(Kind.Status.self, from: stored.status))
    }
}
