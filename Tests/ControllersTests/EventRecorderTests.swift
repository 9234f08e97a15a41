import Controllers
import Reconcile
import Foundation
import Model
import Store
import Testing
import TestSupport

/// Events as Kubernetes keeps them: a repeat raises the count, an object keeps its newest ones.
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
        let events = try await TypedStore<EventKind>(store).list(project: "main")
        #expect(events.count == EventRecorder.maxPerObject)
        #expect(!events.contains { $0.spec.message == "step 0" } && events.contains { $0.spec.message == "step \(EventRecorder.maxPerObject + 9)" })
        // A day later, a new event: the old ones are gone.
        clock.advance(by: EventRecorder.retention + 1)
        await recorder.record(run, warning: true, reason: "Late", message: "much later")
        #expect(try await TypedStore<EventKind>(store).list(project: "main").map(\.spec.reason) == ["Late"])
    }
}
