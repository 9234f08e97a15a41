/// A position in a configuration file, 1-based like editors show it.
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "\(line):\(column)" }
}

/// A loaded YAML value with the scalar types PyYAML's `safe_load` (YAML 1.1) would produce.
///
/// dstack reads configurations with `yaml.safe_load`, so `yes` is a boolean, `3.10` is the float
/// 3.1 and `8000:80` is the sexagesimal integer 480080. Setpoint resolves plain scalars the same
/// way so that every configuration means what it means to dstack.
public enum YAMLValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    /// A YAML 1.1 timestamp (`2024-01-02`): neither a string nor a number to the schema.
    case timestamp(String)
    case list([YAMLNode])
    case map([YAMLPair])
}

public struct YAMLPair: Sendable, Equatable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}

/// A value together with where it starts in its file.
public struct YAMLNode: Sendable, Equatable {
    public var value: YAMLValue
    public var location: SourceLocation
    /// The scalar as written, kept only where the value does not show it (an integer too large
    /// for 64 bits, held as a float).
    public var raw: String?

    public init(_ value: YAMLValue, at location: SourceLocation = SourceLocation(line: 0, column: 0)) {
        self.value = value
        self.location = location
    }

    /// The text of the value as a person would recognize it in an error message.
    public var displayText: String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .float(let d): return PythonFormat.float(d)
        case .string(let s): return s
        case .timestamp(let s): return s
        case .list: return "a list"
        case .map: return "a mapping"
        }
    }

    /// The kind of value, for "expected X, got Y" messages.
    public var kindName: String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .float: return "a number"
        case .string: return "a string"
        case .timestamp: return "a date"
        case .list: return "a list"
        case .map: return "a mapping"
        }
    }

    public var isNull: Bool {
        if case .null = value { return true }
        return false
    }

    /// Mapping lookup by string key (the last pair wins, as in Python's dict construction).
    public subscript(key: String) -> YAMLNode? {
        guard case .map(let pairs) = value else { return nil }
        return pairs.last(where: { $0.key.value == .string(key) })?.value
    }
}

/// Python's text forms for numbers, so that coerced values read exactly as dstack stores them.
public enum PythonFormat {
    /// `repr(float)`: shortest round-trip digits, `1e+16` style exponents, `inf`, `nan`.
    public static func float(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == value.rounded(), abs(value) < 1e16 {
            // Python prints integral floats below 1e16 positionally with one decimal.
            return (value.sign == .minus ? "-" : "") + String(Int(abs(value))) + ".0"
        }
        var text = "\(value)"
        // Swift writes `1e-05` and `1e+16` like Python already; make sure mantissas keep their
        // form (`5e-324`) and that positional values are untouched.
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            let mantissa = String(text[..<e])
            var exponent = String(text[text.index(after: e)...])
            var sign = "+"
            if exponent.hasPrefix("-") { sign = "-"; exponent.removeFirst() }
            else if exponent.hasPrefix("+") { exponent.removeFirst() }
            while exponent.count < 2 { exponent = "0" + exponent }
            var m = mantissa
            if m.hasSuffix(".0") { m.removeLast(2) }
            text = "\(m)e\(sign)\(exponent)"
        }
        return text
    }
}

import Foundation
