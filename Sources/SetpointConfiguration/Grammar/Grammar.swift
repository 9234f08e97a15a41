/// The shorthand grammars of dstack's configuration: ranges (`1..4`, `..80GB`), memory sizes
/// (`512MB`, `1.5TB`), durations (`5m`, `2 h`). Each is a pure function from text to a value or
/// an error message, so tables of cases can test it directly.
public enum Grammar {
    /// Splits a range shorthand: `"A..B"`, `"A.."`, `"..B"` (spaces removed). `nil` when the text
    /// is not a range at all (no `..`).
    public static func splitRange(_ text: String) -> Result<(min: String?, max: String?), GrammarError>? {
        guard text.hasSubstring("..") else { return nil }
        let compact = text.hasSubstring(" ") ? text.filter { $0 != " " } : text
        // Python's `str.split("..")`: non-overlapping, left to right (`1...3` → `1`, `.3`).
        let bytes = Array(compact.utf8)
        var parts: [String] = []
        var start = 0
        while let at = compact.firstByteOffset(of: "..", from: start) {
            parts.append(String(decoding: bytes[start..<at], as: UTF8.self))
            start = at + 2
        }
        parts.append(String(decoding: bytes[start...], as: UTF8.self))
        guard parts.count == 2 else {
            return .failure(GrammarError("a range has exactly one `..` (like `1..4`, `2..` or `..8`), got `\(text)`"))
        }
        return .success((parts[0].isEmpty ? nil : parts[0], parts[1].isEmpty ? nil : parts[1]))
    }

    /// A memory size in GB: a number (GB), or text with an optional `MB`, `GB` or `TB` unit in any
    /// case (`512MB` = 0.5, `1 TB` = 1024).
    public static func memory(_ text: String) -> Result<Double, GrammarError> {
        let v = (text.hasSubstring(" ") ? text.filter { $0 != " " } : text).lowercased()
        func number(_ s: String) -> Double? { Lax.parseFloat(s) }
        var value: Double?
        if v.hasSuffix("tb") { value = number(String(v.dropLast(2))).map { $0 * 1024 } }
        else if v.hasSuffix("gb") { value = number(String(v.dropLast(2))) }
        else if v.hasSuffix("mb") { value = number(String(v.dropLast(2))).map { $0 / 1024 } }
        else { value = number(v) }
        guard let value else {
            return .failure(GrammarError("invalid memory size `\(text)`: expected a number of GB or a size with a unit MB, GB or TB (like `512MB`, `24GB`, `1TB`)"))
        }
        return .success(value)
    }

    /// A duration in seconds: an integer, or `<int><s|m|h|d|w>` with optional spaces before the
    /// unit (`90`, `5m`, `2 h`, `1w`).
    public static func duration(_ text: String) -> Result<Int, GrammarError> {
        if let i = pythonInt(text) { return .success(i) }
        var digits = ""
        var rest = Substring(text)
        while let c = rest.first, c.isASCII, c.isNumber { digits.append(c); rest = rest.dropFirst() }
        while rest.first == " " { rest = rest.dropFirst() }
        // Python's `$` also matches before one trailing newline.
        if rest.hasSuffix("\n") { rest = rest.dropLast() }
        let multipliers: [Substring: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        guard !digits.isEmpty, let m = multipliers[rest], let amount = Int(digits) else {
            return .failure(GrammarError("cannot parse the duration `\(text)`: expected seconds or a number with a unit s, m, h, d or w (like `90`, `5m`, `2h`)"))
        }
        let (product, overflow) = amount.multipliedReportingOverflow(by: m)
        guard !overflow else { return .failure(GrammarError("duration `\(text)` is too long")) }
        return .success(product)
    }

    /// Python's `int(str)`: white space around, a sign, underscores between digits.
    static func pythonInt(_ text: String) -> Int? {
        guard !text.hasSubstring(".") else { return nil }
        return Lax.parseInt(text)
    }
}

public struct GrammarError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// `min..max` with open ends; both ends absent is rejected.
public struct ValueRange<Bound: Sendable & Equatable & Comparable>: Sendable, Equatable {
    public var min: Bound?
    public var max: Bound?

    public init(min: Bound?, max: Bound?) {
        self.min = min
        self.max = max
    }

    public static func exactly(_ value: Bound) -> ValueRange { ValueRange(min: value, max: value) }
    public static func atLeast(_ value: Bound) -> ValueRange { ValueRange(min: value, max: nil) }

