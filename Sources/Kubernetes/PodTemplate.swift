import Backend
import Foundation
import Model
import SetpointConfiguration

/// Turns a replica's workload request into the Kubernetes objects that run it (a Pod, and
/// Secrets for `registry_auth` and small code archives). Pure: the same request and settings
/// always give the same objects, so tests read them field by field.
public struct PodTemplate: Sendable {
    public struct Settings: Sendable {
        public var namespace: String
        /// The value of `setpoint.dev/installation` on every object: which Setpoint server owns it.
        public var installation: String
        /// Image when neither `image` nor `nvcc` is given (`{python}` is replaced by the version).
        public var defaultImage = "python:{python}-slim"
        /// Image with `nvcc: true` and no `image`.
        public var nvccImage = "nvidia/cuda:12.4.1-devel-ubuntu22.04"
        public var defaultPython = "3.12"
        /// Image of the init container that unpacks the code.
        public var helperImage = "busybox:1.36"
        /// Archives up to this size travel in a Secret; larger ones are fetched from `codeURL`.
        public var maxInlineCode = 512 * 1024
        /// `<server>/api/v1/code/<sha256>` must be reachable from Pods for larger archives.
        public var codeURL: String?
        /// GPU models of the cluster's nodes (`nvidia.com/gpu.product`, `nvidia.com/gpu.memory`),
        /// for GPU name affinity.
        public var gpuProducts: [GPUProduct] = []
        public var serviceAccountName: String?

        public init(namespace: String, installation: String) {
            self.namespace = namespace
            self.installation = installation
        }
    }

    public struct Objects: Sendable {
        public var pod: Pod
        public var secrets: [Secret]
    }

    public static let managedBy = "app.kubernetes.io/managed-by"
    public static let installationLabel = "setpoint.dev/installation"
    public static let inventoryAnnotation = "setpoint.dev/inventory"
    public static let kubeletProbeAnnotation = "setpoint.dev/kubelet-probe"
    public static let workdir = "/workflow"
    static let spotLabels: [(key: String, spot: String)] = [
        ("cloud.google.com/gke-spot", "true"), ("eks.amazonaws.com/capacityType", "SPOT"),
        ("karpenter.sh/capacity-type", "spot"), ("kubernetes.azure.com/scalesetpriority", "spot"),
    ]

