/// `resources.cpu`: architecture and core count (`4`, `arm`, `x86:8..`, `8:arm`).
public struct CPUSpec: Sendable, Equatable {
    public var arch: String?
    public var count: ValueRange<Int>

    public static let defaultCount = ValueRange<Int>.atLeast(2)

    var json: JSONValue { .object([("arch", .str(arch)), ("count", count.json)]) }
}

/// `resources.gpu`: vendor, names, count, per-GPU and total memory, compute capability.
public struct GPUSpec: Sendable, Equatable {
    public var vendor: String?
    public var name: [String]?
    public var count: ValueRange<Int>
    public var memory: ValueRange<Double>?
    public var totalMemory: ValueRange<Double>?
    public var computeCapability: [Int]?

    /// `gpu` omitted: any number of GPUs, including none.
    public static let unset = GPUSpec(vendor: nil, name: nil, count: .atLeast(0), memory: nil, totalMemory: nil, computeCapability: nil)

    var json: JSONValue {
        .object([
            ("vendor", .str(vendor)), ("name", .strings(name)), ("count", count.json),
            ("memory", .opt(memory) { $0.json }), ("total_memory", .opt(totalMemory) { $0.json }),
            ("compute_capability", .opt(computeCapability) { .array($0.map(JSONValue.int)) }),
        ])
    }

    /// True when the spec asks for at least one GPU or does not bound the count at zero.
    public var mayUseGPU: Bool { count.max != 0 }
}

public struct ResourcesSpec: Sendable, Equatable {
    public var cpu: CPUSpec
    public var memory: ValueRange<Double>
    public var shmSize: Double?
    public var gpu: GPUSpec?
    /// `disk.size`; `nil` when `disk: null`.
    public var disk: ValueRange<Double>?

    public static let defaults = ResourcesSpec(
        cpu: CPUSpec(arch: nil, count: CPUSpec.defaultCount), memory: .atLeast(8), shmSize: nil,
        gpu: .unset, disk: .atLeast(100))

    public var json: JSONValue {
        .object([
            ("cpu", cpu.json), ("memory", memory.json), ("shm_size", .num(shmSize)),
            ("gpu", .opt(gpu) { $0.json }), ("disk", .opt(disk) { .object([("size", $0.json)]) }),
        ])
    }
}

/// Accelerator vendors and CPU architectures as dstack (gpuhunt) names them.
public enum Accelerators {
    public static let vendors = ["nvidia", "amd", "google", "intel", "tenstorrent"]
    public static let cpuArchitectures = ["x86", "arm"]

    /// `nvidia`, `AMD`, `tpu` (= google), `tt` (= tenstorrent).
    public static func vendor(_ token: String) -> String? {
        let v = token.lowercased()
        if v == "tpu" { return "google" }
        if v == "tt" { return "tenstorrent" }
        return vendors.contains(v) ? v : nil
    }

    /// Vendors a GPU model name belongs to (empty for unknown names); gpuhunt's catalog.
    public static func vendors(ofGPU name: String) -> Set<String> {
        let n = name.lowercased()
        var result = Set<String>()
        if KnownGPUs.nvidia.contains(n) { result.insert("nvidia") }
        if KnownGPUs.amd.contains(n) { result.insert("amd") }
        if KnownGPUs.intel.contains(n) { result.insert("intel") }
        if KnownGPUs.tenstorrent.contains(n) { result.insert("tenstorrent") }
        let parts = n.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 2, !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
           KnownGPUs.tpuVersions.contains(String(parts[0])) {
            result.insert("google")
        }
        return result
    }
}

extension ResourcesSpec {
    /// Normalized `resources` JSON (as a replica template stores it) read back by the same
    /// reader as a configuration's `resources`; nil when it is not such JSON.
    public init?(normalizedJSON text: String) {
        guard let json = try? JSONParser.parse(text), let spec = Reader().resources(json.yamlNode, FieldPath("resources")) else { return nil }
        self = spec
    }
}

