import Foundation
import GRDB
import Model
import Store
import Synchronization

/// `ObjectStore` in a single SQLite file (GRDB, WAL), durable across `kill -9`: a write returns
/// only after its transaction commits. The change feed for watchers is kept in memory
/// (`WatchHub`); after a restart it starts at the stored version, so a watcher from an older
/// position gets `resourceVersionTooOld` and lists again, as informers do.
public final class SQLiteStore: RuleApplyingStore, CopyableStore {
    private let pool: DatabasePool
    private let path: String
    private let hub: WatchHub
    private let now: @Sendable () -> Date
    /// Serializes writes with their publication, so the feed is in version order.
    private let writeLock = Mutex(0)

    public init(path: String, now: @escaping @Sendable () -> Date = { Date() }, feedCapacity: Int = 100_000) throws {
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        config.busyMode = .timeout(10)
        self.path = path
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try Self.migrator.migrate(pool)
        } catch {
            throw Self.explain(error, path: path, opening: true)
        }
        self.pool = pool
        let version = try Self.explaining(path) {
            try pool.read { db in try Int64.fetchOne(db, sql: "SELECT version FROM store_state WHERE id = 1") ?? 0 }
        }
        self.now = now
        self.hub = WatchHub(currentVersion: version, capacity: feedCapacity)
    }

    /// What a user reads for an SQLite failure: the file, the cause in words, what to do.
    static func explain(_ error: Error, path: String, opening: Bool = false) -> Error {
        guard let db = error as? DatabaseError else { return error }
        let dir = (path as NSString).deletingLastPathComponent
        let cause: String
        switch db.resultCode {
        case .SQLITE_FULL:
            cause = "the disk holding \(dir) is full: free some space, then try again (nothing was written)"
        case .SQLITE_CANTOPEN:
            cause = "cannot open \(path): \(dir) does not exist or is not writable (check its permissions and mount, or use another --data-dir)"
        case .SQLITE_READONLY:
            cause = "\(path) is read-only (a read-only mount or file): make it writable, or use another --data-dir"
        case .SQLITE_IOERR:
            cause = "I/O error on \(path) (\(db.message ?? "disk error")): check the disk"
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            cause = "\(path) is damaged or not a Setpoint store (\(db.message ?? "")): restore it from a backup, or use another --data-dir"
        default:
            cause = "\(opening ? "cannot open" : "cannot write to") \(path): \(db.message ?? "\(db.resultCode)")"
        }
        return StoreError(.unavailable, cause)
    }

    static func explaining<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw explain(error, path: path) }
    }

    /// Schema migrations, applied in order on open.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-objects") { db in
            try db.execute(sql: """
                CREATE TABLE objects (
                    kind TEXT NOT NULL,
                    project TEXT NOT NULL,
                    name TEXT NOT NULL,
                    meta BLOB NOT NULL,
                    spec BLOB NOT NULL,
                    status BLOB NOT NULL,
                    PRIMARY KEY (kind, project, name)
                ) WITHOUT ROWID;
                CREATE TABLE store_state (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, writes INTEGER NOT NULL);
                INSERT INTO store_state (id, version, writes) VALUES (1, 0, 0);
                """)
        }
        return m
    }

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .deferredToDate
        return e
    }()

    private static func decodeMeta(_ data: Data) throws -> ObjectMeta {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .deferredToDate
        return try d.decode(ObjectMeta.self, from: data)
    }

    private static func object(from row: Row) throws -> StoredObject {
        StoredObject(meta: try decodeMeta(row["meta"]), spec: row["spec"], status: row["status"])
    }

    private static func fetch(_ db: GRDB.Database, _ key: ObjectKey) throws -> StoredObject? {
        try Row.fetchOne(db, sql: "SELECT meta, spec, status FROM objects WHERE kind = ? AND project = ? AND name = ?",
                         arguments: [key.kind, key.project, key.name]).map(object(from:))
    }

    public func get(_ key: ObjectKey) async throws -> StoredObject? {
        do { return try await pool.read { db in try Self.fetch(db, key) } } catch { throw Self.explain(error, path: path) }
    }

    public func list(_ options: ListOptions) async throws -> ListResult {
        do { return try await listRows(options) } catch { throw Self.explain(error, path: path) }
    }

    private func listRows(_ options: ListOptions) async throws -> ListResult {
        try await pool.read { db in
            let version = try Int64.fetchOne(db, sql: "SELECT version FROM store_state WHERE id = 1") ?? 0
            let rows: [Row]
            if let project = options.project {
                rows = try Row.fetchAll(db, sql: "SELECT meta, spec, status FROM objects WHERE kind = ? AND project = ? ORDER BY name",
                                        arguments: [options.kind, project])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT meta, spec, status FROM objects WHERE kind = ? ORDER BY project, name",
                                        arguments: [options.kind])
            }
            let items = try rows.map(Self.object(from:)).filter { o in
                options.labels.allSatisfy { o.meta.labels[$0.key] == $0.value }
            }
            return ListResult(items: items, resourceVersion: version)
        }
    }

    public func currentTime() -> Date { now() }

    public func watch(kind: String?, from resourceVersion: Int64) -> AsyncThrowingStream<WatchEvent, Error> {
        hub.subscribe(kind: kind, from: resourceVersion)
    }

    public func writeCount() async -> Int {
        (try? await pool.read { db in try Int.fetchOne(db, sql: "SELECT writes FROM store_state WHERE id = 1") ?? 0 }) ?? 0
    }

    public func apply(_ key: ObjectKey, _ rule: @escaping (StoredObject?, Int64) throws -> StoreSemantics.Outcome) throws -> StoredObject {
        try writeLock.withLock { _ in
            let (result, event): (StoredObject, WatchEvent?) = try Self.explaining(path) { try pool.write { db in
                let version = (try Int64.fetchOne(db, sql: "SELECT version FROM store_state WHERE id = 1") ?? 0) + 1
                switch try rule(try Self.fetch(db, key), version) {
                case .unchanged(let o):
                    return (o, nil)
                case .write(let o, let type):
                    try db.execute(sql: """
                        INSERT INTO objects (kind, project, name, meta, spec, status) VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT (kind, project, name) DO UPDATE SET meta = excluded.meta, spec = excluded.spec, status = excluded.status
                        """, arguments: [key.kind, key.project, key.name, try Self.encoder.encode(o.meta), o.spec, o.status])
                    try db.execute(sql: "UPDATE store_state SET version = ?, writes = writes + 1 WHERE id = 1", arguments: [version])
                    return (o, WatchEvent(type: type, object: o))
                case .remove(let o):
                    try db.execute(sql: "DELETE FROM objects WHERE kind = ? AND project = ? AND name = ?",
                                   arguments: [key.kind, key.project, key.name])
                    try db.execute(sql: "UPDATE store_state SET version = ?, writes = writes + 1 WHERE id = 1", arguments: [version])
                    return (o, WatchEvent(type: .deleted, object: o))
                }
            } }
            if let event { hub.publish(event) }
            return result
        }
    }

    public func snapshot() async throws -> (objects: [StoredObject], version: Int64) {
        do {
            return try await pool.read { db in
                let version = try Int64.fetchOne(db, sql: "SELECT version FROM store_state WHERE id = 1") ?? 0
                let rows = try Row.fetchAll(db, sql: "SELECT meta, spec, status FROM objects ORDER BY kind, project, name")
                return (try rows.map(Self.object(from:)), version)
            }
        } catch { throw Self.explain(error, path: path) }
    }

    public func restore(_ objects: [StoredObject], version: Int64) async throws {
        try writeLock.withLock { _ in
            try Self.explaining(path) { try pool.write { db in
                let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM objects") ?? 0
                guard count == 0 else { throw StoreError(.alreadyExists, "\(path) already holds \(count) objects: copy into a new store") }
                for o in objects {
                    try db.execute(sql: "INSERT INTO objects (kind, project, name, meta, spec, status) VALUES (?, ?, ?, ?, ?, ?)",
                                   arguments: [o.meta.kind, o.meta.project, o.meta.name, try Self.encoder.encode(o.meta), o.spec, o.status])
                }
                try db.execute(sql: "UPDATE store_state SET version = ?, writes = writes + ? WHERE id = 1", arguments: [version, objects.count])
            } }
            hub.expire(through: version)
        }
    }

}