    /// A DNS-1123 label of at most 63 characters for a replica name, different for different
    /// names: a name that already is such a label is kept; any other (a replica name has a `.`
    /// between run and group) becomes its letters, digits and `-`, cut to 52 characters, and a
    /// 40-bit digest of the whole name, so `svc-a.0-0-0` and `svc.a-0-0-0` stay two Pods.
    public static func podName(_ name: String) -> String {
        if isLabel(name) { return name }
        var h: UInt64 = 0xcbf29ce484222325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        var n = String(String(name.lowercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" ? $0 : "-" }).prefix(52))
        while n.hasSuffix("-") { n.removeLast() }
        let digest = String(h & 0xff_ffff_ffff, radix: 16)
        return n + "-" + String(repeating: "0", count: 10 - digest.count) + digest
    }

    /// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
    public static func isLabel(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        func alnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) }
        guard let first = bytes.first, let last = bytes.last, bytes.count <= 63, alnum(first), alnum(last) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 0x2d }
    }

    /// Label values: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends.
    static func labelValue(_ v: String) -> String {
        var s = String(v.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "-" }.prefix(63))
        while let last = s.last, !(last.isLetter || last.isNumber) { s.removeLast() }
        while let first = s.first, !(first.isLetter || first.isNumber) { s.removeFirst() }
        return s
    }

    /// The labels every object created for a replica carries.
    public static func labels(_ request: WorkloadRequest, settings: Settings) -> [String: String] {
        var labels = request.labels.mapValues(labelValue)
        labels[managedBy] = "setpoint"
        labels["app.kubernetes.io/name"] = "setpoint-replica"
        labels["app.kubernetes.io/instance"] = podName(request.name)
        labels[installationLabel] = labelValue(settings.installation)
        labels[Labels.project] = labelValue(request.project)
        return labels
    }

    public static func make(_ request: WorkloadRequest, settings: Settings, codeArchive: Data? = nil) throws -> Objects {
        let t = request.template
        let name = podName(request.name)
        let labels = labels(request, settings: settings)
        let resources = try ResourceRequest(json: t.resources)
        var secrets: [Secret] = []
        var volumes: [Volume] = []
        var mounts: [VolumeMount] = []
        var initContainers: [Container] = []
        var annotations: [String: String] = [:]

        // Environment: the configuration's, then Setpoint's (which wins).
        var env = t.env.merging(request.systemEnvironment) { _, system in system }
        env["PORT"] = String(t.port)
        if resources.gpuCount == 0 { env["NVIDIA_VISIBLE_DEVICES"] = "void" }

        // Image and command.
        let image = t.image ?? (t.nvcc == true ? settings.nvccImage
            : settings.defaultImage.replacingOccurrences(of: "{python}", with: t.python ?? settings.defaultPython))
        var command: [String]?
        let shell = t.shell ?? "/bin/sh"
        if !t.commands.isEmpty {
            command = [shell, "-c", t.commands.joined(separator: " && ")]
        } else if let entrypoint = t.entrypoint {
            command = [shell, "-c", "exec " + entrypoint]
        }

        // Secret environment (a gateway's credential) in a Secret of its own, referred to by name.
        if !request.secretEnvironment.isEmpty {
            secrets.append(Secret(metadata: ObjectMeta(name: name + "-env", namespace: settings.namespace, labels: labels), type: "Opaque",
                                  data: request.secretEnvironment.mapValues { Data($0.utf8).base64EncodedString() }))
        }

        // Code: unpacked into an emptyDir at the working directory by an init container.
        var workingDir = t.workingDir.map { $0.hasPrefix("/") ? $0 : workdir + "/" + $0 }
        if let code = t.code {
            volumes.append(Volume(name: "code", emptyDir: EmptyDirVolumeSource()))
            mounts.append(VolumeMount(name: "code", mountPath: workdir))
            let script: String
            if let archive = codeArchive, archive.count <= settings.maxInlineCode {
                let secretName = name + "-code"
                secrets.append(Secret(metadata: ObjectMeta(name: secretName, namespace: settings.namespace, labels: labels),
                                      type: "Opaque", data: ["code.tar.gz": archive.base64EncodedString()]))
                volumes.append(Volume(name: "code-archive", secret: SecretVolumeSource(secretName: secretName)))
                script = "tar -xzf /setpoint/code/code.tar.gz -C \(workdir)"
            } else if let url = settings.codeURL {
                script = "wget -q -O - \(shellQuote(url + "/api/v1/code/" + code.hash)) | tar -xz -C \(workdir)"
            } else {
                throw BackendError(.invalid, "the code archive (\(code.size) bytes) is larger than \(settings.maxInlineCode) bytes, which travel in a Secret; set `code_url` in the kubernetes backend's configuration so Pods can fetch it from the server")
            }
            var initMounts = [VolumeMount(name: "code", mountPath: workdir)]
            if secrets.contains(where: { $0.metadata.name == name + "-code" }) {
                initMounts.append(VolumeMount(name: "code-archive", mountPath: "/setpoint/code", readOnly: true))
            }
            initContainers.append(Container(name: "code", image: settings.helperImage, command: ["/bin/sh", "-c", script],
                                            resources: ResourceRequirements(requests: ["cpu": "10m", "memory": "32Mi"], limits: ["memory": "256Mi"]),
                                            volumeMounts: initMounts))
            workingDir = workingDir ?? workdir
        }

        // registry_auth: a dockerconfigjson Secret named by imagePullSecrets.
        var pullSecrets: [LocalObjectReference]?
        if let user = t.registryUsername, let password = t.registryPassword {
            let secretName = name + "-registry"
            let registry = Self.registry(of: image)
            let auth = Data("\(user):\(password)".utf8).base64EncodedString()
            let config = try JSONSerialization.data(withJSONObject: ["auths": [registry: ["username": user, "password": password, "auth": auth]]],
                                                    options: [.sortedKeys])
            secrets.append(Secret(metadata: ObjectMeta(name: secretName, namespace: settings.namespace, labels: labels),
                                  type: "kubernetes.io/dockerconfigjson", data: [".dockerconfigjson": config.base64EncodedString()]))
            pullSecrets = [LocalObjectReference(name: secretName)]
        }

        // shm_size: a memory-backed emptyDir at /dev/shm.
        if let shm = resources.shmSizeGB {
            volumes.append(Volume(name: "dshm", emptyDir: EmptyDirVolumeSource(medium: "Memory", sizeLimit: Quantity.mebibytes(gigabytes: shm))))
            mounts.append(VolumeMount(name: "dshm", mountPath: "/dev/shm"))
        }

        // Readiness: the kubelet probes when the probe fits an httpGet (or, with no probe, that
        // the port accepts connections), so readiness arrives through the watch.
        var readiness: Probe?
        if t.probes.isEmpty {
            readiness = Probe(tcpSocket: .init(port: t.port), timeoutSeconds: 2, periodSeconds: 2, successThreshold: 1, failureThreshold: 1)
        } else if t.probes.count == 1, let p = t.probes.first, p.method.lowercased() == "get", p.body == nil {
            readiness = Probe(httpGet: .init(path: p.url, port: t.port,
                                             httpHeaders: p.headers.isEmpty ? nil : p.headers.sorted { $0.key < $1.key }.map { .init(name: $0.key, value: $0.value) }),
                              timeoutSeconds: p.timeout, periodSeconds: p.interval, successThreshold: p.readyAfter, failureThreshold: 1)
        }
        if readiness != nil { annotations[kubeletProbeAnnotation] = "true" }

        // The template's digest without the registry credentials (filled in from secrets): an
        // annotation anyone who can read Pods sees must not be a hash of a password.
        var described = t
        described.registryUsername = nil
        described.registryPassword = nil
        let inventory: [String: String] = [
            "replica": request.name, "project": request.project, "template": described.hash, "installation": settings.installation,
        ]
        annotations[inventoryAnnotation] = String(decoding: try JSONSerialization.data(withJSONObject: inventory, options: [.sortedKeys]), as: UTF8.self)

        let container = Container(
            name: "service", image: image, command: command, workingDir: workingDir,
            env: env.sorted { $0.key < $1.key }.map { EnvVar(name: $0.key, value: $0.value) }
                + request.secretEnvironment.keys.sorted().map { EnvVar(name: $0, secret: name + "-env", key: $0) },
            ports: [ContainerPort(name: "http", containerPort: t.port, protocol: "TCP")],
            resources: resources.requirements, volumeMounts: mounts.isEmpty ? nil : mounts, readinessProbe: readiness,
            securityContext: Self.securityContext(privileged: t.privileged, user: t.user))

        var spec = PodSpec(containers: [container])
        spec.initContainers = initContainers.isEmpty ? nil : initContainers
        spec.volumes = volumes.isEmpty ? nil : volumes
        spec.restartPolicy = "Never"
        spec.terminationGracePeriodSeconds = Int64(t.stopDuration >= 0 ? t.stopDuration : 30)
        spec.imagePullSecrets = pullSecrets
        spec.enableServiceLinks = false
        spec.serviceAccountName = settings.serviceAccountName
        spec.automountServiceAccountToken = false
        (spec.affinity, spec.tolerations) = try placement(resources: resources, spotPolicy: t.spotPolicy, gpuProducts: settings.gpuProducts)
        let pod = Pod(metadata: ObjectMeta(name: name, namespace: settings.namespace, labels: labels, annotations: annotations), spec: spec)
        return Objects(pod: pod, secrets: secrets)
    }

    /// Required node affinity (GPU product, spot or on-demand) and the tolerations that go with it.
    static func placement(resources: ResourceRequest, spotPolicy: String?, gpuProducts: [GPUProduct]) throws -> (Affinity?, [Toleration]?) {
        var gpuTerm: [NodeSelectorRequirement] = []
        var tolerations: [Toleration] = []
        if resources.gpuCount > 0 {
            tolerations.append(Toleration(key: resources.gpuResource, operator: "Exists", effect: "NoSchedule"))
            if resources.gpuVendor != "amd", !resources.gpuNames.isEmpty || resources.gpuMemoryGB != nil {
                let matching = gpuProducts.filter { p in
                    guard let gpu = GPULabel.parse(p.product, memoryMiB: p.memoryMiB) else { return false }
                    return resources.accepts(gpu)
                }.map(\.product)
                guard !matching.isEmpty else {
                    let wanted = resources.gpuNames.isEmpty ? "with \(resources.gpuMemoryGB.map { "\($0.min ?? 0)GB" } ?? "")" : resources.gpuNames.joined(separator: ", ")
                    throw BackendError(.noCapacity, "no node of the cluster has a GPU \(wanted) (node label nvidia.com/gpu.product; known: \(gpuProducts.isEmpty ? "none" : Set(gpuProducts.map(\.product)).sorted().joined(separator: ", ")))")
                }
                gpuTerm.append(NodeSelectorRequirement(key: "nvidia.com/gpu.product", operator: "In", values: Set(matching).sorted()))
            }
        }
        var terms: [[NodeSelectorRequirement]]
        switch spotPolicy {
        case "spot":
            terms = spotLabels.map { gpuTerm + [NodeSelectorRequirement(key: $0.key, operator: "In", values: [$0.spot])] }
            tolerations.append(Toleration(key: "cloud.google.com/gke-spot", operator: "Equal", value: "true", effect: "NoSchedule"))
            tolerations.append(Toleration(key: "kubernetes.azure.com/scalesetpriority", operator: "Equal", value: "spot", effect: "NoSchedule"))
        case "on-demand":
            terms = [gpuTerm + spotLabels.map { NodeSelectorRequirement(key: $0.key, operator: "NotIn", values: [$0.spot]) }]
        default:
            terms = gpuTerm.isEmpty ? [] : [gpuTerm]
        }
        let affinity = terms.isEmpty ? nil : Affinity(nodeAffinity: NodeAffinity(requiredDuringSchedulingIgnoredDuringExecution:
            NodeSelector(nodeSelectorTerms: terms.map { NodeSelectorTerm(matchExpressions: $0) })))
        return (affinity, tolerations.isEmpty ? nil : tolerations)
    }

    /// `privileged`, and `user` when it is a numeric uid (`1000` or `1000:1000`); a user name
    /// cannot be resolved before the image runs, so it is left to the image.
    static func securityContext(privileged: Bool, user: String?) -> SecurityContext? {
        let uid = user.flatMap { Int64($0.split(separator: ":").first ?? "") }
        guard privileged || uid != nil else { return nil }
        return SecurityContext(privileged: privileged ? true : nil, runAsUser: uid)
    }

    /// The registry an image reference pulls from (Docker Hub when it names none).
    static func registry(of image: String) -> String {
        let first = image.split(separator: "/", maxSplits: 1).first.map(String.init) ?? image
        if image.contains("/"), first.contains(".") || first.contains(":") || first == "localhost" { return first }
        return "https://index.docker.io/v1/"
    }

    static func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}

