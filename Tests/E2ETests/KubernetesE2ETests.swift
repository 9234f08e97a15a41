import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SetpointConfiguration
import Testing
import TestSupport

/// The real binary with `--kubeconfig` against the fake API server: apply a service, reach it
/// through the proxy (and the API server's pod proxy), restart the server without duplicating
/// a Pod, stop it and find nothing left.
@Suite(.serialized, .timeLimit(.minutes(3))) struct KubernetesE2ETests {
    @Test func serviceOnKubernetesFromApplyToCleanup() async throws {
        let fake = FakeKubernetes()
        try await fake.start()
        defer { fake.stop() }
        fake.addNode("node-1", cpu: "16", memory: "64Gi", disk: "500Gi")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-k8s-e2e-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let kubeconfig = dir.appendingPathComponent("kubeconfig")
        try fake.kubeconfig(context: "fake-cluster", namespace: "apps", token: "k8s-token").write(to: kubeconfig, atomically: true, encoding: .utf8)
        fake.requireToken("k8s-token")

        let server = try Server(kubeconfig: kubeconfig.path)
        defer { server.stop() }
        try await server.waitHealthy()
        let file = server.home.appendingPathComponent("web.dstack.yml")
        try """
            type: service
            name: web
            image: ghcr.io/acme/web:1
            commands:
              - python3 -m http.server 8000
            port: 8000
            replicas: 2
            registry_auth:
              username: bot
              password: hunter2-registry-secret
            resources:
              cpu: 1..2
              memory: 1GB..2GB
              disk: 1GB
            """.write(to: file, atomically: true, encoding: .utf8)

        let offers = try await server.cli(["offer"])
        #expect(offers.output.contains("kubernetes") && offers.output.contains("fake-cluster") && offers.output.contains("node-1"), "\(offers.output)")
        let applied = try await server.cli(["apply", "-f", file.path, "-y", "-d"])
        #expect(applied.status == 0, "\(applied.output)")
        #expect(applied.output.contains("node-1"), "the plan shows the cluster's offers: \(applied.output)")

        // Two Pods, reached through the proxy and the API server's pod proxy.
        try await waitFor(timeout: 60) {
            let r = try await server.get("/proxy/services/main/web/hello?q=1", token: server.token)
            return r.status == 200 && r.body.contains(#""path":"/hello?q=1""#)
        }
        // The first ready replica serves before the second exists: wait for both.
        try await waitFor(timeout: 60) { fake.objects("pods").count == 2 }
        let pods = fake.objects("pods")
        #expect(pods.count == 2)
        let pod = try #require(pods.first)
        let container = try #require(pod.value(at: ["spec", "containers"]).flatMap { if case .array(let a) = $0 { return a.first } else { return nil } })
        #expect(container["image"]?.stringValue == "ghcr.io/acme/web:1")
        // Requests are the lower bounds, limits the upper ones (`disk: 1GB` is 1GB..1GB).
        #expect(container["resources"]?.serialized == #"{"limits":{"cpu":"2","ephemeral-storage":"1024Mi","memory":"2048Mi"},"requests":{"cpu":"1","ephemeral-storage":"1024Mi","memory":"1024Mi"}}"#)
        #expect(container["env"]?.serialized.contains(#"{"name":"DSTACK_RUN_NAME","value":"web"}"#) == true)
        let labels = pod.value(at: ["metadata", "labels"])?.stringMap ?? [:]
        #expect(labels["app.kubernetes.io/managed-by"] == "setpoint" && labels["setpoint.dev/run"] == "web" && labels["setpoint.dev/project"] == "main")
        // Per Pod: the registry credentials and the uploaded code (the CLI sends the directory).
        let secrets = fake.objects("secrets").compactMap { $0.value(at: ["metadata", "name"])?.stringValue }.sorted()
        #expect(secrets.count == 4 && secrets.filter { $0.hasSuffix("-registry") }.count == 2 && secrets.filter { $0.hasSuffix("-code") }.count == 2, "\(secrets)")
        // The cluster's Pod events show in `describe`.
        let podName = try #require(pod.value(at: ["metadata", "name"])?.stringValue)
        fake.recordEvent(namespace: "apps", pod: podName, reason: "Pulled", message: "Successfully pulled image \"ghcr.io/acme/web:1\"")
        try await waitFor(timeout: 20) { try await server.cli(["describe", "web"]).output.contains("Successfully pulled image") }
        try await waitFor(timeout: 30) { try await server.cli(["ps"]).output.contains("2/2") }
        let ps = try await server.cli(["ps"])
        #expect(ps.output.contains("running") && ps.output.contains("2/2"), "\(ps.output)")

        // Logs: every replica by default, each line prefixed; one replica's failure (the log API
        // answers 500 when the API server cannot reach the kubelet) is shown and fails the command,
        // the other replica's lines still come.
        // Pods are named after replicas (`web.0-1-0` → `web-0-1-0-<digest>`); output names replicas.
        let replicaPods = fake.objects("pods").compactMap { pod -> (pod: String, replica: String)? in
            guard let name = pod.value(at: ["metadata", "name"])?.stringValue,
                  let group = pod.value(at: ["metadata", "labels", "setpoint.dev/group"])?.stringValue,
                  let num = pod.value(at: ["metadata", "labels", "setpoint.dev/replica"])?.stringValue,
                  let sub = pod.value(at: ["metadata", "labels", "setpoint.dev/submission"])?.stringValue else { return nil }
            return (name, "web.\(group)-\(num)-\(sub)")
        }.sorted { $0.replica < $1.replica }
        let names = replicaPods.map { $0.replica }
        #expect(names.count == 2)
        for (pod, replica) in replicaPods { fake.setLogs(pod: pod, ["hello from \(replica)"]) }
        let logs = try await server.cli(["logs", "web"])
        #expect(logs.status == 0 && names.allSatisfy { logs.output.contains("[\($0)] hello from \($0)") }, "\(logs.output)")
        fake.failNext(1, matching: "/pods/\(replicaPods[0].pod)/log", status: 500, message: "dial tcp 10.0.0.1:10250: connect: connection refused")
        let failing = try await server.cli(["logs", "web"])
        #expect(failing.status != 0, "\(failing.output)")
        #expect(failing.output.contains("cannot read the logs of replica \(names[0])") && failing.output.contains("connection refused"), "\(failing.output)")
        #expect(failing.output.contains("[\(names[1])] hello from \(names[1])"), "\(failing.output)")
        let one = try await server.cli(["logs", "web", "--replica", "1"])
        #expect(one.status == 0 && one.output.contains("hello from") && !one.output.contains("["), "\(one.output)")

        // The API server refuses to dial one Pod (its own Status, not the app's answer): the
        // request is served by the other replica; with both refused, a 502 with the reason.
        fake.refuseProxy(pod: replicaPods[0].pod, status: 400, message: "address not allowed")
        for _ in 0..<8 {
            let r = try await server.get("/proxy/services/main/web/who", token: server.token)
            #expect(r.status == 200 && r.body.contains(#""pod":"\#(replicaPods[1].pod)""#), "\(r.status) \(r.body)")
        }
        fake.refuseProxy(pod: replicaPods[1].pod, status: 400, message: "address not allowed")
        let refused = try await server.get("/proxy/services/main/web/who", token: server.token)
        #expect(refused.status == 502 && refused.body.contains("address not allowed"), "\(refused.status) \(refused.body)")
        for (pod, _) in replicaPods { fake.refuseProxy(pod: pod, message: nil) }

        // The uploaded code is served by its SHA-256 to Pods that fetch it (no token needed).
        let codeSecret = try #require(fake.objects("secrets").first { ($0.value(at: ["metadata", "name"])?.stringValue ?? "").hasSuffix("-code") })
        let archive = try #require(codeSecret.value(at: ["data", "code.tar.gz"])?.stringValue.flatMap { Data(base64Encoded: $0) })
        let hash = try sha256(archive, in: dir)
        let served = try await server.get("/api/v1/code/\(hash)")
        #expect(served.status == 200)
        #expect(try await server.get("/api/v1/code/\(String(repeating: "0", count: 64))").status == 404)

        // Killed, a stray Pod of this installation appears (its replica does not exist), and the
        // server starts again: its Pods are adopted (none created), the stray one is deleted.
        let uids = Set(fake.objects("pods").compactMap { $0.value(at: ["metadata", "uid"])?.stringValue })
        server.kill(signal: SIGKILL)
        let installation = try String(contentsOf: server.dataDir.appendingPathComponent("installation-id"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let stray = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"gone-0-0-0","labels":{"app.kubernetes.io/managed-by":"setpoint","setpoint.dev/installation":"\#(installation)","setpoint.dev/project":"main","setpoint.dev/run":"gone","setpoint.dev/group":"0","setpoint.dev/replica":"0","setpoint.dev/submission":"0"}},"spec":{"containers":[{"name":"service","image":"busybox"}]}}"#
        var post = URLRequest(url: URL(string: fake.url + "/api/v1/namespaces/apps/pods")!)
        post.httpMethod = "POST"
        post.setValue("Bearer k8s-token", forHTTPHeaderField: "Authorization")
        post.httpBody = Data(stray.utf8)
        #expect((try await URLSession.shared.data(for: post).1 as? HTTPURLResponse)?.statusCode == 201)
        let creates = fake.requests["create", default: 0]
        try server.start()
        try await server.waitHealthy()
        try await waitFor(timeout: 30) { try await server.get("/proxy/services/main/web/", token: server.token).status == 200 }
        try await waitFor(timeout: 30) { fake.object("pods", namespace: "apps", name: "gone-0-0-0") == nil }
        #expect(Set(fake.objects("pods").compactMap { $0.value(at: ["metadata", "uid"])?.stringValue }) == uids)
        #expect(fake.requests["create", default: 0] == creates, "no Pod or Secret created after the restart")

        // Stopped: Pods and Secrets go.
        #expect(try await server.cli(["stop", "web", "-y"]).status == 0)
        try await waitFor(timeout: 30) { fake.objects("pods").isEmpty && fake.objects("secrets").isEmpty }

        // The registry password reached the cluster only inside the Secret.
        let log = (try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? ""
        #expect(!log.contains("hunter2-registry-secret"))
        #expect(!log.isEmpty)
    }

    @Test func unschedulablePodsShowTheSchedulersMessage() async throws {
        let fake = FakeKubernetes()
        try await fake.start()
        defer { fake.stop() }
        fake.setKubelet(.unschedulable("0/1 nodes are available: 1 Insufficient cpu."))
        fake.addNode("node-1", cpu: "16", memory: "64Gi")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-k8s-e2e-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Through --config this time: a kubernetes backend with its own namespace and a short wait.
        try fake.kubeconfig().write(to: dir.appendingPathComponent("kubeconfig"), atomically: true, encoding: .utf8)
        let config = dir.appendingPathComponent("config.yml")
        try """
            backends:
              - type: kubernetes
                kubeconfig: \(dir.appendingPathComponent("kubeconfig").path)
                namespace: team-a
                unschedulable_timeout: 600
            """.write(to: config, atomically: true, encoding: .utf8)
        let server = try Server(extraArguments: ["--config", config.path], keepLog: true)
        defer { server.stop() }
        try await server.waitHealthy()
        let file = server.home.appendingPathComponent("big.dstack.yml")
        try "type: service\nname: big\nimage: python:3.12\ncommands: [python3 -m http.server 8000]\nport: 8000\nresources: {cpu: 64}\n"
            .write(to: file, atomically: true, encoding: .utf8)
        // The plan lists no offer (none fits 64 CPUs) and says what the run will do.
        let applied = try await server.cli(["apply", "-f", file.path, "-y", "-d"])
        #expect(applied.status == 0, "\(applied.output)")
        #expect(!applied.output.contains("node-1\n") && applied.output.contains("No offer fits the resources: they need 64 CPUs, the offer has 16 (node-1"),
                "\(applied.output)")
        #expect(applied.output.contains("unschedulable_timeout"), "\(applied.output)")
        try await waitFor(timeout: 30) { try await server.cli(["ps", "-v"]).output.contains("unschedulable: 0/1 nodes are available: 1 Insufficient cpu.") }
        let described = try await server.cli(["describe", "big"])
        #expect(described.output.contains("provisioning") && described.output.contains("Insufficient cpu"), "\(described.output)")
        #expect(fake.objects("pods").first?.value(at: ["metadata", "namespace"])?.stringValue == "team-a")
        #expect(try await server.cli(["stop", "big", "-y"]).status == 0)
        try await waitFor(timeout: 30) { fake.objects("pods").isEmpty }
    }

    @Test func inClusterServerHoldsTheLeaderLeaseAndRunsReplicas() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-incluster-\(UUID().uuidString.prefix(8))")
        let sa = dir.appendingPathComponent("serviceaccount")
        try FileManager.default.createDirectory(at: sa, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // The API server speaks TLS with its own CA, as in a cluster; the service account's
        // token, CA and namespace are files, as the kubelet mounts them.
        let certs = try await TestCertificates.make(in: dir.path)
        let fake = FakeKubernetes()
        try await fake.start(tls: .init(certificatePEM: certs.serverCert, keyPEM: certs.serverKey))
        defer { fake.stop() }
        fake.requireToken("sa-token")
        fake.addNamespace("setpoint")   // the server's own namespace, where its Pod runs
        try "sa-token".write(to: sa.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        try Data(certs.ca).write(to: sa.appendingPathComponent("ca.crt"))
        try "setpoint".write(to: sa.appendingPathComponent("namespace"), atomically: true, encoding: .utf8)
        let config = dir.appendingPathComponent("config.yml")
        // The fake's pod IPs are not routable here, so the API server's pod proxy is forced.
        try "backends:\n  - type: kubernetes\n    in_cluster: true\n    access: api-proxy\n".write(to: config, atomically: true, encoding: .utf8)
        let port = fake.port
        let server = try Server(extraArguments: ["--config", config.path], keepLog: true,
                                environment: ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": String(port),
                                              "SETPOINT_SERVICE_ACCOUNT_DIR": sa.path])
        defer { server.stop() }
        do { try await server.waitHealthy() } catch {
            Issue.record("the server did not start: \((try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? "")")
            throw error
        }
        let lease = try #require(fake.object("leases", namespace: "setpoint", name: "setpoint-leader"))
        #expect(lease.value(at: ["spec", "holderIdentity"])?.stringValue == ProcessInfo.processInfo.hostName)
        #expect(!fake.requestLog.contains { $0.contains("create POST /api/v1/namespaces ") }, "in a cluster the namespace is not created")

        let file = server.home.appendingPathComponent("web.dstack.yml")
        try "type: service\nname: web\nimage: python:3.12\ncommands: [python3 -m http.server 8000]\nport: 8000\nresources: {cpu: 1, memory: 1GB, disk: 1GB}\n"
            .write(to: file, atomically: true, encoding: .utf8)
        #expect(try await server.cli(["apply", "-f", file.path, "-y", "-d"]).status == 0)
        try await waitFor(timeout: 60) {
            let r = try await server.get("/proxy/services/main/web/x", token: server.token)
            return r.status == 200 && r.body.contains(#""path":"/x""#)
        }
        // A clean stop gives the lease up, so the next server need not wait for it to expire.
        await server.terminate(signal: SIGTERM)
        #expect(server.exitStatus == 0, "a SIGTERM is a clean stop")
        let released = try #require(fake.object("leases", namespace: "setpoint", name: "setpoint-leader"))
        #expect(released.value(at: ["spec", "holderIdentity"]) == nil, "\(released.serialized)")
    }

    @Test func badServerConfigurationIsRefusedWithFileLineAndProperty() async throws {
        let server = try Server(start: false)
        defer { server.stop() }
        try FileManager.default.createDirectory(at: server.dataDir, withIntermediateDirectories: true)
        try "backends:\n  - type: local\n  - type: kubernetes\n    contxts: [prod]\n".write(to: server.dataDir.appendingPathComponent("config.yml"), atomically: true, encoding: .utf8)
        try server.start()
        try await waitFor(timeout: 20) { !(server.current?.isRunning ?? true) }
        #expect(server.current?.terminationStatus != 0)
        let log = (try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("config.yml:4: backends[1].contxts: unknown property of the kubernetes backend"), "\(log)")
    }
}

private typealias Server = ServerE2ETests.Server

extension ServerE2ETests.Server {
    convenience init(kubeconfig: String) throws {
        try self.init(extraArguments: ["--kubeconfig", kubeconfig], keepLog: true)
    }

    convenience init(start: Bool) throws {
        try self.init(extraArguments: [], keepLog: true, start: start)
    }
}

/// The hex SHA-256 of `data` (with the system's sha256sum).
func sha256(_ data: Data, in dir: URL) throws -> String {
    let file = dir.appendingPathComponent("sha-input")
    try data.write(to: file)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    p.arguments = [file.path]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return String(text.prefix(64))
}
