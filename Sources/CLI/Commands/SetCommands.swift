import APIClient
import ArgumentParser
import Crypto
import Foundation
import Model
import SetpointConfiguration

/// Some configuration was invalid (its errors are printed): nothing is sent.
struct InvalidConfigurations: Error {}

/// Configurations read and validated locally, ready to send as a set.
struct LocalSet {
    var documents: [(file: String, text: String, configuration: AnyConfiguration)]
    var request: API.SetRequest
    /// Per archive (by hash): where its files come from, and how many.
    var code: [String: (root: String, files: Int)]

    /// Reads every file of `paths`, validates every document (all errors shown, located), and
    /// packs the code each service runs in (one archive per repository or folder). Throws
    /// `InvalidConfigurations` after printing when any document is invalid.
    static func read(_ paths: [String], env: [String: String], withCode: Bool = true) throws -> LocalSet {
        let files = try ConfigurationFiles.discover(paths)
        guard !files.isEmpty else {
            throw UsageError(message: "\(paths.joined(separator: ", ")): no configurations found (looked for *.dstack.yml and .dstack.yml)")
        }
        var documents: [(file: String, text: String, configuration: AnyConfiguration)] = []
        var invalid = false
        for file in files {
            let results = ConfigurationFiles.validate(file)
            let texts = ApplyCommand.documentTexts(String(decoding: results.first?.source ?? [], as: UTF8.self))
            for (i, result) in results.enumerated() {
                switch result.outcome {
                case .success(let c): documents.append((file, i < texts.count ? texts[i] : texts.last ?? "", c))
                case .failure:
                    invalid = true
                    Terminal.standardError.write(result.text(style: TextStyle(enabled: Terminal.standardError.isTerminal)))
                }
            }
        }
        if invalid { throw InvalidConfigurations() }
        var values = env
        var archives: [String: String] = [:]
        var byRoot: [String: String] = [:]
        var summaries: [String: (root: String, files: Int)] = [:]
        var docs: [API.SetDocument] = []
        for doc in documents {
            var code: String?
            if case .service(let service) = doc.configuration {
                for (key, value) in service.env {
                    if case .fromEnvironment = value, values[key] == nil, let v = ProcessInfo.processInfo.environment[key] { values[key] = v }
                }
                if withCode {
                    let (root, git) = CodeUpload.root(forConfiguration: doc.file)
                    if let hash = byRoot[root] { code = hash } else {
                        let archive = try CodeUpload.archive(root: root, git: git)
                        let hash = sha256(archive.data)
                        archives[hash] = archive.data.base64EncodedString()
                        byRoot[root] = hash
                        summaries[hash] = (root, archive.files)
                        code = hash
                    }
                }
            }
            docs.append(API.SetDocument(file: doc.file, configuration: doc.text, code: code))
        }
        return LocalSet(documents: documents, request: API.SetRequest(documents: docs, archives: archives, env: values),
                        code: summaries)
    }

    /// The set name a folder or repository suggests: the repository's top level (or the folder)
    /// named in lowercase letters, digits and `-`.
    static func defaultName(for paths: [String]) -> String {
        let first = paths.first ?? "."
        var isDir: ObjCBool = false
        let url = URL(fileURLWithPath: first).standardizedFileURL
        let dir = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && isDir.boolValue ? url.path : url.deletingLastPathComponent().path
        var base = URL(fileURLWithPath: dir).lastPathComponent
        if let top = try? CodeUpload.run(["git", "-C", dir, "rev-parse", "--show-toplevel"]).trimmingCharacters(in: .whitespacesAndNewlines), !top.isEmpty {
            base = URL(fileURLWithPath: top).lastPathComponent
        }
        var name = String(base.lowercased().map { ($0.isLetter || $0.isNumber) && $0.isASCII ? $0 : "-" })
        while name.hasPrefix("-") { name.removeFirst() }
        while name.hasSuffix("-") { name.removeLast() }
        return name.isEmpty ? "default" : String(name.prefix(63))
    }

