import ArgumentParser
import Foundation
import Model
import SetpointConfiguration

/// `-o json|yaml` for read commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, yaml
}

enum Render {
    /// Pretty JSON of any Encodable (dates ISO 8601).
    static func json<T: Encodable>(_ value: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(Timestamps.format(date))
        }
        return String(decoding: (try? e.encode(value)) ?? Data(), as: UTF8.self)
    }

    /// YAML (block style) of any Encodable, through its JSON form.
    static func yaml<T: Encodable>(_ value: T) -> String {
        guard let json = try? JSONParser.parse(json(value)) else { return "" }
        var out = ""
        emit(json, indent: 0, into: &out, inline: false)
        return out
    }

    private static func scalar(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return PythonFormat.float(d)
        case .string(let s):
            let plain = !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || "-_./@ ".contains($0) }
                && !["true", "false", "null", "yes", "no", "on", "off", "~"].contains(s.lowercased())
                && Double(s) == nil && !s.hasPrefix(" ") && !s.hasSuffix(" ")
            return plain ? s : JSONValue.string(s).serialized
        case .array, .object: return ""
        }
    }

    private static func emit(_ v: JSONValue, indent: Int, into out: inout String, inline: Bool) {
        let pad = String(repeating: "  ", count: indent)
        switch v {
        case .object(let pairs):
            if pairs.isEmpty { out += (inline ? " " : pad) + "{}\n"; return }
            if inline { out += "\n" }
            for (k, value) in pairs {
                out += pad + k + ":"
                switch value {
                case .object(let p) where !p.isEmpty: emit(value, indent: indent + 1, into: &out, inline: true)
                case .array(let a) where !a.isEmpty: emit(value, indent: indent + 1, into: &out, inline: true)
                case .object: out += " {}\n"
                case .array: out += " []\n"
                default: out += " " + scalar(value) + "\n"
                }
            }
        case .array(let items):
            if inline { out += "\n" }
            for item in items {
                switch item {
                case .object(let p) where !p.isEmpty:
                    var nested = ""
                    emit(item, indent: indent + 1, into: &nested, inline: false)
                    let trimmed = nested.drop(while: { $0 == " " })
                    out += pad + "- " + trimmed
                case .array:
                    out += pad + "- " + item.serialized + "\n"
                default:
                    out += pad + "- " + scalar(item) + "\n"
                }
            }
        default:
            out += (inline ? " " : pad) + scalar(v) + "\n"
        }
    }

    /// A table with a header row, columns padded to their widest cell.
    static func table(_ header: [String], _ rows: [[String]], style: TextStyle) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        var out = style.bold(line(header)) + "\n"
        for row in rows { out += line(row) + "\n" }
        return out
    }

    static func age(_ date: Date, now: Date = Date()) -> String {
        let s = Int(now.timeIntervalSince(date))
        if s < 60 { return "\(max(s, 0))s" }
        if s < 3600 { return "\(s / 60)m" }
        if s < 86_400 { return "\(s / 3600)h" }
        return "\(s / 86_400)d"
    }
}

extension Render {
    /// Conditions as `describe` shows them: since when each has held (its last transition).
    static func conditions(_ conditions: [Condition], style: TextStyle, now: Date = Date()) -> String {
        table(["TYPE", "STATUS", "AGE", "REASON", "MESSAGE"],
              conditions.map { [$0.type, $0.status, age($0.lastTransitionTime, now: now), $0.reason, $0.message.isEmpty ? "-" : $0.message] }, style: style)
    }

    /// The last events as `describe` shows them: a repeat once, `2m (x3 over 10m)`.
    static func events(_ events: [EventSpec], style: TextStyle, objects: Bool = true, now: Date = Date()) -> String {
        table(["AGE", "TYPE", "REASON"] + (objects ? ["OBJECT"] : []) + ["MESSAGE"], events.suffix(20).map { e in
            [age(e.lastTimestamp, now: now) + (e.count > 1 ? " (x\(e.count) over \(age(e.firstTimestamp, now: now)))" : ""), e.type, e.reason]
                + (objects ? ["\(objectKind(e.involved.kind))/\(e.involved.name)"] : []) + [e.message]
        }, style: style)
    }

    /// `run`, `replica`, `route`, `gateway`, `source`: the word a user types for a kind.
    static func objectKind(_ kind: String) -> String { kind == ProxyRouteKind.name ? "route" : kind.lowercased() }
}

extension Array where Element == Condition {
    func isTrue(_ type: String) -> Bool { self[type]?.status == "True" }
}
