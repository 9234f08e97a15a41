import Foundation
import Model
import Store
@testable import StorePostgres
import StoreSQLite
import TestSupport
import Testing

/// `ObjectStore` semantics, for every implementation: memory, SQLite, and a real PostgreSQL
/// server (`hack/postgres.sh`, whose URL is in `SETPOINT_TEST_DATABASE_URL`; each test gets a
/// database of its own).
@Suite struct StoreTests {
    enum Backing: String, CaseIterable, Sendable { case memory, sqlite, postgres }

    static func makeStore(_ backing: Backing) async throws -> (any ObjectStore, () async -> Void)? {
        switch backing {
        case .memory:
            return (MemoryStore(), {})
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let store = try SQLiteStore(path: dir.appendingPathComponent("state.db").path)
            return (store, { try? FileManager.default.removeItem(at: dir) })
        case .postgres:
            guard let db = try await TestDatabase.make() else { return nil }
            let store = try await PostgresStore.open(db.url)
            return (store, { await store.close(); await db.drop() })
        }
    }

    /// Runs `body` with a new store of `backing`, then closes and removes it (a PostgreSQL
    /// store only where the test database is set up; required in CI).
    static func withStore(_ backing: Backing, _ body: (any ObjectStore) async throws -> Void) async throws {
        guard let (store, cleanup) = try await makeStore(backing) else { return }
        do { try await body(store) } catch {
            await cleanup()
            throw error
        }
        await cleanup()
    }

    static func object(_ name: String, spec: String = "{\"a\":1}", labels: [String: String] = [:], finalizers: [String] = []) -> StoredObject {
        StoredObject(meta: ObjectMeta(kind: "Thing", project: "main", name: name, uid: "", labels: labels, finalizers: finalizers),
                     spec: Data(spec.utf8), status: Data("{}".utf8))
    }

