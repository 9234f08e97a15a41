import APIServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Model
import Reconcile
import Store
import Synchronization
import Testing
import TestSupport

/// The watch stream as clients read it: the state, a bookmark, then every change once; resumed
/// from the bookmark or the last change without a gap or a repeat; kinds asked for only.
@Suite struct WatchServiceTests {
    final class Lines: Sendable {
        let lines = Mutex<[API.WatchEvent]>([])
        var all: [API.WatchEvent] { lines.withLock { $0 } }
        func add(_ e: API.WatchEvent) { lines.withLock { $0.append(e) } }
    }

    func follow(_ watcher: WatchService, kinds: Set<String>, from: Int64?) -> (Lines, Task<Void, Error>) {
        let lines = Lines()
        let task = Task { try await watcher.stream(project: "main", kinds: kinds, from: from) { lines.add($0) } }
        return (lines, task)
    }

    func source(_ name: String, project: String = "main") -> Source {
        Source(project: project, name: name, spec: SourceSpec(url: "file:///repo", suspend: true))
    }

    @Test func theStateThenABookmarkThenEachChangeAndAResumeWithoutGapOrRepeat() async throws {
        let store = MemoryStore()
        let sources = TypedStore<SourceKind>(store)
        let events = EventRecorder(store: store, clock: SystemClock(), component: "test")
        let watcher = WatchService(store: store, runs: RunService(store: store, backend: FakeBackend(clock: SystemClock()), publicURL: "http://t", codeDirectory: "/tmp"))
        _ = try await sources.create(source("one"))
        await events.record(ObjectKey(kind: SourceKind.name, project: "main", name: "one"), warning: false, reason: "NewRevision", message: "a")
        _ = try await sources.create(source("elsewhere", project: "other"))

        let (first, task) = follow(watcher, kinds: try WatchService.parseKinds(nil), from: nil)
        try await waitFor(timeout: 10) { first.all.contains { $0.type == "bookmark" } }
        let snapshot = first.all.prefix { $0.type != "bookmark" }
        #expect(Set(snapshot.map { "\($0.type) \($0.kind) \($0.name)" }).count == 2)
        #expect(snapshot.contains { $0.kind == SourceKind.name && $0.source?.name == "one" } && snapshot.contains { $0.event?.reason == "NewRevision" })
        #expect(!snapshot.contains { $0.name == "elsewhere" }, "another project's objects are not shown")

        _ = try await sources.create(source("two"))
        await events.record(ObjectKey(kind: SourceKind.name, project: "main", name: "two"), warning: false, reason: "NewRevision", message: "b")
        try await waitFor(timeout: 10) { first.all.contains { $0.event?.message == "b" } }
        task.cancel()
        _ = try? await task.value
        let seen = first.all.filter { $0.type != "bookmark" }
        let position = first.all.last!.resourceVersion

        // While disconnected: a change of each kind, and one in another project.
        _ = try await sources.delete(project: "main", name: "one")
        await events.record(ObjectKey(kind: SourceKind.name, project: "main", name: "two"), warning: true, reason: "FetchFailed", message: "c")
        _ = try await sources.create(source("more", project: "other"))

        let (resumed, again) = follow(watcher, kinds: try WatchService.parseKinds(nil), from: position)
        try await waitFor(timeout: 10) { resumed.all.contains { $0.event?.message == "c" } }
        again.cancel()
        let changes = resumed.all.filter { $0.type != "bookmark" }
        #expect(changes.map { "\($0.type) \($0.kind) \($0.name)" }.first == "deleted Source one")
        #expect(changes.count == 2, "exactly the two changes made meanwhile: \(changes.map { "\($0.type) \($0.name)" })")
        #expect(Set(changes.map(\.resourceVersion)).isDisjoint(with: Set(seen.map(\.resourceVersion))), "nothing seen before comes again")
    }

