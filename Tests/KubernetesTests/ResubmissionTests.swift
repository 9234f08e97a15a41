import Backend
import Controllers
import Foundation
import Kubernetes
import Model
import Reconcile
import SetpointConfiguration
import Store
import Testing
import TestSupport

/// Pods that vanish behind Setpoint's back are submitted again by the replica controller (the
/// backend only reports them): the controllers as the server runs them, on the fake cluster.
@Suite(.timeLimit(.minutes(2))) struct ResubmissionTests {
    static let service = """
        type: service
        name: web
        image: busybox
        commands: [python3 -m http.server 8000]
        port: 8000
        """

    /// A run of `service` converged on a fake cluster by a ControllerManager, for `body`.
    func withManagedRun(settings adjust: @escaping (inout KubernetesBackend.Settings) -> Void = { _ in }, configure: (FakeKubernetes) -> Void = { _ in },
                        _ body: (FakeKubernetes, any ObjectStore) async throws -> Void) async throws {
        try await withCluster(configure: configure, settings: adjust) { fake, backend in
            let clock = SystemClock()
            let store = MemoryStore()
            let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: clock, resyncPeriod: nil)
            let task = Task { try await manager.run() }
            defer { task.cancel() }
            guard case .success(.service(let config)) = ConfigurationParser.parse(Self.service).first?.result else {
                Issue.record("invalid test configuration")
                return
            }
            try await TypedStore<RunKind>(store).create(Run(project: "main", name: "web", spec: RunSpec(configuration: config)))
            try await eventually("ready", timeout: 20) { try await self.ready(store) }
            try await body(fake, store)
        }
    }

    func ready(_ store: any ObjectStore) async throws -> Bool {
        try await TypedStore<RunKind>(store).get(project: "main", name: "web")?.status.readyReplicas == 1
    }

    func podUID(_ fake: FakeKubernetes) -> String? {
        fake.objects("pods").first?.value(at: ["metadata", "uid"])?.stringValue
    }

    @Test func aPodDeletedOutsideSetpointIsSubmittedAgain() async throws {
        try await withManagedRun { fake, store in
            let uid = try #require(podUID(fake))
            let name = try #require(fake.objects("pods").first?.value(at: ["metadata", "name"])?.stringValue)
            fake.failNext(1, matching: "POST /api/v1/namespaces/setpoint/pods", status: 500)   // the first copy fails: retried
            try await makeClient(fake).delete(Pod.self, namespace: "setpoint", name: name)
            try await eventually("a new pod, serving", timeout: 20) {
                guard let now = podUID(fake), now != uid else { return false }
                return try await ready(store)
            }
            #expect(fake.objects("pods").count == 1)
            let events = try await TypedStore<EventKind>(store).list(project: "main").map(\.spec)
            #expect(events.contains { $0.reason == "Resubmitted" && $0.message.contains("deleted outside Setpoint") })
            let replica = try #require(try await TypedStore<ReplicaKind>(store).list(project: "main").first)
            #expect(replica.spec.submissionNum == 0, "the same replica, not a retry")
        }
    }

    @Test func aNamespaceSetpointMayNotCreateIsNamedInTheReplicasStatus() async throws {
        try await withManagedRun(settings: { $0.createNamespace = false }, configure: { $0.addNamespace("setpoint") }) { fake, store in
            fake.deleteNamespace("setpoint")
            try await eventually("the reason in the replica's status", timeout: 20) {
                let message = try await TypedStore<ReplicaKind>(store).list(project: "main").first?.status.message ?? ""
                return message.contains("submitting it again failed") && message.contains("namespace setpoint does not exist") && message.contains("create it")
            }
            let replica = try #require(try await TypedStore<ReplicaKind>(store).list(project: "main").first)
            #expect(replica.status.conditions["Ready"]?.reason == "CreateFailed" && replica.status.phase == .provisioning)
            // The namespace is created (by its owner): the copy goes in and serves.
            fake.addNamespace("setpoint")
            try await eventually("serving again", timeout: 30) { try await ready(store) }
        }
    }
}
