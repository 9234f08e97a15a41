import Backend
import Foundation
import Model
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct BackendSetTests {
    @Test func backendsAndRegionsChooseTheMemberAndCapacityFallsThrough() async throws {
        let clock = ManualClock()
        let local = FakeBackend(clock: clock)
        let east = FakeBackend(clock: clock)
        let west = FakeBackend(clock: clock)
        let set = BackendSet([
            .init(backend: local, type: "local", region: "local"),
            .init(backend: east, type: "kubernetes", region: "east"),
            .init(backend: west, type: "kubernetes", region: "west"),
        ], prober: local)
        func req(_ name: String, backends: [String]? = nil, regions: [String]? = nil) -> WorkloadRequest {
            WorkloadRequest(name: name, project: "main", labels: [:],
                            template: ReplicaTemplate(commands: ["x"], backends: backends, regions: regions), systemEnvironment: [:])
        }
        _ = try await set.create(req("a"))
        _ = try await set.create(req("b", backends: ["kubernetes"]))
        _ = try await set.create(req("c", backends: ["kubernetes"], regions: ["west"]))
        #expect(local.workloads.map(\.request.name) == ["a"])
        #expect(east.workloads.map(\.request.name) == ["b"])
        #expect(west.workloads.map(\.request.name) == ["c"])

        // East is full: the next kubernetes replica goes west.
        east.setCapacity(1)
        _ = try await set.create(req("d", backends: ["kubernetes"]))
        #expect(west.workloads.map(\.request.name).sorted() == ["c", "d"])

        await #expect(throws: BackendError.self) { try await set.create(req("e", backends: ["aws"])) }
        do { _ = try await set.create(req("e", regions: ["mars"])) } catch let e as BackendError {
            #expect(e.code == .noCapacity && e.message.contains("regions [\"mars\"]") && e.message.contains("kubernetes (region east)"))
        }
    }
}
