import Foundation
import Logging
import Model
import PostgresNIO
import Store
import Synchronization

/// `ObjectStore` in PostgreSQL, shared by several servers.
///
/// **Writes** take the one row of `setpoint_state` `FOR UPDATE` first, so writes from every
/// server are serialized: each reads the committed version, applies the `StoreSemantics` rule
/// to the committed object, and writes the object, its change (`setpoint_changes`) and the new
/// version in one transaction, with a `NOTIFY`. Versions therefore commit in order and without
/// gaps: once version N is visible, every version before it is too.
///
/// **The change feed** of each server is a `WatchHub` fed in version order from
/// `setpoint_changes` (woken by `LISTEN`, and every few seconds regardless); this server's own
/// writes go in without a round trip when they are next in line. A watch from a position the
/// hub no longer (or never) held is replayed from the table first, so a watcher resumes across
/// servers and restarts; a position older than the table's window (`feedCapacity` changes)
/// fails with `resourceVersionTooOld`.
///
/// **Schema migrations** run at open under an advisory lock, so servers starting together
/// apply each once.
public final class PostgresStore: RuleApplyingStore, CopyableStore {
    public let location: PostgresLocation
    let client: PostgresClient
    private let clientTask: Task<Void, Never>
    private let hub: WatchHub
    private let pump: ChangePump
    private let pumpTasks: Mutex<[Task<Void, Never>]> = Mutex([])
    private let now: @Sendable () -> Date
    private let feedCapacity: Int
    private let logger: Logger
    /// Writes since the last trim of `setpoint_changes`.
    private let writesSinceTrim = Atomic<Int>(0)
    /// How long one operation may take before it fails as unavailable.
    let operationTimeout: Double

    static let channel = "setpoint_changes"

    private init(location: PostgresLocation, client: PostgresClient, clientTask: Task<Void, Never>, version: Int64,
                 now: @escaping @Sendable () -> Date, feedCapacity: Int, operationTimeout: Double, logger: Logger) {
        self.location = location
        self.client = client
        self.clientTask = clientTask
        self.now = now
        self.feedCapacity = feedCapacity
        self.operationTimeout = operationTimeout
        self.logger = logger
        let hub = WatchHub(currentVersion: version, capacity: feedCapacity)
        self.hub = hub
        self.pump = ChangePump(hub: hub, last: version)
    }

    /// Connects, migrates the schema and starts following the change feed (unless `following`
    /// is false: a tool that only reads and writes, such as `store copy`).
    public static func open(_ url: String, now: @escaping @Sendable () -> Date = { Date() }, feedCapacity: Int = 100_000,
                            operationTimeout: Double = 30, following: Bool = true,
                            logger: Logger = Logger(label: "setpoint.store")) async throws -> PostgresStore {
        let location: PostgresLocation
        do { location = try PostgresLocation.parse(url) } catch let e as PostgresLocation.Invalid {
            throw StoreError(.invalid, "--database: \(e.description)")
        }
        let configuration: PostgresClient.Configuration
        do { configuration = try location.clientConfiguration() } catch {
            throw StoreError(.invalid, "--database \(location): TLS: \(error)")
        }
        // One connection first, to fail fast with the reason (the pool retries quietly).
        do {
            let probe = try await Deadline.run(15) {
                try await PostgresConnection.connect(configuration: try location.connectionConfiguration(), id: 0, logger: Self.quiet)
            }
            try await probe.close()
        } catch {
            throw location.explain(error, doing: "connecting")
        }
        let client = PostgresClient(configuration: configuration, backgroundLogger: Self.quiet)
        let clientTask = Task { await client.run() }
        do {
            let version = try await Deadline.run(60) { try await migrate(client) }
            let store = PostgresStore(location: location, client: client, clientTask: clientTask, version: version, now: now,
                                      feedCapacity: feedCapacity, operationTimeout: operationTimeout, logger: logger)
            if following { store.startFollowing() }
            return store
        } catch {
            clientTask.cancel()
            throw location.explain(error, doing: "preparing the schema")
        }
    }

