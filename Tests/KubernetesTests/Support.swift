import Backend
import Foundation
import Kubernetes
import Logging
import Model
import TestSupport


func temporaryDirectory() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-k8s-\(UUID().uuidString.prefix(8))").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

var quietLogger: Logger {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}

func makeClient(_ fake: FakeKubernetes, namespace: String = "setpoint", token: String? = nil) throws -> KubeClient {
    let config = try KubeConfig.parse(fake.kubeconfig(namespace: namespace, token: token))
    return try KubeClient(connection: try config.connection(), logger: quietLogger)
}

func makeBackend(_ fake: FakeKubernetes, installation: String = "test", access: KubernetesBackend.Access = .apiProxy,
                 unschedulableTimeout: TimeInterval = 600,
                 adjust: (inout KubernetesBackend.Settings) -> Void = { _ in }) async throws -> KubernetesBackend {
    let client = try makeClient(fake)
    var settings = KubernetesBackend.Settings(template: PodTemplate.Settings(namespace: "setpoint", installation: installation))
    settings.access = access
    settings.unschedulableTimeout = unschedulableTimeout
    adjust(&settings)
    let backend = KubernetesBackend(client: client, settings: settings, logger: quietLogger)
    await backend.prepare()
    // The server runs it in its ServiceGroup; a test runs it until `shutdown()`.
    Task { try? await backend.run() }
    _ = await backend.waitForPods(timeout: 10)
    return backend
}

/// A started fake cluster (set up by `configure`) and a backend on it, for `body`; both are
/// stopped afterwards.
func withCluster(unschedulableTimeout: TimeInterval = 600, configure: (FakeKubernetes) -> Void = { _ in },
                 settings adjust: (inout KubernetesBackend.Settings) -> Void = { _ in },
                 _ body: (FakeKubernetes, KubernetesBackend) async throws -> Void) async throws {
    let fake = FakeKubernetes()
    try await fake.start()
    defer { fake.stop() }
    configure(fake)
    let backend = try await makeBackend(fake, unschedulableTimeout: unschedulableTimeout, adjust: adjust)
    defer { Task { await backend.shutdown() } }
    try await body(fake, backend)
}

func waitRunning(_ backend: KubernetesBackend, _ id: WorkloadID) async throws {
    try await eventually("running") { if case .running? = try await backend.status(id)?.state { return true } else { return false } }
}

func request(_ name: String = "web-0-0-0", run: String = "web", template: ReplicaTemplate = ReplicaTemplate(commands: ["python -m http.server 8000"])) -> WorkloadRequest {
    WorkloadRequest(name: name, project: "main",
                    labels: [Labels.run: run, Labels.group: "0", Labels.replica: "0", Labels.submission: "0", Labels.deployment: "1", Labels.project: "main"],
                    template: template,
                    systemEnvironment: ["DSTACK_RUN_NAME": run, "DSTACK_REPLICA_NUM": "0", "DSTACK_REPO_ID": "main", "DSTACK_GPUS_NUM": "0"])
}

/// Collects elements of `stream` until `done` says so, failing after `timeout` instead of
/// waiting forever for an element that does not come.
func collect<T: Sendable>(_ stream: AsyncStream<T>, timeout: TimeInterval = 15, until done: @escaping @Sendable ([T]) -> Bool) async throws -> [T] {
    try await withThrowingTaskGroup(of: [T]?.self) { group in
        group.addTask {
            var seen: [T] = []
            for await item in stream {
                seen.append(item)
                if done(seen) { return seen }
            }
            return seen
        }
        group.addTask {
            try await Task.sleep(for: .seconds(timeout))
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        guard let result = first else { throw CollectTimeout(description: "no matching element within \(timeout)s") }
        return result
    }
}

struct CollectTimeout: Error, CustomStringConvertible { var description: String }
