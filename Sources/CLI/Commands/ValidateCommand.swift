import ArgumentParser
import Configuration
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
        var anyInvalid = false
        var out = ""
        let style = TextStyle(enabled: output == .text && Terminal.standardOutput.isTerminal)
        var validCount = 0
        var invalidCount = 0
        for file in files {
            let results = ConfigurationFiles.validate(file)
            for result in results {
                if result.ok { validCount += 1 } else { invalidCount += 1; anyInvalid = true }
                switch output {
                case .json: out += result.jsonLine + "\n"
                case .text: out += result.text(style: style)
                }
            }
            if out.utf8.count > 64 * 1024 {
                Terminal.standardOutput.write(out)
                out = ""
            }
        }
        if output == .text {
            if files.isEmpty {
                out += "no configurations found (looked for *.dstack.yml and .dstack.yml)\n"
            } else {
                let summary = "\(validCount) valid, \(invalidCount) invalid"
                out += invalidCount > 0 ? style.red(summary) + "\n" : style.green(summary) + "\n"
            }
        }
        Terminal.standardOutput.write(out)
        if anyInvalid { throw ExitCode(1) }
        if files.isEmpty { throw ExitCode(1) }
    }
}

/// Finding configuration files and validating them.
public enum ConfigurationFiles {
    /// Files named by `paths`: files as given, directories searched recursively (sorted) for
    /// `*.dstack.yml` and `.dstack.yml`, skipping `.git`.
    public static func discover(_ paths: [String]) throws -> [String] {
        var result: [String] = []
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw UsageError(message: "\(path): no such file or directory")
            }
            if !isDirectory.boolValue {
                result.append(path)
                continue
            }
            guard let walker = fm.enumerator(atPath: path) else {
                throw UsageError(message: "\(path): cannot read the directory")
            }
            var found: [String] = []
            while let entry = walker.nextObject() as? String {
                let name = (entry as NSString).lastPathComponent
                if name == ".git" || name == ".build" { walker.skipDescendants(); continue }
                if name.hasSuffix(".dstack.yml") {
                    let full = path == "." ? entry : (path as NSString).appendingPathComponent(entry)
                    var dir: ObjCBool = false
                    if fm.fileExists(atPath: full, isDirectory: &dir), !dir.boolValue { found.append(full) }
                }
            }
            result.append(contentsOf: found.sorted())
        }
        return result
    }

    /// Validates every document of one file; an unreadable file gets one failed result.
    public static func validate(_ file: String) -> [ValidationResult] {
        guard let data = FileManager.default.contents(atPath: file) else {
            return [ValidationResult(file: file, document: nil, source: "", outcome: .failure(ConfigurationErrors([
                ConfigurationIssue(path: "", location: nil, message: "cannot read the file"),
            ])))]
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return [ValidationResult(file: file, document: nil, source: "", outcome: .failure(ConfigurationErrors([
                ConfigurationIssue(path: "", location: nil, message: "the file is not UTF-8 text"),
            ])))]
        }
        let documents = ConfigurationParser.parse(text)
        return documents.map { doc in
            ValidationResult(file: file, document: documents.count > 1 ? doc.index : nil, source: text, outcome: doc.result,
                             warnings: doc.warnings)
        }
    }
}

/// The outcome for one configuration document, printable as text or as a JSON line.
public struct ValidationResult: Sendable {
    public var file: String
    /// The document's position when the file holds several.
    public var document: Int?
    var source: String
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

    func text(style: TextStyle) -> String {
        let name = document.map { "\(file) (document \($0 + 1))" } ?? file
        switch outcome {
        case .success(let config):
            let label = config.name.map { "\(config.typeName) \($0)" } ?? "\(config.typeName) (unnamed)"
            return "\(style.green("valid"))   \(name): \(label)\n" + warningLines(style)
        case .failure(let errors):
            var out = "\(style.red("invalid")) \(name): \(errors.issues.count) error\(errors.issues.count == 1 ? "" : "s")\n" + warningLines(style)
            let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
            for issue in errors.issues {
                let at = issue.location.map { "\(file):\($0.line):\($0.column)" } ?? file
                let path = issue.path.isEmpty ? "" : style.bold(issue.path) + ": "
                out += "  \(at): \(path)\(issue.message)\n"
                if !issue.isSecret, let loc = issue.location, loc.line >= 1, loc.line <= lines.count {
                    let line = String(lines[loc.line - 1])
                    let gutter = String(loc.line)
                    out += "    \(gutter) | \(line)\n"
                    let caretColumn = max(0, min(loc.column - 1, line.count))
                    out += "    \(String(repeating: " ", count: gutter.count)) | \(String(repeating: " ", count: caretColumn))\(style.red("^"))\n"
                }
            }
            return out
        }
    }
}