/// The normalized `resources` of a replica as pod requests and limits: requests are the lower
/// bounds, limits the upper bounds (none when unbounded); GPUs request = limit = the minimum count.
public struct ResourceRequest: Sendable, Equatable {
    public struct Bounds: Sendable, Equatable {
        public var min: Double?
        public var max: Double?
    }

    public var cpu = Bounds()
    public var memoryGB = Bounds()
    public var diskGB: Bounds?
    public var shmSizeGB: Double?
    public var gpuCount = 0
    public var gpuVendor: String?
    public var gpuNames: [String] = []
    public var gpuMemoryGB: Bounds?

    public init(json text: String) throws {
        let json = try JSONParser.parse(text)
        func bounds(_ v: JSONValue?) -> Bounds {
            func num(_ v: JSONValue?) -> Double? {
                switch v {
                case .int(let i)?: return Double(i)
                case .double(let d)?: return d
                default: return nil
                }
            }
            return Bounds(min: num(v?["min"]), max: num(v?["max"]))
        }
        cpu = bounds(json["cpu"]?["count"])
        memoryGB = bounds(json["memory"])
        if let disk = json["disk"]?["size"], disk != .null { diskGB = bounds(disk) }
        if case .double(let d)? = json["shm_size"] { shmSizeGB = d } else if case .int(let i)? = json["shm_size"] { shmSizeGB = Double(i) }
        if let gpu = json["gpu"], gpu != .null {
            gpuCount = Int(bounds(gpu["count"]).min ?? 0)
            if case .string(let v)? = gpu["vendor"] { gpuVendor = v }
            if case .array(let names)? = gpu["name"] { gpuNames = names.compactMap { if case .string(let s) = $0 { return s } else { return nil } } }
            if let m = gpu["memory"], m != .null { gpuMemoryGB = bounds(m) }
        }
    }