    @Test(arguments: Backing.allCases)
    func createGetAndConflicts(_ backing: Backing) async throws {
        try await Self.withStore(backing) { store in
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
    }

    @Test(arguments: Backing.allCases)
    func generationOnlyForSpecAndNoOpWritesSkipped(_ backing: Backing) async throws {
        try await Self.withStore(backing) { store in
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
    }

    @Test(arguments: Backing.allCases)
    func deleteHonoursFinalizers(_ backing: Backing) async throws {
        try await Self.withStore(backing) { store in
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
    }

    @Test(arguments: Backing.allCases)
    func listByProjectAndLabels(_ backing: Backing) async throws {
        try await Self.withStore(backing) { store in
            _ = try await store.create(Self.object("a", labels: ["run": "x"]))
            _ = try await store.create(Self.object("b", labels: ["run": "y"]))
            _ = try await store.create(Self.object("c", labels: ["run": "x", "group": "0"]))
            let x = try await store.list(ListOptions(kind: "Thing", project: "main", labels: ["run": "x"]))
            #expect(x.items.map(\.meta.name) == ["a", "c"])
            #expect(x.resourceVersion == 3)
            #expect(try await store.list(ListOptions(kind: "Thing", project: "other")).items.isEmpty)
            #expect(try await store.list(ListOptions(kind: "Other")).items.isEmpty)
        }
    }

    @Test(arguments: Backing.allCases)
    func watchReplaysThenFollowsInOrder(_ backing: Backing) async throws {
        try await Self.withStore(backing) { store in
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

    /// Several servers on one database: writers on several stores (each with its own
    /// connections) at once; every store's watcher sees every change once, in version order
    /// with no gap, and so does a watcher that starts from the beginning afterwards (replayed
    /// from the table).
    @Test func postgresConcurrentWritersFromSeveralServersAreSeenByEveryWatcherOnceInOrder() async throws {
        guard let db = try await TestDatabase.make() else { return }
        // Three servers starting at once on a new database: the schema is made once.
        async let first = PostgresStore.open(db.url)
        async let second = PostgresStore.open(db.url)
        async let third = PostgresStore.open(db.url)
        let stores = try await [first, second, third]
        #expect(try await TestDatabase.psql(db.url, "SELECT count(*) FROM setpoint_migrations").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        let perWriter = 40
        let writersPerStore = 3
        let total = stores.count * writersPerStore * perWriter
        // Each watcher collects until it has seen `total` changes.
        let watchers = stores.map { store in
            Task { () throws -> [Int64] in
                var seen: [Int64] = []
                for try await e in store.watch(kind: "Thing", from: 0) {
                    seen.append(e.resourceVersion)
                    if seen.count == total { break }
                }
                return seen
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (s, store) in stores.enumerated() {
                for w in 0..<writersPerStore {
                    group.addTask {
                        for i in 0..<perWriter {
                            // Creates, and updates of one shared object that conflict across servers.
                            _ = try await store.create(Self.object("s\(s)-w\(w)-\(i)"))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let expected = (1...Int64(total)).map { $0 }
        for watcher in watchers {
            let seen = try await watcher.value
            #expect(seen == expected, "every change once, in order")
        }
        // The shared object: optimistic concurrency across servers, nothing lost.
        _ = try await stores[0].create(Self.object("shared", spec: "{\"n\":0}"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in stores {
                group.addTask {
                    for _ in 0..<10 {
                        while true {
                            var o = try #require(try await store.get(ObjectKey(kind: "Thing", project: "main", name: "shared")))
                            let n = try JSONDecoder().decode([String: Int].self, from: o.spec)["n"] ?? 0
                            o.spec = Data("{\"n\":\(n + 1)}".utf8)
                            do { _ = try await store.update(o); break } catch let e as StoreError where e.code == .conflict { continue }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let shared = try #require(try await stores[1].get(ObjectKey(kind: "Thing", project: "main", name: "shared")))
        #expect(String(decoding: shared.spec, as: UTF8.self) == "{\"n\":30}", "30 increments from three servers")
        // A store opened later replays the table from any retained position.
        let late = try await PostgresStore.open(db.url)
        var replay = late.watch(kind: "Thing", from: 0).makeAsyncIterator()
        for v in 1...Int64(total) { #expect(try await replay.next()?.resourceVersion == v) }
        for store in stores + [late] { await store.close() }
        await db.drop()
    }

    /// The feed survives a restart (unlike SQLite's, which is in memory): a watcher resumes
    /// from its position; past the table's window it must list again.
    @Test func postgresFeedResumesAcrossRestartAndTrimsToItsWindow() async throws {
        guard let db = try await TestDatabase.make() else { return }
        do {
            let store = try await PostgresStore.open(db.url, feedCapacity: 5)
            for i in 0..<8 { _ = try await store.create(Self.object("o\(i)")) }
            await store.close()   // a restart
        }
        let store = try await PostgresStore.open(db.url, feedCapacity: 5)
        var resumed = store.watch(kind: nil, from: 6).makeAsyncIterator()
        #expect(try await resumed.next()?.object.meta.name == "o6")
        #expect(try await resumed.next()?.object.meta.name == "o7")
        _ = try await store.create(Self.object("o8"))
        #expect(try await resumed.next()?.object.meta.name == "o8", "then live")
        await store.trim()
        var old = store.watch(kind: nil, from: 1).makeAsyncIterator()
        await #expect { try await old.next() } throws: { ($0 as? StoreError)?.code == .resourceVersionTooOld }
        var kept = store.watch(kind: "Thing", from: 4).makeAsyncIterator()
        #expect(try await kept.next()?.resourceVersion == 5)
        await store.close()
        await db.drop()
    }

    /// Errors name the database and the cause, never the password.
    @Test func postgresErrorsAreClearAndKeepThePasswordOut() async throws {
        await #expect { _ = try await PostgresStore.open("mysql://u:p@h/db") } throws: {
            "\($0)".contains("unsupported database scheme mysql://")
        }
        await #expect { _ = try await PostgresStore.open("postgres://u:pw-hidden@127.0.0.1:1/db?sslmode=bogus") } throws: {
            "\($0)".contains("sslmode=bogus is not one of") && !"\($0)".contains("pw-hidden")
        }
        await #expect { _ = try await PostgresStore.open("postgres://u:pw-hidden@127.0.0.1:1/db") } throws: { error in
            let text = "\(error)"
            return text.contains("postgres://u@127.0.0.1:1/db") && text.contains("cannot reach the database") && !text.contains("pw-hidden")
        }
        guard let server = TestDatabase.serverURL else { return }
        var wrong = URLComponents(string: server)!
        wrong.password = "not-the-password"
        await #expect { _ = try await PostgresStore.open(wrong.string!) } throws: { error in
            let text = "\(error)"
            return text.contains("password authentication failed") && !text.contains("not-the-password")
        }
        // TLS verified against the server's CA.
        if let ca = ProcessInfo.processInfo.environment["SETPOINT_TEST_DATABASE_CA"], let db = try await TestDatabase.make() {
            let store = try await PostgresStore.open(db.url + "?sslmode=verify-full&sslrootcert=" + ca)
            _ = try await store.create(Self.object("tls"))
            await store.close()
            await db.drop()
        }
    }

}