    @Test func onlyTheKindsAskedForAndABookmarkWhileOthersChange() async throws {
        let store = MemoryStore()
        let sources = TypedStore<SourceKind>(store)
        let events = EventRecorder(store: store, clock: SystemClock(), component: "test")
        let watcher = WatchService(store: store, runs: RunService(store: store, backend: FakeBackend(clock: SystemClock()), publicURL: "http://t", codeDirectory: "/tmp"))
        let (lines, task) = follow(watcher, kinds: try WatchService.parseKinds("events"), from: nil)
        defer { task.cancel() }
        try await waitFor(timeout: 10) { lines.all.contains { $0.type == "bookmark" } }
        _ = try await sources.create(source("one"))
        await events.record(ObjectKey(kind: SourceKind.name, project: "main", name: "one"), warning: false, reason: "NewRevision", message: "a")
        try await waitFor(timeout: 10) { lines.all.contains { $0.event != nil } }
        #expect(!lines.all.contains { $0.kind == SourceKind.name }, "sources were not asked for")
        // Only other objects change: a bookmark says how far the stream has read.
        let before = lines.all.count
        let started = Date()
        while Date().timeIntervalSince(started) < 3, !lines.all.dropFirst(before).contains(where: { $0.type == "bookmark" }) {
            _ = try await sources.create(source("s\(Int(Date().timeIntervalSince1970 * 1000))", project: "other"))
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let bookmark = try #require(lines.all.dropFirst(before).first { $0.type == "bookmark" })
        #expect(bookmark.resourceVersion > lines.all[before - 1].resourceVersion)
        #expect(throws: RunService.Failure.self) { try WatchService.parseKinds("runs,pods") }
        #expect(throws: RunService.Failure.self) { try WatchService.parseKinds(",") }
        #expect(try WatchService.parseKinds("Run, replicas") == [RunKind.name, ReplicaKind.name])
    }

    @Test func theEventsOfARunIncludeItsReplicasAndRouteAndSinceCuts() async throws {
        let clock = ManualClock()
        let store = MemoryStore(now: { clock.now() })
        let events = EventRecorder(store: store, clock: clock, component: "test")
        await events.record(ObjectKey(kind: RunKind.name, project: "main", name: "web"), warning: false, reason: "ScaledUp", message: "0 → 1", run: "web")
        clock.advance(by: 600)
        await events.record(ObjectKey(kind: ReplicaKind.name, project: "main", name: "web.0-0-0"), warning: false, reason: "Ready", message: "in rotation", run: "web")
        await events.record(ObjectKey(kind: ProxyRouteKind.name, project: "main", name: "web"), warning: false, reason: "Published", message: "p", run: "web")
        await events.record(ObjectKey(kind: RunKind.name, project: "main", name: "api"), warning: false, reason: "ScaledUp", message: "0 → 1", run: "api")
        let watcher = WatchService(store: store, runs: RunService(store: store, backend: FakeBackend(clock: SystemClock()), publicURL: "http://t", codeDirectory: "/tmp"))
        let web = try await watcher.events(project: "main", for: try WatchService.parseSelector("run/web"), since: nil)
        #expect(web.map(\.reason) == ["ScaledUp", "Ready", "Published"])
        #expect(web.map(\.kind) == [RunKind.name, ReplicaKind.name, ProxyRouteKind.name])
        let recent = try await watcher.events(project: "main", for: try WatchService.parseSelector("run/web"), since: try WatchService.parseSince("5m", now: clock.now()))
        #expect(recent.map(\.reason) == ["Ready", "Published"])
        #expect(try await watcher.events(project: "main", for: try WatchService.parseSelector("replica/web.0-0-0"), since: nil).map(\.reason) == ["Ready"])
        #expect(throws: RunService.Failure.self) { try WatchService.parseSelector("pod/web") }
        #expect(throws: RunService.Failure.self) { try WatchService.parseSince("soon", now: clock.now()) }
    }
}
