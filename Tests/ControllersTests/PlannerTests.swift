import Backend
import Controllers
import Foundation
import Model
import Reconcile
import SetpointConfiguration
import Store
import Testing
import TestSupport

/// The pure planners as tables: the run planner, the replica planner and the autoscaler's plan,
/// from an object, an observation and a time, with no store, backend or clock.
@Suite struct PlannerTests {
    let now = Date(timeIntervalSince1970: 1_900_000_000)

    func run(_ yaml: String, desired: [String: Int]? = nil, stop: StopRequest? = nil) throws -> Run {
        var run = Run(project: "main", name: "web", spec: RunSpec(configuration: try Harness.configuration(yaml), desiredReplicas: desired, stop: stop))
        run.meta.uid = "run-uid"
        return run
    }

    func templates(_ run: Run) throws -> [String: ReplicaTemplate] {
        var t: [String: ReplicaTemplate] = [:]
        for g in run.spec.configuration.replicaGroups { t[g.name] = try ReplicaTemplates.template(run.spec.configuration, group: g) }
        return t
    }

    /// A replica of `run` in `phase`, created by an earlier plan.
    func replica(_ run: Run, num: Int, sub: Int = 0, phase: ReplicaPhase, ready: Bool = false) throws -> Replica {
        var live = run
        live.spec.stop = nil
        let create = try #require(RunPlanner.plan(run: live, replicas: [], templates: try templates(run), now: now).creates.first)
        var spec = create.spec
        spec.replicaNum = num
        spec.submissionNum = sub
        var r = Replica(project: "main", name: Replica.name(run: "web", group: spec.group, replicaNum: num, submissionNum: sub),
                        labels: create.labels, owner: run.ownerReference, spec: spec)
        r.status.phase = phase
        r.status.ready = ready
        r.status.endpoint = phase == .running ? "10.0.0.\(num):8000" : nil
        r.status.startedAt = phase == .running ? now.addingTimeInterval(-60) : nil
        return r
    }

