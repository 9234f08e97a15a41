/// The checks dstack's server and CLI make when a service is applied that need no server state
/// (`server/services/runs/spec.py`, `cli/services/configurators/run.py`), and the resource
/// defaults the server sets (`set_run_spec_resources_defaults`): a GPU spec is always present and
/// its vendor is inferred where it can be.
enum ServiceRules {
    static func apply(_ input: ServiceConfiguration, node: YAMLNode, reader: Reader, path: FieldPath) -> ServiceConfiguration? {
        var c = input
        let start = reader.issues.count
        func fail(_ key: String, _ message: String) {
            reader.fail(path.appending(key), node[key] ?? node, message)
        }

        if let name = c.name, !Reader.isResourceName(name) {
            fail("name", "invalid run name `\(name)`: it must match `^[a-z][a-z0-9-]{1,40}$` (lowercase letters, digits and `-`, starting with a letter, 2 to 41 characters)")
        }
        if let dir = c.workingDir, !dir.hasPrefix("/"), !dir.hasPrefix("~") {
            fail("working_dir", "working_dir must be an absolute path, got `\(dir)`")
        }
        for (key, value) in c.env {
            if case .value(let v) = value, GroupReferences.contains(v) {
                reader.fail(path.appending("env").appending(key), node["env"] ?? node,
                            "groups IP references (`${{ groups[...] }}`) are only supported in commands, not in `env`")
            }
        }
        let groups = c.replicaGroups
        let allCommands = c.commands + (c.groups ?? []).flatMap(\.commands)
        for command in allCommands {
            if let problem = GroupReferences.problem(in: command, groupSizes: groups.map { $0.replicas.min ?? 0 }) {
                fail(c.groups == nil ? "commands" : "groups", problem)
            }
        }
        if let volumesNode = node["volumes"], case .list(let items) = volumesNode.value {
            for (i, volume) in c.volumes.enumerated() {
                if case .string(let p)? = volume["path"], p.hasSuffix("/"), p != "/" {
                    reader.fail(path.appending("volumes")[i], i < items.count ? items[i] : volumesNode, "invalid volume mount path: `\(p)`")
                }
            }
        }
        if c.schedule != nil, groups.allSatisfy({ $0.replicas.min == 0 }) {
            fail("schedule", "scheduled services with autoscaling to zero are not supported: set a minimum of at least 1 replica")
        }

        // Resource defaults and GPU vendor inference, per group where groups are used.
        c.resources.gpu = inferredGPU(c.resources.gpu ?? .unset, image: c.image, docker: c.docker)
        if var gs = c.groups {
            for i in gs.indices {
                let (image, docker) = imageAndDocker(gs[i], c)
                gs[i].resources.gpu = inferredGPU(gs[i].resources.gpu ?? .unset, image: image, docker: docker)
            }
            c.groups = gs
        }

        // Accelerators the default image does not support, and ARM without an image.
        let imageMessage = "`image` must be set when the requested accelerator is not supported by the default image"
        if let gs = c.groups {
            var vendors = Set<String>()
            var bad: [Int] = []
            var armWithoutImage: [Int] = []
            var armWithDocker: [Int] = []
            for (i, g) in gs.enumerated() {
                let (image, docker) = imageAndDocker(g, c)
                let v = vendorsNeedingImage(g.resources.gpu, image: image, docker: docker)
                if !v.isEmpty { vendors.formUnion(v); bad.append(i) }
                if g.resources.cpu.arch == "arm" {
                    if docker == true { armWithDocker.append(i) } else if image == nil { armWithoutImage.append(i) }
                }
            }
            if !vendors.isEmpty { fail("groups", "groups\(bad): \(imageMessage): \(pyList(vendors.sorted()))") }
            if !armWithoutImage.isEmpty { fail("groups", "groups\(armWithoutImage): `image` must be set when ARM CPU requested") }
            if !armWithDocker.isEmpty { fail("groups", "groups\(armWithDocker): `docker: true` is not supported on ARM CPU") }
        } else {
            let vendors = vendorsNeedingImage(c.resources.gpu, image: c.image, docker: c.docker)
            if !vendors.isEmpty { fail("resources", "\(imageMessage): \(pyList(vendors.sorted()))") }
            if c.resources.cpu.arch == "arm" {
                if c.docker == true { fail("docker", "`docker: true` is not supported on ARM CPU") }
                else if c.image == nil { fail("resources", "`image` must be set when ARM CPU requested") }
            }
        }
        return reader.issues.count == start ? c : nil
    }

