/// Checks a five-field cron expression the way dstack does (APScheduler's
/// `CronTrigger.from_crontab`): minute, hour, day of month, month, day of week (Monday = 0).
public enum Cron {
    private struct Field {
        let name: String
        let range: ClosedRange<Int>
        let names: [String]
    }

    private static let fields = [
        Field(name: "minute", range: 0...59, names: []),
        Field(name: "hour", range: 0...23, names: []),
        Field(name: "day", range: 1...31, names: []),
        Field(name: "month", range: 1...12, names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]),
        Field(name: "day_of_week", range: 0...6, names: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    ]

    /// `nil` when the expression is valid, else what is wrong with it.
    public static func problem(_ expression: String) -> String? {
        let values = expression.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard values.count == 5 else { return "wrong number of fields; got \(values.count), expected 5" }
        for (field, value) in zip(fields, values) {
            for part in value.lowercased().split(separator: ",", omittingEmptySubsequences: false) {
                if let p = check(String(part), field) { return "\(field.name) field `\(value)`: \(p)" }
            }
        }
        return nil
    }

    private static func check(_ expr: String, _ field: Field) -> String? {
        var body = Substring(expr)
        var step: Int?
        if let slash = body.firstIndex(of: "/") {
            guard let s = Int(body[body.index(after: slash)...]) else { return "invalid step in `\(expr)`" }
            guard s > 0 else { return "the step must be higher than 0" }
            step = s
            body = body[..<slash]
        }
        let span = field.range.upperBound - field.range.lowerBound
        if body == "*" {
            if let step, step > span { return "the step value (\(step)) is higher than the total range (\(span))" }
            return nil
        }
        if field.name == "day", step == nil, body == "last" || isNthWeekday(body) { return nil }
        if field.name == "day_of_week", step == nil, isNthWeekday(body) { return nil }
        let bounds = body.split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count <= 2, let first = value(bounds[0], field) else { return "invalid expression `\(expr)`" }
        var last = first
        if bounds.count == 2 {
            guard let l = value(bounds[1], field) else { return "invalid expression `\(expr)`" }
            last = l
        }
        guard field.range.contains(first), field.range.contains(last) else {
            return "value out of range \(field.range.lowerBound)..\(field.range.upperBound) in `\(expr)`"
        }
        if field.names.isEmpty || Int(bounds[0]) != nil, first > last {
            return "the minimum value in a range must not be higher than the maximum in `\(expr)`"
        }
        if let step, step > span { return "the step value (\(step)) is higher than the total range (\(span))" }
        return nil
    }

    private static func value(_ token: Substring, _ field: Field) -> Int? {
        if let i = Int(token), token.allSatisfy(\.isNumber) { return i }
        if let i = field.names.firstIndex(of: String(token)) { return field.range.lowerBound + i }
        return nil
    }

    /// `1st mon`, `last fri` style day expressions.
    private static func isNthWeekday(_ s: Substring) -> Bool {
        let parts = s.split(separator: " ")
        guard parts.count == 2 else { return false }
        let ordinals = ["1st", "2nd", "3rd", "4th", "5th", "last"]
        return ordinals.contains(String(parts[0])) && ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].contains(String(parts[1]))
    }
}
