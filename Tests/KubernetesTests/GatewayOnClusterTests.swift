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

/// A gateway on a cluster, converged by the gateway controller on the fake API server: Pods of
/// Setpoint's image in gateway mode (the credential in a Secret, never in the Pod's spec) behind
/// a `type: LoadBalancer` Service, an address that appears only after a while, kept when the
/// Pods are redeployed, and everything removed with the gateway.
@Suite(.timeLimit(.minutes(2))) struct GatewayOnClusterTests {
    static let credential = "spgw.main.edge.0123456789abcdef"

    @Test func podsBehindALoadBalancerWhoseAddressComesLateAndSurvivesRedeploys() async throws {
        try await withCluster { fake, backend in
            let store = MemoryStore()
            var cluster = KubernetesGatewaySettings()
            cluster.serverURL = "http://setpoint.setpoint.svc:3000"
            cluster.image = "registry.example/setpoint:1"
            let launch = GatewayLaunch(executable: "/nonexistent", serverURL: "http://127.0.0.1:1", local: LocalGatewaySettings(),
                                       kubernetes: cluster, credential: { _ in Self.credential })
            let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: SystemClock(), resyncPeriod: nil, gateways: launch)
            let task = Task { try await manager.run() }
            defer { task.cancel() }
            let text = "type: gateway\nname: edge\nbackend: kubernetes\nregion: \(backend.client.connection.context)\ndomain: example.test\ncertificate: null\n"
            guard case .success(.gateway(let config))? = ConfigurationParser.parse(text).first?.result else { Issue.record("invalid gateway"); return }
            try await TypedStore<GatewayKind>(store).create(Gateway(project: "main", name: "edge", finalizers: [Labels.gatewayFinalizer],
                                                                    spec: GatewaySpec(configuration: config, isDefault: true)))
            func gateway() async throws -> Gateway? { try await TypedStore<GatewayKind>(store).get(project: "main", name: "edge") }

            // The Service and the Pod; no address yet, and the status says what to check.
            try await eventually("a LoadBalancer Service and a gateway Pod", timeout: 20) {
                fake.objects("services").count == 1 && fake.objects("pods").count == 1
            }
            let service = try #require(fake.objects("services").first)
            #expect(service.value(at: ["spec", "type"])?.stringValue == "LoadBalancer")
            #expect(service.value(at: ["spec", "selector", Labels.gateway])?.stringValue == "edge")
            #expect(service.value(at: ["spec", "ports"])?.serialized.contains("\"targetPort\":8080") == true)
            let serviceUID = try #require(service.value(at: ["metadata", "uid"])?.stringValue)
            let pod = try #require(fake.objects("pods").first)
            #expect(pod.value(at: ["spec", "containers"])?.serialized.contains("registry.example/setpoint:1") == true)
            #expect(pod.serialized.contains("gateway") && pod.serialized.contains("http://setpoint.setpoint.svc:3000"))
            #expect(!pod.serialized.contains(Self.credential), "the credential is not in the Pod's spec")
            #expect(pod.serialized.contains("secretKeyRef"))
            #expect(fake.objects("secrets").contains { $0.serialized.contains(Data(Self.credential.utf8).base64EncodedString()) })
            try await eventually("waiting for an address, saying what to check", timeout: 20) {
                let g = try await gateway()
                return g?.status.address == nil && g?.status.message?.contains("waiting for the LoadBalancer Service to get an address") == true
                    && g?.status.conditions["Ready"]?.reason == "NoLoadBalancerAddress"
            }

            // The cloud gives the Service its address: the gateway shows it.
            let serviceName = try #require(service.value(at: ["metadata", "name"])?.stringValue)
            fake.setServiceStatus(namespace: "setpoint", name: serviceName, .object([("loadBalancer", .object([("ingress", .array([.object([("ip", .string("203.0.113.7"))])]))]))]))
            try await eventually("the address in the status", timeout: 20) { try await gateway()?.status.address == "203.0.113.7" }

            // The Pod is replaced (deleted outside Setpoint): a new Pod, the same Service, the same address.
            let podName = try #require(pod.value(at: ["metadata", "name"])?.stringValue)
            let oldUID = try #require(pod.value(at: ["metadata", "uid"])?.stringValue)
            try await makeClient(fake).delete(Pod.self, namespace: "setpoint", name: podName)
            try await eventually("a new gateway Pod", timeout: 30) {
                fake.objects("pods").contains { $0.value(at: ["metadata", "uid"])?.stringValue != oldUID && $0.value(at: ["metadata", "deletionTimestamp"]) == nil }
            }
            #expect(fake.objects("services").first?.value(at: ["metadata", "uid"])?.stringValue == serviceUID)
            #expect(try await gateway()?.status.address == "203.0.113.7")

            // Deleting the gateway removes its Pods, then its Service.
            _ = try await TypedStore<GatewayKind>(store).delete(project: "main", name: "edge")
            try await eventually("everything gone", timeout: 30) {
                try await gateway() == nil && fake.objects("services").isEmpty && fake.objects("pods").isEmpty
            }
        }
    }
}
