import Backend
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Kubernetes
import Model
import SetpointConfiguration
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct KubernetesBackendTests {
    @Test func replicaBecomesAPodAndIsReachedThroughThePodProxy() async throws {
        try await withCluster { fake, backend in
            #expect(fake.object("namespaces", namespace: nil, name: "setpoint") != nil, "the namespace is created")

            let changes = backend.changes()
            let id = try await backend.create(request())
            #expect(id.rawValue == "k8s:fake:setpoint/web-0-0-0")
            let pod = try #require(fake.object("pods", namespace: "setpoint", name: "web-0-0-0"))
            let labels = pod.value(at: ["metadata", "labels"])?.stringMap ?? [:]
            #expect(labels["app.kubernetes.io/managed-by"] == "setpoint")
            #expect(labels["setpoint.dev/installation"] == "test")
            #expect(labels[Labels.run] == "web" && labels[Labels.project] == "main" && labels[Labels.deployment] == "1")
            #expect(pod.value(at: ["metadata", "annotations", "setpoint.dev/inventory"])?.stringValue?.contains("\"replica\":\"web-0-0-0\"") == true)
            #expect(pod.value(at: ["spec", "containers"])?.serialized.contains(#"["/bin/sh","-c","python -m http.server 8000"]"#) == true)

            // Running and reachable: through a loopback relay to the API server's pod proxy.
            let seen = try await collect(changes) { seen in
                seen.contains { if case .running = $0.state { return $0.id == id } else { return false } }
            }
            var endpoint = ""
            for change in seen { if case .running(let e) = change.state { endpoint = e } }
            #expect(endpoint.hasPrefix("127.0.0.1:"))
            #expect(backend.observedReadiness(endpoint: endpoint) == true, "readiness comes from the Pod's Ready condition")
            let (data, response) = try await URLSession.shared.data(from: URL(string: "http://\(endpoint)/health?x=1")!)
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            #expect(String(decoding: data, as: UTF8.self).contains(#""pod":"web-0-0-0","port":8000,"method":"GET","path":"/health?x=1""#))

            // Steady state: nothing but the open watches.
            fake.resetRequests()
            for _ in 0..<50 { _ = try await backend.status(id) }
            _ = try await backend.inventory(labels: [:])
            _ = try await backend.offers()
            // Watched over a while: until every watch got bookmarks (the fake sends one a second).
            let bookmarks = fake.bookmarksSent
            try await eventually("bookmarks on every watch") { fake.bookmarksSent >= bookmarks + 6 }
            #expect(fake.requests.filter { $0.key != "watch" }.isEmpty, "requests at steady state: \(fake.requestLog)")
            #expect(fake.openWatches == 3, "pods, nodes and events are watched")

            // A graceful stop deletes the Pod with its grace period; it then disappears.
            try await backend.stop(id, graceful: true)
            try await eventually("the pod to go") { try await backend.status(id) == nil }
            #expect(fake.object("pods", namespace: "setpoint", name: "web-0-0-0") == nil)
            #expect(fake.requestLog.contains { $0.hasPrefix("delete DELETE /api/v1/namespaces/setpoint/pods/web-0-0-0") })
        }
    }

    @Test func registryAuthAndCodeBecomeSecretsThatAreDeletedWithThePod() async throws {
        try await withCluster { fake, backend in
            let dir = temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let archive = Data("fake-tar-gz".utf8)
            _ = FileManager.default.createFile(atPath: dir + "/code.tar.gz", contents: archive)
            let template = ReplicaTemplate(image: "ghcr.io/acme/app:1", commands: ["./serve"], registryUsername: "bot", registryPassword: "s3cret-pw",
                                           code: CodeArchive(hash: "abc", path: dir + "/code.tar.gz", size: archive.count))
            let id = try await backend.create(request(template: template))
            let registry = try #require(fake.object("secrets", namespace: "setpoint", name: "web-0-0-0-registry"))
            #expect(registry["type"]?.stringValue == "kubernetes.io/dockerconfigjson")
            let config = try #require(registry.value(at: ["data", ".dockerconfigjson"])?.stringValue.flatMap { Data(base64Encoded: $0) })
            let auths = try #require(try JSONParser.parse(String(decoding: config, as: UTF8.self))["auths"]?["ghcr.io"])
            #expect(auths["username"]?.stringValue == "bot" && auths["password"]?.stringValue == "s3cret-pw")
            let code = try #require(fake.object("secrets", namespace: "setpoint", name: "web-0-0-0-code"))
            #expect(code.value(at: ["data", "code.tar.gz"])?.stringValue == archive.base64EncodedString())
            let pod = try #require(fake.object("pods", namespace: "setpoint", name: "web-0-0-0"))
            #expect(pod.value(at: ["spec", "imagePullSecrets"])?.serialized == #"[{"name":"web-0-0-0-registry"}]"#)
            #expect(pod.value(at: ["spec", "initContainers"])?.serialized.contains("tar -xzf /setpoint/code/code.tar.gz -C /workflow") == true)
            #expect(pod.value(at: ["spec", "containers"])?.serialized.contains(#""workingDir":"/workflow""#) == true)
            // The password is in the Secret only: not in the Pod, not in its annotations.
            #expect(!pod.serialized.contains("s3cret-pw"))

            try await backend.delete(id)
            try await eventually("the secrets to be deleted with the pod") {
                fake.object("secrets", namespace: "setpoint", name: "web-0-0-0-registry") == nil
                    && fake.object("secrets", namespace: "setpoint", name: "web-0-0-0-code") == nil
            }
        }
    }

    @Test func restartAdoptsPodsAndNeverCreatesDuplicates() async throws {
        let fake = FakeKubernetes()
        try await fake.start()
        defer { fake.stop() }
        let first = try await makeBackend(fake)
        let id = try await first.create(request())
        await first.shutdown()

        // A new server (same installation) finds the Pod by label and adopts it.
        let second = try await makeBackend(fake)
        defer { Task { await second.shutdown() } }
        fake.resetRequests()
        let inventory = try await second.inventory(labels: [:])
        #expect(inventory.map(\.id) == [id])
        #expect(inventory.first?.labels[Labels.run] == "web")
        #expect(try await second.create(request()) == id)
        #expect(fake.requests["create", default: 0] == 0, "adoption, not a second Pod: \(fake.requestLog)")
        #expect(fake.objects("pods").count == 1)

        // Another installation's backend does not see (or collect) these Pods.
        let other = try await makeBackend(fake, installation: "other")
        defer { Task { await other.shutdown() } }
        #expect(try await other.inventory(labels: [:]).isEmpty)
    }

    @Test func aPodDeletedOutsideSetpointIsReportedVanishedAndCanBeCreatedAgain() async throws {
        try await withCluster { fake, backend in
            let id = try await backend.create(request())
            try await waitRunning(backend, id)
            let uid = fake.object("pods", namespace: "setpoint", name: "web-0-0-0")?.value(at: ["metadata", "uid"])
            // `kubectl delete pod` (graceful; the fake kubelet finishes it): the backend says so
            // and decides nothing (the replica controller submits it again).
            let changes = backend.changes()
            let client = try makeClient(fake)
            try await client.delete(Pod.self, namespace: "setpoint", name: "web-0-0-0")
            let seen = try await collect(changes) { $0.contains { $0.state == KubernetesBackend.vanishedState } }
            #expect(seen.last?.id == id)
            #expect(try await backend.status(id)?.state == KubernetesBackend.vanishedState, "vanished, not unknown")
            #expect(fake.object("pods", namespace: "setpoint", name: "web-0-0-0") == nil, "not submitted again by the backend")
            #expect(try await backend.create(request()) == id)
            try await eventually("a new pod") {
                let pod = fake.object("pods", namespace: "setpoint", name: "web-0-0-0")
                return pod != nil && pod?.value(at: ["metadata", "uid"]) != uid
            }
            try await waitRunning(backend, id)
        }
    }

    @Test func unschedulablePodsWaitThenFailWithTheSchedulersMessage() async throws {
        // creationTimestamp has whole seconds: 2 s leaves at least one second of waiting.
        try await withCluster(unschedulableTimeout: 2, configure: { fake in
            fake.setKubelet(.unschedulable("0/3 nodes are available: 3 Insufficient nvidia.com/gpu."))
        }) { fake, backend in
            let changes = backend.changes()
            let id = try await backend.create(request())
            let states = try await collect(changes) { seen in
                seen.contains { if case .failed = $0.state { return true } else { return false } }
            }.filter { $0.id == id }.map(\.state)
            #expect(states.contains(.pending("unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")))
            #expect(states.last == .failed(.failedToStartDueToNoCapacity, "the Pod was not scheduled within 2s: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."))
        }
    }

    @Test func containerStatesMapToReplicaPhasesAndPodEventsBecomeReplicaEvents() async throws {
        try await withCluster(configure: { fake in
            fake.setKubelet(.manual)
        }) { fake, backend in
            let events = backend.events()
            let id = try await backend.create(request())
            func waiting(_ reason: String, _ message: String = "") -> JSONValue {
                try! JSONParser.parse(#"{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"True"}],"containerStatuses":[{"name":"service","ready":false,"state":{"waiting":{"reason":"\#(reason)","message":"\#(message)"}}}]}"#)
            }
            fake.recordEvent(namespace: "setpoint", pod: "web-0-0-0", reason: "Pulling", message: "Pulling image \"python:3.12-slim\"")
            try await eventually("pulling") { try await backend.status(id)?.state == .pulling }
            let event = try await collect(events) { !$0.isEmpty }.first
            #expect(event == WorkloadEvent(labels: event?.labels ?? [:], warning: false, reason: "Pulling", message: "Pulling image \"python:3.12-slim\""))

            fake.setPodStatus(namespace: "setpoint", name: "web-0-0-0", waiting("ImagePullBackOff", "Back-off pulling image \\\"nope\\\""))
            try await eventually("image pull failure") {
                try await backend.status(id)?.state == .failed(.creatingContainerError, "ImagePullBackOff: Back-off pulling image \"nope\"")
            }
            fake.setPodStatus(namespace: "setpoint", name: "web-0-0-0", try JSONParser.parse(
                #"{"phase":"Failed","containerStatuses":[{"name":"service","state":{"terminated":{"exitCode":137,"reason":"OOMKilled"}}}]}"#))
            try await eventually("oom") {
                try await backend.status(id)?.state == .failed(.containerExitedWithError, "OOMKilled: the container ran out of memory (exit status 137)")
            }
            fake.setPodStatus(namespace: "setpoint", name: "web-0-0-0", try JSONParser.parse(
                #"{"phase":"Running","containerStatuses":[{"name":"service","state":{"waiting":{"reason":"CrashLoopBackOff"}},"lastState":{"terminated":{"exitCode":3}}}]}"#))
            try await eventually("crash loop") { try await backend.status(id)?.state == .failed(.containerExitedWithError, "CrashLoopBackOff: exited with status 3") }
            fake.setPodStatus(namespace: "setpoint", name: "web-0-0-0", try JSONParser.parse(
                #"{"phase":"Succeeded","containerStatuses":[{"name":"service","state":{"terminated":{"exitCode":0}}}]}"#))
            try await eventually("done") { try await backend.status(id)?.state == .exited(0) }
            fake.setPodStatus(namespace: "setpoint", name: "web-0-0-0", try JSONParser.parse(
                #"{"phase":"Failed","reason":"Evicted","message":"The node was low on resource: memory."}"#))
            try await eventually("evicted") {
                try await backend.status(id)?.state == .failed(.interruptedByNoCapacity, "Evicted: The node was low on resource: memory.")
            }
        }
    }

    @Test func watchesSurviveDroppedConnectionsCompactionAndServerErrors() async throws {
        try await withCluster { fake, backend in
            let id = try await backend.create(request())
            try await waitRunning(backend, id)
            let before = backend.watchCounts["pods"]!

            // Dropped: resumed from the last version, no new list.
            fake.dropWatches()
            try await eventually("re-watch") { backend.watchCounts["pods"]!.watches > before.watches && fake.openWatches == 3 }
            #expect(backend.watchCounts["pods"]!.lists == before.lists)

            // Compacted while disconnected, with a change in the gap and failing requests: 410 → list again.
            fake.failNext(2, matching: "/pods", status: 500)
            fake.dropWatches()
            fake.setPodStatus(namespace: "setpoint", name: "web-0-0-0", try JSONParser.parse(
                #"{"phase":"Succeeded","containerStatuses":[{"name":"service","state":{"terminated":{"exitCode":0}}}]}"#))
            fake.compact()
            try await eventually("relist after 410", timeout: 15) { backend.watchCounts["pods"]!.lists > before.lists }
            try await eventually("the change in the gap") { try await backend.status(id)?.state == .exited(0) }
        }
    }

    @Test func bookmarksKeepAQuietWatchResumableAfterCompaction() async throws {
        try await withCluster(configure: { fake in
            fake.setBookmarkInterval(0.2)
        }) { fake, backend in
            let id = try await backend.create(request())
            try await waitRunning(backend, id)
            // Other objects move the cluster's resourceVersion on; the Pods stay as they are.
            let client = try makeClient(fake, namespace: "default")
            for i in 0..<5 { _ = try await client.create(Secret(metadata: Kubernetes.ObjectMeta(name: "other-\(i)"), type: "Opaque", data: [:]), namespace: "default") }
            let lists = backend.watchCounts["pods"]!.lists
            // A bookmark brings the quiet Pod watch to the latest version, so after compaction and
            // a dropped connection it resumes there: no 410, no new list.
            let latest = try #require(fake.object("secrets", namespace: "default", name: "other-4")?.value(at: ["metadata", "resourceVersion"])?.stringValue)
            try await eventually("a bookmark") { backend.bookmarkedVersion("pods").map { Int($0)! >= Int(latest)! } == true }
            fake.compact()
            fake.dropWatches()
            // An open Pod watch means it started without a 410 (an expired version gets an ERROR
            // event and no watch), so the count of lists is final here.
            try await eventually("re-watch") { fake.openWatches == 3 }
            #expect(backend.watchCounts["pods"]!.lists == lists, "resumed from the bookmark: \(fake.requestLog)")
        }
    }

    @Test func logsComeFromThePodLogAPI() async throws {
        try await withCluster { fake, backend in
            let id = try await backend.create(request())
            fake.setLogs(pod: "web-0-0-0", ["Serving HTTP on 0.0.0.0 port 8000", "GET / 200"])
            var lines: [String] = []
            for try await line in backend.logs(id, follow: false) { lines.append(line.text) }
            #expect(lines == ["Serving HTTP on 0.0.0.0 port 8000", "GET / 200"])
            #expect(fake.requestLog.contains { $0.contains("/pods/web-0-0-0/log") })
        }
    }

    @Test func offersAreSchedulableNodesWithTheirGPUs() async throws {
        try await withCluster(configure: { fake in
            fake.addNode("cpu-1", cpu: "7910m", memory: "31Gi", disk: "100Gi")
            fake.addNode("gpu-1", cpu: "48", memory: "192Gi", gpus: 4,
                         labels: ["nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB", "karpenter.sh/capacity-type": "spot"],
                         taints: [("nvidia.com/gpu", "NoSchedule")], arch: "amd64")
            fake.addNode("control-plane", labels: [:], taints: [("node-role.kubernetes.io/control-plane", "NoSchedule")])
        }) { fake, backend in
            try await eventually("nodes") { (try? await backend.offers())?.count == 2 }
            let offers = try await backend.offers()
            #expect(offers.map(\.instance) == ["cpu-1", "gpu-1"])
            #expect(offers[0].cpus == 7 && offers[0].memoryGB == 31 && offers[0].diskGB == 100 && offers[0].region == "fake")
            #expect(offers[1].gpus == Array(repeating: "A100:40GB", count: 4) && offers[1].spot && offers[1].arch == "amd64")

            // A GPU request gets the product affinity from the nodes that have it.
            let gpu = ReplicaTemplate(commands: ["serve"], resources: #"{"cpu":{"count":{"min":2,"max":null}},"memory":{"min":8.0,"max":null},"shm_size":null,"gpu":{"vendor":"nvidia","name":["A100"],"count":{"min":1,"max":1},"memory":null},"disk":null}"#)
            _ = try await backend.create(request(template: gpu))
            let pod = try #require(fake.object("pods", namespace: "setpoint", name: "web-0-0-0"))
            #expect(pod.value(at: ["spec", "affinity"])?.serialized.contains(#"{"key":"nvidia.com/gpu.product","operator":"In","values":["NVIDIA-A100-SXM4-40GB"]}"#) == true)
            let h100 = ReplicaTemplate(commands: ["serve"], resources: gpu.resources.replacingOccurrences(of: "A100", with: "H100"))
            await #expect(throws: BackendError.self) { try await backend.create(request("web-0-1-0", template: h100)) }
        }
    }

    @Test func apiErrorsAreClearAndConflictsAreReported() async throws {
        let fake = FakeKubernetes()
        try await fake.start()
        defer { fake.stop() }
        let client = try makeClient(fake, namespace: "default")
        let created = try await client.create(Secret(metadata: Kubernetes.ObjectMeta(name: "s"), type: "Opaque", data: [:]), namespace: "default")
        let stale = try #require(created.metadata.resourceVersion)
        _ = try await client.mergePatch(Secret.self, namespace: "default", name: "s", patch: Data(#"{"metadata":{"labels":{"a":"b"}}}"#.utf8))
        do {
            _ = try await client.mergePatch(Secret.self, namespace: "default", name: "s",
                                            patch: Data(#"{"metadata":{"resourceVersion":"\#(stale)","labels":{"a":"c"}}}"#.utf8))
            Issue.record("a stale patch must conflict")
        } catch let e as KubeAPIError {
            #expect(e.isConflict && e.code == 409)
            #expect(e.description.contains("the object has been modified"))
        }
        do {
            _ = try await client.create(Pod(metadata: Kubernetes.ObjectMeta(name: "p"), spec: PodSpec(containers: [])), namespace: "missing")
            Issue.record("creating in a missing namespace must fail")
        } catch let e as KubeAPIError {
            #expect(e.description == #"Kubernetes API POST /api/v1/namespaces/missing/pods: 404 NotFound: namespaces "missing" not found"#)
        }
        // Server-side apply creates, then updates what the manager owns.
        var lease = Lease(metadata: Kubernetes.ObjectMeta(name: "setpoint-leader"))
        lease.spec = Lease.Spec(holderIdentity: "a", leaseDurationSeconds: 15, renewTime: nil)
        _ = try await client.apply(lease, namespace: "default")
        lease.spec?.holderIdentity = "b"
        let applied = try await client.apply(lease, namespace: "default")
        #expect(applied.spec?.holderIdentity == "b")
        // A transient 429 is retried after Retry-After.
        fake.failNext(1, matching: "/secrets/s", status: 429)
        #expect(try await client.get(Secret.self, namespace: "default", name: "s") != nil)
        // A server slower than the request timeout: the request fails, it does not hang.
        var options = KubeClient.Options()
        options.requestTimeout = .milliseconds(200)
        let impatient = try KubeClient(connection: client.connection, options: options, logger: quietLogger)
        fake.setLatency(2)
        do {
            _ = try await impatient.get(Secret.self, namespace: "default", name: "s")
            Issue.record("the request must time out")
        } catch let e as KubeAPIError {
            #expect(e.code == 0 && e.reason == "Unreachable", "\(e)")
        }
        fake.setLatency(0)
    }
}
