import Foundation
import Model
import Store
import StoreSQLite
import Testing

/// `ObjectStore` semantics, for both implementations.
@Suite struct StoreTests {
    enum Backing: String, CaseIterable, Sendable { case memory, sqlite }

    static func makeStore(_ backing: Backing) throws -> (any ObjectStore, () -> Void) {
        switch backing {
        case .memory:
            return (MemoryStore(), {})
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let store = try SQLiteStore(path: dir.appendingPathComponent("state.db").path)
            return (store, { try? FileManager.default.removeItem(at: dir) })
        }
    }

    static func object(_ name: String, spec: String = "{\"a\":1}", labels: [String: String] = [:], finalizers: [String] = []) -> StoredObject {
        StoredObject(meta: ObjectMeta(kind: "Thing", project: "main", name: name, uid: "", labels: labels, finalizers: finalizers),
                     spec: Data(spec.utf8), status: Data("{}".utf8))
    }

    @Test(arguments: Backing.allCases)
    func createGetAndConflicts(_ backing: Backing) async throws {
        let (store, cleanup) = try Self.makeStore(backing)
        defer { cleanup() }
        let created = try await store.create(Self.object("a"))
        #expect(created.meta.generation == 1)
        #expect(created.meta.resourceVersion == 1)
        #expect(!created.meta.uid.isEmpty)
        await #expect(throws: StoreError(.alreadyExists, "Thing/main/a already exists")) { try await store.create(Self.object("a")) }
        #expect(try await store.get(created.key) == created)

        var stale = created
        stale.spec = Data("{\"a\":2}".utf8)
        let updated = try await store.update(stale)
        #expect(updated.meta.generation == 2)
        #expect(updated.meta.resourceVersion == 2)
        // The same write again carries an old resourceVersion.
        await #expect { try await store.update(stale) } throws: { ($0 as? StoreError)?.code == .conflict }
    }

    @Test(arguments: Backing.allCases)
    func generationOnlyForSpecAndNoOpWritesSkipped(_ backing: Backing) async throws {
        let (store, cleanup) = try Self.makeStore(backing)
        defer { cleanup() }
        var o = try await store.create(Self.object("a"))
        o.status = Data("{\"phase\":\"running\"}".utf8)
        o = try await store.updateStatus(o)
        #expect(o.meta.generation == 1)
        #expect(o.meta.resourceVersion == 2)
        let writes = await store.writeCount()
        let same = try await store.updateStatus(o)
        #expect(same.meta.resourceVersion == 2)
        let sameSpec = try await store.update(o)
        #expect(sameSpec.meta.resourceVersion == 2)
        #expect(await store.writeCount() == writes)
        o.meta.labels = ["x": "y"]
        o = try await store.update(o)
        #expect(o.meta.generation == 1 && o.meta.resourceVersion == 3)
        // A status in an update is ignored; a spec in a status write is ignored.
        var both = o
        both.status = Data("{\"phase\":\"failed\"}".utf8)
        both.spec = Data("{\"a\":9}".utf8)
        let afterUpdate = try await store.update(both)
        #expect(afterUpdate.status == o.status && afterUpdate.meta.generation == 2)
    }

    @Test(arguments: Backing.allCases)
    func deleteHonoursFinalizers(_ backing: Backing) async throws {
        let (store, cleanup) = try Self.makeStore(backing)
        defer { cleanup() }
        let o = try await store.create(Self.object("a", finalizers: ["cleanup"]))
        let marked = try #require(try await store.delete(o.key))
        #expect(marked.meta.deletionTimestamp != nil)
        #expect(try await store.get(o.key) != nil)
        var last = marked
        last.meta.finalizers = []
        _ = try await store.update(last)
        #expect(try await store.get(o.key) == nil)
        let plain = try await store.create(Self.object("b"))
        _ = try await store.delete(plain.key)
        #expect(try await store.get(plain.key) == nil)
        await #expect { try await store.delete(plain.key) } throws: { ($0 as? StoreError)?.code == .notFound }
    }