    static let quiet = Logger(label: "setpoint.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Stops following the feed and closes the connections; open watches end.
    public func close() async {
        for task in pumpTasks.withLock({ $0 }) { task.cancel() }
        hub.finishAll()
        clientTask.cancel()
        _ = await clientTask.value
    }

    // MARK: schema

    /// Migrations in order; each runs once, in a transaction, under an advisory lock.
    static let migrations: [(String, [PostgresQuery])] = [
        ("v1-objects", [
            """
            CREATE TABLE setpoint_objects (
                kind TEXT NOT NULL, project TEXT NOT NULL, name TEXT NOT NULL,
                meta BYTEA NOT NULL, spec BYTEA NOT NULL, status BYTEA NOT NULL,
                PRIMARY KEY (kind, project, name))
            """,
            """
            CREATE TABLE setpoint_changes (
                version BIGINT PRIMARY KEY, type TEXT NOT NULL, kind TEXT NOT NULL,
                meta BYTEA NOT NULL, spec BYTEA NOT NULL, status BYTEA NOT NULL)
            """,
            """
            CREATE TABLE setpoint_state (
                id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL, writes BIGINT NOT NULL,
                compacted_through BIGINT NOT NULL)
            """,
            "INSERT INTO setpoint_state (id, version, writes, compacted_through) VALUES (1, 0, 0, 0)",
        ]),
    ]

    /// Applies what is missing; returns the store's version.
    static func migrate(_ client: PostgresClient) async throws -> Int64 {
        try await client.withConnection { c in
            try await transaction(c) {
                // Any fixed number: servers starting at once take turns here.
                try await c.query("SELECT pg_advisory_xact_lock(7203410511)", logger: quiet)
                try await c.query("CREATE TABLE IF NOT EXISTS setpoint_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())", logger: quiet)
                var applied: Set<String> = []
                for try await name in try await c.query("SELECT name FROM setpoint_migrations", logger: quiet).decode(String.self) {
                    applied.insert(name)
                }
                for (name, statements) in migrations where !applied.contains(name) {
                    for statement in statements { try await c.query(statement, logger: quiet) }
                    try await c.query("INSERT INTO setpoint_migrations (name) VALUES (\(name))", logger: quiet)
                }
                return try await c.query("SELECT version FROM setpoint_state WHERE id = 1", logger: quiet).decode(Int64.self)
                    .first { _ in true } ?? 0
            }
        }
    }

    /// BEGIN, the body, COMMIT; ROLLBACK and the body's own error when it throws.
    static func transaction<T>(_ c: PostgresConnection, _ body: () async throws -> T) async throws -> T {
        try await c.query("BEGIN", logger: quiet)
        let value: T
        do { value = try await body() } catch {
            _ = try? await c.query("ROLLBACK", logger: quiet)
            throw error
        }
        try await c.query("COMMIT", logger: quiet)
        return value
    }

    // MARK: reads

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .deferredToDate
        return e
    }()

    static func decodeMeta(_ data: Data) throws -> ObjectMeta {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .deferredToDate
        return try d.decode(ObjectMeta.self, from: data)
    }

    /// Runs `body` within the operation timeout, with errors explained.
    func operation<T: Sendable>(_ doing: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        do { return try await Deadline.run(operationTimeout, body) } catch let e as StoreError {
            throw e
        } catch {
            throw location.explain(error, doing: doing)
        }
    }

    public func get(_ key: ObjectKey) async throws -> StoredObject? {
        try await operation("reading \(key)") { [client] in
            let rows = try await client.query(
                "SELECT meta, spec, status FROM setpoint_objects WHERE kind = \(key.kind) AND project = \(key.project) AND name = \(key.name)")
            for try await (meta, spec, status) in rows.decode((Data, Data, Data).self) {
                return StoredObject(meta: try Self.decodeMeta(meta), spec: spec, status: status)
            }
            return nil
        }
    }

    public func list(_ options: ListOptions) async throws -> ListResult {
        try await operation("listing \(options.kind)") { [client] in
            // One statement, one snapshot: the version and the objects agree.
            let rows: PostgresRowSequence
            if let project = options.project {
                rows = try await client.query("""
                    SELECT s.version, o.meta, o.spec, o.status FROM setpoint_state s
                    LEFT JOIN setpoint_objects o ON o.kind = \(options.kind) AND o.project = \(project)
                    WHERE s.id = 1 ORDER BY o.name
                    """)
            } else {
                rows = try await client.query("""
                    SELECT s.version, o.meta, o.spec, o.status FROM setpoint_state s
                    LEFT JOIN setpoint_objects o ON o.kind = \(options.kind)
                    WHERE s.id = 1 ORDER BY o.project, o.name
                    """)
            }
            var version: Int64 = 0
            var items: [StoredObject] = []
            for try await (v, meta, spec, status) in rows.decode((Int64, Data?, Data?, Data?).self) {
                version = v
                guard let meta, let spec, let status else { continue }
                let o = StoredObject(meta: try Self.decodeMeta(meta), spec: spec, status: status)
                if options.labels.allSatisfy({ o.meta.labels[$0.key] == $0.value }) { items.append(o) }
            }
            return ListResult(items: items, resourceVersion: version)
        }
    }