    /// The archive's name: its SHA-256, which the server checks.
    static func sha256(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}

enum SetPlanText {
    /// The plan as a person reads it: one line per object, its diff under it.
    static func render(_ plan: API.SetPlan, style: TextStyle, showUnchanged: Bool = true) -> String {
        var out = ""
        let header = [plan.set.map { "Set: \($0)" + (plan.prune ? " (prune)" : "") }, "Project: \(plan.project)"].compactMap { $0 }
        out += style.bold(header.joined(separator: "   ")) + "\n"
        for e in plan.entries where showUnchanged || e.action != "unchanged" {
            let mark: String
            switch e.action {
            case "create": mark = style.green("+ create   ")
            case "update": mark = style.yellow("~ update   ")
            case "delete": mark = style.red("- delete   ")
            default: mark = "= unchanged"
            }
            var how = ""
            if let c = e.changes, e.action == "update" {
                let parts = [c.recreate.isEmpty ? nil : "recreate: " + c.recreate.joined(separator: ", "),
                             c.rolling.isEmpty ? nil : "rolling: " + c.rolling.joined(separator: ", "),
                             c.inPlace.isEmpty ? nil : "in place: " + c.inPlace.joined(separator: ", ")].compactMap { $0 }
                if !parts.isEmpty { how = "  " + parts.joined(separator: "; ") }
            }
            let kind = e.kind == "Run" ? "run    " : "gateway"
            out += "  \(mark) \(kind) \(e.name)\(e.file.map { "  (\($0))" } ?? "")\(how)\n"
            for line in e.diff {
                let colored = line.hasPrefix("+") ? style.green(line) : line.hasPrefix("-") ? style.red(line) : style.yellow(line)
                out += "        \(colored)\n"
            }
            if let note = e.note { out += "        " + style.yellow("note: ") + note + "\n" }
        }
        let changing = plan.entries.filter { $0.action != "unchanged" }.count
        let unchanged = plan.entries.count - changing
        out += changing == 0 ? "In sync: \(unchanged) object(s) unchanged.\n" : "\(changing) to change, \(unchanged) unchanged.\n"
        return out
    }
}

/// `setpoint diff -f DIR`: what `apply` would change, as the normalized configurations'
/// differences. Exit status 0 in sync, 1 different, 2 on error (as `diff(1)` and `kubectl diff`).
struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what apply would change; exit 0 when in sync, 1 when different, 2 on error.",
        discussion: "The comparison is of normalized configurations (defaults filled in, one spelling per value), so only real changes show. With --prune (and --set), objects of the set that are no longer in the files show as deletions.")

    @OptionGroup var server: ServerOptions
    @Option(name: [.customShort("f"), .customLong("file")], help: "A .dstack.yml file, or a directory of them (repeatable).") var paths: [String]
    @Option(help: "The set the files are applied as (see `apply --set`).") var set: String?
    @Flag(help: "Also show the set's objects that apply --prune would delete.") var prune = false
    @Option(name: [.customShort("e"), .customLong("env")], help: "Environment variable KEY=VALUE, or KEY to take it from your environment (repeatable).")
    var env: [String] = []

    func run() async throws {
        do {
            let environment = try ApplyCommand.environment(env)
            var local = try LocalSet.read(paths, env: environment)
            local.request.set = set ?? (prune ? LocalSet.defaultName(for: paths) : nil)
            local.request.prune = prune
            let plan = try await server.client().planSet(local.request)
            let style = TextStyle(enabled: Terminal.standardOutput.isTerminal)
            Terminal.standardOutput.write(SetPlanText.render(plan, style: style, showUnchanged: false))
            if !plan.inSync { throw ExitCode(1) }
        } catch let exit as ExitCode where exit.rawValue == 1 {
            throw exit
        } catch is InvalidConfigurations {
            throw ExitCode(2)
        } catch let failure as APIClient.Failure {
            Terminal.standardError.write("error: \(failure.description)\n")
            for i in failure.body?.issues ?? [] { Terminal.standardError.write("  \(i.located)\n") }
            throw ExitCode(2)
        } catch let usage as UsageError {
            Terminal.standardError.write("error: \(usage.message)\n")
            throw ExitCode(2)
        } catch let settings as SettingsError {
            Terminal.standardError.write("error: \(settings.message)\n")
            throw ExitCode(2)
        }
    }
}