    public var gpuResource: String { gpuVendor == "amd" ? "amd.com/gpu" : "nvidia.com/gpu" }

    public var requirements: ResourceRequirements {
        var requests: [String: String] = [:]
        var limits: [String: String] = [:]
        if let v = cpu.min { requests["cpu"] = Quantity.cpu(v) }
        if let v = cpu.max { limits["cpu"] = Quantity.cpu(v) }
        if let v = memoryGB.min { requests["memory"] = Quantity.mebibytes(gigabytes: v) }
        if let v = memoryGB.max { limits["memory"] = Quantity.mebibytes(gigabytes: v) }
        if let d = diskGB {
            if let v = d.min { requests["ephemeral-storage"] = Quantity.mebibytes(gigabytes: v) }
            if let v = d.max { limits["ephemeral-storage"] = Quantity.mebibytes(gigabytes: v) }
        }
        if gpuCount > 0 {
            requests[gpuResource] = String(gpuCount)
            limits[gpuResource] = String(gpuCount)
        }
        return ResourceRequirements(requests: requests.isEmpty ? nil : requests, limits: limits.isEmpty ? nil : limits)
    }

    func accepts(_ gpu: GPULabel) -> Bool {
        if !gpuNames.isEmpty, !gpuNames.contains(where: { $0.lowercased() == gpu.name.lowercased() }) { return false }
        if let m = gpuMemoryGB {
            // Memory asked for and not known from the labels: not a match.
            guard let memory = gpu.memoryGB else { return false }
            if let lo = m.min, memory < lo { return false }
            if let hi = m.max, memory > hi { return false }
        }
        return true
    }
}

