import Foundation
import SetpointConfiguration

/// Path access and RFC 7386 merge patches on JSON values, for the fake API server.
extension JSONValue {
    public func value(at path: [String]) -> JSONValue? {
        var current: JSONValue? = self
        for key in path { current = current?[key] }
        return current
    }

    public func setting(_ path: [String], _ value: JSONValue?) -> JSONValue {
        guard let key = path.first else { return value ?? .null }
        var pairs: [(String, JSONValue)] = []
        if case .object(let p) = self { pairs = p }
        let child = pairs.first(where: { $0.0 == key })?.1 ?? .object([])
        let updated: JSONValue? = path.count == 1 ? value : child.setting(Array(path.dropFirst()), value)
        if let i = pairs.firstIndex(where: { $0.0 == key }) {
            if let updated { pairs[i].1 = updated } else { pairs.remove(at: i) }
        } else if let updated {
            pairs.append((key, updated))
        }
        return .object(pairs)
    }

    /// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
    public func merged(with patch: JSONValue) -> JSONValue {
        guard case .object(let patchPairs) = patch else { return patch }
        var result: JSONValue = { if case .object = self { return self } else { return .object([]) } }()
        for (key, value) in patchPairs {
            if value == .null { result = result.setting([key], nil) } else {
                result = result.setting([key], (result[key] ?? .null).merged(with: value))
            }
        }
        return result
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }

    public var stringMap: [String: String] {
        guard case .object(let pairs) = self else { return [:] }
        var m: [String: String] = [:]
        for (k, v) in pairs { if let s = v.stringValue { m[k] = s } }
        return m
    }

    var data: Data { Data(serialized.utf8) }
}

/// Label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`) and field
/// selectors (`metadata.name=x`, `involvedObject.kind!=Pod`), as the API server reads them.
struct Selector: Sendable {
    enum Requirement: Sendable {
        case equals(String, String), notEquals(String, String), exists(String), notExists(String)
        case isIn(String, Set<String>), notIn(String, Set<String>)
    }

    var requirements: [Requirement] = []

    struct ParseError: Error { var message: String }

    static func parse(_ text: String?) throws -> Selector {
        guard let text, !text.isEmpty else { return Selector() }
        var result = Selector()
        var parts: [String] = []
        var depth = 0
        var current = ""
        for c in text {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if c == ",", depth == 0 { parts.append(current); current = "" } else { current.append(c) }
        }
        parts.append(current)
        for raw in parts {
            let p = raw.trimmingCharacters(in: .whitespaces)
            if p.isEmpty { throw ParseError(message: "empty requirement in \(text)") }
            let words = p.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if words.count >= 3, ["in", "notin"].contains(words[1].lowercased()) {
                let list = words[2...].joined(separator: " ").trimmingCharacters(in: CharacterSet(charactersIn: "() "))
                let values = Set(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                result.requirements.append(words[1].lowercased() == "in" ? .isIn(words[0], values) : .notIn(words[0], values))
            } else if let r = p.range(of: "!=") {
                result.requirements.append(.notEquals(String(p[..<r.lowerBound]), String(p[r.upperBound...])))
            } else if let r = p.range(of: "==") ?? p.range(of: "=") {
                result.requirements.append(.equals(String(p[..<r.lowerBound]), String(p[r.upperBound...])))
            } else if p.hasPrefix("!") {
                result.requirements.append(.notExists(String(p.dropFirst())))
            } else if p.allSatisfy({ $0.isLetter || $0.isNumber || "-_./".contains($0) }) {
                result.requirements.append(.exists(p))
            } else {
                throw ParseError(message: "unable to parse requirement: \(p)")
            }
        }
        return result
    }

    func matches(_ lookup: (String) -> String?) -> Bool {
        requirements.allSatisfy { r in
            switch r {
            case .equals(let k, let v): return (lookup(k) ?? "") == v
            case .notEquals(let k, let v): return (lookup(k) ?? "") != v
            case .exists(let k): return lookup(k) != nil
            case .notExists(let k): return lookup(k) == nil
            case .isIn(let k, let vs): return lookup(k).map(vs.contains) ?? false
            case .notIn(let k, let vs): return !(lookup(k).map(vs.contains) ?? false)
            }
        }
    }
}