extension Reader {
    func resources(_ node: YAMLNode, _ path: FieldPath) -> ResourcesSpec? {
        guard let obj = object(node, path, keys: ["cpu", "memory", "shm_size", "gpu", "disk"]) else { return nil }
        var spec = ResourcesSpec.defaults
        if let v = obj["cpu"] { spec.cpu = cpu(v, obj.at("cpu")) ?? spec.cpu }
        if let v = obj["memory"] {
            if v.isNull { fail(obj.at("memory"), v, "`memory` cannot be null: expected a memory range like `8GB..`") }
            else { spec.memory = memoryRange(v, obj.at("memory")) ?? spec.memory }
        }
        spec.shmSize = obj.optional("shm_size", memory)
        if let v = obj["gpu"] { spec.gpu = v.isNull ? nil : gpu(v, obj.at("gpu")) }
        if let v = obj["disk"] { spec.disk = v.isNull ? nil : disk(v, obj.at("disk")) }
        return obj.isValid ? spec : nil
    }

    /// `CPUSpec.parse`: a count, an architecture, or both separated by `:`.
    func cpu(_ node: YAMLNode, _ path: FieldPath) -> CPUSpec? {
        var text: String?
        switch node.value {
        case .int(let i): text = String(i)
        case .bool(let b): text = b ? "True" : "False"  // Python's str(bool), as dstack does
        case .string(let s): text = s
        case .map(let pairs):
            let keys = Set(pairs.compactMap { p -> String? in if case .string(let k) = p.key.value { k } else { nil } })
            if !pairs.isEmpty, keys.count == pairs.count, keys.isSubset(of: ["min", "max"]) {
                guard let count = intRange(node, path.appending("count")) else { return nil }
                return CPUSpec(arch: nil, count: count)
            }
            guard let obj = object(node, path, keys: ["arch", "count"]) else { return nil }
            let arch = obj.optional("arch") { v, p -> String? in
                if case .string(let s) = v.value, Accelerators.cpuArchitectures.contains(s.lowercased()) { return s.lowercased() }
                return self.oneOf(v, p, Accelerators.cpuArchitectures)
            }
            let count = obj.nonNull("count", what: "a CPU count range", default: CPUSpec.defaultCount, intRange)
            guard obj.isValid, let count else { return nil }
            return CPUSpec(arch: arch, count: count)
        default:
            expected("a CPU spec (like `4`, `2..8`, `arm` or `arm:8`)", node, path)
            return nil
        }
        guard let text else { return nil }
        var arch: String?
        var count: String?
        for token in (text.hasSubstring(" ") ? text.filter { $0 != " " } : text).split(separator: ":", omittingEmptySubsequences: false) {
            if token.isEmpty {
                fail(path, node, "CPU spec `\(text)` contains an empty token: write `arch:count`, like `arm:8`")
                return nil
            }
            if token.hasSubstring("..") || token.allSatisfy({ $0.isNumber }) {
                if count != nil { fail(path, node, "CPU spec `\(text)` gives the count twice"); return nil }
                count = String(token)
            } else {
                guard Accelerators.cpuArchitectures.contains(token.lowercased()) else {
                    fail(path, node, "invalid CPU architecture in `\(text)`: expected `x86` or `arm` and/or a count")
                    return nil
                }
                if arch != nil { fail(path, node, "CPU spec `\(text)` gives the architecture twice"); return nil }
                arch = token.lowercased()
            }
        }
        var range = CPUSpec.defaultCount
        if let count {
            guard let r = intRange(YAMLNode(.string(count), at: node.location), path.appending("count")) else { return nil }
            range = r
        }
        return CPUSpec(arch: arch, count: range)
    }