/// A node's GPU labels (GPU Feature Discovery).
public struct GPUProduct: Sendable, Equatable, Hashable {
    public var product: String
    public var memoryMiB: String?

    public init(product: String, memoryMiB: String? = nil) {
        self.product = product
        self.memoryMiB = memoryMiB
    }
}

/// A GPU model read from GPU Feature Discovery's `nvidia.com/gpu.product` label
/// (`NVIDIA-A100-SXM4-40GB` → A100, 40 GB; `Tesla-T4` → T4; `NVIDIA-H100-80GB-HBM3` → H100, 80 GB).
public struct GPULabel: Sendable, Equatable {
    public var name: String
    public var memoryGB: Double?

    public init(name: String, memoryGB: Double?) {
        self.name = name
        self.memoryGB = memoryGB
    }

    public static func parse(_ product: String, memoryMiB: String? = nil) -> GPULabel? {
        var parts = product.split(separator: "-").map(String.init)
        while let first = parts.first, ["nvidia", "tesla", "geforce", "quadro"].contains(first.lowercased()) { parts.removeFirst() }
        guard let name = parts.first, !name.isEmpty else { return nil }
        var memory = parts.dropFirst().compactMap { p -> Double? in
            guard p.uppercased().hasSuffix("GB") else { return nil }
            return Double(p.dropLast(2))
        }.first
        if memory == nil, let mib = memoryMiB.flatMap(Double.init) { memory = (mib / 1024).rounded() }
        // RTX model names span two parts (`RTX-4090`, `RTX-A6000`).
        let full = name.uppercased() == "RTX" && parts.count > 1 ? "RTX" + parts[1] : name
        return GPULabel(name: full, memoryGB: memory)
    }
}
