/// Reads typed values out of `YAMLNode`s with the coercions of dstack's pydantic models (lax
/// mode, `coerce_numbers_to_str`), recording an issue for every value it cannot accept.
///
/// Every method returns `nil` after recording an issue, so a caller can go on and report the
/// other properties of the same document in the same pass.
final class Reader {
    let issues = IssueCollector()

    // MARK: scalars

    /// `str` with `coerce_numbers_to_str`: numbers become their Python text, booleans are refused.
    func string(_ node: YAMLNode, _ path: FieldPath) -> String? {
        switch node.value {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .float(let d): return PythonFormat.float(d)
        default:
            expected("a string", node, path)
            return nil
        }
    }

    /// `int` in lax mode: integral floats, numeric strings (`" 5 "`, `"1_000"`, `"5.0"`), booleans.
    func int(_ node: YAMLNode, _ path: FieldPath) -> Int? {
        switch node.value {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        case .float(let d):
            guard d.isFinite else {
                issues.add(path, node, "expected a finite integer, got \(show(node, path))")
                return nil
            }
            guard d == d.rounded() else {
                issues.add(path, node, "expected an integer, got \(show(node, path)), a number with a fractional part")
                return nil
            }
            guard abs(d) < 9.2e18 else {
                issues.add(path, node, "integer \(show(node, path)) is too large")
                return nil
            }
            return Int(d)
        case .string(let s):
            if let v = Lax.parseInt(s) { return v }
            issues.add(path, node, "expected an integer, got \(show(node, path))")
            return nil
        default:
            expected("an integer", node, path)
            return nil
        }
    }

    /// `float` in lax mode: integers, booleans, numeric strings including `inf` and `1e3`.
    func float(_ node: YAMLNode, _ path: FieldPath) -> Double? {
        switch node.value {
        case .int(let i): return Double(i)
        case .float(let d): return d
        case .bool(let b): return b ? 1 : 0
        case .string(let s):
            if let v = Lax.parseFloat(s) { return v }
            issues.add(path, node, "expected a number, got \(show(node, path))")
            return nil
        default:
            expected("a number", node, path)
            return nil
        }
    }

    /// `bool` in lax mode: `true/false`, `0/1`, and the strings pydantic accepts
    /// (`yes`, `no`, `on`, `off`, `t`, `f`, `y`, `n`, `1`, `0`, any case).
    func bool(_ node: YAMLNode, _ path: FieldPath) -> Bool? {
        if let b = Lax.bool(node.value) { return b }
        issues.add(path, node, "expected a boolean (true or false), got \(show(node, path))")
        return nil
    }

    /// A value from a fixed set of strings (enums and `Literal`s are case-sensitive).
    func oneOf(_ node: YAMLNode, _ path: FieldPath, _ allowed: [String]) -> String? {
        if case .string(let s) = node.value, allowed.contains(s) { return s }
        let list = allowed.map { "`\($0)`" }.joined(separator: ", ")
        var message = "expected one of \(list), got \(show(node, path))"
        if case .string(let s) = node.value, let near = Suggest.closest(to: s, in: allowed) {
            message += "; did you mean `\(near)`?"
        }
        issues.add(path, node, message)
        return nil
    }

    // MARK: containers

    func list(_ node: YAMLNode, _ path: FieldPath) -> [YAMLNode]? {
        if case .list(let items) = node.value { return items }
        expected("a list", node, path)
        return nil
    }

    /// A list of strings (`commands`, `regions`, ...).
    func stringList(_ node: YAMLNode, _ path: FieldPath) -> [String]? {
        guard let items = list(node, path) else { return nil }
        var result: [String] = []
        var ok = true
        for (i, item) in items.enumerated() {
            if let s = string(item, path[i]) { result.append(s) } else { ok = false }
        }
        return ok ? result : nil
    }

    /// A list whose items are each read by `each`; `nil` if any item was rejected.
    func list<T>(_ node: YAMLNode, _ path: FieldPath, _ each: (YAMLNode, FieldPath) -> T?) -> [T]? {
        guard let items = list(node, path) else { return nil }
        var result: [T] = []
        var ok = true
        for (i, item) in items.enumerated() {
            if let v = each(item, path[i]) { result.append(v) } else { ok = false }
        }
        return ok ? result : nil
    }

