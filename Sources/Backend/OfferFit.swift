import Model
import SetpointConfiguration

/// Whether an offer can hold a replica's resources: the lower bounds of `cpu`, `memory`,
/// `disk` and the GPU count (with names, vendor and per-GPU memory), and the CPU
/// architecture. Upper bounds do not rule an offer out: a backend grants a replica its lower
/// bounds and caps it at the upper ones (a 16-CPU node holds a `cpu: 2..8` Pod).
public enum OfferFit {
    /// Why `offer` cannot hold `resources`, nil when it can.
    public static func mismatch(_ offer: Offer, _ resources: ResourcesSpec) -> String? {
        if let arch = resources.cpu.arch, let offered = offer.arch, !sameArchitecture(arch, offered) {
            return "cpu architecture \(arch), the offer is \(offered)"
        }
        if let cpus = resources.cpu.count.min, offer.cpus < cpus {
            return "\(cpus) CPUs, the offer has \(offer.cpus)"
        }
        if let memory = resources.memory.min, offer.memoryGB < memory {
            return "\(Memory.text(memory)) of memory, the offer has \(Memory.text(offer.memoryGB))"
        }
        if let disk = resources.disk?.min, offer.diskGB < disk {
            return "\(Memory.text(disk)) of disk, the offer has \(Memory.text(offer.diskGB))"
        }
        if let gpu = resources.gpu, let count = gpu.count.min, count > 0 {
            let matching = offer.gpus.filter { accepts(gpu, $0) }.count
            if matching < count {
                let which = gpu.name.map { " " + $0.joined(separator: "/") } ?? ""
                let memory = gpu.memory?.min.map { " with \(Memory.text($0))" } ?? ""
                let has = offer.gpus.isEmpty ? "none" : offer.gpus.joined(separator: ",")
                return "\(count) GPU(s)\(which)\(memory), the offer has \(has)"
            }
        }
        return nil
    }

    /// The offers that can hold at least one of the resource sets (one per replica group).
    public static func fitting(_ offers: [Offer], _ resources: [ResourcesSpec]) -> [Offer] {
        offers.filter { offer in resources.contains { mismatch(offer, $0) == nil } }
    }

    /// `NAME` or `NAME:MEMORY` (`A100:40GB`), or `AMD` for an AMD GPU of unknown model.
    static func accepts(_ gpu: GPUSpec, _ offered: String) -> Bool {
        let parts = offered.split(separator: ":", maxSplits: 1).map(String.init)
        let name = parts.first ?? offered
        let memory = parts.count > 1 ? Double(parts[1].uppercased().replacingOccurrences(of: "GB", with: "")) : nil
        let isAMD = name.uppercased() == "AMD"
        switch gpu.vendor?.lowercased() {
        case "amd"?: if !isAMD && !AMDNames.contains(name.uppercased()) { return false }
        case "nvidia"?: if isAMD { return false }
        case nil: break
        default: return false
        }
        if let names = gpu.name, !names.isEmpty, !names.contains(where: { $0.lowercased() == name.lowercased() }) { return false }
        if let range = gpu.memory {
            guard let memory else { return false }   // asked for, not known: not a match
            if !range.contains(memory) { return false }
        }
        return true
    }

    static let AMDNames: Set<String> = ["MI100", "MI210", "MI250", "MI250X", "MI300A", "MI300X", "MI308X", "MI325X"]

    /// dstack's `x86`/`arm` against the backend's `amd64`/`arm64` (or the same words).
    static func sameArchitecture(_ wanted: String, _ offered: String) -> Bool {
        func normal(_ a: String) -> String {
            switch a.lowercased() {
            case "x86", "x86_64", "amd64": return "x86"
            case "arm", "arm64", "aarch64": return "arm"
            default: return a.lowercased()
            }
        }
        return normal(wanted) == normal(offered)
    }
}
