import Foundation

/// Standard output and error, unbuffered writes, and whether they are a terminal.
struct Terminal: Sendable {
    let descriptor: Int32

    static let standardOutput = Terminal(descriptor: STDOUT_FILENO)
    static let standardError = Terminal(descriptor: STDERR_FILENO)

    var isTerminal: Bool { isatty(descriptor) == 1 }

    func write(_ text: String) { write(Array(text.utf8)) }

    func write(_ bytes: [UInt8]) {
        var bytes = bytes
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buffer in
                Foundation.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if n <= 0 { return }
            offset += n
        }
    }
}

/// ANSI colours, only when writing to a terminal and `NO_COLOR` is unset.
struct TextStyle: Sendable {
    let enabled: Bool

    init(enabled: Bool) {
        self.enabled = enabled && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    private func wrap(_ code: String, _ s: String) -> String { enabled ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
    func red(_ s: String) -> String { wrap("31", s) }
    func green(_ s: String) -> String { wrap("32", s) }
    func yellow(_ s: String) -> String { wrap("33", s) }
    func bold(_ s: String) -> String { wrap("1", s) }
}
