import Backend
import Controllers
import Foundation
import Model
import Reconcile
import Store
import StoreSQLite
import Testing
import TestSupport

/// Scenarios of dstack-behavior.md §2 and the improvements of docs/lifecycle.md, driven
/// deterministically with a manual clock and the fake backend.
@Suite struct RunLifecycleTests {
    @Test func createsReplicasAndReportsReady() async throws {
        let h = Harness()
        let applied = try await h.apply(http2)
        try await h.converge()
        let run = try await h.run("web")
        #expect(run.status.phase == .running)
        #expect(run.status.readyReplicas == 2 && run.status.desiredReplicas == 2)
        #expect(run.status.conditions["Ready"]?.status == "True")
        #expect(run.status.conditions["Progressing"]?.status == "False")
        #expect(run.status.observedGeneration == applied.meta.generation)
        #expect(run.status.deploymentNum == 1)
        let replicas = try await h.allReplicas("web")
        #expect(replicas.map(\.meta.name) == ["web.0-0-0", "web.0-1-0"])
        #expect(replicas.allSatisfy { $0.status.phase == .running && $0.status.ready })
        #expect(h.backend.workloads.count == 2)
        let env = try #require(h.backend.workload(named: "web.0-1-0")?.request.systemEnvironment)
        #expect(env["DSTACK_RUN_NAME"] == "web" && env["DSTACK_REPLICA_NUM"] == "1")
        #expect(try await h.events("web").contains { $0.reason == "ScaledUp" })
        // Converged: another pass writes nothing.
        let writes = await h.store.writeCount()
        try await h.converge()
        #expect(await h.store.writeCount() == writes)
    }

    /// What a secret resolver gives (the server's opens sealed values; tested end to end).
    struct Values: SecretResolver {
        let values: [String: String]
        func values(project: String, names: [String]) async throws -> [String: String] {
            try Dictionary(uniqueKeysWithValues: names.map { name in
                guard let v = values[name] else { throw BackendError(.invalid, "secret \(name) is not set") }
                return (name, v)
            })
        }
    }

