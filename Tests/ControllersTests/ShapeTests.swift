import Backend
import Controllers
import Foundation
import Model
import Reconcile
import Store
import Testing
import TestSupport

/// The defects the one reconcile shape fixes, each through the real runtime on a manual clock.
@Suite struct ShapeTests {
    /// `http2` with a readiness probe every 5 s.
    static let probed = http2 + """

        probes:
          - type: http
            url: /health
            interval: 5
        """

    @Test func steadyStateWritesNothingWhileProbesKeepPassing() async throws {
        let h = Harness()
        try await h.apply(Self.probed)
        try await h.advance(by: 10, step: 1)
        #expect(try await h.serving("web").count == 2)
        let writes = await h.store.writeCount()
        let probes = h.backend.probeCount
        // A minute of manual-clock time, stepping only what the runtime has due.
        for _ in 0..<60 {
            h.clock.advance(by: 1)
            await h.settle()
        }
        #expect(h.backend.probeCount >= probes + 2 * 11, "the probes ran every 5 s")
        #expect(await h.store.writeCount() == writes, "no store write while nothing changed")
        #expect(try await h.serving("web").count == 2)
    }

    @Test func aFailingProbeTakesTheReplicaOutAndAPassingOneBack() async throws {
        let h = Harness()
        try await h.apply(Self.probed)
        try await h.advance(by: 10, step: 1)
        h.backend.setHealthy("web.0-0-0", false)
        for _ in 0..<6 { h.clock.advance(by: 1); await h.settle() }
        #expect(try await h.serving("web").map(\.meta.name) == ["web.0-1-0"])
        let out = try #require(try await h.allReplicas("web").first { $0.meta.name == "web.0-0-0" })
        #expect(out.status.conditions["Ready"]?.status == "False" && out.status.conditions["Ready"]?.reason == "ProbesFailing")
        h.backend.setHealthy("web.0-0-0", true)
        for _ in 0..<6 { h.clock.advance(by: 1); await h.settle() }
        #expect(try await h.serving("web").count == 2)
    }

    @Test func replicaNamesOfRunsWhoseNamesShareAPrefixDoNotCollide() async throws {
        let h = Harness()
        try await h.apply("""
            type: service
            name: svc-a
            commands: [python3 -m http.server 8000]
            port: 8000
            """)
        try await h.apply("""
            type: service
            name: svc
            port: 8000
            groups:
              - name: a-0
                count: 1
                commands: [python3 -m http.server 8000]
            """)
        try await h.converge()
        let a = try await h.run("svc-a"), b = try await h.run("svc")
        #expect(a.status.readyReplicas == 1 && b.status.readyReplicas == 1)
        #expect(try await h.allReplicas("svc-a").map(\.meta.name) == ["svc-a.0-0-0"])
        #expect(try await h.allReplicas("svc").map(\.meta.name) == ["svc.a-0-0-0"])
        #expect(Set(h.backend.workloads.map(\.request.name)) == ["svc-a.0-0-0", "svc.a-0-0-0"])
    }

    @Test func aNameTakenByAnotherObjectIsAConditionNotAHotLoop() async throws {
        let h = Harness()
        // What an earlier run of the same name left, still being cleaned up.
        let leftover = Replica(project: "main", name: "web.0-0-0", labels: [Labels.run: "web"],
                               owner: OwnerReference(kind: RunKind.name, name: "web", uid: "earlier-run"),
                               finalizers: [Labels.backendFinalizer],
                               spec: ReplicaSpec(run: "web", group: "0", replicaNum: 0, submissionNum: 0, deploymentNum: 1,
                                                 template: ReplicaTemplate(commands: ["true"])))
        try await h.replicaStore.create(leftover)
        _ = try await h.replicaStore.delete(project: "main", name: "web.0-0-0")
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 1"))
        let key = try await h.run("web").key
        await h.reconcileRun(key)
        var run = try await h.run("web")
        #expect(run.status.conditions["Ready"]?.reason == "ReplicaNameTaken")
        #expect(run.status.message.contains("earlier run named web is still being deleted"))
        let version = run.meta.resourceVersion
        // Retried with backoff: a minute brings a handful of attempts and no rewrite of the run.
        let before = await h.store.writeCount()
        for _ in 0..<60 { h.clock.advance(by: 1); await h.settle() }
        run = try await h.run("web")
        #expect(run.meta.resourceVersion == version, "the run is not rewritten while the name stays taken")
        #expect(await h.store.writeCount() - before < 30, "no hot loop")
        let event = try #require(try await h.events("web").first { $0.reason == "ReplicaNameTaken" })
        #expect(event.count > 1 && event.count < 30)
        // The leftover goes: the replica is created and serves.
        var gone = try #require(try await h.replicaStore.get(project: "main", name: "web.0-0-0"))
        gone.meta.finalizers = []
        try await h.replicaStore.update(gone)
        try await h.advance(by: 30, step: 5)
        run = try await h.run("web")
        #expect(run.status.readyReplicas == 1 && run.status.conditions["Ready"]?.status == "True")
        #expect(try await h.allReplicas("web").allSatisfy { $0.meta.ownerReferences.first?.uid == run.meta.uid })
    }

    @Test func anErrorIsRetriedWithBackoffThroughTheQueue() async throws {
        let h = Harness()
        h.backend.failCreates(where: { _ in true }, with: BackendError(.unavailable, "the cluster is not reachable"))
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 1"))
        try await h.converge()
        let replica = try #require(try await h.allReplicas("web").first)
        #expect(h.replicaController.queue.failures(replica.key) >= 1, "the error went to the rate-limited retry")
        h.backend.clearCreateFailures()
        for _ in 0..<10 { h.clock.advance(by: 1); await h.settle() }
        #expect(try await h.serving("web").count == 1)
        #expect(h.replicaController.queue.failures(replica.key) == 0)
    }

    @Test func aStoredRunIsReadWithoutTodaysRules() async throws {
        let h = Harness()
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 1") + "\nworking_dir: /srv")
        // As a version that allowed a relative working_dir would have stored it.
        let key = try await h.run("web").key
        var stored = try #require(try await h.store.get(key))
        // The configuration is JSON text inside the spec's JSON: its quotes (and `/`) are escaped.
        let before = #"\"working_dir\":\"\/srv\""#, after = #"\"working_dir\":\"srv\""#
        #expect(String(decoding: stored.spec, as: UTF8.self).contains(before))
        stored.spec = Data(String(decoding: stored.spec, as: UTF8.self).replacingOccurrences(of: before, with: after).utf8)
        _ = try await h.store.update(stored)
        let run = try await h.run("web")
        #expect(run.spec.configuration.workingDir == "srv")
        try await h.converge()
        #expect(try await h.run("web").status.readyReplicas == 1)
    }
}
