/// The difference of two normalized configurations, one property per line, in the
/// configuration's own order: `- path: old` and `+ path: new`. Both sides are normalized (every
/// default filled in, one spelling per value), so the diff shows what changed and nothing else:
/// no key order, no `replicas: 1` against an omitted `replicas`. Unset (`null`) properties are
/// left out on both sides.
public enum ConfigurationDiff {
    /// `hidden(path)`: the property's values are secrets (shown as `********`; a change of a
    /// hidden value is one line saying so).
    public static func lines(old: JSONValue?, new: JSONValue?, hidden: (String) -> Bool = { _ in false }) -> [String] {
        let before = flatten(old)
        let after = flatten(new)
        let beforeIndex = Dictionary(before.map { ($0.path, $0.text) }, uniquingKeysWith: { a, _ in a })
        let afterIndex = Dictionary(after.map { ($0.path, $0.text) }, uniquingKeysWith: { a, _ in a })
        var out: [String] = []
        // Paths in the new order, then the ones only the old side has, where they were.
        var paths: [String] = after.map(\.path)
        var seen = Set(paths)
        for (i, entry) in before.enumerated() where !seen.contains(entry.path) {
            // Place a removed path after the last earlier path both sides share.
            let anchor = before[..<i].last { afterIndex[$0.path] != nil }.flatMap { a in paths.firstIndex(of: a.path) }
            paths.insert(entry.path, at: anchor.map { $0 + 1 } ?? 0)
            seen.insert(entry.path)
        }
        for path in paths {
            let a = beforeIndex[path]
            let b = afterIndex[path]
            guard a != b else { continue }
            if hidden(path) {
                switch (a, b) {
                case (nil, _?): out.append("+ \(path): ********")
                case (_?, nil): out.append("- \(path): ********")
                default: out.append("~ \(path): (secret value changed)")
                }
                continue
            }
            if let a { out.append("- \(path): \(a)") }
            if let b { out.append("+ \(path): \(b)") }
        }
        return out
    }

    /// Leaf properties as `(path, text)`: objects by key (`resources.gpu.count.min`), arrays by
    /// index (`commands[0]`), an empty array or object as itself.
    static func flatten(_ value: JSONValue?) -> [(path: String, text: String)] {
        var out: [(String, String)] = []
        func walk(_ v: JSONValue, _ path: String) {
            switch v {
            case .null: return
            case .object(let pairs):
                if pairs.allSatisfy({ $0.1 == .null }) { if !path.isEmpty { out.append((path, "{}")) }; return }
                for (k, child) in pairs { walk(child, path.isEmpty ? key(k) : path + "." + key(k)) }
            case .array(let items):
                if items.isEmpty { out.append((path, "[]")); return }
                for (i, child) in items.enumerated() { walk(child, "\(path)[\(i)]") }
            case .string(let s): out.append((path, scalar(s)))
            default: out.append((path, v.serialized))
            }
        }
        if let value { walk(value, "") }
        return out
    }

    /// A key as a path segment: plain when it is a simple name, quoted otherwise.
    public static func key(_ k: String) -> String {
        k.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } && !k.isEmpty ? k : "\"" + k + "\""
    }

    /// A string as YAML would need it read back: plain when unambiguous, JSON-quoted otherwise.
    static func scalar(_ s: String) -> String {
        let plain = !s.isEmpty && s.first.map { !" -?:,[]{}#&*!|>'\"%@`".contains($0) } == true
            && !s.contains(": ") && !s.contains(" #") && !s.hasSuffix(" ") && !s.contains("\n")
            && !["true", "false", "null", "yes", "no", "on", "off", "~"].contains(s.lowercased()) && Double(s) == nil
        return plain ? s : JSONValue.string(s).serialized
    }
}
