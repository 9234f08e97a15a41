import Controllers
import Foundation
import Model
import Reconcile
import Testing

/// The source planner as a table: when it fetches, when it applies, what it reports, from a
/// source, an observation and a time (no Git, no store).
@Suite struct SourcePlannerTests {
    let now = Date(timeIntervalSince1970: 1_900_000_000)

    func source(_ change: (inout SourceSpec) -> Void = { _ in }) -> Source {
        var spec = SourceSpec(url: "https://git.example.com/org/infra.git", interval: 60)
        change(&spec)
        var s = Source(project: "main", name: "infra", finalizers: [Labels.sourceFinalizer], spec: spec)
        s.meta.generation = 1
        s.status.target = "\(spec.url)#\(spec.ref)#\(spec.path ?? "")"
        return s
    }

    let r1 = SourceRevision(commit: String(repeating: "a", count: 40), subject: "one")
    let r2 = SourceRevision(commit: String(repeating: "b", count: 40), subject: "two")

    func plan(_ entries: [(String, String)]) -> API.SetPlan {
        API.SetPlan(project: "main", user: "source/infra", set: "infra", prune: true,
                    entries: entries.map { API.SetEntry(kind: "Run", name: $0.0, file: "\($0.0).dstack.yml", action: $0.1,
                                                        diff: $0.1 == "update" ? ["- env.V: 1", "+ env.V: 2"] : []) })
    }

    func healthy(_ names: String...) -> [SourceMember] { names.map { SourceMember(kind: "Run", name: $0, health: "Healthy") } }

    func kinds(_ p: Plan<SourceStatus, SourceAction>) -> [String] {
        p.actions.map { a in
            switch a {
            case .addFinalizer: return "finalizer"
            case .fetch(let apply): return apply ? "fetch+apply" : "fetch"
            case .apply: return "apply"
            case .cleanup(let delete): return delete ? "delete" : "release"
            case .removeFinalizer: return "removeFinalizer"
            }
        }
    }

    @Test func fetchesWhenDueAskedOrRetargetedAndOtherwiseWaits() {
        var s = source()
        #expect(kinds(SourcePlanner.plan(s, SourceObservation(), now: now)) == ["fetch"], "never fetched")
        let fresh = SourceObservation(lastFetch: now.addingTimeInterval(-10))
        var p = SourcePlanner.plan(s, fresh, now: now)
        #expect(kinds(p) == [] && p.requeueAfter == 50, "the next fetch in 50 s")
        #expect(kinds(SourcePlanner.plan(s, SourceObservation(lastFetch: now.addingTimeInterval(-61)), now: now)) == ["fetch"])
        s.spec.syncRequest = 1
        p = SourcePlanner.plan(s, fresh, now: now)
        #expect(kinds(p) == ["fetch+apply"] && p.status.handledSyncRequest == 1, "a sync asked for fetches and applies at once")
        s.status.handledSyncRequest = 1
        s.spec.ref = .tag("v1")
        #expect(kinds(SourcePlanner.plan(s, fresh, now: now)) == ["fetch"], "another ref is fetched at once")
        var failing = source()
        failing.status.fetchFailures = 3
        p = SourcePlanner.plan(failing, SourceObservation(lastFetch: now.addingTimeInterval(-10)), now: now)
        #expect(kinds(p) == [] && p.requeueAfter == 10, "after 3 failures the backoff is 20 s")
        #expect(p.status.conditions["Ready"]?.reason == "FetchFailed")
    }

    @Test func appliesANewRevisionOnceAndReportsSyncAndHealth() {
        var s = source()
        s.status.lastAttempted = r2
        s.status.lastApplied = r1
        let observed = SourceObservation(lastFetch: now, attempted: .success(plan([("web", "update"), ("api", "unchanged")])),
                                         members: healthy("web", "api"))
        let p = SourcePlanner.plan(s, observed, now: now)
        #expect(kinds(p) == ["apply"])
        #expect(p.status.objects.map(\.sync) == ["OutOfSync", "Synced"])
        #expect(p.status.objects[0].message == "env.V is 1 here, 2 in the repository")
        // Applied and in sync: Ready, nothing to do.
        s.status.lastApplied = r2
        let synced = SourcePlanner.plan(s, SourceObservation(lastFetch: now, attempted: .success(plan([("web", "unchanged"), ("api", "unchanged")])),
                                                             members: healthy("web", "api")), now: now)
        #expect(kinds(synced) == [] && synced.status.conditions["Ready"]?.status == "True")
        #expect(synced.status.message == "bbbbbbbbbbbb \"two\" applied: 2 object(s) synced and healthy")
    }