    /// Opens a mapping whose keys must all be known (`extra="forbid"`).
    func object(_ node: YAMLNode, _ path: FieldPath, keys: [String], what: String? = nil) -> ObjectReader? {
        guard case .map(let pairs) = node.value else {
            expected(what ?? "a mapping", node, path)
            return nil
        }
        return ObjectReader(reader: self, node: node, pairs: pairs, path: path, known: keys)
    }

    // MARK: reporting

    func expected(_ what: String, _ node: YAMLNode, _ path: FieldPath) {
        issues.add(path, node, "expected \(what), got \(show(node, path))")
    }

    /// How a value appears in a message: quoted text for scalars, its kind for containers and
    /// for secret properties.
    func show(_ node: YAMLNode, _ path: FieldPath) -> String {
        if path.isSecret { return node.kindName }
        switch node.value {
        case .list, .map, .null: return node.kindName
        case .string(let s): return "`\(s.count > 120 ? String(s.prefix(120)) + "…" : s)`"
        default:
            let text = node.raw ?? node.displayText
            return "`\(text.count > 120 ? String(text.prefix(120)) + "…" : text)`"
        }
    }

    func fail(_ path: FieldPath, _ node: YAMLNode?, _ message: String) {
        issues.add(path, node, message)
    }
}

/// The keys of one mapping, read one property at a time in declaration order.
final class ObjectReader {
    let reader: Reader
    let node: YAMLNode
    let path: FieldPath
    private let pairs: [YAMLPair]
    /// The accepted properties in file order; objects have few, so a scan beats hashing.
    private var entries: [(key: String, value: YAMLNode)] = []
    /// Issues recorded before this object was opened; `isValid` compares against it.
    private let issuesAtStart: Int

    init(reader: Reader, node: YAMLNode, pairs: [YAMLPair], path: FieldPath, known: [String]) {
        self.reader = reader
        self.node = node
        self.pairs = pairs
        self.path = path
        self.issuesAtStart = reader.issues.count
        for pair in pairs {
            // YAML allows any scalar as a key (`1: x`); none of them names a property.
            let keyText: String
            if case .string(let s) = pair.key.value { keyText = s } else { keyText = pair.key.displayText }
            guard case .string = pair.key.value, known.contains(keyText) else {
                var message = "unknown property `\(keyText)`"
                if let near = Suggest.closest(to: keyText, in: known) {
                    message += "; did you mean `\(near)`?"
                } else if known.count <= 12 {
                    message += " (accepted here: \(known.joined(separator: ", ")))"
                } else {
                    message += " (see docs/configuration.md for the accepted properties)"
                }
                reader.fail(path.appending(keyText), pair.key, message)
                continue
            }
            if let i = entries.firstIndex(where: { $0.key == keyText }) {
                entries[i].value = pair.value
            } else {
                entries.append((keyText, pair.value))
            }
        }
    }

    /// The raw value of a property, `nil` when absent.
    subscript(key: String) -> YAMLNode? {
        for entry in entries where entry.key == key { return entry.value }
        return nil
    }

    func has(_ key: String) -> Bool { self[key] != nil }

    /// The value of a property unless it is absent or `null`.
    func present(_ key: String) -> YAMLNode? {
        guard let v = self[key], !v.isNull else { return nil }
        return v
    }

    func at(_ key: String, secret: Bool = false) -> FieldPath { path.appending(key, secret: secret) }

    /// True when nothing was rejected inside this object so far (pydantic runs model-level
    /// validators only then).
    var isValid: Bool { reader.issues.count == issuesAtStart }

    /// Records an object-level issue located at the object, or at one of its properties.
    func fail(_ message: String, at key: String? = nil) {
        if let key, let v = self[key] {
            reader.fail(path.appending(key), v, message)
        } else {
            reader.fail(path, node, message)
        }
    }

    /// Reads an optional property: absent or `null` gives `.some(nil)`-like `nil` without issue.
    func optional<T>(_ key: String, secret: Bool = false, _ read: (YAMLNode, FieldPath) -> T?) -> T? {
        guard let v = present(key) else { return nil }
        return read(v, at(key, secret: secret))
    }