    @Test(arguments: [
        // (replicas wanted, replicas there (phase, ready), creates, terminations, run phase)
        (2, [], 2, 0, RunPhase.submitted),
        (2, [(ReplicaPhase.running, true)], 1, 0, .running),
        (1, [(.running, true), (.running, true)], 0, 1, .running),
        (1, [(.provisioning, false)], 0, 0, .provisioning),
    ] as [(Int, [(ReplicaPhase, Bool)], Int, Int, RunPhase)])
    func runPlannerScalesToTheDesiredCount(wanted: Int, there: [(ReplicaPhase, Bool)], creates: Int, terminations: Int, phase: RunPhase) throws {
        var r = try run(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: \(wanted)"))
        r.status.templateHashes = try templates(r).mapValues(\.hash)
        r.status.deploymentNum = 1
        r.status.recreateDigest = SpecChanges.recreateDigest(r.spec.configuration)
        let replicas = try there.enumerated().map { i, p in try replica(r, num: i, phase: p.0, ready: p.1) }
        let plan = RunPlanner.plan(run: r, replicas: replicas, templates: try templates(r), now: now)
        #expect(plan.creates.count == creates)
        #expect(plan.terminations.count == terminations)
        #expect(plan.status.phase == phase)
        #expect(plan.creates.allSatisfy { $0.name.hasPrefix("web.0-") })
    }

    @Test func runPlannerStopsEveryReplicaAndEndsTheRun() throws {
        var r = try run(http2, stop: StopRequest(abort: false))
        r.status.templateHashes = try templates(r).mapValues(\.hash)
        let live = try replica(r, num: 0, phase: .running, ready: true)
        let plan = RunPlanner.plan(run: r, replicas: [live], templates: try templates(r), now: now)
        #expect(plan.terminations.map(\.request) == [TerminationRequest(reason: .terminatedByUser, graceful: true)])
        #expect(plan.status.phase == .terminating && plan.status.conditions["Ready"]?.reason == "Stopped")
        var ended = live
        ended.spec.termination = TerminationRequest(reason: .terminatedByUser, graceful: true)
        ended.status.phase = .terminated
        let done = RunPlanner.plan(run: r, replicas: [ended], templates: try templates(r), now: now)
        #expect(done.terminations.isEmpty && done.status.phase == .terminated)
        #expect(done.events.map(\.reason) == ["Stopped"])
    }

    /// A service that uses a project secret: its template records the secret's digest, so a new
    /// value is a new deployment; a secret the project lacks stalls the run, except a stop.
    @Test func runControllerRollsOnANewSecretValueAndStallsWithoutTheSecret() throws {
        let yaml = http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 1\nenv:\n  - TOKEN=x-${{ secrets.TOKEN }}")
        var r = try run(yaml)
        let controller = RunController(store: MemoryStore(), replicas: StoreReplicaSource(MemoryStore()))
        r.meta.finalizers = [Labels.replicasFinalizer]
        let first = try controller.plan(r, RunObservation(replicas: [], secretDigests: ["TOKEN": "d1"]), now: now)
        let created = try #require(first.actions.compactMap { if case .create(let c) = $0 { return c } else { return nil } }.first)
        #expect(created.spec.template.env["TOKEN"] == "x-${{ secrets.TOKEN }}", "the template keeps the reference, not a value")
        #expect(created.spec.template.secrets == ["TOKEN": "d1"])
        r.status = first.status
        var live = Replica(project: "main", name: created.name, labels: created.labels, owner: r.ownerReference, spec: created.spec)
        live.status.phase = .running
        live.status.ready = true
        let same = try controller.plan(r, RunObservation(replicas: [live], secretDigests: ["TOKEN": "d1", "OTHER": "o"]), now: now)
        #expect(same.status.deploymentNum == r.status.deploymentNum && same.events.isEmpty, "another secret's change is not this run's")
        let rolled = try controller.plan(r, RunObservation(replicas: [live], secretDigests: ["TOKEN": "d2"]), now: now)
        #expect(rolled.status.deploymentNum == r.status.deploymentNum + 1)
        #expect(rolled.events.map(\.reason) == ["RolloutStarted"])
        #expect(throws: TerminalError.self) { try controller.plan(r, RunObservation(replicas: [live], secretDigests: [:]), now: now) }
        do { _ = try controller.plan(r, RunObservation(replicas: [live]), now: now) } catch let e as TerminalError {
            #expect(e.reason == "SecretNotFound" && e.message.contains("env.TOKEN refers to secret TOKEN"), "\(e.message)")
        }
        var stopping = r
        stopping.spec.stop = StopRequest(abort: false)
        let stop = try controller.plan(stopping, RunObservation(replicas: [live]), now: now)
        #expect(stop.actions.contains { if case .terminate = $0 { return true } else { return false } }, "a stop needs no secret")
    }

    @Test func runPlannerRetriesAnExitedReplicaAfterItsBackoff() throws {
        var r = try run(http2.replacingOccurrences(of: "replicas: 2", with: "replicas: 1"))
        r.status.templateHashes = try templates(r).mapValues(\.hash)
        r.status.deploymentNum = 1
        r.status.recreateDigest = SpecChanges.recreateDigest(r.spec.configuration)
        var exited = try replica(r, num: 0, phase: .failed)
        exited.status.terminationReason = .containerExitedWithError
        exited.status.finishedAt = now
        let first = RunPlanner.plan(run: r, replicas: [exited], templates: try templates(r), now: now)
        #expect(first.creates.isEmpty && first.requeueAfter == RunPlanner.backoff(attempt: 0))
        r.status = first.status
        let later = RunPlanner.plan(run: r, replicas: [exited], templates: try templates(r), now: now.addingTimeInterval(RunPlanner.backoff(attempt: 0)))
        #expect(later.creates.map(\.name) == ["web.0-0-1"])
    }

    func replicaWith(_ phase: ReplicaPhase, ready: Bool = false, workload: Bool = true) -> Replica {
        var r = Replica(project: "main", name: "web.0-0-0", spec: ReplicaSpec(run: "web", group: "0", replicaNum: 0, submissionNum: 0,
                                                                             deploymentNum: 1, template: ReplicaTemplate(commands: ["x"], probes: [ProbeTemplate(url: "/h", interval: 5)])))
        r.status.phase = phase
        r.status.ready = ready
        if workload { r.status.workloadID = "w" }
        if phase == .running {
            r.status.endpoint = "10.0.0.1:8000"
            r.status.startedAt = now
        }
        return r
    }

    @Test func replicaPlannerFollowsTheBackend() {
        let drain = DrainSettings(minimum: 0, pollInterval: 0.1, asksProxy: false)
        let id = WorkloadID("w")
        // No workload yet: create one.
        let fresh = ReplicaPlanner.plan(replicaWith(.submitted, workload: false), ReplicaObservation(), drain: drain, now: now)
        #expect(fresh.actions.count == 1 && { if case .createWorkload = fresh.actions[0] { return true }; return false }())
        // Running, not watched: have it probed, not ready yet.
        let running = ReplicaPlanner.plan(replicaWith(.provisioning),
                                          ReplicaObservation(workload: WorkloadStatus(id: id, labels: [:], state: .running(endpoint: "10.0.0.1:8000"))),
                                          drain: drain, now: now)
        #expect(running.status.phase == .running && !running.status.ready)
        #expect(running.actions.contains { if case .watchReadiness = $0 { return true }; return false })
        #expect(running.status.conditions["Ready"]?.reason == "ProbesFailing")
        #expect(running.events.map(\.reason) == ["Started"] && running.events[0].message == "running at 10.0.0.1:8000")
        // Running and ready by the probing service's verdict; the same again plans nothing.
        let target = ProbeTarget(endpoint: "10.0.0.1:8000", probes: [ProbeTemplate(url: "/h", interval: 5)], since: now, ready: false)
        let serving = replicaWith(.running)
        let observed = ReplicaObservation(workload: WorkloadStatus(id: id, labels: [:], state: .running(endpoint: "10.0.0.1:8000")),
                                          verdict: ProbeVerdict(target: target, ready: true))
        let ready = ReplicaPlanner.plan(serving, observed, drain: drain, now: now)
        #expect(ready.status.ready && ready.actions.isEmpty && ready.status.conditions["Ready"]?.status == "True")
        #expect(ready.events.map(\.reason) == ["Ready"], "entering rotation is an event")
        var settled = serving
        settled.status = ready.status
        let steady = ReplicaPlanner.plan(settled, observed, drain: drain, now: now.addingTimeInterval(60))
        #expect(steady.status == settled.status && steady.actions.isEmpty && steady.events.isEmpty, "nothing to write at steady state")
        // Exited with an error: failed, with the event, and no more probing.
        let exited = ReplicaPlanner.plan(settled, ReplicaObservation(workload: WorkloadStatus(id: id, labels: [:], state: .exited(3)),
                                                                     verdict: ProbeVerdict(target: target, ready: true)),
                                         drain: drain, now: now)
        #expect(exited.status.phase == .failed && exited.status.terminationReason == .containerExitedWithError)
        #expect(exited.events.map(\.reason) == ["ReplicaFailed"] && exited.actions == [.stopProbing])
        // Probes failing while running: out of rotation, a warning.
        let failing = ReplicaPlanner.plan(settled, ReplicaObservation(workload: WorkloadStatus(id: id, labels: [:], state: .running(endpoint: "10.0.0.1:8000")),
                                                                      verdict: ProbeVerdict(target: target, ready: false)), drain: drain, now: now)
        #expect(!failing.status.ready && failing.events.map(\.reason) == ["NotReady"] && failing.events[0].warning)
        // Gone from the backend: instance unreachable.
        let gone = ReplicaPlanner.plan(settled, ReplicaObservation(), drain: drain, now: now)
        #expect(gone.status.terminationReason == .instanceUnreachable)
        #expect(gone.events.map(\.reason) == ["ReplicaFailed"])
    }

    @Test func theCreateOfAWorkloadIsAnEvent() {
        var plan = Plan<ReplicaStatus, ReplicaAction>(status: replicaWith(.submitted, workload: false).status)
        ReplicaPlanner.created(.success(WorkloadID("main--web.0-0-0")), &plan, now: now)
        #expect(plan.events.map(\.reason) == ["Created"] && plan.events[0].message == "workload main--web.0-0-0 submitted to the backend")
        var refused = Plan<ReplicaStatus, ReplicaAction>(status: replicaWith(.submitted, workload: false).status)
        ReplicaPlanner.created(.failure(BackendError(.noCapacity, "no offer fits")), &refused, now: now)
        #expect(refused.events.map(\.reason) == ["ReplicaFailed"])
    }

    @Test func aRouteSaysWhenItIsPublishedAndWhenItServesNothing() throws {
        var run = try self.run("type: service\nname: web\ncommands: [x]\nport: 8000\n")
        run.status.phase = .running
        let store = MemoryStore()
        let routes = RouteController(store: store, runs: Informer(store: store, kind: RunKind.name, clock: SystemClock()),
                                     replicas: StoreReplicaSource(store), routes: Informer(store: store, kind: ProxyRouteKind.name, clock: SystemClock()))
        let blank = ProxyRoute(project: "main", name: "web", spec: ProxyRouteSpec(run: "web", auth: true, stripPrefix: true, endpoints: [],
                                                                                    runCreatedAt: Date(timeIntervalSince1970: 0)))
        let serving = replicaWith(.running, ready: true)
        let published = try routes.plan(blank, RouteObservation(run: run, replicas: [serving]), now: now)
        #expect(published.events.map(\.reason) == ["Published"] && published.events[0].message == "in the proxy with 1 ready replica")
        var stored = blank
        stored.meta.resourceVersion = 5
        stored.spec = try #require(RoutePlanner.route(run: run, replicas: [serving]))
        let idle = try routes.plan(stored, RouteObservation(run: run, replicas: []), now: now)
        #expect(idle.events.map(\.reason) == ["NoEndpoints"] && idle.events[0].warning)
        let same = try routes.plan(stored, RouteObservation(run: run, replicas: [serving]), now: now)
        #expect(same.actions.isEmpty && same.events.isEmpty)
        run.spec.stop = StopRequest(abort: false)
        #expect(try routes.plan(stored, RouteObservation(run: run, replicas: [serving]), now: now).events.map(\.reason) == ["Unpublished"])
    }

    @Test func replicaPlannerStopsGracefullyThenKills() {
        let drain = DrainSettings(minimum: 0, pollInterval: 0.1, asksProxy: false)
        var r = replicaWith(.running, ready: true)
        r.spec.template.stopDuration = 10
        r.spec.termination = TerminationRequest(reason: .scaledDown, graceful: true)
        let observed = ReplicaObservation(workload: WorkloadStatus(id: WorkloadID("w"), labels: [:], state: .running(endpoint: "10.0.0.1:8000")))
        let first = ReplicaPlanner.plan(r, observed, drain: drain, now: now)
        #expect(first.actions.contains(.stopWorkload(WorkloadID("w"), graceful: true)) && first.requeueAfter == 10)
        r.status = first.status
        let late = ReplicaPlanner.plan(r, observed, drain: drain, now: now.addingTimeInterval(10))
        #expect(late.actions.contains(.stopWorkload(WorkloadID("w"), graceful: false)) && late.events.map(\.reason) == ["Killed"])
    }

    @Test func autoscalerPlanWritesTheDesiredCountOnlyWhenItChanges() throws {
        let yaml = """
            type: service
            name: web
            commands: [x]
            port: 8000
            replicas: 0..4
            scaling:
              metric: rps
              target: 10
            """
        var requests: [Int: Int] = [:]
        for w in [2, 6, 60] { requests[w] = 25 * w }
        let busy = Demand(requests: requests, observed: 3600)
        let r = try run(yaml, desired: ["0": 1])
        let up = Autoscaler.plan(r, AutoscaleObservation(demand: busy, panicSince: [:]), interval: 0.5, now: now)
        #expect(up.actions.contains(.setDesired(["0": 3])) && up.events.map(\.reason) == ["Autoscaled"] && up.requeueAfter == 0.5)
        let same = Autoscaler.plan(try run(yaml, desired: ["0": 3]), AutoscaleObservation(demand: busy, panicSince: [:]), interval: 0.5, now: now)
        #expect(!same.actions.contains { if case .setDesired = $0 { return true }; return false } && same.events.isEmpty)
        // Not autoscaled, stopped: nothing, and no look again.
        let stopped = Autoscaler.plan(try run(yaml, desired: ["0": 1], stop: StopRequest(abort: false)), AutoscaleObservation(demand: busy, panicSince: [:]),
                                      interval: 0.5, now: now)
        #expect(stopped.actions.isEmpty && stopped.requeueAfter == nil)
    }
}
