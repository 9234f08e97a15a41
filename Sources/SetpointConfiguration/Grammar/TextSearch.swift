/// Substring search on UTF-8 bytes. `String.contains(String)` and `range(of:)` on Linux go
/// through Foundation's NSString search, which dominated validation time; these do not.
extension StringProtocol {
    /// True when `needle` occurs in the text.
    func hasSubstring(_ needle: String) -> Bool {
        firstByteOffset(of: needle, from: 0) != nil
    }

    /// Byte offset of the first `needle` at or after `start`.
    func firstByteOffset(of needle: String, from start: Int) -> Int? {
        let hay = Array(utf8)
        let pin = Array(needle.utf8)
        guard !pin.isEmpty, hay.count >= pin.count, start <= hay.count - pin.count else { return pin.isEmpty ? start : nil }
        var i = start
        let first = pin[0]
        while i <= hay.count - pin.count {
            if hay[i] == first {
                var j = 1
                while j < pin.count, hay[i + j] == pin[j] { j += 1 }
                if j == pin.count { return i }
            }
            i += 1
        }
        return nil
    }
}

/// The `${{ … }}` expressions of a text, trimmed.
func interpolations(in text: String) -> (expressions: [String], unclosed: Bool) {
    let bytes = Array(text.utf8)
    var result: [String] = []
    var i = 0
    while let open = text.firstByteOffset(of: "${{", from: i) {
        guard let close = text.firstByteOffset(of: "}}", from: open + 3) else { return (result, true) }
        let inner = String(decoding: bytes[(open + 3)..<close], as: UTF8.self)
        result.append(String(inner.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed()))
        i = close + 2
    }
    return (result, false)
}
