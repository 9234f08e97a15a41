/// Resolves plain (unquoted) scalars the way PyYAML's `SafeLoader` does (YAML 1.1).
///
/// Hand-written matchers for PyYAML's implicit resolver patterns (`resolver.py`) and the
/// `SafeConstructor` conversions (`constructor.py`); no regular expressions, because this runs
/// for every scalar of every file.
enum YAML11Resolver {
    enum Resolution: Equatable {
        case value(YAMLValue)
        /// PyYAML has no constructor for the resolved tag (the `=` value tag).
        case unconstructible(String)
    }

    static func resolvePlain(_ text: String) -> Resolution {
        guard let first = text.utf8.first else { return .value(.null) }
        switch first {
        case UInt8(ascii: "~"), UInt8(ascii: "n"), UInt8(ascii: "N"):
            if text == "~" || text == "null" || text == "Null" || text == "NULL" { return .value(.null) }
            if text == "no" || text == "No" || text == "NO" { return .value(.bool(false)) }
        case UInt8(ascii: "y"), UInt8(ascii: "Y"), UInt8(ascii: "t"), UInt8(ascii: "T"),
             UInt8(ascii: "f"), UInt8(ascii: "F"), UInt8(ascii: "o"), UInt8(ascii: "O"):
            switch text {
            case "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON": return .value(.bool(true))
            case "false", "False", "FALSE", "off", "Off", "OFF": return .value(.bool(false))
            default: break
            }
        case UInt8(ascii: "="):
            if text == "=" { return .unconstructible("tag:yaml.org,2002:value") }
        default:
            break
        }
        let isNumberStart = first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".")
            || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9"))
        guard isNumberStart else { return .value(.string(text)) }
        if first >= 49 && first <= 57, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return .value(.int(Int(text)!))  // plain decimal digits, the common case
        }
        let u = Array(text.utf8)
        if matchesInt(u) {
            if let v = constructInt(text) { return .value(.int(v)) }
            // Out of Int range: PyYAML would build a big integer; no field accepts one.
            return .value(.float(Double(text.replacingOccurrences(of: "_", with: "")) ?? .infinity))
        }
        if matchesFloat(u) { return .value(.float(constructFloat(text))) }
        if matchesTimestamp(u) { return .value(.timestamp(text)) }
        return .value(.string(text))
    }

    // MARK: int

    private static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
    private static func isOctal(_ c: UInt8) -> Bool { c >= 48 && c <= 55 }
    private static func isHex(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)
    }
    private static let underscore = UInt8(ascii: "_")
    private static let colon = UInt8(ascii: ":")
    private static let dot = UInt8(ascii: ".")

    /// `[-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(?:0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+ |
    /// [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+`
    static func matchesInt(_ u: [UInt8]) -> Bool {
        var i = 0
        if i < u.count, u[i] == UInt8(ascii: "-") || u[i] == UInt8(ascii: "+") { i += 1 }
        let body = Array(u[i...])
        guard !body.isEmpty else { return false }
        if body == [48] { return true }
        if body.count >= 3, body[0] == 48, body[1] == UInt8(ascii: "b") {
            return body[2...].allSatisfy { $0 == 48 || $0 == 49 || $0 == underscore }
        }
        if body.count >= 3, body[0] == 48, body[1] == UInt8(ascii: "x") {
            return body[2...].allSatisfy { isHex($0) || $0 == underscore }
        }
        if body[0] == 48 {
            return body.count >= 2 && body[1...].allSatisfy { isOctal($0) || $0 == underscore }
        }
        guard body[0] >= 49 && body[0] <= 57 else { return false }
        if body.allSatisfy({ isDigit($0) || $0 == underscore }) { return true }
        return matchesSexagesimal(body, allowFraction: false)
    }

    /// `[1-9][0-9_]*(?::[0-5]?[0-9])+` (with an optional `\.[0-9_]*` tail for floats).
    private static func matchesSexagesimal(_ body: [UInt8], allowFraction: Bool) -> Bool {
        var i = 0
        while i < body.count, isDigit(body[i]) || body[i] == underscore { i += 1 }
        guard i > 0 else { return false }
        var groups = 0
        while i < body.count, body[i] == colon {
            i += 1
            let start = i
            while i < body.count, isDigit(body[i]), i - start < 2 { i += 1 }
            let len = i - start
            if len == 0 { return false }
            if len == 2, body[start] > UInt8(ascii: "5") { return false }
            groups += 1
        }
        guard groups > 0 else { return false }
        if i == body.count { return !allowFraction }
        guard allowFraction, body[i] == dot else { return false }
        i += 1
        return body[i...].allSatisfy { isDigit($0) || $0 == underscore }
    }

    static func constructInt(_ text: String) -> Int? {
        var s = text.hasSubstring("_") ? text.filter { $0 != "_" } : text
        var sign = 1
        if s.hasPrefix("-") { sign = -1; s.removeFirst() } else if s.hasPrefix("+") { s.removeFirst() }
        if s == "0" { return 0 }
        if s.hasPrefix("0b") { return Int(s.dropFirst(2), radix: 2).map { $0 * sign } }
        if s.hasPrefix("0x") { return Int(s.dropFirst(2), radix: 16).map { $0 * sign } }
        if s.hasPrefix("0") { return Int(s.dropFirst(1), radix: 8).map { $0 * sign } }
        if s.hasSubstring(":") {
            var value = 0
            for part in s.split(separator: ":") {
                guard let p = Int(part) else { return nil }
                let (m, o1) = value.multipliedReportingOverflow(by: 60)
                let (a, o2) = m.addingReportingOverflow(p)
                if o1 || o2 { return nil }
                value = a
            }
            return sign * value
        }
        return Int(s).map { $0 * sign }
    }

    // MARK: float

    /// `[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)? | \.[0-9][0-9_]*(?:[eE][-+][0-9]+)? |
    /// [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)`
    static func matchesFloat(_ u: [UInt8]) -> Bool {
        let text = String(decoding: u, as: UTF8.self)
        if text == ".nan" || text == ".NaN" || text == ".NAN" { return true }
        var i = 0
        var signed = false
        if i < u.count, u[i] == UInt8(ascii: "-") || u[i] == UInt8(ascii: "+") { i += 1; signed = true }
        let body = Array(u[i...])
        let bodyText = String(decoding: body, as: UTF8.self)
        if bodyText == ".inf" || bodyText == ".Inf" || bodyText == ".INF" { return true }
        guard !body.isEmpty else { return false }
        if body[0] == dot {
            // `\.[0-9][0-9_]*(exp)?` only without a sign.
            guard !signed, body.count >= 2, isDigit(body[1]) else { return false }
            var j = 2
            while j < body.count, isDigit(body[j]) || body[j] == underscore { j += 1 }
            return matchesExponent(body, from: j)
        }
        guard isDigit(body[0]) else { return false }
        var j = 1
        while j < body.count, isDigit(body[j]) || body[j] == underscore { j += 1 }
        if j < body.count, body[j] == colon {
            return matchesSexagesimal(body, allowFraction: true)
        }
        guard j < body.count, body[j] == dot else { return false }
        j += 1
        while j < body.count, isDigit(body[j]) || body[j] == underscore { j += 1 }
        return matchesExponent(body, from: j)
    }

    /// `(?:[eE][-+][0-9]+)?$` starting at `j`.
    private static func matchesExponent(_ b: [UInt8], from j: Int) -> Bool {
        if j == b.count { return true }
        guard b[j] == UInt8(ascii: "e") || b[j] == UInt8(ascii: "E") else { return false }
        guard j + 2 < b.count,
              b[j + 1] == UInt8(ascii: "-") || b[j + 1] == UInt8(ascii: "+") else { return false }
        let digits = b[(j + 2)...]
        return !digits.isEmpty && digits.allSatisfy(isDigit)
    }

    static func constructFloat(_ text: String) -> Double {
        var s = (text.hasSubstring("_") ? text.filter { $0 != "_" } : text).lowercased()
        var sign = 1.0
        if s.hasPrefix("-") { sign = -1; s.removeFirst() } else if s.hasPrefix("+") { s.removeFirst() }
        if s == ".inf" { return sign * .infinity }
        if s == ".nan" { return .nan }
        if s.hasSubstring(":") {
            var value = 0.0
            for part in s.split(separator: ":") { value = value * 60 + (pythonFloat(String(part)) ?? 0) }
            return sign * value
        }
        return sign * (pythonFloat(s) ?? 0)
    }

    /// Python's `float(str)` for the digit forms YAML produces (`1.`, `.5`, `1.e+3`).
    static func pythonFloat(_ text: String) -> Double? {
        var s = text
        if s.hasPrefix(".") { s = "0" + s }
        if let dotIndex = s.firstIndex(of: ".") {
            let after = s.index(after: dotIndex)
            if after == s.endIndex || !(s[after].isNumber) {
                s.insert("0", at: after)
            }
        }
        return Double(s)
    }

    // MARK: timestamp

    /// `[0-9]{4}-[0-9]{2}-[0-9]{2}` or the full date-time form of YAML 1.1.
    static func matchesTimestamp(_ u: [UInt8]) -> Bool {
        func digits(_ range: Range<Int>) -> Bool {
            range.upperBound <= u.count && u[range].allSatisfy(isDigit)
        }
        guard u.count >= 8, digits(0..<4), u[4] == UInt8(ascii: "-") else { return false }
        if u.count == 10, digits(5..<7), u[7] == UInt8(ascii: "-"), digits(8..<10) { return true }
        // Full form: yyyy-m?m-d?d(T|t|[ \t]+)h?h:mm:ss(.frac)?(tz)?
        var i = 5
        func takeDigits(_ minCount: Int, _ maxCount: Int) -> Bool {
            let start = i
            while i < u.count, isDigit(u[i]), i - start < maxCount { i += 1 }
            return i - start >= minCount
        }
        guard takeDigits(1, 2), i < u.count, u[i] == UInt8(ascii: "-") else { return false }
        i += 1
        guard takeDigits(1, 2), i < u.count else { return false }
        if u[i] == UInt8(ascii: "T") || u[i] == UInt8(ascii: "t") {
            i += 1
        } else {
            let start = i
            while i < u.count, u[i] == UInt8(ascii: " ") || u[i] == UInt8(ascii: "\t") { i += 1 }
            guard i > start else { return false }
        }
        guard takeDigits(1, 2), i < u.count, u[i] == colon else { return false }
        i += 1
        guard takeDigits(2, 2), i < u.count, u[i] == colon else { return false }
        i += 1
        guard takeDigits(2, 2) else { return false }
        if i < u.count, u[i] == dot {
            i += 1
            while i < u.count, isDigit(u[i]) { i += 1 }
        }
        while i < u.count, u[i] == UInt8(ascii: " ") || u[i] == UInt8(ascii: "\t") { i += 1 }
        if i == u.count { return true }
        if u[i] == UInt8(ascii: "Z") { return i + 1 == u.count }
        guard u[i] == UInt8(ascii: "-") || u[i] == UInt8(ascii: "+") else { return false }
        i += 1
        guard takeDigits(1, 2) else { return false }
        if i < u.count, u[i] == colon {
            i += 1
            guard takeDigits(2, 2) else { return false }
        }
        return i == u.count
    }
}

import Foundation
