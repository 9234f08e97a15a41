import Backend
import Foundation
import Model

/// What a Pod's phase, conditions and container states mean for its replica.
public enum PodObservation {
    /// Reasons a waiting container will not get past: the replica fails with the message.
    static let fatalWaiting: Set<String> = [
        "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError",
        "CreateContainerError", "RunContainerError",
    ]
    /// Pod reasons for a Pod the node or cluster took away.
    static let interruptions: Set<String> = ["Evicted", "Preempting", "NodeLost", "NodeShutdown", "Shutdown", "Terminated", "DeadlineExceeded"]

    /// - Parameters:
    ///   - endpoint: where the app is reached once the container runs.
    ///   - pulling: the last Pod event was `Pulling` (events carry what the status does not).
    ///   - unschedulableSince: how long the scheduler has been failing to place it, with the bound.
    public static func state(_ pod: Pod, endpoint: String?, pulling: Bool, now: Date, unschedulableTimeout: TimeInterval) -> WorkloadState {
        let status = pod.status ?? PodStatus()
        let container = status.containerStatuses?.first { $0.name == "service" } ?? status.containerStatuses?.first
        // The cluster took the Pod away (its node went, an eviction, a preemption, the taint
        // manager): an interruption whatever the container's last state says, since a killed
        // container also reports an exit status.
        if status.phase == "Failed" || status.phase == "Succeeded", let disruption = disruption(pod) {
            return .failed(.interruptedByNoCapacity, disruption)
        }
        if let t = container?.state?.terminated ?? (status.phase == "Failed" || status.phase == "Succeeded" ? container?.lastState?.terminated : nil) {
            if t.reason == "OOMKilled" { return .failed(.containerExitedWithError, "OOMKilled: the container ran out of memory (exit status \(t.exitCode))") }
            return .exited(t.exitCode)
        }
        switch status.phase {
        case "Succeeded": return .exited(0)
        case "Failed":
            // (Interruptions were answered above, by `disruption`.)
            let message = [status.reason ?? "Failed", status.message].compactMap { $0 }.joined(separator: ": ")
            return .failed(.executorError, message)
        default: break
        }
        if pod.metadata.deletionTimestamp != nil { return .stopping }
        for s in status.initContainerStatuses ?? [] {
            if let t = s.state?.terminated, t.exitCode != 0 {
                return .failed(.creatingContainerError, "init container \(s.name) exited with status \(t.exitCode)\(t.message.map { ": \($0)" } ?? "")")
            }
            if let w = s.state?.waiting, let reason = w.reason, fatalWaiting.contains(reason) {
                return .failed(.creatingContainerError, "\(reason): \(w.message ?? "init container \(s.name)")")
            }
        }
        if let w = container?.state?.waiting, let reason = w.reason {
            if reason == "CrashLoopBackOff" {
                let code = container?.lastState?.terminated?.exitCode
                return .failed(.containerExitedWithError, "CrashLoopBackOff\(code.map { ": exited with status \($0)" } ?? "")")
            }
            if fatalWaiting.contains(reason) { return .failed(.creatingContainerError, "\(reason): \(w.message ?? "")") }
            if reason == "ErrImagePull" || pulling { return .pulling }
            return .pending(reason + (w.message.map { ": \($0)" } ?? ""))
        }
        if container?.state?.running != nil, status.phase == "Running", let endpoint { return .running(endpoint: endpoint) }
        if let scheduled = status.conditions?.first(where: { $0.type == "PodScheduled" }), scheduled.status == "False" {
            let message = "unschedulable: \(scheduled.message ?? scheduled.reason ?? "no node fits")"
            if let created = pod.metadata.creationTimestamp.flatMap(KubeTime.parse), now.timeIntervalSince(created) >= unschedulableTimeout {
                return .failed(.failedToStartDueToNoCapacity, "the Pod was not scheduled within \(Int(unschedulableTimeout))s: \(scheduled.message ?? "no node fits")")
            }
            return .pending(message)
        }
        if pulling { return .pulling }
        if status.initContainerStatuses?.contains(where: { $0.state?.running != nil }) == true { return .pending("unpacking the code") }
        return .pending(status.phase == nil ? "submitted" : nil)
    }

