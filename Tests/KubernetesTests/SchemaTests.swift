import Backend
import Foundation
import Kubernetes
import Model
import SetpointConfiguration
import Testing
import TestSupport

/// What the driver sends must be what a real API server accepts: the Pods and Secrets it
/// creates (with every mapped field), the Lease, and manifests/, checked against the
/// Kubernetes OpenAPI schemas in strict mode (unknown fields refused) by kubernetes-validate
/// (PyPI; hack/test.sh installs it into .build/kubernetes-validate).
@Suite(.timeLimit(.minutes(2))) struct SchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var validator: String? {
        let candidates = [ProcessInfo.processInfo.environment["SETPOINT_KUBERNETES_VALIDATE"],
                          root.appendingPathComponent(".build/kubernetes-validate/bin/kubernetes-validate").path].compactMap { $0 }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
    /// hack/test.sh sets SETPOINT_REQUIRE_KUBERNETES_VALIDATE=1: there the check may not be skipped.
    static var required: Bool { ProcessInfo.processInfo.environment["SETPOINT_REQUIRE_KUBERNETES_VALIDATE"] == "1" }

    @Test(.enabled(if: validator != nil || required, "kubernetes-validate is not installed (hack/test.sh installs it)"))
    func createdObjectsAndManifestsPassTheStrictSchema() async throws {
        let validate = try #require(Self.validator, "kubernetes-validate is missing: run hack/test.sh, which installs it")
        let fake = FakeKubernetes()
        try await fake.start()
        defer { fake.stop() }
        fake.addNode("gpu-1", gpus: 8, labels: ["nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"])
        let backend = try await makeBackend(fake)
        defer { Task { await backend.shutdown() } }
        try await eventually("nodes") { (try? await backend.offers())?.count == 1 }
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/code.tar.gz", contents: Data("archive".utf8))

        // Every mapped field at once: GPUs, shm, spot, privileged, user, an httpGet probe,
        // registry_auth, code, limits; and a second replica with a POST probe and no GPU.
        let gpu = #"{"cpu":{"arch":null,"count":{"min":4,"max":8}},"memory":{"min":16.0,"max":32.0},"shm_size":8.0,"gpu":{"vendor":"nvidia","name":["H100"],"count":{"min":2,"max":2},"memory":null},"disk":{"size":{"min":50.0,"max":100.0}}}"#
        let rich = ReplicaTemplate(image: "ghcr.io/acme/vllm:1", commands: ["vllm serve model"], workingDir: "app", user: "1000", privileged: true,
                                   env: ["HF_HOME": "/cache"], port: 8000, resources: gpu,
                                   probes: [ProbeTemplate(url: "/health", headers: ["X-Probe": "1"], timeout: 5, interval: 3, readyAfter: 2)],
                                   stopDuration: 60, registryUsername: "bot", registryPassword: "pw",
                                   code: CodeArchive(hash: String(repeating: "a", count: 64), path: dir + "/code.tar.gz", size: 7), spotPolicy: "spot")
        _ = try await backend.create(request("web-0-0-0", template: rich))
        let plain = ReplicaTemplate(python: "3.11", commands: ["python app.py"],
                                    resources: #"{"cpu":{"arch":null,"count":{"min":1,"max":null}},"memory":{"min":0.5,"max":null},"shm_size":null,"gpu":null,"disk":null}"#,
                                    probes: [ProbeTemplate(url: "/v1/chat/completions", method: "post", body: "{}")], spotPolicy: "on-demand")
        _ = try await backend.create(request("web-0-1-0", template: plain))
        let client = try makeClient(fake, namespace: "setpoint")
        let elector = LeaderElector(client: client, namespace: "setpoint", identity: "me", logger: quietLogger)
        try await elector.acquire()

        var files: [String] = []
        for (kind, objects) in [("pods", fake.objects("pods")), ("secrets", fake.objects("secrets")), ("leases", fake.objects("leases"))] {
            #expect(!objects.isEmpty, "no \(kind) were created")
            for (i, object) in objects.enumerated() {
                let file = "\(dir)/\(kind)-\(i).json"
                try object.serialized.write(toFile: file, atomically: true, encoding: .utf8)
                files.append(file)
            }
        }
        // The installation (one server) and its overlay for two servers on PostgreSQL.
        var documents = files.count
        for (name, path) in [("manifests", "manifests"), ("manifests-ha", "manifests/ha")] {
            let (kustomized, manifests) = try await runProcess(["kubectl", "kustomize", Self.root.appendingPathComponent(path).path])
            #expect(kustomized == 0, "\(manifests)")
            try manifests.write(toFile: dir + "/\(name).yaml", atomically: true, encoding: .utf8)
            files.append(dir + "/\(name).yaml")
            documents += manifests.components(separatedBy: "\n---\n").count
        }
        #expect(documents >= files.count - 2 + 10 + 10, "both kustomizations have their objects (the overlay: a PodDisruptionBudget, no PersistentVolumeClaim)")

        let (status, output) = try await runProcess([validate, "--strict", "--no-warn", "-k", "1.32.0"] + files)
        #expect(status == 0, "\(output)")
        #expect(output.components(separatedBy: "passed").count - 1 >= documents, "\(output)")
    }
}