    /// A group's image source: its own, else the service's.
    static func imageAndDocker(_ g: ReplicaGroup, _ c: ServiceConfiguration) -> (String?, Bool?) {
        if g.image != nil || g.docker != nil { return (g.image, g.docker) }
        return (c.image, c.docker)
    }

    /// `set_default_gpu_spec_vendor`: no names and the default image → NVIDIA; names that all
    /// belong to one known vendor → that vendor; otherwise unchanged.
    static func inferredGPU(_ gpu: GPUSpec, image: String?, docker: Bool?) -> GPUSpec {
        var g = gpu
        guard g.vendor == nil, g.count.max != 0 else { return g }
        if let names = g.name, !names.isEmpty {
            var vendors = Set<String?>()
            for n in names {
                let v = Accelerators.vendors(ofGPU: n)
                if v.isEmpty { vendors.insert(nil) } else { v.forEach { vendors.insert($0) } }
            }
            if vendors.count == 1, let only = vendors.first { g.vendor = only }
        } else if image == nil, docker != true {
            g.vendor = "nvidia"
        }
        return g
    }

    static func vendorsNeedingImage(_ gpu: GPUSpec?, image: String?, docker: Bool?) -> Set<String> {
        guard image == nil, docker != true, let gpu, gpu.count.max != 0 else { return [] }
        var vendors = Set<String>()
        if let v = gpu.vendor { vendors.insert(v) } else {
            for n in gpu.name ?? [] { vendors.formUnion(Accelerators.vendors(ofGPU: n)) }
        }
        return vendors.subtracting(["nvidia", "google"])
    }
}

/// `${{ groups[i].replicas[j].IP_ADDRESS }}` references in service commands.
enum GroupReferences {
    static func contains(_ text: String) -> Bool {
        references(in: text).contains { $0.hasPrefix("groups") }
    }

    /// The expressions inside `${{ … }}`.
    static func references(in text: String) -> [String] {
        interpolations(in: text).expressions
    }

    /// Checks each `groups[...]` reference: its form, and that the group and replica exist in
    /// every state of the service (the group's minimum count).
    static func problem(in command: String, groupSizes: [Int]) -> String? {
        for ref in references(in: command) where ref.hasPrefix("groups") {
            let scanner = Array(ref)
            var i = 0
            func expect(_ s: String) -> Bool {
                let chars = Array(s)
                guard i + chars.count <= scanner.count, Array(scanner[i..<(i + chars.count)]) == chars else { return false }
                i += chars.count
                return true
            }
            func number() -> Int? {
                let start = i
                while i < scanner.count, scanner[i].isASCII, scanner[i].isNumber { i += 1 }
                return i > start ? Int(String(scanner[start..<i])) : nil
            }
            guard expect("groups["), let g = number(), expect("].replicas["), let r = number(), expect("].IP_ADDRESS"), i == scanner.count else {
                return "invalid groups reference `${{ \(ref) }}`: expected `${{ groups[i].replicas[j].IP_ADDRESS }}`"
            }
            guard g < groupSizes.count else {
                return "groups reference `${{ \(ref) }}` is out of range: the service has \(groupSizes.count) group(s)"
            }
            if groupSizes[g] == 0 {
                return "groups reference `${{ \(ref) }}` points to group \(g), which scales to zero"
            }
            guard r < groupSizes[g] else {
                return "groups reference `${{ \(ref) }}` is out of range: group \(g) has at least \(groupSizes[g]) replica(s)"
            }
        }
        return nil
    }
}

import Foundation