    /// Reads a required property (null counts as a wrong value, absence as missing).
    func required<T>(_ key: String, secret: Bool = false, what: String, _ read: (YAMLNode, FieldPath) -> T?) -> T? {
        guard let v = self[key] else {
            reader.fail(at(key), node, "missing required property `\(key)` (\(what))")
            return nil
        }
        if v.isNull {
            reader.fail(at(key), v, "`\(key)` cannot be null: expected \(what)")
            return nil
        }
        return read(v, at(key, secret: secret))
    }

    /// Reads a property that has a default and does not accept `null`.
    func nonNull<T>(_ key: String, what: String, default value: T, _ read: (YAMLNode, FieldPath) -> T?) -> T? {
        guard let v = self[key] else { return value }
        if v.isNull {
            reader.fail(at(key), v, "`\(key)` cannot be null: expected \(what)")
            return nil
        }
        return read(v, at(key))
    }
}

/// pydantic's lax conversions from text.
enum Lax {
    static func bool(_ value: YAMLValue) -> Bool? {
        switch value {
        case .bool(let b): return b
        case .int(let i): return i == 0 ? false : (i == 1 ? true : nil)
        case .float(let d): return d == 0 ? false : (d == 1 ? true : nil)
        case .string(let s):
            switch s.lowercased() {
            case "1", "on", "t", "true", "y", "yes": return true
            case "0", "off", "f", "false", "n", "no": return false
            default: return nil
            }
        default: return nil
        }
    }

    /// Integers from text as pydantic-core parses them: surrounding white space, a sign,
    /// underscores between digits, and a `.0…` fraction are accepted.
    static func parseInt(_ text: String) -> Int? {
        if let first = text.utf8.first, first >= 48, first <= 57, text.utf8.count <= 18,
           text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return Int(text)  // plain digits, the common case
        }
        var s = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
        var negative = false
        if s.hasPrefix("-") { negative = true; s = s.dropFirst() } else if s.hasPrefix("+") { s = s.dropFirst() }
        if let dot = s.firstIndex(of: ".") {
            let fraction = s[s.index(after: dot)...]
            guard fraction.allSatisfy({ $0 == "0" }) else { return nil }
            s = s[..<dot]
        }
        guard let first = s.first, first.isASCII, first.isNumber, let last = s.last, last != "_" else { return nil }
        var digits = ""
        var previousUnderscore = false
        for c in s {
            if c == "_" {
                if previousUnderscore { return nil }
                previousUnderscore = true
                continue
            }
            guard c.isASCII, c.isNumber else { return nil }
            previousUnderscore = false
            digits.append(c)
        }
        guard let v = Int(digits) else { return nil }
        return negative ? -v : v
    }

    /// Python `float(str)` plus underscores between digits, as pydantic-core parses floats.
    static func parseFloat(_ text: String) -> Double? {
        let s = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let lower = s.lowercased()
        var body = Substring(lower)
        var sign = 1.0
        if body.hasPrefix("-") { sign = -1; body = body.dropFirst() } else if body.hasPrefix("+") { body = body.dropFirst() }
        if body == "inf" || body == "infinity" { return sign * .infinity }
        if body == "nan" { return .nan }
        guard !body.isEmpty, !body.hasPrefix("_"), !body.hasSuffix("_"), !body.hasSubstring("__") else { return nil }
        let cleaned = body.replacingOccurrences(of: "_", with: "")
        var sawDigit = false
        var sawDot = false
        var sawExp = false
        var previous: Character = " "
        for c in cleaned {
            if c.isASCII && c.isNumber { sawDigit = true }
            else if c == "." { if sawDot || sawExp { return nil }; sawDot = true }
            else if c == "e" { if sawExp || !sawDigit { return nil }; sawExp = true }
            else if c == "+" || c == "-" { if previous != "e" { return nil } }
            else { return nil }
            previous = c
        }
        guard sawDigit, !cleaned.hasSuffix("e"), !cleaned.hasSuffix("+"), !cleaned.hasSuffix("-") else { return nil }
        return YAML11Resolver.pythonFloat(cleaned).map { sign * $0 }
    }
}

/// "Did you mean" suggestions by edit distance.
enum Suggest {
    static func closest(to word: String, in candidates: [String]) -> String? {
        let w = word.lowercased()
        var best: (String, Int)?
        for c in candidates {
            let d = distance(w, c.lowercased())
            let limit = max(1, min(3, c.count / 3))
            if d <= limit, best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

import Foundation