    public func currentTime() -> Date { now() }

    public func writeCount() async -> Int {
        (try? await operation("counting writes") { [client] in
            try await client.query("SELECT writes FROM setpoint_state WHERE id = 1").decode(Int64.self).first { _ in true }.map(Int.init) ?? 0
        }) ?? 0
    }

    // MARK: writes

    public func apply(_ key: ObjectKey, _ rule: @escaping (StoredObject?, Int64) throws -> StoreSemantics.Outcome) async throws -> StoredObject {
        let box = UncheckedRule(rule: rule)
        let (result, event) = try await operation("writing \(key)") { [client] () -> (StoredObject, WatchEvent?) in
            try await client.withConnection { c in
                try await Self.transaction(c) {
                    // The write lock of the whole store: writers from every server take turns,
                    // so versions commit in order.
                    let version = try await c.query("SELECT version FROM setpoint_state WHERE id = 1 FOR UPDATE", logger: Self.quiet)
                        .decode(Int64.self).first { _ in true } ?? 0
                    // A statement of its own, so it reads what the writer before committed.
                    var current: StoredObject?
                    for try await (meta, spec, status) in try await c.query(
                        "SELECT meta, spec, status FROM setpoint_objects WHERE kind = \(key.kind) AND project = \(key.project) AND name = \(key.name)",
                        logger: Self.quiet).decode((Data, Data, Data).self) {
                        current = StoredObject(meta: try Self.decodeMeta(meta), spec: spec, status: status)
                    }
                    let next = version + 1
                    switch try box.rule(current, next) {
                    case .unchanged(let o):
                        return (o, nil)
                    case .write(let o, let type):
                        let meta = try Self.encoder.encode(o.meta)
                        try await c.query("""
                            WITH o AS (INSERT INTO setpoint_objects (kind, project, name, meta, spec, status)
                                       VALUES (\(key.kind), \(key.project), \(key.name), \(meta), \(o.spec), \(o.status))
                                       ON CONFLICT (kind, project, name) DO UPDATE SET meta = EXCLUDED.meta, spec = EXCLUDED.spec, status = EXCLUDED.status),
                                 c AS (INSERT INTO setpoint_changes (version, type, kind, meta, spec, status)
                                       VALUES (\(next), \(type.rawValue), \(key.kind), \(meta), \(o.spec), \(o.status))),
                                 s AS (UPDATE setpoint_state SET version = \(next), writes = writes + 1 WHERE id = 1)
                            SELECT pg_notify(\(Self.channel), \(String(next)))
                            """, logger: Self.quiet)
                        return (o, WatchEvent(type: type, object: o))
                    case .remove(let o):
                        let meta = try Self.encoder.encode(o.meta)
                        try await c.query("""
                            WITH o AS (DELETE FROM setpoint_objects WHERE kind = \(key.kind) AND project = \(key.project) AND name = \(key.name)),
                                 c AS (INSERT INTO setpoint_changes (version, type, kind, meta, spec, status)
                                       VALUES (\(next), \(WatchEventType.deleted.rawValue), \(key.kind), \(meta), \(o.spec), \(o.status))),
                                 s AS (UPDATE setpoint_state SET version = \(next), writes = writes + 1 WHERE id = 1)
                            SELECT pg_notify(\(Self.channel), \(String(next)))
                            """, logger: Self.quiet)
                        return (o, WatchEvent(type: .deleted, object: o))
                    }
                }
            }
        }
        if let event {
            pump.offer(event)
            if writesSinceTrim.add(1, ordering: .relaxed).newValue >= 1000 {
                writesSinceTrim.store(0, ordering: .relaxed)
                Task { await self.trim() }
            }
        }
        return result
    }

