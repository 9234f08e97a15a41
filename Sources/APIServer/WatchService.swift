import Foundation
import Model
import NIOCore
import Store
import Synchronization

/// What the API watches and lists for `setpoint get`, `setpoint events` and the web page: runs,
/// replicas, gateways, sources and events of one project, as the API shows them.
public struct WatchService: Sendable {
    let store: any ObjectStore
    let runs: RunService
    let cache = LineCache(capacity: 4096)

    public init(store: any ObjectStore, runs: RunService) {
        self.store = store
        self.runs = runs
    }

    /// The kinds a watch can ask for (`?kind=run,replica`), by the names a user types.
    public static let kinds: [(names: [String], kind: String)] = [
        (["run", "runs"], RunKind.name),
        (["replica", "replicas"], ReplicaKind.name),
        (["gateway", "gateways"], GatewayKind.name),
        (["source", "sources"], SourceKind.name),
        (["event", "events"], EventKind.name),
    ]

    /// `run,replica` → the stored kinds; nil (every kind) when the parameter is absent.
    public static func parseKinds(_ text: String?) throws -> Set<String> {
        guard let text, !text.isEmpty else { return Set(kinds.map(\.kind)) }
        var out = Set<String>()
        for word in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !word.isEmpty {
            guard let k = kinds.first(where: { $0.names.contains(word) || $0.kind.lowercased() == word }) else {
                throw RunService.Failure.invalid("kind: `\(word)` is not a kind a watch follows (run, replica, gateway, source, event)")
            }
            out.insert(k.kind)
        }
        guard !out.isEmpty else { throw RunService.Failure.invalid("kind: name at least one kind (run, replica, gateway, source, event), or leave it out for all") }
        return out
    }

    /// One stored object as a watch line, or nil for kinds the API does not show.
    func line(_ type: String, _ o: StoredObject) throws -> API.WatchEvent? {
        let rv = o.meta.resourceVersion
        switch o.meta.kind {
        case RunKind.name:
            return API.WatchEvent(type: type, kind: o.meta.kind, name: o.meta.name, resourceVersion: rv,
                                  run: runs.view(try TypedStore<RunKind>.decode(o)), replica: nil)
        case ReplicaKind.name:
            return API.WatchEvent(type: type, kind: o.meta.kind, name: o.meta.name, resourceVersion: rv,
                                  run: nil, replica: RunService.view(try TypedStore<ReplicaKind>.decode(o)))
        case SourceKind.name:
            return API.WatchEvent(type: type, kind: o.meta.kind, name: o.meta.name, resourceVersion: rv,
                                  run: nil, replica: nil, source: SourceService.view(try TypedStore<SourceKind>.decode(o)))
        case GatewayKind.name:
            return API.WatchEvent(type: type, kind: o.meta.kind, name: o.meta.name, resourceVersion: rv,
                                  run: nil, replica: nil, gateway: GatewayService.view(try TypedStore<GatewayKind>.decode(o)))
        case EventKind.name:
            return API.WatchEvent(type: type, kind: o.meta.kind, name: o.meta.name, resourceVersion: rv,
                                  run: nil, replica: nil, event: Self.view(try TypedStore<EventKind>.decode(o)))
        default:
            return nil
        }
    }

    /// What the stream yields: a stored object's change (shown by its kind's view), or a
    /// bookmark or `expired` line.
    enum Item {
        case change(String, StoredObject)
        case marker(API.WatchEvent)
    }

    /// The watch stream of `project` as API objects (tests and in-process readers).
    public func stream(project: String, kinds: Set<String>, from position: Int64?,
                       yield: @Sendable (API.WatchEvent) -> Void) async throws {
        try await items(project: project, kinds: kinds, from: position) { item in
            switch item {
            case .change(let type, let o): if let line = try? line(type, o) { yield(line) }
            case .marker(let e): yield(e)
            }
        }
    }

    /// The watch stream as NDJSON lines. A change is encoded once for every watcher that sends
    /// it (the lines are cached by the change's position), so a hundred watchers cost a
    /// hundred writes, not a hundred encodings.
    public func lines(project: String, kinds: Set<String>, from position: Int64?,
                      yield: @Sendable (ByteBuffer) -> Void) async throws {
        try await items(project: project, kinds: kinds, from: position) { item in
            switch item {
            case .change(let type, let o):
                let key = LineCache.Key(resourceVersion: o.meta.resourceVersion, type: type, kind: o.meta.kind, project: o.meta.project, name: o.meta.name)
                if let cached = cache.get(key) { yield(cached); return }
                guard let line = try? line(type, o), var data = try? API.encoder.encode(line) else { return }
                data.append(0x0A)
                let buffer = ByteBuffer(bytes: data)
                cache.put(key, buffer)
                yield(buffer)
            case .marker(let e):
                var data = (try? API.encoder.encode(e)) ?? Data()
                data.append(0x0A)
                yield(ByteBuffer(bytes: data))
            }
        }
    }

