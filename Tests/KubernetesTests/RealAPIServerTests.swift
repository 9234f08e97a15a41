import Backend
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Kubernetes
import Primitives
import Model
import SetpointConfiguration
import Testing
import TestSupport

/// What a real API server (v1.36, etcd 3.6) showed that the fake did not: each test makes the
/// fake behave as the real one did, then checks what Setpoint does about it.
@Suite(.timeLimit(.minutes(2))) struct RealAPIServerTests {
    @Test func aPodLostWithItsNodeIsAnInterruption() async throws {
        try await withCluster { fake, backend in
            let id = try await backend.create(request())
            try await waitRunning(backend, id)
            let changes = backend.changes()
            // `kubectl delete node`: PodGC marks the Pod Failed with DisruptionTarget (no
            // status.reason), then deletes it.
            fake.deleteNode("node-1")
            let seen = try await collect(changes) { $0.contains { if case .failed = $0.state { return true } else { return false } } }
            let failed = try #require(seen.first { if case .failed = $0.state { return true } else { return false } })
            guard case .failed(let reason, let message) = failed.state else { return }
            #expect(reason == .interruptedByNoCapacity, "not executor_error: \(message)")
            #expect(message.contains("DeletionByPodGC"), "\(message)")
            #expect(reason.retryEvent == .interruption, "retry: on_events: [interruption] covers it")
        }
    }

    @Test(arguments: ["DeletionByPodGC", "EvictionByEvictionAPI", "PreemptionByScheduler", "DeletionByTaintManager", "TerminationByKubelet"])
    func disruptionTargetIsAnInterruptionWhateverTheContainerSays(_ disruption: String) throws {
        // An evicted container is killed, so it also reports an exit status: the condition wins.
        let pod = try JSONDecoder().decode(Pod.self, from: Data(#"""
        {"metadata":{"name":"p"},"status":{"phase":"Failed",
         "conditions":[{"type":"DisruptionTarget","status":"True","reason":"\#(disruption)","message":"gone"}],
         "containerStatuses":[{"name":"service","state":{"terminated":{"exitCode":137}}}]}}
        """#.utf8))
        #expect(PodObservation.state(pod, endpoint: nil, pulling: false, now: Date(), unschedulableTimeout: 600)
            == .failed(.interruptedByNoCapacity, "\(disruption): gone"))
    }

    @Test(arguments: [true, false])
    func aClusterWhoseHistoryWasResetIsListedAgainAndItsPodsSubmittedAgain(bookmarks: Bool) async throws {
        // With bookmarks, the watch's own bookmarks show the versions going backwards; without,
        // the periodic consistency check (a list of at most one Pod) does.
        try await withCluster(configure: { fake in
            if !bookmarks { fake.setBookmarkInterval(3600) }
        }, settings: { $0.consistencyCheckInterval = bookmarks ? 3600 : 0.3 }) { fake, backend in
            let id = try await backend.create(request())
            try await waitRunning(backend, id)
            let lists = backend.watchCounts["pods"]!.lists
            // etcd restored from an old snapshot (or replaced): no Pod, no namespace, versions
            // start again low; the watches are accepted from the old versions.
            fake.resetHistory(to: 1)
            try await eventually("listed again") { backend.watchCounts["pods"]!.lists > lists }
            // What vanished is reported so (the replica controller submits it again), and goes in
            // a namespace created again.
            try await eventually("reported vanished", timeout: 15) { try await backend.status(id)?.state == KubernetesBackend.vanishedState }
            #expect(try await backend.create(request()) == id)
            #expect(fake.object("pods", namespace: "setpoint", name: "web-0-0-0") != nil)
            #expect(fake.object("namespaces", namespace: nil, name: "setpoint") != nil)
            try await waitRunning(backend, id)
        }
    }

    @Test func aDeletedNamespaceIsCreatedAgainWhenSetpointManagesIt() async throws {
        try await withCluster { fake, backend in
            let id = try await backend.create(request())
            try await waitRunning(backend, id)
            let uid = fake.object("pods", namespace: "setpoint", name: "web-0-0-0")?.value(at: ["metadata", "uid"])
            fake.deleteNamespace("setpoint")
            try await eventually("reported vanished", timeout: 15) { try await backend.status(id)?.state == KubernetesBackend.vanishedState }
            // Submitted again (as the replica controller does): the namespace comes back with it.
            #expect(try await backend.create(request()) == id)
            try await eventually("a new pod in a new namespace", timeout: 15) {
                let pod = fake.object("pods", namespace: "setpoint", name: "web-0-0-0")
                return pod != nil && pod?.value(at: ["metadata", "uid"]) != uid
            }
            #expect(fake.object("namespaces", namespace: nil, name: "setpoint") != nil)
            try await waitRunning(backend, id)
            // A create into the deleted namespace also brings it back.
            fake.deleteNamespace("setpoint")
            try await eventually("reported vanished again", timeout: 15) { try await backend.status(id)?.state == KubernetesBackend.vanishedState }
            _ = try await backend.create(request("web-0-1-0"))
            #expect(fake.object("namespaces", namespace: nil, name: "setpoint") != nil)
            #expect(fake.object("pods", namespace: "setpoint", name: "web-0-1-0") != nil)
        }
    }

    @Test func aDeletedNamespaceSetpointMayNotCreateIsNamedInTheReplicasStatus() async throws {
        try await withCluster(configure: { $0.addNamespace("setpoint") }, settings: { $0.createNamespace = false }) { fake, backend in
            let id = try await backend.create(request())
            try await waitRunning(backend, id)
            fake.deleteNamespace("setpoint")
            try await eventually("reported vanished", timeout: 15) { try await backend.status(id)?.state == KubernetesBackend.vanishedState }
            // Submitting it again fails with the API's message and what to do (the replica's
            // status shows it: ResubmissionTests).
            do {
                _ = try await backend.create(request())
                Issue.record("expected the create to fail")
            } catch let e as BackendError {
                #expect(e.code == .unavailable)
                #expect(e.message.contains("namespace setpoint does not exist") && e.message.contains("create it"), "\(e.message)")
            }
        }
    }

    @Test func aPodProxyStatusIsAnUpstreamFailureNotTheAppsAnswer() async throws {
        try await withCluster { fake, backend in
            let id = try await backend.create(request())
            try await waitRunning(backend, id)
            guard case .running(let endpoint)? = try await backend.status(id)?.state else { return }
            fake.refuseProxy(pod: "web-0-0-0", status: 400, message: "address not allowed")
            var request = URLRequest(url: URL(string: "http://\(endpoint)/health")!)
            request.timeoutInterval = 10
            let (data, response) = try await URLSession.shared.data(for: request)
            let http = try #require(response as? HTTPURLResponse)
            #expect(http.statusCode == 502)
            #expect(http.value(forHTTPHeaderField: ReplicaUnreached.header) != nil, "marked for the proxy to retry elsewhere")
            #expect(String(decoding: data, as: UTF8.self).contains("address not allowed"))
            // The app's own errors pass through unchanged and unmarked.
            fake.refuseProxy(pod: "web-0-0-0", message: nil)
            fake.setPodServer { _, _, _, _, _ in (400, #"{"error":"bad input"}"#) }
            let (appData, appResponse) = try await URLSession.shared.data(for: request)
            let app = try #require(appResponse as? HTTPURLResponse)
            #expect(app.statusCode == 400 && app.value(forHTTPHeaderField: ReplicaUnreached.header) == nil)
            #expect(String(decoding: appData, as: UTF8.self) == #"{"error":"bad input"}"#)
        }
    }

    @Test func podLogErrorsAreThrownNotSwallowed() async throws {
        try await withCluster { fake, backend in
            let id = try await backend.create(request())
            fake.failNext(1, matching: "/log", status: 500, message: "dial tcp 10.0.0.1:10250: connect: connection refused")
            do {
                for try await _ in backend.logs(id, follow: false) {}
                Issue.record("the log error must be thrown")
            } catch {
                #expect("\(error)".contains("connection refused"), "\(error)")
            }
        }
    }

    @Test func anEvictedPodIsDeletedOnce() async throws {
        try await withCluster { fake, backend in
            let id = try await backend.create(request())
            try await waitRunning(backend, id)
            fake.setPodStatus(namespace: "setpoint", name: "web-0-0-0", try JSONParser.parse(
                #"{"phase":"Failed","reason":"Evicted","message":"The node was low on resource: memory."}"#))
            try await eventually("evicted") { if case .failed? = try await backend.status(id)?.state { return true } else { return false } }
            fake.resetRequests()
            // What the replica controller does with a failed replica: stop, then delete.
            try await backend.stop(id, graceful: true)
            try await backend.delete(id)
            try await eventually("gone") { try await backend.status(id) == nil }
            #expect(fake.requests["delete", default: 0] == 1, "\(fake.requestLog)")
        }
    }

    @Test func aRefusedConnectionFailsAtOnceAndTheBackoffStartsSmall() async throws {
        // An API server that is down: nothing listens on its port.
        let fake = FakeKubernetes()
        try await fake.start()
        let port = fake.port
        let kubeconfig = fake.kubeconfig(namespace: "setpoint")
        fake.stop()
        try await eventually("the port closed") { !(await portAnswers(port)) }
        let client = try KubeClient(connection: try KubeConfig.parse(kubeconfig).connection(), logger: quietLogger)
        do {
            _ = try await client.list(Pod.self, namespace: "setpoint")
            Issue.record("nothing listens there")
        } catch {
            #expect("\(error)".contains("Connection refused"), "\(error)")
        }
        let reflector = Reflector<Pod>(client: client, namespace: "setpoint", labelSelector: nil, logger: quietLogger) { _ in }
        let task = Task { await reflector.run() }
        defer { task.cancel() }
        // Waits of 0.2, 0.4, 0.8 s: four attempts within a few seconds, not one per connect
        // timeout (10 s) as when the HTTP pool kept reconnecting on its own.
        try await eventually("four attempts", timeout: 8) { reflector.counts.lists >= 4 }
        await client.shutdown()
    }

    @Test func backoffDoublesToItsCapAndResets() {
        var backoff = ReconnectBackoff()
        func waits(_ n: Int) -> [Double] { (0..<n).map { _ in (backoff.next(jitter: 1) * 100).rounded() / 100 } }
        #expect(waits(5) == [0.2, 0.4, 0.8, 1.6, 3.2])
        #expect(waits(6).last == 30)
        backoff.reset()
        #expect(waits(1) == [0.2])
    }

    @Test func theLeaderRenewsWithOneRequest() async throws {
        let fake = FakeKubernetes()
        try await fake.start()
        defer { fake.stop() }
        let elector = LeaderElector(client: try makeClient(fake, namespace: "default"), namespace: "default", identity: "me",
                                    leaseDuration: 3, logger: quietLogger)
        try await elector.acquire()
        fake.resetRequests()
        let holding = Task { try await elector.holdUntilLost() }
        try await eventually("three renewals", timeout: 10) { fake.requests["update", default: 0] >= 3 }
        holding.cancel()
        _ = await holding.result
        #expect(fake.requests["get", default: 0] == 0, "renewed from its own last write: \(fake.requestLog)")
        // Someone else wrote the Lease (an operator, a restored backup): the renewal reads it
        // again and, still the holder, goes on.
        let client = try makeClient(fake, namespace: "default")
        var lease = try #require(try await client.get(Lease.self, namespace: "default", name: "setpoint-leader"))
        lease.metadata.labels = ["touched": "yes"]
        _ = try await client.replace(lease, namespace: "default")
        let again = Task { try await elector.holdUntilLost() }
        let updates = fake.requests["update", default: 0]
        try await eventually("renewed after the conflict", timeout: 10) { fake.requests["update", default: 0] >= updates + 3 }
        again.cancel()
        _ = await again.result
        #expect(fake.object("leases", namespace: "default", name: "setpoint-leader")?.value(at: ["spec", "holderIdentity"])?.stringValue == "me")
    }
}

/// True when something accepts connections on the loopback port.
func portAnswers(_ port: Int) async -> Bool {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/")!)
    request.timeoutInterval = 1
    return (try? await URLSession.shared.data(for: request)) != nil
}