    @Test func driftIsShownAndHealedOnlyWithSelfHeal() {
        var s = source()
        s.status.lastAttempted = r1
        s.status.lastApplied = r1
        let drift = SourceObservation(lastFetch: now, attempted: .success(plan([("web", "update")])), members: healthy("web"))
        let shown = SourcePlanner.plan(s, drift, now: now)
        #expect(kinds(shown) == [] && shown.status.conditions["Ready"]?.reason == "OutOfSync")
        #expect(shown.status.message?.contains("run web is out of sync") == true)
        s.spec.selfHeal = true
        #expect(kinds(SourcePlanner.plan(s, drift, now: now)) == ["apply"])
        // Removed from the repository: pruned only with prune.
        let orphan = SourceObservation(lastFetch: now, attempted: .success(plan([("old", "delete")])), members: healthy("old"))
        #expect(kinds(SourcePlanner.plan(s, orphan, now: now)) == [], "prune is off")
        s.spec.prune = true
        #expect(kinds(SourcePlanner.plan(s, orphan, now: now)) == ["apply"])
    }

    @Test func anInvalidRevisionStallsAndTheLastGoodOneKeepsRunning() {
        var s = source()
        s.status.lastAttempted = r2
        s.status.lastApplied = r1
        let invalid = SetInvalid(message: "web.dstack.yml:3:7: service.port: out of range", issues: [])
        let p = SourcePlanner.plan(s, SourceObservation(lastFetch: now, attempted: .failure(invalid), applied: plan([("web", "unchanged")]),
                                                        members: healthy("web")), now: now)
        #expect(kinds(p) == [])
        #expect(p.stall?.reason == "InvalidRevision")
        #expect(p.stall?.message == "commit bbbbbbbbbbbb cannot be applied, so nothing of it was: web.dstack.yml:3:7: service.port: out of range; aaaaaaaaaaaa \"one\" keeps running")
        #expect(p.status.objects.map(\.sync) == ["Synced"], "what runs is compared with the last applied revision")
    }

    @Test func aDegradedObjectIsNamedWithItsReason() {
        var s = source()
        s.status.lastAttempted = r1
        s.status.lastApplied = r1
        let members = [SourceMember(kind: "Run", name: "web", health: "Degraded", message: "ReplicaFailed: exited with status 3")]
        let p = SourcePlanner.plan(s, SourceObservation(lastFetch: now, attempted: .success(plan([("web", "unchanged")])), members: members), now: now)
        #expect(p.status.conditions["Ready"]?.message == "run web is degraded: ReplicaFailed: exited with status 3")
    }

    @Test func suspendedNeitherFetchesNorApplies() {
        var s = source { $0.suspend = true }
        s.spec.syncRequest = 5
        let p = SourcePlanner.plan(s, SourceObservation(), now: now)
        #expect(kinds(p) == [] && p.requeueAfter == nil)
        #expect(p.status.conditions["Reconciling"]?.reason == "Suspended")
    }

    @Test func deletedItLetsGoOrDeletesThenGoes() {
        var s = source()
        s.meta.deletionTimestamp = now
        #expect(kinds(SourcePlanner.plan(s, SourceObservation(members: healthy("web")), now: now)) == ["release"])
        s.spec.cascade = true
        #expect(kinds(SourcePlanner.plan(s, SourceObservation(members: healthy("web")), now: now)) == ["delete"])
        let going = [SourceMember(kind: "Run", name: "web", deleting: true, health: "Progressing")]
        #expect(kinds(SourcePlanner.plan(s, SourceObservation(members: going), now: now)) == [], "waits for it to go")
        #expect(kinds(SourcePlanner.plan(s, SourceObservation(), now: now)) == ["removeFinalizer"])
    }
}