    /// The watch stream of `project`: with no position, every object of `kinds` (`added`), then
    /// a `bookmark` at the position the list was taken; after that every change, in order.
    ///
    /// The kinds are listed one after the other, so their lists are at positions L₁ ≤ … ≤ Lₖ;
    /// the feed is read from L₁ and a change of kind K at or before L_K is skipped (its list
    /// already shows it). The first bookmark comes once the feed has passed Lₖ. A client resumes
    /// from the last bookmark or (after the first bookmark) the last change it got: it gets
    /// every later change once, and none it had. While only other objects change, a bookmark
    /// says how far the stream has read (at most one a second), so a resumed watch does not
    /// start from a position the store has forgotten.
    func items(project: String, kinds: Set<String>, from position: Int64?, yield: (Item) -> Void) async throws {
        var listedAt: [String: Int64] = [:]
        var start = position ?? 0
        var listEnd: Int64 = 0
        if position == nil {
            for kind in Self.kinds.map(\.kind) where kinds.contains(kind) {
                let listed = try await store.list(ListOptions(kind: kind, project: project))
                listedAt[kind] = listed.resourceVersion
                for o in listed.items { yield(.change("added", o)) }
            }
            start = listedAt.values.min() ?? 0
            listEnd = listedAt.values.max() ?? 0
        }
        var synced = position != nil
        if !synced && listEnd <= start {
            yield(.marker(Self.bookmark(listEnd)))
            synced = true
        }
        var lastLine = Date()
        var position = start
        do {
            for try await change in store.watch(kind: nil, from: start) {
                let o = change.object
                position = change.resourceVersion
                var sent = false
                if o.meta.project == project, kinds.contains(o.meta.kind), position > (listedAt[o.meta.kind] ?? Int64.min) {
                    yield(.change(change.type.rawValue, o))
                    sent = true
                }
                if !synced {
                    if position >= listEnd {
                        yield(.marker(Self.bookmark(position)))
                        synced = true
                        lastLine = Date()
                    }
                    continue
                }
                if sent {
                    lastLine = Date()
                } else if Date().timeIntervalSince(lastLine) >= 1 {
                    yield(.marker(Self.bookmark(position)))
                    lastLine = Date()
                }
            }
        } catch let e as StoreError where e.code == .resourceVersionTooOld {
            yield(.marker(API.WatchEvent(type: "expired", kind: "", name: "", resourceVersion: start, run: nil, replica: nil)))
        }
    }

    static func bookmark(_ position: Int64) -> API.WatchEvent {
        API.WatchEvent(type: "bookmark", kind: "", name: "", resourceVersion: position, run: nil, replica: nil)
    }

    // MARK: events

    public static func view(_ e: Event) -> API.Event {
        API.Event(name: e.meta.name, resourceVersion: e.meta.resourceVersion, kind: e.spec.involved.kind, object: e.spec.involved.name,
                  type: e.spec.type, reason: e.spec.reason, message: e.spec.message, count: e.spec.count,
                  firstTimestamp: e.spec.firstTimestamp, lastTimestamp: e.spec.lastTimestamp,
                  component: e.meta.labels["setpoint.dev/component"],
                  run: e.meta.labels[Labels.run] ?? (e.spec.involved.kind == RunKind.name ? e.spec.involved.name : nil))
    }

    /// `--for`'s `KIND/NAME`, or a 400 naming the parameter.
    public static func parseSelector(_ text: String) throws -> EventSelector {
        guard let selector = EventSelector.parse(text) else {
            throw RunService.Failure.invalid("for: expected \(EventSelector.expected) (got `\(text)`)")
        }
        return selector
    }

    /// The project's events, oldest first (by last time seen), for one object and not older
    /// than `since` when asked.
    public func events(project: String, for selector: EventSelector?, since: Date?) async throws -> [API.Event] {
        try await TypedStore<EventKind>(store).list(project: project)
            .map(Self.view)
            .filter { e in (selector?.matches(e) ?? true) && (since.map { e.lastTimestamp >= $0 } ?? true) }
            .sorted { ($0.lastTimestamp, $0.name) < ($1.lastTimestamp, $1.name) }
    }

    /// `10m`, `90s`, `2h`, `1d`, or an RFC 3339 time.
    public static func parseSince(_ text: String, now: Date) throws -> Date {
        guard let date = Timestamps.since(text, now: now) else {
            throw RunService.Failure.invalid("since: expected a duration such as 30s, 10m, 2h, 1d or an RFC 3339 time (got `\(text)`)")
        }
        return date
    }

    /// Every replica of the project (`setpoint get replicas`), by run and name.
    public func replicas(project: String) async throws -> [API.Replica] {
        try await TypedStore<ReplicaKind>(store).list(project: project).map(RunService.view)
            .sorted { ($0.run ?? "", $0.name) < ($1.run ?? "", $1.name) }
    }
}

/// The last encoded watch lines, by change: shared by every watcher of one server.
final class LineCache: Sendable {
    struct Key: Hashable {
        var resourceVersion: Int64
        var type: String
        var kind: String
        var project: String
        var name: String
    }

    private struct State {
        var lines: [Key: ByteBuffer] = [:]
        var order: [Key] = []
        var start = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func get(_ key: Key) -> ByteBuffer? { state.withLock { $0.lines[key] } }

    func put(_ key: Key, _ data: ByteBuffer) {
        state.withLock { s in
            guard s.lines.updateValue(data, forKey: key) == nil else { return }
            s.order.append(key)
            if s.order.count - s.start > capacity {
                s.lines[s.order[s.start]] = nil
                s.start += 1
                if s.start > capacity {
                    s.order.removeFirst(s.start)
                    s.start = 0
                }
            }
        }
    }
}