    /// Why the cluster disrupted the Pod, from its `DisruptionTarget` condition (Kubernetes
    /// 1.26+: `DeletionByPodGC` when its node is gone, `EvictionByEvictionAPI`,
    /// `PreemptionByScheduler`, `DeletionByTaintManager`, `TerminationByKubelet`), or from the
    /// Pod reasons older clusters set (`Evicted`, `NodeLost`, …); nil when it was not disrupted.
    public static func disruption(_ pod: Pod) -> String? {
        if let c = pod.status?.conditions?.first(where: { $0.type == "DisruptionTarget" && $0.status == "True" }) {
            return [c.reason ?? "DisruptionTarget", c.message].compactMap { $0 }.joined(separator: ": ")
        }
        if let reason = pod.status?.reason, interruptions.contains(reason) {
            return [reason, pod.status?.message].compactMap { $0 }.joined(separator: ": ")
        }
        return nil
    }

    /// True when the Pod's `Ready` condition holds.
    public static func isReady(_ pod: Pod) -> Bool {
        pod.status?.conditions?.contains { $0.type == "Ready" && $0.status == "True" } ?? false
    }
}

/// Kubernetes timestamps (RFC 3339, seconds or fractions).
public enum KubeTime {
    public static func parse(_ s: String) -> Date? {
        // Fractions (MicroTime has 6 digits, logs 9) are read by hand: formatters differ on them.
        var text = s
        var fraction = 0.0
        if let dot = s.firstIndex(of: "."), let end = s[dot...].firstIndex(where: { !$0.isNumber && $0 != "." }) {
            fraction = Double("0" + s[dot..<end]) ?? 0
            text = String(s[..<dot]) + String(s[end...])
        }
        return ISO8601DateFormatter().date(from: text).map { $0.addingTimeInterval(fraction) }
    }

    public static func format(_ d: Date) -> String { ISO8601DateFormatter().string(from: d) }
}

/// One offer per schedulable Node: allocatable resources, GPUs from GPU Feature Discovery labels.
public enum NodeOffers {
    static let gpuTaints: Set<String> = ["nvidia.com/gpu", "amd.com/gpu"]

    public static func offers(_ nodes: [Node], backend: String, region: String) -> [Offer] {
        nodes.compactMap { offer($0, backend: backend, region: region) }.sorted { $0.instance < $1.instance }
    }

    public static func offer(_ node: Node, backend: String, region: String) -> Offer? {
        if node.spec?.unschedulable == true { return nil }
        if node.spec?.taints?.contains(where: { ["NoSchedule", "NoExecute"].contains($0.effect) && !gpuTaints.contains($0.key) }) == true { return nil }
        if let ready = node.status?.conditions?.first(where: { $0.type == "Ready" }), ready.status != "True" { return nil }
        let alloc = node.status?.allocatable ?? [:]
        let labels = node.metadata.labels ?? [:]
        let cpus = Int(alloc["cpu"].flatMap(Quantity.parse) ?? 0)
        let memory = ((alloc["memory"].flatMap(Quantity.parse) ?? 0) / 1_073_741_824 * 10).rounded(.down) / 10
        let disk = ((alloc["ephemeral-storage"].flatMap(Quantity.parse) ?? 0) / 1_073_741_824).rounded(.down)
        var gpus: [String] = []
        let nvidia = Int(alloc["nvidia.com/gpu"].flatMap(Quantity.parse) ?? 0)
        if nvidia > 0, let product = labels["nvidia.com/gpu.product"], let gpu = GPULabel.parse(product, memoryMiB: labels["nvidia.com/gpu.memory"]) {
            gpus = Array(repeating: gpu.memoryGB.map { "\(gpu.name):\(Int($0))GB" } ?? gpu.name, count: nvidia)
        }
        let amd = Int(alloc["amd.com/gpu"].flatMap(Quantity.parse) ?? 0)
        if amd > 0 { gpus += Array(repeating: "AMD", count: amd) }
        let spot = PodTemplate.spotLabels.contains { labels[$0.key] == $0.spot }
        var offer = Offer(backend: backend, region: region, instance: node.metadata.name ?? "?", cpus: cpus, memoryGB: memory, diskGB: disk,
                          gpus: gpus, spot: spot, price: 0)
        offer.arch = node.status?.nodeInfo?.architecture
        return offer
    }
}
