import Foundation
import Kubernetes
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct LeaderElectionTests {
    @Test func oneLeaderAtATimeAndTakeoverAfterExpiryOrRelease() async throws {
        let fake = FakeKubernetes()
        try await fake.start()
        defer { fake.stop() }
        let a = LeaderElector(client: try makeClient(fake, namespace: "default"), namespace: "default", identity: "server-a",
                              leaseDuration: 2, renewInterval: .milliseconds(200), logger: quietLogger)
        let b = LeaderElector(client: try makeClient(fake, namespace: "default"), namespace: "default", identity: "server-b",
                              leaseDuration: 2, renewInterval: .milliseconds(200), logger: quietLogger)
        try await a.acquire()
        #expect(fake.object("leases", namespace: "default", name: "setpoint-leader")?.value(at: ["spec", "holderIdentity"])?.stringValue == "server-a")
        let holding = Task { try await a.holdUntilLost() }

        // B waits while A renews: A's renewals go on past the point where the lease would have
        // expired had A stopped, and the holder stays A.
        let t0 = Date()
        let waiting = Task { try await b.acquire(); return Date() }
        try await eventually("A renewing past one lease duration", timeout: 20) {
            let renewed = fake.object("leases", namespace: "default", name: "setpoint-leader")?.value(at: ["spec", "renewTime"])?.stringValue.flatMap(KubeTime.parse)
            return (renewed ?? .distantPast).timeIntervalSince(t0) > 2.5
        }
        #expect(fake.object("leases", namespace: "default", name: "setpoint-leader")?.value(at: ["spec", "holderIdentity"])?.stringValue == "server-a")

        // A stops renewing (a crash): B takes over once the lease expired, counted from A's
        // last renewal (as the lease records it), whatever the machine's load.
        holding.cancel()
        _ = await holding.result
        let held = try #require(fake.object("leases", namespace: "default", name: "setpoint-leader"))
        let lastRenewal = try #require(held.value(at: ["spec", "renewTime"])?.stringValue.flatMap(KubeTime.parse))
        _ = try await waiting.value
        let lease = try #require(fake.object("leases", namespace: "default", name: "setpoint-leader"))
        #expect(lease.value(at: ["spec", "holderIdentity"])?.stringValue == "server-b")
        if held.value(at: ["spec", "holderIdentity"])?.stringValue == "server-a" {
            let acquired = try #require(lease.value(at: ["spec", "acquireTime"])?.stringValue.flatMap(KubeTime.parse))
            #expect(acquired.timeIntervalSince(lastRenewal) > 2, "not before the lease expired")
        }
        #expect(lease.value(at: ["spec", "leaseTransitions"]) == .int(1))

        // A, back, sees it lost; B releases and A gets it at once.
        await #expect(throws: LeaderElector.LostLease.self) { try await a.holdUntilLost() }
        await b.release()
        try await a.acquire()
        #expect(fake.object("leases", namespace: "default", name: "setpoint-leader")?.value(at: ["spec", "holderIdentity"])?.stringValue == "server-a")
        #expect(fake.requests["update", default: 0] > 0)
    }
}