    /// `GPUSpec.parse`: `[vendor:][names:][memory:][count]` in any order, or a mapping.
    func gpu(_ node: YAMLNode, _ path: FieldPath) -> GPUSpec? {
        var text: String?
        switch node.value {
        case .int(let i): text = String(i)
        case .bool(let b): text = b ? "True" : "False"  // Python's str(bool), as dstack does
        case .string(let s): text = s
        case .map:
            guard let obj = object(node, path, keys: ["vendor", "name", "count", "memory", "total_memory", "compute_capability"]) else { return nil }
            let vendor = obj.optional("vendor") { v, p -> String? in
                if case .string(let s) = v.value, let vendor = Accelerators.vendor(s) { return vendor }
                return self.oneOf(v, p, Accelerators.vendors)
            }
            let names = obj.optional("name") { v, p -> [String]? in
                let items: [YAMLNode]
                if case .list(let l) = v.value { items = l } else { items = [v] }
                var names: [String] = []
                for (i, item) in items.enumerated() {
                    guard var n = self.string(item, items.count == 1 && !(v.value.isList) ? p : p[i]) else { return nil }
                    if n.hasPrefix("tpu-") { n.removeFirst(4) }
                    names.append(n)
                }
                return names
            }
            let count = obj.nonNull("count", what: "a GPU count range", default: ValueRange<Int>.atLeast(1), intRange)
            let memory = obj.optional("memory", memoryRange)
            let total = obj.optional("total_memory", memoryRange)
            let cc = obj.optional("compute_capability", computeCapability)
            guard obj.isValid, let count else { return nil }
            return GPUSpec(vendor: vendor, name: names, count: count, memory: memory, totalMemory: total, computeCapability: cc)
        default:
            expected("a GPU spec (like `A100`, `24GB`, `A100:80GB:2` or `nvidia:2`)", node, path)
            return nil
        }
        guard let text else { return nil }
        var spec = GPUSpec(vendor: nil, name: nil, count: .atLeast(1), memory: nil, totalMemory: nil, computeCapability: nil)
        var seen = Set<String>()
        func once(_ what: String) -> Bool {
            if seen.contains(what) {
                let hint = what == "name" ? " (list alternatives with commas: `A100,H100`)" : what == "count" ? " (a memory value needs a unit: `80GB`)" : ""
                fail(path, node, "GPU spec `\(text)` gives the \(what) twice\(hint)")
                return false
            }
            seen.insert(what)
            return true
        }
        for token in (text.hasSubstring(" ") ? text.filter { $0 != " " } : text).split(separator: ":", omittingEmptySubsequences: false) {
            let t = String(token)
            guard let first = t.first else {
                fail(path, node, "GPU spec `\(text)` contains an empty token: write tokens separated by single `:`, like `A100:80GB:2`")
                return nil
            }
            if let vendor = Accelerators.vendor(t) {
                guard once("vendor") else { return nil }
                spec.vendor = vendor
            } else if first.isLetter {
                guard once("name") else { return nil }
                let names = t.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                if names.contains(where: \.isEmpty) {
                    fail(path, node, "GPU spec `\(text)` has an empty GPU name")
                    return nil
                }
                spec.name = names.map { $0.hasPrefix("tpu-") ? String($0.dropFirst(4)) : $0 }
            } else if t.contains(where: \.isLetter) {
                guard once("memory") else { return nil }
                guard let m = memoryRange(YAMLNode(.string(t), at: node.location), path.appending("memory")) else { return nil }
                spec.memory = m
            } else {
                guard once("count") else { return nil }
                guard let c = intRange(YAMLNode(.string(t), at: node.location), path.appending("count")) else { return nil }
                spec.count = c
            }
        }
        return spec
    }

    /// `ComputeCapability.validate`: `"8.0"`, `8.6` or `[8, 6]`.
    func computeCapability(_ node: YAMLNode, _ path: FieldPath) -> [Int]? {
        var parts: [YAMLNode]?
        switch node.value {
        case .float(let d):
            parts = PythonFormat.float(d).split(separator: ".", omittingEmptySubsequences: false).map { YAMLNode(.string(String($0)), at: node.location) }
        case .string(let s):
            parts = s.trimmingCharacters(in: .whitespaces).split(separator: ".", omittingEmptySubsequences: false).map { YAMLNode(.string(String($0)), at: node.location) }
        case .list(let items):
            parts = items
        default:
            parts = nil
        }
        guard let parts, parts.count == 2, let major = pythonInt(parts[0]), let minor = pythonInt(parts[1]) else {
            fail(path, node, "invalid compute capability \(show(node, path)): expected `major.minor`, like `8.0`")
            return nil
        }
        return [major, minor]
    }

    /// `DiskSpec`: a size range, or `{size: range}`.
    func disk(_ node: YAMLNode, _ path: FieldPath) -> ValueRange<Double>? {
        switch node.value {
        case .string, .int, .float, .bool:
            return memoryRange(node, path.appending("size"))
        default:
            guard let obj = object(node, path, keys: ["size"], what: "a disk size (like `100GB..`) or a mapping with `size`") else { return nil }
            return obj.required("size", what: "a disk size range like `100GB..`", memoryRange)
        }
    }
}

extension YAMLValue {
    var isList: Bool { if case .list = self { return true } else { return false } }
}

import Foundation