    /// The workload gets the values; the stored replica keeps the references. `env` entries
    /// that use a secret travel as secret environment (a Secret on Kubernetes), and
    /// `registry_auth` is filled in.
    @Test func secretsAreFilledInOnlyInTheWorkloadRequest() async throws {
        let h = Harness(secrets: Values(values: ["TOKEN": "tok-value", "REG": "reg-pass"]))
        for (name, digest) in [("TOKEN", "d1"), ("REG", "d2")] {
            try await TypedStore<SecretKind>(h.store).create(ProjectSecret(project: "main", name: name, spec: SecretSpec(sealed: "-", digest: digest)))
        }
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: """
            replicas: 1
            env:
              - TOKEN=${{ secrets.TOKEN }}
              - PLAIN=p
              - PRICE=$$5 for ${HOME}
            registry_auth:
              username: bot
              password: ${{ secrets.REG }}
            """))
        try await h.converge()
        let replica = try #require(try await h.allReplicas("web").first)
        #expect(replica.spec.template.env["TOKEN"] == "${{ secrets.TOKEN }}" && replica.spec.template.registryPassword == "${{ secrets.REG }}")
        let request = try #require(h.backend.workload(named: replica.meta.name)?.request)
        #expect(request.secretEnvironment == ["TOKEN": "tok-value"])
        #expect(request.template.env["TOKEN"] == nil && request.template.env["PLAIN"] == "p")
        #expect(request.template.env["PRICE"] == "$5 for ${HOME}", "`$$` is a literal `$`, as dstack's server makes it")
        #expect(request.template.registryUsername == "bot" && request.template.registryPassword == "reg-pass")
        #expect(try await h.run("web").status.readyReplicas == 1)
    }

    @Test func backendLatencyShowsAsProvisioning() async throws {
        let h = Harness()
        h.backend.setStartDelay(20)
        try await h.apply(http2)
        try await h.converge()
        var run = try await h.run("web")
        #expect(run.status.phase == .provisioning)
        #expect(try await h.allReplicas("web").allSatisfy { $0.status.phase == .provisioning })
        #expect(run.status.conditions["Ready"]?.status == "False")
        try await h.advance(by: 20)
        run = try await h.run("web")
        #expect(run.status.phase == .running && run.status.readyReplicas == 2)
    }

    @Test func scalesUpAndDownInPlace() async throws {
        let h = Harness()
        try await h.apply(http2)
        try await h.converge()
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 4"))
        try await h.converge()
        #expect(try await h.serving("web").count == 4)
        #expect(try await h.run("web").status.deploymentNum == 1, "replicas is an in-place change")
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 1"))
        try await h.converge()
        let live = try await h.live("web")
        #expect(live.map(\.spec.replicaNum) == [0], "the highest numbers go first")
        let ended = try await h.allReplicas("web").filter { $0.spec.termination != nil }
        #expect(ended.count == 3 && ended.allSatisfy { $0.status.phase == .terminated && $0.status.terminationReason == .scaledDown })
        #expect(h.backend.workloads.count == 1, "stopped workloads are cleaned up")
        #expect(try await h.events("web").contains { $0.reason == "ScaledDown" })
    }

    @Test func scaleDownPrefersTheLeastAdvanced() async throws {
        let h = Harness()
        h.backend.setHealthRule { $0.name != "web.0-0-0" }
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 3\nprobes: [{type: http, url: /health, interval: 1}]"))
        try await h.converge()
        try await h.advance(by: 10)
        #expect(try await h.serving("web").map(\.spec.replicaNum) == [1, 2])
        // Replica 0 is running but not serving: it goes before higher-numbered serving ones.
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 2\nprobes: [{type: http, url: /health, interval: 1}]"))
        try await h.converge()
        #expect(try await h.live("web").map(\.spec.replicaNum).sorted() == [1, 2])
    }

    @Test func autoscalerCountAndScaleToZero() async throws {
        let h = Harness()
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 0..4\nscaling: {metric: rps, target: 1}"))
        try await h.converge()
        var run = try await h.run("web")
        #expect(run.status.phase == .pending && run.status.message == "waiting for requests")
        #expect(run.status.conditions["Ready"]?.reason == "ScaledToZero")
        try await h.setDesired("web", ["0": 3])
        try await h.converge()
        #expect(try await h.serving("web").count == 3)
        try await h.setDesired("web", ["0": 9])
        try await h.converge()
        #expect(try await h.serving("web").count == 4, "clamped to the range")
        try await h.setDesired("web", ["0": 0])
        try await h.converge()
        run = try await h.run("web")
        #expect(try await h.live("web").isEmpty)
        #expect(run.status.phase == .pending)
        #expect(h.backend.workloads.isEmpty)
    }

    @Test func rollingUpdateKeepsOldReplicasUntilNewOnesServe() async throws {
        let h = Harness()
        try await h.apply(http2)
        try await h.converge()
        let old = Set(try await h.serving("web").map(\.meta.name))
        // New replicas come up unhealthy at first.
        h.backend.setHealthRule { $0.template.env["MODE"] != "v2" }
        let updated = http2 + "\nenv:\n  - MODE=v2\nprobes: [{type: http, url: /ready, interval: 1}]"
        try await h.apply(updated)
        try await h.converge()
        try await h.advance(by: 10)
        var run = try await h.run("web")
        #expect(run.status.deploymentNum == 2)
        var live = try await h.live("web")
        #expect(live.count == 3, "surge 1: one new replica beside the two old ones")
        #expect(Set(live.filter { $0.spec.deploymentNum == 1 }.map(\.meta.name)) == old, "no old replica leaves before a new one serves")
        #expect(run.status.conditions["Progressing"]?.reason == "RollingUpdate")
        #expect(run.status.observedGeneration < run.meta.generation, "not converged yet")
        // New replicas become healthy: the rollout completes.
        h.backend.setHealthRule(nil)
        h.backend.setHealthy(where: { $0.template.env["MODE"] == "v2" }, true)
        try await h.advance(by: 10)
        live = try await h.live("web")
        #expect(live.count == 2 && live.allSatisfy { $0.spec.deploymentNum == 2 && $0.status.ready })
        run = try await h.run("web")
        #expect(run.status.conditions["Ready"]?.status == "True")
        #expect(run.status.observedGeneration == run.meta.generation)
        #expect(h.backend.workloads.count == 2)
        #expect(try await h.events("web").contains { $0.reason == "RolloutStep" })
    }

    @Test func rolloutWhoseReplicasFailIsHaltedAndOldOnesKeepServing() async throws {
        let h = Harness()
        try await h.apply(http2)
        try await h.converge()
        h.backend.failCreates(where: { $0.template.image == "broken:latest" },
                              with: BackendError(.invalid, "image broken:latest not found"))
        try await h.apply(http2 + "\nimage: broken:latest")
        try await h.converge()
        let run = try await h.run("web")
        #expect(run.status.phase == .running, "the run does not fail (dstack #4186)")
        #expect(run.status.conditions["Degraded"]?.status == "True")
        #expect(run.status.conditions["Degraded"]?.reason == "RolloutHalted")
        let serving = try await h.serving("web")
        #expect(serving.count == 2 && serving.allSatisfy { $0.spec.deploymentNum == 1 })
        #expect(try await h.events("web").contains { $0.reason == "RolloutHalted" })
        // Fixing the spec starts a new rollout.
        h.backend.clearCreateFailures()
        try await h.apply(http2 + "\nimage: fixed:latest")
        try await h.converge()
        #expect(try await h.serving("web").allSatisfy { $0.spec.template.image == "fixed:latest" })
        #expect(try await h.run("web").status.conditions["Degraded"]?.status == "False")
    }

    @Test func failedReplicaIsRetriedWithBackoffWithoutTouchingOthers() async throws {
        let h = Harness()
        try await h.apply(http2 + "\nretry: {on_events: [error], duration: 10m}")
        try await h.converge()
        h.backend.exit("web.0-1-0", code: 1)
        try await h.converge()
        var run = try await h.run("web")
        #expect(run.status.phase == .running, "the other replica keeps serving")
        #expect(run.status.retries["0/1"]?.attempts == 0)
        #expect(try await h.serving("web").map(\.meta.name) == ["web.0-0-0"])
        try await h.advance(by: 10)
        #expect(try await h.allReplicas("web").count == 2, "not resubmitted before the 15 s backoff")
        try await h.advance(by: 5)
        #expect(try await h.serving("web").map(\.meta.name) == ["web.0-0-0", "web.0-1-1"])
        #expect(try await h.allReplicas("web").count == 2, "the failed submission is cleaned up")
        // Failing again waits 30 s.
        h.backend.exit("web.0-1-1", code: 1)
        try await h.converge()
        try await h.advance(by: 25)
        #expect(try await h.serving("web").count == 1)
        try await h.advance(by: 5)
        #expect(try await h.serving("web").map(\.meta.name) == ["web.0-0-0", "web.0-1-2"])
        run = try await h.run("web")
        #expect(run.status.retries["0/1"]?.attempts == 2, "the streak lasts while the slot keeps failing")
        try await h.advance(by: 600, step: 60)
        run = try await h.run("web")
        #expect(run.status.retries["0/1"] == nil, "ten minutes of serving start a fresh streak")
        #expect(try await h.events("web").contains { $0.reason == "ReplicaRetried" })
    }

    @Test func retryStopsAfterItsDurationAndTheRunFailsOnlyWhenNothingServes() async throws {
        let h = Harness()
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 1") + "\nretry: {on_events: [error], duration: 1m}")
        try await h.converge()
        for _ in 0..<6 {
            for r in try await h.live("web") { h.backend.exit(r.meta.name, code: 2) }
            try await h.advance(by: 30)
        }
        let run = try await h.run("web")
        #expect(run.status.phase == .failed)
        #expect(run.status.terminationReason == .retryLimitExceeded)
        #expect(try await h.events("web").contains { $0.reason == "RunFailed" })
    }

    @Test func anExitedOrKilledReplicaIsReplacedWithBackoffWithoutRetry() async throws {
        let h = Harness()
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 3"))
        try await h.converge()
        h.backend.exit("web.0-2-0", code: 137)   // kill -9
        try await h.converge()
        #expect(try await h.serving("web").count == 2)
        let failed = try #require(try await h.allReplicas("web").first { $0.meta.name == "web.0-2-0" })
        #expect(failed.status.phase == .failed && failed.status.endpoint == nil, "a failed replica shows no endpoint")
        try await h.advance(by: 10)
        #expect(try await h.serving("web").count == 2, "not before the 15 s backoff")
        try await h.advance(by: 5)
        #expect(try await h.serving("web").map(\.meta.name) == ["web.0-0-0", "web.0-1-0", "web.0-2-1"])
        let run = try await h.run("web")
        #expect(run.status.failedSlots.isEmpty && run.status.phase == .running)
        #expect(try await h.events("web").contains { $0.reason == "ReplicaFailed" && $0.message.contains("exited") && $0.message.contains("replacing it in 15s") })
        // Exiting again waits longer (30 s): a crash loop is not a hot loop.
        let creates = h.backend.createCount
        h.backend.exit("web.0-2-1", code: 1)
        try await h.converge()
        try await h.advance(by: 25)
        #expect(h.backend.createCount == creates)
        try await h.advance(by: 5)
        #expect(h.backend.createCount == creates + 1)
    }

    @Test func aFailureThatIsNotAnExitWithoutRetryIsolatesTheReplica() async throws {
        let h = Harness()
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 3"))
        try await h.converge()
        h.backend.interrupt("web.0-2-0")
        try await h.converge()
        let creates = h.backend.createCount
        try await h.advance(by: 120)
        let run = try await h.run("web")
        #expect(run.status.phase == .running)
        #expect(run.status.conditions["Degraded"]?.reason == "ReplicaFailed")
        #expect(run.status.failedSlots == ["0/2"])
        #expect(try await h.serving("web").count == 2)
        #expect(h.backend.createCount == creates, "a failed slot is not recreated in a loop")
    }

    @Test func noCapacityIsRetriedUntilCapacityAppears() async throws {
        let h = Harness()
        h.backend.setCapacity(1)
        try await h.apply(http2 + "\nretry: {on_events: [no-capacity], duration: 1h}")
        try await h.converge()
        let failed = try await h.allReplicas("web").filter { $0.status.phase == .failed }
        #expect(failed.map(\.status.terminationReason) == [.failedToStartDueToNoCapacity])
        #expect(try await h.serving("web").count == 1)
        h.backend.setCapacity(2)
        try await h.advance(by: 15)
        #expect(try await h.serving("web").count == 2)
    }

    @Test func stopThenDeleteCleansUpEverything() async throws {
        let h = Harness()
        try await h.apply(http2)
        try await h.converge()
        try await h.stop("web")
        try await h.converge()
        let run = try await h.run("web")
        #expect(run.status.phase == .terminated && run.status.terminationReason == .stoppedByUser)
        let replicas = try await h.allReplicas("web")
        #expect(replicas.allSatisfy { $0.status.phase == .terminated && $0.status.terminationReason == .terminatedByUser })
        #expect(h.backend.workloads.isEmpty)
        #expect(h.backend.workloads.isEmpty)
        _ = try await h.runs.delete(project: "main", name: "web")
        try await h.converge()
        #expect(try await h.runs.get(project: "main", name: "web") == nil)
        #expect(try await h.allReplicas("web").isEmpty)
    }

    @Test func deletingARunningRunStopsItsWorkloadsFirst() async throws {
        let h = Harness()
        try await h.apply(http2)
        try await h.converge()
        _ = try await h.runs.delete(project: "main", name: "web")
        #expect(try await h.runs.get(project: "main", name: "web") != nil, "held by its finalizer")
        try await h.converge()
        #expect(try await h.runs.get(project: "main", name: "web") == nil)
        #expect(h.backend.workloads.isEmpty)
        #expect(h.backend.deleteCount == 2)
    }

    @Test func gracefulStopIsBoundedByStopDuration() async throws {
        let h = Harness()
        h.backend.setIgnoreGracefulStop(true)
        try await h.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 1") + "\nstop_duration: 30s")
        try await h.converge()
        try await h.stop("web")
        try await h.converge()
        #expect(try await h.allReplicas("web").first?.status.phase == .terminating)
        try await h.advance(by: 25)
        #expect(try await h.allReplicas("web").first?.status.phase == .terminating)
        try await h.advance(by: 10)
        let replica = try #require(try await h.allReplicas("web").first)
        #expect(replica.status.phase == .terminated && replica.status.exitStatus == 137)
        #expect(try await TypedStore<EventKind>(h.store).list(project: "main").contains { $0.spec.reason == "Killed" })
    }

    @Test func servingReplicasLeaveRotationBeforeTheyAreStopped() async throws {
        let h = Harness(drain: .fixed(5))
        try await h.apply(http2)
        try await h.converge()
        try await h.stop("web")
        try await h.converge()
        var replicas = try await h.allReplicas("web")
        #expect(replicas.allSatisfy { $0.status.phase == .terminating && !$0.status.ready && $0.status.drainStartedAt != nil })
        #expect(h.backend.workloads.allSatisfy { $0.stopRequests == 0 }, "not stopped while draining")
        try await h.advance(by: 5)
        replicas = try await h.allReplicas("web")
        #expect(replicas.allSatisfy { $0.status.phase == .terminated })
        #expect(h.backend.workloads.isEmpty)
        // Abort skips the drain.
        let fast = Harness(drain: .fixed(5))
        try await fast.apply(http2)
        try await fast.converge()
        try await fast.stop("web", abort: true)
        try await fast.converge()
        #expect(try await fast.allReplicas("web").allSatisfy { $0.status.phase == .aborted })
    }

    @Test func abortKillsAtOnce() async throws {
        let h = Harness()
        h.backend.setIgnoreGracefulStop(true)
        try await h.apply(http2)
        try await h.converge()
        try await h.stop("web", abort: true)
        try await h.advance(by: 2, step: 1)
        let run = try await h.run("web")
        #expect(run.status.phase == .terminated && run.status.terminationReason == .abortedByUser)
        #expect(try await h.allReplicas("web").allSatisfy { $0.status.phase == .aborted })
    }

    @Test func unresolvedEnvironmentStallsWithACondition() async throws {
        let h = Harness()
        try await h.apply(http2 + "\nenv: [HF_TOKEN]")
        let key = try await h.run("web").key
        let writes = await h.store.writeCount()
        await h.reconcileRun(key)
        let run = try await h.run("web")
        #expect(run.status.conditions["Stalled"]?.status == "True")
        #expect(run.status.conditions["Stalled"]?.reason == "UnresolvedEnvironment")
        #expect(run.status.conditions["Ready"]?.status == "False")
        // One status write says it all, with the generation it is about; not retried.
        #expect(run.status.observedGeneration == run.meta.generation)
        #expect(await h.store.writeCount() == writes + 2, "the status and its event")
        #expect(h.runController.queue.isIdle)
        #expect(try await h.allReplicas("web").isEmpty)
    }

    @Test func changesThatCannotRollStopEverythingThenRecreate() async throws {
        let h = Harness()
        try await h.apply(http2)
        try await h.converge()
        let before = h.backend.createCount
        try await h.apply(http2 + "\nspot_policy: spot")
        // One pass: the old replicas are asked to stop and nothing new starts yet.
        await h.reconcileRun(try await h.run("web").key)
        var run = try await h.run("web")
        #expect(run.status.recreating && run.status.phase == .terminating)
        #expect(h.backend.createCount == before)
        try await h.converge()
        run = try await h.run("web")
        #expect(!run.status.recreating && run.status.deploymentNum == 2)
        let serving = try await h.serving("web")
        #expect(serving.count == 2 && serving.allSatisfy { $0.spec.deploymentNum == 2 })
        #expect(h.backend.createCount == before + 2 && h.backend.workloads.count == 2)
        #expect(try await h.events("web").contains { $0.reason == "Recreating" })
    }

    @Test func changeClassification() throws {
        let a = try Harness.configuration(http2)
        let b = try Harness.configuration(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 3") + "\nenv: [A=1]\nauth: false\nmax_price: 2")
        let c = SpecChanges.classify(old: a, new: b)
        #expect(c.inPlace == ["replicas"])
        #expect(c.rolling == ["env"])
        #expect(Set(c.recreate) == ["auth", "max_price"])
        #expect(SpecChanges.classify(old: a, new: a).isEmpty)
    }

    @Test func restartOverTheSameFileConvergesWithoutDuplicatesOrOrphans() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-restart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.db").path
        let clock = ManualClock()
        let backend = FakeBackend(clock: clock)  // workloads outlive the server, like processes and Pods
        do {
            let first = Harness(store: try SQLiteStore(path: path, now: { clock.now() }), backend: backend, clock: clock)
            try await first.apply(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 3"))
            // Crash mid-way: only one pass of the run controller happened (replica objects
            // exist, no workload yet for some).
            await first.reconcileRun(try await first.run("web").key)
            await first.reconcileReplica(ObjectKey(kind: "Replica", project: "main", name: "web.0-0-0"))
        }
        let second = Harness(store: try SQLiteStore(path: path, now: { clock.now() }), backend: backend, clock: clock)
        try await second.converge()
        let replicas = try await second.allReplicas("web")
        #expect(replicas.map(\.meta.name) == ["web.0-0-0", "web.0-1-0", "web.0-2-0"])
        #expect(replicas.allSatisfy { $0.status.phase == .running })
        #expect(backend.workloads.count == 3, "no duplicate workload")
        #expect(backend.createCount == 3)
        #expect(Set(backend.workloads.map(\.request.name)) == Set(replicas.map(\.meta.name)), "no orphan")
    }
}