    /// True when `value` lies within the range (open ends are unbounded).
    public func contains(_ value: Bound) -> Bool {
        if let min, value < min { return false }
        if let max, value > max { return false }
        return true
    }
}

extension ValueRange where Bound == Int {
    var json: JSONValue { .object([("min", .num(min)), ("max", .num(max))]) }
    var text: String { rangeText(min.map(String.init), max.map(String.init)) }
}

extension ValueRange where Bound == Double {
    var json: JSONValue { .object([("min", .num(min)), ("max", .num(max))]) }
    var text: String { rangeText(min.map(Memory.text), max.map(Memory.text)) }
}

private func rangeText(_ min: String?, _ max: String?) -> String {
    if min == max { return min ?? "" }
    return "\(min ?? "")..\(max ?? "")"
}

/// Memory sizes are GB as `Double`, like dstack's `Memory(float)`.
public enum Memory {
    /// `24GB`, `0.5GB`: the form dstack prints (`%gGB`).
    public static func text(_ gb: Double) -> String {
        var s = String(format: "%g", gb)
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s + "GB"
    }
}

extension Reader {
    /// A range whose ends are read by `bound` (`Range[int]` or `Range[Memory]`).
    func range<B>(_ node: YAMLNode, _ path: FieldPath, bound: (YAMLNode, FieldPath) -> B?,
                  text: (B) -> String) -> ValueRange<B>? {
        var low: B?
        var high: B?
        switch node.value {
        case .string(let s) where s.hasSubstring(".."):
            switch Grammar.splitRange(s)! {
            case .failure(let e):
                fail(path, node, e.message)
                return nil
            case .success(let parts):
                let start = issues.count
                low = parts.min.flatMap { bound(YAMLNode(.string($0), at: node.location), path.appending("min")) }
                high = parts.max.flatMap { bound(YAMLNode(.string($0), at: node.location), path.appending("max")) }
                guard issues.count == start else { return nil }
            }
        case .string, .int, .float, .bool:
            guard let v = bound(node, path) else { return nil }
            low = v
            high = v
        case .map:
            guard let obj = object(node, path, keys: ["min", "max"], what: "a range (like `1..4`) or a mapping with `min` and `max`") else { return nil }
            low = obj.optional("min", bound)
            high = obj.optional("max", bound)
            guard obj.isValid else { return nil }
        default:
            expected("a range (like `2`, `1..4`, `2..` or `..8`)", node, path)
            return nil
        }
        if low == nil && high == nil {
            fail(path, node, "invalid empty range `..`: give a minimum, a maximum or both")
            return nil
        }
        if let l = low, let h = high, l > h {
            fail(path, node, "invalid range order `\(text(l))..\(text(h))`: the minimum is larger than the maximum")
            return nil
        }
        return ValueRange(min: low, max: high)
    }

    func intRange(_ node: YAMLNode, _ path: FieldPath) -> ValueRange<Int>? {
        range(node, path, bound: int, text: { String($0) })
    }

    func memoryRange(_ node: YAMLNode, _ path: FieldPath) -> ValueRange<Double>? {
        range(node, path, bound: memory, text: Memory.text)
    }

    /// `Memory.parse`: numbers are GB, text takes a unit.
    func memory(_ node: YAMLNode, _ path: FieldPath) -> Double? {
        switch node.value {
        case .int(let i): return Double(i)
        case .float(let d): return d
        case .bool(let b): return b ? 1 : 0
        case .string(let s):
            switch Grammar.memory(s) {
            case .success(let v): return v
            case .failure(let e): fail(path, node, e.message); return nil
            }
        default:
            expected("a memory size (like `24GB`, `512MB` or a number of GB)", node, path)
            return nil
        }
    }

    /// `Duration.parse`: integer seconds, truncated floats, or a shorthand with a unit.
    func duration(_ node: YAMLNode, _ path: FieldPath) -> Int? {
        switch node.value {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        case .float(let d):
            guard d.isFinite, abs(d) < 9.2e18 else {
                fail(path, node, "cannot parse the duration \(show(node, path)): expected seconds or a number with a unit s, m, h, d or w")
                return nil
            }
            return Int(d.rounded(.towardZero))
        case .string(let s):
            switch Grammar.duration(s) {
            case .success(let v): return v
            case .failure(let e): fail(path, node, e.message); return nil
            }
        default:
            fail(path, node, "cannot parse the duration \(show(node, path)): expected seconds or a number with a unit s, m, h, d or w (like `90`, `5m`, `2h`)")
            return nil
        }
    }

    /// Python's `int(x)` for a YAML value (used where dstack calls `int()` itself).
    func pythonInt(_ node: YAMLNode) -> Int? {
        switch node.value {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        case .float(let d): return d.isFinite && abs(d) < 9.2e18 ? Int(d.rounded(.towardZero)) : nil
        case .string(let s): return Grammar.pythonInt(s)
        default: return nil
        }
    }
}

import Foundation
