/// A JSON value whose objects keep their key order, so that normalized configurations list their
/// properties in the same order as dstack's `model_dump(mode="json")`.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b || (a.isNaN && b.isNaN)
        case (.int(let a), .double(let b)), (.double(let b), .int(let a)): return Double(a) == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            let bd = Dictionary(b, uniquingKeysWith: { _, last in last })
            return a.allSatisfy { key, value in bd[key] == value }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.last(where: { $0.0 == key })?.1
    }

    /// Compact JSON text (no spaces), as emitted one object per line by `validate -o json`.
    public var serialized: String {
        var out = ""
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            // JSON has no NaN or infinity; write them as Python's json module (and so dstack) does.
            if d.isFinite { out += PythonFormat.float(d) } else if d.isNaN { out += "NaN" } else { out += d < 0 ? "-Infinity" : "Infinity" }
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (i, (key, value)) in pairs.enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(key, to: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

extension JSONValue {
    /// Builds an optional value: `nil` becomes JSON `null`.
    static func opt<T>(_ value: T?, _ transform: (T) -> JSONValue) -> JSONValue {
        value.map(transform) ?? .null
    }

    static func str(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
    static func num(_ value: Int?) -> JSONValue { value.map(JSONValue.int) ?? .null }
    static func num(_ value: Double?) -> JSONValue { value.map(JSONValue.double) ?? .null }
    static func flag(_ value: Bool?) -> JSONValue { value.map(JSONValue.bool) ?? .null }
    static func strings(_ value: [String]?) -> JSONValue { value.map { .array($0.map(JSONValue.string)) } ?? .null }

    /// JSON text turned back into a YAML-like tree, so that stored normalized configurations are
    /// read by the same validator that produced them.
    public var yamlNode: YAMLNode {
        switch self {
        case .null: return YAMLNode(.null)
        case .bool(let b): return YAMLNode(.bool(b))
        case .int(let i): return YAMLNode(.int(i))
        case .double(let d): return YAMLNode(.float(d))
        case .string(let s): return YAMLNode(.string(s))
        case .array(let items): return YAMLNode(.list(items.map(\.yamlNode)))
        case .object(let pairs):
            return YAMLNode(.map(pairs.map { YAMLPair(key: YAMLNode(.string($0.0)), value: $0.1.yamlNode) }))
        }
    }
}
