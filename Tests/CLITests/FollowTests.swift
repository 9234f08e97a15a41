import APIClient
@testable import CLI
import Foundation
import Model
import Testing

/// What ends `apply`'s and `stop`'s wait besides success: a `Stalled` run of the applied
/// generation, or a failed one, each with its reason.
@Suite struct FollowTests {
    func run(generation: Int64 = 2, _ change: (inout RunStatus) -> Void) -> API.Run {
        var status = RunStatus()
        change(&status)
        return API.Run(project: "main", name: "web", uid: "u", generation: generation, resourceVersion: 9, createdAt: Date(),
                       deleting: false, configuration: .null, desiredReplicas: nil, stopRequested: false, status: status,
                       url: "http://x/proxy/services/main/web/", modelURL: nil)
    }

    @Test func aStalledRunOfTheAppliedGenerationEndsTheWaitWithItsReason() {
        let now = Date()
        let stalled = run { s in
            s.conditions.set("Stalled", true, reason: "UnresolvedEnvironment", message: "environment variable(s) HF_TOKEN have no value", now: now)
            s.observedGeneration = 2
        }
        let stuck = RunFollower.stuck(stalled)
        #expect(stuck?.title.contains("stalled (UnresolvedEnvironment)") == true && stuck?.detail.contains("HF_TOKEN") == true)
        // A Stalled that speaks of an earlier generation is not about what was just applied.
        let older = run { s in
            s.conditions.set("Stalled", true, reason: "UnresolvedEnvironment", message: "", now: now)
            s.observedGeneration = 1
        }
        #expect(RunFollower.stuck(older) == nil)
    }

    @Test func aFailedRunEndsTheWaitAndAProgressingOneDoesNot() {
        let failed = run { s in
            s.phase = .failed
            s.terminationReason = .retryLimitExceeded
            s.message = "no replica can serve and retry is exhausted"
        }
        #expect(RunFollower.stuck(failed)?.title == "Run web failed: retry_limit_exceeded")
        #expect(RunFollower.stuck(run { $0.phase = .provisioning }) == nil)
    }
}
