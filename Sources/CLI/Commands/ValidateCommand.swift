import ArgumentParser
import SetpointConfiguration
import Foundation

/// `setpoint validate`: checks configurations locally, without a server.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Validate .dstack.yml configurations and print them normalized.",
        discussion: """
            PATH is a file or a directory; directories are searched recursively for `*.dstack.yml` \
            and `.dstack.yml`. Every YAML document of a file (separated by `---`) is validated. \
            Exit status: 0 when all are valid, 1 when any is invalid, 2 on usage errors.
            """
    )

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(name: [.customShort("f"), .customLong("file")], help: "A configuration file or a directory (repeatable; default: the current directory).")
    var paths: [String] = []

    @Option(name: [.customShort("o"), .customLong("output")], help: "Output format: text or json (one JSON object per configuration per line).")
    var output: OutputFormat = .text

    func run() async throws {
        let files = try ConfigurationFiles.discover(paths.isEmpty ? ["."] : paths)
        let style = TextStyle(enabled: output == .text && Terminal.standardOutput.isTerminal)
        var validCount = 0
        var invalidCount = 0
        // Files are validated and rendered in parallel in batches; output keeps the files' order.
        let batchSize = 1024
        var start = 0
        while start < files.count {
            let batch = Array(files[start..<min(start + batchSize, files.count)])
            let rendered = Self.validateInParallel(batch, format: output, style: style)
            var out: [UInt8] = []
            out.reserveCapacity(rendered.reduce(0) { $0 + $1.bytes.count })
            for file in rendered {
                validCount += file.valid
                invalidCount += file.invalid
                out.append(contentsOf: file.bytes)
            }
            Terminal.standardOutput.write(out)
            start += batchSize
        }
        if output == .text {
            if files.isEmpty {
                Terminal.standardOutput.write("no configurations found (looked for *.dstack.yml and .dstack.yml)\n")
            } else {
                let summary = "\(validCount) valid, \(invalidCount) invalid"
                Terminal.standardOutput.write((invalidCount > 0 ? style.red(summary) : style.green(summary)) + "\n")
            }
        }
        if invalidCount > 0 || files.isEmpty { throw ExitCode(1) }
    }

    /// One file's rendered output and counts.
    struct RenderedFile: Sendable {
        var bytes: [UInt8] = []
        var valid = 0
        var invalid = 0
    }

    /// Validates and renders files on all cores; element `i` belongs to `files[i]`.
    static func validateInParallel(_ files: [String], format: OutputFormat, style: TextStyle) -> [RenderedFile] {
        let results = ResultSlots(count: files.count)
        DispatchQueue.concurrentPerform(iterations: files.count) { i in
            var rendered = RenderedFile()
            for result in ConfigurationFiles.validate(files[i]) {
                if result.ok { rendered.valid += 1 } else { rendered.invalid += 1 }
                switch format {
                case .json:
                    result.json.write(to: &rendered.bytes)
                    rendered.bytes.append(UInt8(ascii: "\n"))
                case .text:
                    rendered.bytes.append(contentsOf: result.text(style: style).utf8)
                }
            }
            results.set(i, rendered)
        }
        return results.values
    }
}

/// Fixed slots written once each from `concurrentPerform` workers.
private final class ResultSlots: @unchecked Sendable {
    private var slots: [ValidateCommand.RenderedFile]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: ValidateCommand.RenderedFile(), count: count) }

    func set(_ index: Int, _ value: ValidateCommand.RenderedFile) {
        lock.lock()
        slots[index] = value
        lock.unlock()
    }

    var values: [ValidateCommand.RenderedFile] {
        lock.lock()
        defer { lock.unlock() }
        return slots
    }
}

/// The outcome for one configuration document, printable as text or as a JSON line.
public struct ValidationResult: Sendable {
    public var file: String
    /// The document's position when the file holds several.
    public var document: Int?
    var source: [UInt8]
    public var outcome: Result<AnyConfiguration, ConfigurationErrors>
    public var warnings: [ConfigurationIssue] = []

    public var ok: Bool { if case .success = outcome { return true } else { return false } }

    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [("file", .string(file))]
        if let document { pairs.append(("document", .int(document))) }
        switch outcome {
        case .success(let config):
            pairs.append(("ok", .bool(true)))
            pairs.append(("configuration", config.json))
        case .failure(let errors):
            pairs.append(("ok", .bool(false)))
            pairs.append(("errors", .array(errors.issues.map { issue in
                .object([
                    ("path", .string(issue.path)),
                    ("line", issue.location.map { .int($0.line) } ?? .null),
                    ("column", issue.location.map { .int($0.column) } ?? .null),
                    ("message", .string(issue.message)),
                ])
            })))
        }
        if !warnings.isEmpty {
            pairs.append(("warnings", .array(warnings.map { w in
                .object([("line", w.location.map { .int($0.line) } ?? .null),
                         ("column", w.location.map { .int($0.column) } ?? .null),
                         ("message", .string(w.message))])
            })))
        }
        return .object(pairs)
    }

    public var jsonLine: String { json.serialized }

    private func warningLines(_ style: TextStyle) -> String {
        warnings.map { w in
            let at = w.location.map { "\(file):\($0.line):\($0.column)" } ?? file
            return "  \(at): \(style.yellow("warning")): \(w.message)\n"
        }.joined()
    }

    /// At most `width` characters of a source line around `column` (1-based), with `…` where it
    /// was cut, and where the caret goes in what is shown (a 20 KB line is not echoed whole).
    static func excerpt(_ line: String, column: Int, width: Int = 100) -> (String, Int) {
        let chars = Array(line)
        let caret = max(0, min(column - 1, chars.count))
        guard chars.count > width else { return (line, caret) }
        let start = max(0, min(caret - width / 4, chars.count - width))
        let end = min(chars.count, start + width)
        let shown = (start > 0 ? "…" : "") + String(chars[start..<end]) + (end < chars.count ? "…" : "")
        return (shown, caret - start + (start > 0 ? 1 : 0))
    }

    func text(style: TextStyle) -> String {
        let name = document.map { "\(file) (document \($0 + 1))" } ?? file
        switch outcome {
        case .success(let config):
            let label = config.name.map { "\(config.typeName) \($0)" } ?? "\(config.typeName) (unnamed)"
            return "\(style.green("valid"))   \(name): \(label)\n" + warningLines(style)
        case .failure(let errors):
            var out = "\(style.red("invalid")) \(name): \(errors.issues.count) error\(errors.issues.count == 1 ? "" : "s")\n" + warningLines(style)
            let lines = String(decoding: source, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            for issue in errors.issues {
                let at = issue.location.map { "\(file):\($0.line):\($0.column)" } ?? file
                let path = issue.path.isEmpty ? "" : style.bold(issue.path) + ": "
                out += "  \(at): \(path)\(issue.message)\n"
                if !issue.isSecret, let loc = issue.location, loc.line >= 1, loc.line <= lines.count {
                    let (line, caretColumn) = Self.excerpt(String(lines[loc.line - 1]), column: loc.column)
                    let gutter = String(loc.line)
                    out += "    \(gutter) | \(line)\n"
                    out += "    \(String(repeating: " ", count: gutter.count)) | \(String(repeating: " ", count: caretColumn))\(style.red("^"))\n"
                }
            }
            return out
        }
    }
}
