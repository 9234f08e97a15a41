/// A JSON value whose objects keep their key order, so that normalized configurations list their
/// properties in the same order as dstack's `model_dump(mode="json")`.
public enum JSONValue: Sendable, Equatable {
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
        var out: [UInt8] = []
        out.reserveCapacity(2048)
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the compact JSON text as UTF-8 bytes (the fast path for bulk output).
    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: JSONValue.nullBytes)
        case .bool(let b): out.append(contentsOf: b ? JSONValue.trueBytes : JSONValue.falseBytes)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d):
            // JSON has no NaN or infinity; write them as Python's json module (and so dstack) does.
            let text = d.isFinite ? PythonFormat.float(d) : d.isNaN ? "NaN" : d < 0 ? "-Infinity" : "Infinity"
            out.append(contentsOf: text.utf8)
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let pairs):
            out.append(UInt8(ascii: "{"))
            for (i, (key, value)) in pairs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let nullBytes = Array("null".utf8)
    private static let trueBytes = Array("true".utf8)
    private static let falseBytes = Array("false".utf8)
    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var start = 0
            for (i, b) in bytes.enumerated() where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i]))
                out.append(UInt8(ascii: "\\"))
                switch b {
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "\n"): out.append(UInt8(ascii: "n"))
                case UInt8(ascii: "\r"): out.append(UInt8(ascii: "r"))
                case UInt8(ascii: "\t"): out.append(UInt8(ascii: "t"))
                default:
                    out.append(contentsOf: Array("u00".utf8))
                    out.append(hexDigits[Int(b >> 4)])
                    out.append(hexDigits[Int(b & 0xF)])
                }
                start = i + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
        }
        out.append(UInt8(ascii: "\""))
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
