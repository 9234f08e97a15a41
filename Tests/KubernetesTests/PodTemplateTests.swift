import Backend
import Foundation
import Kubernetes
import Model
import Testing

@Suite(.timeLimit(.minutes(2))) struct PodTemplateTests {
    let settings = PodTemplate.Settings(namespace: "apps", installation: "sp-1")

    func resources(gpu: String = "null", shm: String = "null", disk: String = #"{"size":{"min":100.0,"max":null}}"#) -> String {
        #"{"cpu":{"arch":null,"count":{"min":2,"max":null}},"memory":{"min":8.0,"max":null},"shm_size":\#(shm),"gpu":\#(gpu),"disk":\#(disk)}"#
    }

    @Test func defaultsFollowDstack() throws {
        let t = ReplicaTemplate(python: "3.11", commands: ["pip install -r requirements.txt", "python app.py"], env: ["A": "1"], port: 9000,
                                resources: resources(), stopDuration: 45)
        let pod = try PodTemplate.make(request(template: t), settings: settings).pod
        let c = try #require(pod.spec?.containers.first)
        #expect(c.image == "python:3.11-slim")
        #expect(c.command == ["/bin/sh", "-c", "pip install -r requirements.txt && python app.py"])
        #expect(c.ports == [ContainerPort(name: "http", containerPort: 9000, protocol: "TCP")])
        #expect(c.resources == ResourceRequirements(requests: ["cpu": "2", "memory": "8192Mi", "ephemeral-storage": "102400Mi"], limits: nil))
        let env = Dictionary(uniqueKeysWithValues: (c.env ?? []).map { ($0.name, $0.value ?? "") })
        #expect(env["A"] == "1" && env["DSTACK_RUN_NAME"] == "web" && env["DSTACK_GPUS_NUM"] == "0" && env["NVIDIA_VISIBLE_DEVICES"] == "void" && env["PORT"] == "9000")
        #expect(c.readinessProbe?.tcpSocket?.port == 9000, "no probe: ready once the port accepts connections")
        #expect(pod.spec?.restartPolicy == "Never" && pod.spec?.terminationGracePeriodSeconds == 45 && pod.spec?.affinity == nil)
        #expect(pod.metadata.namespace == "apps" && pod.metadata.labels?["app.kubernetes.io/instance"] == "web-0-0-0")
        let nvcc = ReplicaTemplate(commands: ["nvcc --version"], resources: resources(), nvcc: true)
        #expect(try PodTemplate.make(request(template: nvcc), settings: settings).pod.spec?.containers.first?.image == "nvidia/cuda:12.4.1-devel-ubuntu22.04")
    }

    @Test func gpusShmSpotPrivilegedAndProbes() throws {
        let gpu = #"{"vendor":"nvidia","name":["H100"],"count":{"min":2,"max":8},"memory":{"min":80.0,"max":null}}"#
        var s = settings
        s.gpuProducts = [GPUProduct(product: "NVIDIA-H100-80GB-HBM3"), GPUProduct(product: "NVIDIA-A100-SXM4-40GB"),
                         GPUProduct(product: "NVIDIA-H100-NVL", memoryMiB: "95830"), GPUProduct(product: "NVIDIA-H100-PCIe")]
        let probe = ProbeTemplate(url: "/health", headers: ["X-Probe": "1"], timeout: 5, interval: 3, readyAfter: 2)
        let t = ReplicaTemplate(commands: ["serve"], privileged: true, resources: resources(gpu: gpu, shm: "16.0"), probes: [probe], spotPolicy: "spot")
        let pod = try PodTemplate.make(request(template: t), settings: s).pod
        let c = try #require(pod.spec?.containers.first)
        #expect(c.resources?.requests?["nvidia.com/gpu"] == "2" && c.resources?.limits?["nvidia.com/gpu"] == "2")
        #expect(c.securityContext?.privileged == true)
        let numeric = ReplicaTemplate(commands: ["serve"], user: "1000:1000", resources: resources())
        #expect(try PodTemplate.make(request(template: numeric), settings: settings).pod.spec?.containers.first?.securityContext == SecurityContext(privileged: nil, runAsUser: 1000))
        #expect(c.volumeMounts?.contains(VolumeMount(name: "dshm", mountPath: "/dev/shm")) == true)
        #expect(pod.spec?.volumes?.first { $0.name == "dshm" }?.emptyDir == EmptyDirVolumeSource(medium: "Memory", sizeLimit: "16384Mi"))
        #expect(c.readinessProbe?.httpGet?.path == "/health" && c.readinessProbe?.successThreshold == 2 && c.readinessProbe?.periodSeconds == 3)
        #expect(pod.metadata.annotations?[PodTemplate.kubeletProbeAnnotation] == "true")
        let terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? []
        // One term per spot label family, each with the GPU products (H100s of at least 80 GB;
        // the PCIe one's memory is unknown, so it is left out).
        #expect(terms.count == 4)
        for term in terms {
            #expect(term.matchExpressions.first == NodeSelectorRequirement(key: "nvidia.com/gpu.product", operator: "In", values: ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-NVL"]))
        }
        #expect(terms.map { $0.matchExpressions.last!.key } == ["cloud.google.com/gke-spot", "eks.amazonaws.com/capacityType", "karpenter.sh/capacity-type", "kubernetes.azure.com/scalesetpriority"])
        #expect(pod.spec?.tolerations?.contains(Toleration(key: "nvidia.com/gpu", operator: "Exists", value: nil, effect: "NoSchedule")) == true)
        #expect(!(c.env ?? []).contains { $0.name == "NVIDIA_VISIBLE_DEVICES" })

        let onDemand = ReplicaTemplate(commands: ["serve"], resources: resources(), spotPolicy: "on-demand")
        let od = try PodTemplate.make(request(template: onDemand), settings: settings).pod
        let odTerms = od.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? []
        #expect(odTerms.count == 1 && odTerms[0].matchExpressions.allSatisfy { $0.operator == "NotIn" })

        // A POST probe is not a kubelet probe: Setpoint probes itself.
        let post = ReplicaTemplate(commands: ["serve"], resources: resources(), probes: [ProbeTemplate(url: "/v1/chat/completions", method: "post", body: "{}")])
        let p = try PodTemplate.make(request(template: post), settings: settings).pod
        #expect(p.spec?.containers.first?.readinessProbe == nil && p.metadata.annotations?[PodTemplate.kubeletProbeAnnotation] == nil)
    }

    @Test func largeCodeArchivesNeedTheServersURL() throws {
        let big = ReplicaTemplate(commands: ["serve"], resources: resources(), code: CodeArchive(hash: String(repeating: "a", count: 64), path: "/nonexistent", size: 5 << 20))
        #expect(throws: BackendError.self) { try PodTemplate.make(request(template: big), settings: settings) }
        var s = settings
        s.codeURL = "http://setpoint.setpoint.svc:3000"
        let pod = try PodTemplate.make(request(template: big), settings: s).pod
        let script = pod.spec?.initContainers?.first?.command?.last ?? ""
        #expect(script == "wget -q -O - 'http://setpoint.setpoint.svc:3000/api/v1/code/\(String(repeating: "a", count: 64))' | tar -xz -C /workflow")
    }

    @Test func podsWithNamedProbePortsStillDecode() throws {
        // Ports are IntOrString: one odd Pod must not break the watch that decodes it.
        let json = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"i","readinessProbe":{"httpGet":{"path":"/h","port":"http"}},"livenessProbe":{"tcpSocket":{"port":8080}}}]}}"#
        let pod = try JSONDecoder().decode(Pod.self, from: Data(json.utf8))
        #expect(pod.spec?.containers.first?.readinessProbe?.httpGet == Probe.HTTPGetAction(path: "/h", port: 0))
    }

    @Test func namesAndLabelsAreValidForKubernetes() {
        #expect(PodTemplate.podName("web-0-0-0") == "web-0-0-0")
        let long = PodTemplate.podName(String(repeating: "very-long-run-name-", count: 5) + "0-0-0")
        #expect(long.count <= 63 && !long.hasSuffix("-"))
        // Replica names have a `.` between run and group: two that differ only there are two Pods.
        let a = PodTemplate.podName("svc-a.0-0-0"), b = PodTemplate.podName("svc.a-0-0-0")
        #expect(a != b && a.hasPrefix("svc-a-0-0-0-") && b.hasPrefix("svc-a-0-0-0-"))
        for name in [a, b, long] { #expect(PodTemplate.isLabel(name) && name.count <= 63) }
        #expect(GPULabel.parse("NVIDIA-A100-SXM4-40GB") == GPULabel(name: "A100", memoryGB: 40))
        #expect(GPULabel.parse("Tesla-T4", memoryMiB: "15360") == GPULabel(name: "T4", memoryGB: 15))
        #expect(GPULabel.parse("NVIDIA-GeForce-RTX-4090") == GPULabel(name: "RTX4090", memoryGB: nil))
        #expect(Quantity.parse("500m") == 0.5 && Quantity.parse("16Gi") == 17_179_869_184 && Quantity.parse("1e3") == 1000)
    }
}
