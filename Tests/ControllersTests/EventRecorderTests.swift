import Controllers
import Reconcile
import Foundation
import Model
import Store
import Testing
import TestSupport

/// Events as Kubernetes keeps them: a repeat raises the count, an object keeps its newest ones
/// (after the sweep).
@Suite struct EventRecorderTests {
    @Test func theSameEventAgainIsOneEventWithACount() async throws {
        let clock = ManualClock()
        let store = MemoryStore(now: { clock.now() })
        let recorder = EventRecorder(store: store, clock: clock, component: "test")
        let run = ObjectKey(kind: RunKind.name, project: "main", name: "web")
        await recorder.record(run, warning: false, reason: "ScaledUp", message: "group 0: 1 → 3 replica(s)")
        clock.advance(by: 30)
        await recorder.record(run, warning: false, reason: "ScaledUp", message: "group 0: 1 → 3 replica(s)")
        await recorder.record(run, warning: false, reason: "ScaledDown", message: "group 0: 3 → 1 replica(s)")
        let events = try await TypedStore<EventKind>(store).list(project: "main").map(\.spec).sorted { $0.reason > $1.reason }
        #expect(events.count == 2)
        let up = try #require(events.first { $0.reason == "ScaledUp" })
        #expect(up.count == 2 && up.lastTimestamp.timeIntervalSince(up.firstTimestamp) == 30)
        #expect(events.first { $0.reason == "ScaledDown" }?.count == 1)
    }

    @Test func anObjectKeepsItsNewestEvents() async throws {
        let clock = ManualClock()
        let store = MemoryStore(now: { clock.now() })
        let recorder = EventRecorder(store: store, clock: clock, component: "test")
        let run = ObjectKey(kind: RunKind.name, project: "main", name: "web")
        for i in 0..<(EventRecorder.maxPerObject + 10) {
            clock.advance(by: 1)
            await recorder.record(run, warning: false, reason: "Step", message: "step \(i)")
        }
        #expect(await recorder.sweep() == 10, "the minute's sweep keeps the object's newest")
        let events = try await TypedStore<EventKind>(store).list(project: "main")
        #expect(events.count == EventRecorder.maxPerObject)
        #expect(!events.contains { $0.spec.message == "step 0" } && events.contains { $0.spec.message == "step \(EventRecorder.maxPerObject + 9)" })
        // A day later, a new event: the old ones go at the next sweep.
        clock.advance(by: EventRecorder.retention + 1)
        await recorder.record(run, warning: true, reason: "Late", message: "much later")
        await recorder.sweep()
        #expect(try await TypedStore<EventKind>(store).list(project: "main").map(\.spec.reason) == ["Late"])
    }
}

/// What the minute's sweep removes: anything older than the retention, and a project's events
/// beyond its newest `maxPerProject`; the labels say which run an event is about.
@Suite struct EventSweepTests {
    func event(_ i: Int, at date: Date, project: String = "main") -> Event {
        var e = Event(project: project, name: "e\(i)", spec: EventSpec(involved: ObjectKey(kind: RunKind.name, project: project, name: "r\(i)"),
                                                                     type: "Normal", reason: "R", message: "m\(i)", firstTimestamp: date, lastTimestamp: date))
        e.meta.resourceVersion = Int64(i)
        return e
    }

    @Test func aProjectKeepsItsNewestEventsWithinTheRetention() {
        let now = Date(timeIntervalSince1970: 1_900_000_000)
        let many = (0..<(EventRecorder.maxPerProject + 5)).map { event($0, at: now.addingTimeInterval(Double($0) - 10_000)) }
        let expired = Set(EventRecorder.expired(many, now: now).map(\.meta.name))
        #expect(expired == Set((0..<5).map { "e\($0)" }), "the five oldest go")
        let old = [event(1, at: now.addingTimeInterval(-EventRecorder.retention - 1)), event(2, at: now.addingTimeInterval(-60))]
        #expect(EventRecorder.expired(old, now: now).map(\.meta.name) == ["e1"])
    }

    @Test func theSweepDeletesExpiredEventsOfEveryProjectAndRecordsTheRun() async throws {
        let clock = ManualClock()
        let store = MemoryStore(now: { clock.now() })
        let recorder = EventRecorder(store: store, clock: clock, component: "test")
        await recorder.record(ObjectKey(kind: ReplicaKind.name, project: "a", name: "web.0-0-0"), warning: false, reason: "Ready", message: "in rotation", run: "web")
        await recorder.record(ObjectKey(kind: RunKind.name, project: "b", name: "api"), warning: false, reason: "ScaledUp", message: "0 → 1")
        let recorded = try await TypedStore<EventKind>(store).list(project: "a")
        #expect(recorded.first?.meta.labels[Labels.run] == "web" && recorded.first?.meta.labels[EventRecorder.componentLabel] == "test")
        #expect(await recorder.sweep() == 0)
        clock.advance(by: EventRecorder.retention + 1)
        await recorder.record(ObjectKey(kind: RunKind.name, project: "b", name: "api"), warning: false, reason: "ScaledDown", message: "1 → 0")
        #expect(await recorder.sweep() == 2, "the old events of both projects go; b's new one stays")
        #expect(try await TypedStore<EventKind>(store).list().map(\.spec.reason) == ["ScaledDown"])
    }
}
