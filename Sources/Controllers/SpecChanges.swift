import SetpointConfiguration
import Foundation

/// How a changed service configuration is applied (dstack-behavior.md §2.8):
/// in place (counts and scaling), by a rolling deployment (what replicas run), or by stopping
/// every replica and starting new ones (everything else).
public enum SpecChanges {
    /// Applied to the running replicas without replacing them.
    /// `gateway` too (dstack recreates): moving a service to another gateway only changes
    /// where it is published.
    public static let inPlace: Set<String> = ["replicas", "scaling", "priority", "gateway"]
    /// Replaced replica by replica, old ones serving until new ones are ready.
    public static let rolling: Set<String> = [
        "port", "probes", "resources", "volumes", "docker", "files", "image", "user", "privileged", "entrypoint",
        "working_dir", "python", "nvcc", "single_branch", "env", "shell", "commands", "groups", "repos", "setup", "home_dir",
    ]

    public struct Classification: Sendable, Equatable {
        public var inPlace: [String] = []
        public var rolling: [String] = []
        public var recreate: [String] = []

        public var isEmpty: Bool { inPlace.isEmpty && rolling.isEmpty && recreate.isEmpty }
    }

    /// The top-level properties that differ, by how they are applied.
    public static func classify(old: ServiceConfiguration, new: ServiceConfiguration) -> Classification {
        var result = Classification()
        guard case .object(let a) = old.json, case .object(let b) = new.json else { return result }
        let before = Dictionary(a, uniquingKeysWith: { $1 })
        for (key, value) in b where before[key] != value {
            if inPlace.contains(key) { result.inPlace.append(key) }
            else if rolling.contains(key) { result.rolling.append(key) }
            else { result.recreate.append(key) }
        }
        return result
    }

    /// A digest of the properties whose change requires stopping and recreating the replicas.
    public static func recreateDigest(_ config: ServiceConfiguration) -> String {
        guard case .object(let pairs) = config.json else { return "" }
        let kept = JSONValue.object(pairs.filter { !inPlace.contains($0.0) && !rolling.contains($0.0) && $0.0 != "name" })
        var h: UInt64 = 0xcbf29ce484222325
        for b in kept.serialized.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return String(h, radix: 16)
    }
}
