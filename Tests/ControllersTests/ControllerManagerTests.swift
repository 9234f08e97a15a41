import Backend
import Controllers
import Foundation
import Model
import Reconcile
import Store
import StoreSQLite
import Testing
import TestSupport

/// The controllers as the server runs them: informers, work queues, workers, the backend's
/// change stream, on the system clock; waits are conditions with deadlines.
@Suite struct ControllerManagerTests {
    @Test func convergesFromWatchesAndCleansUpOnDelete() async throws {
        let clock = SystemClock()
        let store = MemoryStore()
        let backend = FakeBackend(clock: clock)
        let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: clock, resyncPeriod: nil)
        let task = Task { try await manager.run() }
        defer { task.cancel() }
        let runs = TypedStore<RunKind>(store)
        try await runs.create(Run(project: "main", name: "web", spec: RunSpec(configuration: try Harness.configuration(http2))))
        try await waitFor { (try await runs.get(project: "main", name: "web"))?.status.conditions["Ready"]?.status == "True" }
        #expect(backend.running.count == 2)

        var run = try #require(try await runs.get(project: "main", name: "web"))
        run.spec.configuration = try Harness.configuration(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 5"))
        try await runs.update(run)
        try await waitFor { (try await runs.get(project: "main", name: "web"))?.status.readyReplicas == 5 }
        #expect(backend.running.count == 5)

        _ = try await runs.delete(project: "main", name: "web")
        try await waitFor { try await runs.get(project: "main", name: "web") == nil }
        #expect(backend.workloads.isEmpty)
        #expect(try await TypedStore<ReplicaKind>(store).list().isEmpty)
    }

    @Test func restartAdoptsWorkloadsAndCollectsOrphans() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-manager-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.db").path
        let clock = SystemClock()
        let backend = FakeBackend(clock: clock)
        do {
            let store = try SQLiteStore(path: path)
            let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: clock, resyncPeriod: nil)
            let task = Task { try await manager.run() }
            let runs = TypedStore<RunKind>(store)
            try await runs.create(Run(project: "main", name: "web", spec: RunSpec(configuration: try Harness.configuration(http2))))
            try await waitFor { (try await runs.get(project: "main", name: "web"))?.status.readyReplicas == 2 }
            task.cancel()
            _ = try? await task.value
        }
        // A workload whose replica object is gone (as after a crash between the two deletes).
        _ = try await backend.create(WorkloadRequest(
            name: "web.0-9-0", project: "main",
            labels: [Labels.project: "main", Labels.run: "web", Labels.group: "0", Labels.replica: "9", Labels.submission: "0"],
            template: ReplicaTemplate(), systemEnvironment: [:]))
        let creates = backend.createCount
        let store = try SQLiteStore(path: path)
        let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: clock, resyncPeriod: nil)
        let task = Task { try await manager.run() }
        defer { task.cancel() }
        try await waitFor { backend.workloads.count == 2 }
        let runs = TypedStore<RunKind>(store)
        try await waitFor { (try await runs.get(project: "main", name: "web"))?.status.readyReplicas == 2 }
        #expect(backend.createCount == creates, "existing workloads are adopted, not recreated")
        #expect(Set(backend.workloads.map(\.request.name)) == ["web.0-0-0", "web.0-1-0"])
    }

    @Test func workloadsOrphanedWhileRunningAreCollected() async throws {
        let clock = SystemClock()
        let store = MemoryStore()
        let backend = FakeBackend(clock: clock)
        let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: clock, resyncPeriod: nil,
                                        garbageCollectionInterval: 0.2)
        let task = Task { try await manager.run() }
        defer { task.cancel() }
        let runs = TypedStore<RunKind>(store)
        try await runs.create(Run(project: "main", name: "web", spec: RunSpec(configuration: try Harness.configuration(http2))))
        try await waitFor { (try await runs.get(project: "main", name: "web"))?.status.readyReplicas == 2 }
        // Long after the start: a workload whose replica object does not exist.
        _ = try await backend.create(WorkloadRequest(
            name: "web.0-7-0", project: "main",
            labels: [Labels.project: "main", Labels.run: "web", Labels.group: "0", Labels.replica: "7", Labels.submission: "0"],
            template: ReplicaTemplate(), systemEnvironment: [:]))
        try await waitFor("the orphan collected", timeout: 10) { !backend.workloads.contains { $0.request.name == "web.0-7-0" } }
        #expect(Set(backend.workloads.map(\.request.name)) == ["web.0-0-0", "web.0-1-0"], "the run's own are left alone")
    }
}