    @Test(arguments: Backing.allCases)
    func listByProjectAndLabels(_ backing: Backing) async throws {
        let (store, cleanup) = try Self.makeStore(backing)
        defer { cleanup() }
        _ = try await store.create(Self.object("a", labels: ["run": "x"]))
        _ = try await store.create(Self.object("b", labels: ["run": "y"]))
        _ = try await store.create(Self.object("c", labels: ["run": "x", "group": "0"]))
        let x = try await store.list(ListOptions(kind: "Thing", project: "main", labels: ["run": "x"]))
        #expect(x.items.map(\.meta.name) == ["a", "c"])
        #expect(x.resourceVersion == 3)
        #expect(try await store.list(ListOptions(kind: "Thing", project: "other")).items.isEmpty)
        #expect(try await store.list(ListOptions(kind: "Other")).items.isEmpty)
    }

    @Test(arguments: Backing.allCases)
    func watchReplaysThenFollowsInOrder(_ backing: Backing) async throws {
        let (store, cleanup) = try Self.makeStore(backing)
        defer { cleanup() }
        let a = try await store.create(Self.object("a"))
        let listed = try await store.list(ListOptions(kind: "Thing"))
        _ = try await store.create(Self.object("b"))
        var stream = store.watch(kind: "Thing", from: listed.resourceVersion).makeAsyncIterator()
        _ = try await store.delete(a.key)
        let first = try #require(try await stream.next())
        #expect(first.type == .added && first.object.meta.name == "b")
        let second = try #require(try await stream.next())
        #expect(second.type == .deleted && second.object.meta.name == "a")
        #expect(second.resourceVersion > first.resourceVersion)
    }

    @Test func watchFromCompactedPositionIsTooOld() async throws {
        let store = MemoryStore(feedCapacity: 2)
        for i in 0..<5 { _ = try await store.create(Self.object("o\(i)")) }
        var stream = store.watch(kind: nil, from: 1).makeAsyncIterator()
        await #expect { try await stream.next() } throws: { ($0 as? StoreError)?.code == .resourceVersionTooOld }
        var recent = store.watch(kind: nil, from: 4).makeAsyncIterator()
        _ = try await store.create(Self.object("o9"))
        #expect(try await recent.next()?.object.meta.name == "o4")
        #expect(try await recent.next()?.object.meta.name == "o9")
    }

    @Test func sqliteKeepsEverythingAcrossReopen() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-reopen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.db").path
        do {
            let store = try SQLiteStore(path: path)
            var o = try await store.create(Self.object("a", labels: ["k": "v"], finalizers: ["f"]))
            o.status = Data("{\"s\":1}".utf8)
            _ = try await store.updateStatus(o)
            _ = try await store.create(Self.object("b"))
            // No close: a crashed server leaves the file as it is.
        }
        let reopened = try SQLiteStore(path: path)
        let items = try await reopened.list(ListOptions(kind: "Thing")).items
        #expect(items.map(\.meta.name) == ["a", "b"])
        #expect(items[0].status == Data("{\"s\":1}".utf8))
        #expect(items[0].meta.labels == ["k": "v"] && items[0].meta.finalizers == ["f"])
        let next = try await reopened.create(Self.object("c"))
        #expect(next.meta.resourceVersion == 4)
        // The feed starts at the stored version: older positions must re-list.
        var old = reopened.watch(kind: nil, from: 1).makeAsyncIterator()
        await #expect { try await old.next() } throws: { ($0 as? StoreError)?.code == .resourceVersionTooOld }
    }

    @Test func typedRoundTrip() async throws {
        let store = MemoryStore()
        let typed = TypedStore<EventKind>(store)
        let key = ObjectKey(kind: "Run", project: "main", name: "svc")
        let e = Event(project: "main", name: "e1", spec: EventSpec(involved: key, type: "Normal", reason: "ScaledUp", message: "0 → 2",
                                                                   firstTimestamp: Date(timeIntervalSince1970: 1000), lastTimestamp: Date(timeIntervalSince1970: 1000)))
        let created = try await typed.create(e)
        #expect(try await typed.get(project: "main", name: "e1")?.spec == created.spec)
    }
}