    /// Keeps the newest `feedCapacity` changes.
    func trim() async {
        do {
            try await operation("trimming the change feed") { [client, feedCapacity] in
                try await client.query("""
                    WITH s AS (UPDATE setpoint_state SET compacted_through = GREATEST(compacted_through, version - \(Int64(feedCapacity)))
                               WHERE id = 1 RETURNING compacted_through)
                    DELETE FROM setpoint_changes WHERE version <= (SELECT compacted_through FROM s)
                    """)
            }
        } catch {
            logger.warning("could not trim the change feed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: copies

    public func snapshot() async throws -> (objects: [StoredObject], version: Int64) {
        let location = self.location
        do {
            return try await Deadline.run(3600) { [client] in
                try await client.withConnection { c in
                    // A whole installation may take longer than the statement timeout.
                    try await c.query("SET statement_timeout = 0", logger: Self.quiet)
                    var version: Int64 = 0
                    var objects: [StoredObject] = []
                    do {
                        // One statement, one snapshot.
                        let rows = try await c.query("""
                            SELECT s.version, o.meta, o.spec, o.status FROM setpoint_state s
                            LEFT JOIN setpoint_objects o ON true WHERE s.id = 1 ORDER BY o.kind, o.project, o.name
                            """, logger: Self.quiet)
                        for try await (v, meta, spec, status) in rows.decode((Int64, Data?, Data?, Data?).self) {
                            version = v
                            guard let meta, let spec, let status else { continue }
                            objects.append(StoredObject(meta: try Self.decodeMeta(meta), spec: spec, status: status))
                        }
                    } catch {
                        _ = try? await c.query("RESET statement_timeout", logger: Self.quiet)
                        throw error
                    }
                    try await c.query("RESET statement_timeout", logger: Self.quiet)
                    return (objects, version)
                }
            }
        } catch {
            throw location.explain(error, doing: "reading every object")
        }
    }

    public func restore(_ objects: [StoredObject], version: Int64) async throws {
        let location = self.location
        try await Deadline.run(max(operationTimeout, 600)) { [client] in
            do {
                try await client.withConnection { c in
                    try await Self.transaction(c) {
                        _ = try await c.query("SELECT version FROM setpoint_state WHERE id = 1 FOR UPDATE", logger: Self.quiet)
                        let count = try await c.query("SELECT count(*) FROM setpoint_objects", logger: Self.quiet).decode(Int64.self).first { _ in true } ?? 0
                        guard count == 0 else {
                            throw StoreError(.alreadyExists, "\(location) already holds \(count) objects: copy into an empty database")
                        }
                        for o in objects {
                            let meta = try Self.encoder.encode(o.meta)
                            try await c.query("""
                                INSERT INTO setpoint_objects (kind, project, name, meta, spec, status)
                                VALUES (\(o.meta.kind), \(o.meta.project), \(o.meta.name), \(meta), \(o.spec), \(o.status))
                                """, logger: Self.quiet)
                        }
                        try await c.query("DELETE FROM setpoint_changes", logger: Self.quiet)
                        try await c.query("""
                            UPDATE setpoint_state SET version = \(version), writes = writes + \(Int64(objects.count)), compacted_through = \(version) WHERE id = 1
                            """, logger: Self.quiet)
                    }
                }
            } catch {
                throw location.explain(error, doing: "writing the copy")
            }
        }
        pump.expire(through: version)
    }

    // MARK: the change feed

    public func watch(kind: String?, from resourceVersion: Int64) -> AsyncThrowingStream<WatchEvent, Error> {
        let oldest = hub.oldestPosition
        if resourceVersion >= oldest { return hub.subscribe(kind: kind, from: resourceVersion) }
        // Older than this server's memory: the table first, then the hub from where it starts.
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, Error>.makeStream()
        let task = Task { [hub] in
            do {
                for event in try await self.changes(after: resourceVersion, through: oldest, kind: kind) { continuation.yield(event) }
                for try await event in hub.subscribe(kind: kind, from: oldest) { continuation.yield(event) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// The stored changes after `after` (through `through`, if given), oldest first; fails with
    /// `resourceVersionTooOld` when `after` is older than the table keeps.
    func changes(after: Int64, through: Int64? = nil, kind: String? = nil, limit: Int = 100_000) async throws -> [WatchEvent] {
        try await operation("reading the change feed") { [client] in
            let upper = through ?? Int64.max
            let rows = try await client.query("""
                SELECT s.compacted_through, c.version, c.type, c.meta, c.spec, c.status FROM setpoint_state s
                LEFT JOIN (SELECT * FROM setpoint_changes WHERE version > \(after) AND version <= \(upper)
                           AND (\(kind ?? "") = '' OR kind = \(kind ?? "")) ORDER BY version LIMIT \(Int64(limit))) c ON true
                WHERE s.id = 1 ORDER BY c.version
                """)
            var events: [WatchEvent] = []
            for try await (compacted, version, type, meta, spec, status) in rows.decode((Int64, Int64?, String?, Data?, Data?, Data?).self) {
                if after < compacted {
                    throw StoreError(.resourceVersionTooOld,
                                     "resourceVersion \(after) is older than the retained change feed (from \(compacted)): list again")
                }
                guard version != nil, let type = type.flatMap(WatchEventType.init(rawValue:)), let meta, let spec, let status else { continue }
                events.append(WatchEvent(type: type, object: StoredObject(meta: try Self.decodeMeta(meta), spec: spec, status: status)))
            }
            return events
        }
    }

    /// Follows `LISTEN` on its own connection (reconnecting), and reads what is new on every
    /// notification and every `pollInterval` regardless (a notification lost while reconnecting
    /// is not a change lost).
    private func startFollowing(pollInterval: Duration = .seconds(2)) {
        let pump = self.pump
        let location = self.location
        let logger = self.logger
        let listener = Task {
            var failing = false
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(configuration: try location.connectionConfiguration(), id: 1, logger: Self.quiet)
                    defer { Task { try? await connection.close() } }
                    try await connection.listen(on: Self.channel) { notifications in
                        if failing { logger.info("following the database's change feed again") }
                        failing = false
                        pump.poke(nil)   // whatever came while not listening
                        for try await n in notifications { pump.poke(Int64(n.payload)) }
                    }
                } catch {
                    if Task.isCancelled { return }
                    if !failing { logger.warning("lost the database's change notifications; reconnecting", metadata: ["error": "\(location.explain(error, doing: "listening"))"]) }
                    failing = true
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        let poller = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: pollInterval)
                pump.poke(nil)
            }
        }
        let reader = Task {
            for await _ in pump.pokes {
                while !Task.isCancelled {
                    do {
                        let batch = try await self.changes(after: pump.last, limit: 1000)
                        pump.publish(batch)
                        if batch.count < 1000 { break }
                    } catch let e as StoreError where e.code == .resourceVersionTooOld {
                        // Fell behind the table's window: every watcher lists again.
                        logger.warning("the change feed moved past this server; watchers list again", metadata: ["error": "\(e)"])
                        let current = (try? await self.list(ListOptions(kind: "")).resourceVersion) ?? pump.last
                        pump.expire(through: current)
                    } catch {
                        try? await Task.sleep(for: .seconds(1))
                        break
                    }
                }
            }
        }
        pumpTasks.withLock { $0 = [listener, poller, reader] }
    }
}

/// The rule closure crosses into the connection's closure; it is called once, there.
private struct UncheckedRule: @unchecked Sendable {
    let rule: (StoredObject?, Int64) throws -> StoreSemantics.Outcome
}

/// Puts changes into the hub in version order, each once: this server's own writes as they
/// commit (when they are next), everyone's from the table when woken.
final class ChangePump: Sendable {
    private struct State {
        var last: Int64
        /// Own writes that came before the changes ahead of them.
        var early: [Int64: WatchEvent] = [:]
    }

    private let state: Mutex<State>
    private let hub: WatchHub
    let pokes: AsyncStream<Void>
    private let poker: AsyncStream<Void>.Continuation

    init(hub: WatchHub, last: Int64) {
        self.hub = hub
        self.state = Mutex(State(last: last))
        (pokes, poker) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    var last: Int64 { state.withLock { $0.last } }

    /// Something is new up to `version` (nil: perhaps); nothing to do if it is already in.
    func poke(_ version: Int64?) {
        if let version, version <= last { return }
        poker.yield()
    }

    func offer(_ event: WatchEvent) {
        let behind = state.withLock { s -> Bool in
            if event.resourceVersion <= s.last { return false }
            s.early[event.resourceVersion] = event
            Self.drain(&s, hub)
            return !s.early.isEmpty
        }
        if behind { poker.yield() }
    }

    func publish(_ events: [WatchEvent]) {
        state.withLock { s in
            for e in events where e.resourceVersion > s.last {
                if e.resourceVersion != s.last + 1 { hub.expire(through: e.resourceVersion - 1) }
                s.last = e.resourceVersion
                hub.publish(e)
            }
            s.early = s.early.filter { $0.key > s.last }
            Self.drain(&s, hub)
        }
    }

    /// Watchers list again; the feed goes on after `version`.
    func expire(through version: Int64) {
        state.withLock { s in
            hub.expire(through: version)
            s.last = max(s.last, version)
            s.early = s.early.filter { $0.key > s.last }
            Self.drain(&s, hub)
        }
    }

    private static func drain(_ s: inout State, _ hub: WatchHub) {
        while let next = s.early.removeValue(forKey: s.last + 1) {
            s.last = next.resourceVersion
            hub.publish(next)
        }
    }
}

