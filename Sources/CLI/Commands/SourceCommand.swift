import APIClient
import ArgumentParser
import Foundation
import Model
import SetpointConfiguration

/// `setpoint source …`: Git repositories of configurations the server keeps applied.
struct SourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "source",
        abstract: "Keep a Git repository's configurations applied (GitOps): create, list, describe, sync, suspend, resume, delete.",
        discussion: "docs/gitops.md walks through it.",
        subcommands: [Create.self, Apply.self, List.self, Describe.self, Sync.self, Suspend.self, Resume.self, Delete.self])

    /// The spec options `create` takes (also the fields of a source file).
    struct SpecOptions: ParsableArguments {
        @Option(name: .customLong("git"), help: "The repository: https://…, ssh://…, git@host:path, git://… or a local path.") var url: String
        @Option(help: "Follow this branch (default main).") var branch: String?
        @Option(help: "Apply this tag.") var tag: String?
        @Option(help: "Apply this commit.") var commit: String?
        @Option(help: "The folder of the repository to apply (default: all of it).") var path: String?
        @Option(help: "How often to fetch: 30s, 1m, 5m, … (default 1m).") var interval: String = "1m"
        @Flag(help: "Delete what the source applied once the repository no longer has it.") var prune = false
        @Flag(name: .customLong("self-heal"), help: "Apply again when an object it applied is changed by other means.") var selfHeal = false
        @Flag(help: "Create it suspended (neither fetching nor applying).") var suspend = false
        @Option(name: .customLong("token-secret"), help: "Project secret holding an HTTPS token (sent as Basic auth).") var tokenSecret: String?
        @Option(help: "User name for the token (default git; GitHub: x-access-token, GitLab: oauth2).") var username: String?
        @Option(name: .customLong("ssh-key-secret"), help: "Project secret holding an SSH private key.") var sshKeySecret: String?
        @Option(name: .customLong("known-hosts-file"), help: "The SSH server's host keys (known_hosts lines); without it the first key seen is pinned.")
        var knownHostsFile: String?
        @Option(name: .customLong("webhook-secret"), help: "Project secret that signs push webhooks (GitHub, Gitea; GitLab's token).") var webhookSecret: String?

        func spec() throws -> SourceSpec {
            let refs = [branch.map(SourceRef.branch), tag.map(SourceRef.tag), commit.map(SourceRef.commit)].compactMap { $0 }
            guard refs.count <= 1 else { throw ValidationError("give one of --branch, --tag and --commit") }
            let seconds: Int
            switch Grammar.duration(interval) {
            case .success(let s): seconds = s
            case .failure(let e): throw ValidationError("--interval: \(e.message)")
            }
            var hosts: String?
            if let file = knownHostsFile {
                guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("--known-hosts-file \(file): cannot read the file") }
                hosts = String(decoding: data, as: UTF8.self)
            }
            return SourceSpec(url: url, ref: refs.first ?? .branch("main"), path: path, interval: seconds, prune: prune, selfHeal: selfHeal,
                              suspend: suspend, tokenSecret: tokenSecret, username: username, sshKeySecret: sshKeySecret, knownHosts: hosts,
                              webhookSecret: webhookSecret)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create (or change) a source; the server fetches it at once.")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Source name.") var name: String
        @OptionGroup var spec: SpecOptions
        @Flag(name: .shortAndLong, help: "Return without following the first sync.") var detach = false

        func run() async throws {
            let client = try server.client()
            let source = try await client.applySource(API.SourceRequest(name: name, spec: try spec.spec()))
            try await SourceCommand.created(source, client: client, detach: detach)
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or change a source from a file.",
            discussion: """
                The file holds the options of `source create` as properties:
                  name: infra
                  git: https://git.example.com/org/infra.git
                  branch: main          # or tag, or commit
                  path: services
                  interval: 1m
                  prune: true
                  self_heal: true
                  token_secret: GIT_TOKEN
                  webhook_secret: HOOK_SECRET
                """)
        @OptionGroup var server: ServerOptions
        @Option(name: [.customShort("f"), .customLong("file")], help: "The source file (YAML).") var file: String
        @Flag(name: .shortAndLong, help: "Return without following the first sync.") var detach = false

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw UsageError(message: "\(file): cannot read the file") }
            let request: API.SourceRequest
            do { request = try SourceFile.read(String(decoding: data, as: UTF8.self), file: file) } catch let e as SourceFile.Problem {
                Terminal.standardError.write("error: \(e.message)\n")
                throw ExitCode(1)
            }
            let client = try server.client()
            try await SourceCommand.created(try await client.applySource(request), client: client, detach: detach)
        }
    }

    /// After create or apply: where it stands, and (unless detached) its first sync followed.
    static func created(_ source: API.SourceView, client: APIClient, detach: Bool) async throws {
        say("Source \(source.name) follows \(source.spec.ref) of \(source.spec.url)\(source.spec.path.map { " (folder \($0))" } ?? "").")
        if let hook = source.webhookPath { say("Push webhook: \(client.baseURL)\(hook)") }
        if detach || source.spec.suspend { return }
        let style = TextStyle(enabled: Terminal.standardOutput.isTerminal)
        var last = ""
        let deadline = Date().addingTimeInterval(600)
        while Date() < deadline {
            let s = try await client.source(source.name)
            let line = SourceText.summary(s)
            if line != last { say("  " + line); last = line }
            if s.status.conditions.isTrue("Stalled") {
                Terminal.standardOutput.write(SourceText.describe(s, style: style))
                throw ExitCode(1)
            }
            if s.status.conditions.isTrue("Ready") && s.status.lastApplied != nil {
                Terminal.standardOutput.write(SourceText.describe(s, style: style))
                return
            }
            if s.status.fetchFailures > 0 {
                Terminal.standardError.write("error: \(s.status.message ?? "the fetch failed")\n")
                throw ExitCode(1)
            }
            try await Task.sleep(for: .milliseconds(300))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sources: revision, sync and health.")
        @OptionGroup var server: ServerOptions
        @Option(name: [.customShort("o"), .customLong("output")], help: "table, json or yaml.") var output: OutputFormat = .table

        func run() async throws {
            let sources = try await server.client().sources()
            switch output {
            case .json: say(Render.json(sources))
            case .yaml: Terminal.standardOutput.write(Render.yaml(sources))
            case .table:
                Terminal.standardOutput.write(Render.table(["NAME", "REPOSITORY", "REF", "REVISION", "READY", "OBJECTS", "MESSAGE"], sources.map { s in
                    [s.name, s.spec.url, s.spec.ref.description, SourceText.revision(s), SourceText.ready(s), SourceText.objects(s), s.status.message ?? ""]
                }, style: TextStyle(enabled: Terminal.standardOutput.isTerminal)))
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A source in detail: revisions, each object's sync and health, conditions, events.")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Source name.") var name: String
        @Flag(name: .shortAndLong, help: "Keep watching: print it again on every change (revisions, sync, health).") var watch = false
        @Option(name: [.customShort("o"), .customLong("output")], help: "table, json or yaml.") var output: OutputFormat = .table

        func run() async throws {
            let client = try server.client()
            let style = TextStyle(enabled: Terminal.standardOutput.isTerminal)
            func render() async throws -> String {
                let source = try await client.source(name)
                switch output {
                case .json: return Render.json(source) + "\n"
                case .yaml: return Render.yaml(source)
                case .table:
                    let events = (try? await client.sourceEvents(name)) ?? []
                    return SourceText.describe(source, style: style, events: events)
                }
            }
            var last = try await render()
            Terminal.standardOutput.write(last)
            guard watch else { return }
            for try await event in client.watch(kinds: ["source", "run"]) where event.kind == SourceKind.name && event.name == name || event.kind == RunKind.name {
                let text = try await render()
                guard text != last else { continue }
                if Terminal.standardOutput.isTerminal { Terminal.standardOutput.write("\u{1B}[H\u{1B}[2J") } else { Terminal.standardOutput.write("---\n") }
                Terminal.standardOutput.write(text)
                last = text
            }
        }
    }

    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch now and apply what the repository says (drift reverted once, self-heal or not).")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Source name.") var name: String
        @Flag(name: .shortAndLong, help: "Return without waiting for the sync.") var detach = false

        func run() async throws {
            let client = try server.client()
            let asked = try await client.sourceAction(name, "sync")
            Terminal.standardOutput.write("Sync of \(name) asked for.\n")
            if detach { return }
            let style = TextStyle(enabled: Terminal.standardOutput.isTerminal)
            let deadline = Date().addingTimeInterval(600)
            while Date() < deadline {
                let s = try await client.source(name)
                let handled = s.status.handledSyncRequest >= asked.spec.syncRequest
                if handled {
                    if s.status.conditions.isTrue("Stalled") || s.status.fetchFailures > 0 {
                        Terminal.standardOutput.write(SourceText.describe(s, style: style))
                        throw ExitCode(1)
                    }
                    let current = s.status.lastApplied?.commit == s.status.lastAttempted?.commit
                    if current && s.status.conditions.isTrue("Ready") || s.status.conditions["Reconciling"]?.status == "False" {
                        Terminal.standardOutput.write(SourceText.describe(s, style: style))
                        return
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
            }
            throw UsageError(message: "source \(name) did not finish its sync within 10 minutes: `setpoint source describe \(name)` says where it is")
        }
    }

    struct Suspend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop fetching and applying (what runs keeps running; for a hand rollback, say).")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Source name.") var name: String
        func run() async throws {
            _ = try await server.client().sourceAction(name, "suspend")
            say("Source \(name) suspended: it neither fetches nor applies until `setpoint source resume \(name)`.")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch and apply again.")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Source name.") var name: String
        func run() async throws {
            _ = try await server.client().sourceAction(name, "resume")
            say("Source \(name) resumed.")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a source. Its objects stay (applied by hand from then on) unless --cascade.")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Source name.") var name: String
        @Flag(help: "Delete the runs and gateways it applied too.") var cascade = false
        @Flag(name: .shortAndLong, help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            let question = cascade ? "Delete the source \(name) and every run and gateway it applied?" : "Delete the source \(name) (its runs and gateways stay)?"
            guard try confirm(question, yes: yes) else { return }
            let client = try server.client()
            _ = try await client.deleteSource(name, cascade: cascade)
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                do { _ = try await client.source(name) } catch let f as APIClient.Failure where f.status == 404 {
                    say(cascade ? "Deleted source \(name) and its objects." : "Deleted source \(name); its objects stay.")
                    return
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            say("Source \(name) is being deleted.")
        }
    }
}

enum SourceText {
    static func revision(_ s: API.SourceView) -> String { s.status.lastApplied.map { String($0.commit.prefix(12)) } ?? "-" }
    static func ready(_ s: API.SourceView) -> String { s.spec.suspend ? "suspended" : (s.status.conditions.isTrue("Ready") ? "yes" : "no") }
    /// `3/4 synced`: the objects in sync, of those not pruned.
    static func objects(_ s: API.SourceView) -> String {
        "\(s.status.objects.filter { $0.sync == "Synced" }.count)/\(s.status.objects.filter { $0.sync != "Pruned" }.count) synced"
    }

    static func summary(_ s: API.SourceView) -> String {
        let revision = s.status.lastApplied.map { "applied \($0.short)" } ?? s.status.lastAttempted.map { "fetched \($0.short)" } ?? "not fetched yet"
        let why = [s.status.message, s.status.conditions["Reconciling"]?.message].compactMap { $0 }.first { !$0.isEmpty } ?? "fetching"
        return "\(revision): \(why)"
    }

    static func describe(_ s: API.SourceView, style: TextStyle, events: [EventSpec] = []) -> String {
        var out = ""
        func row(_ k: String, _ v: String) { out += style.bold(k.padding(toLength: 14, withPad: " ", startingAt: 0)) + v + "\n" }
        row("Source:", "\(s.project)/\(s.name)" + (s.deleting ? " (deleting)" : ""))
        row("Repository:", s.spec.url)
        row("Ref:", s.spec.ref.description + (s.spec.path.map { ", folder \($0)" } ?? ""))
        row("Interval:", "\(s.spec.interval) s" + (s.spec.prune ? ", prune" : "") + (s.spec.selfHeal ? ", self-heal" : "") + (s.spec.suspend ? ", suspended" : ""))
        if let t = s.spec.tokenSecret { row("Credentials:", "token from secret \(t)") }
        if let k = s.spec.sshKeySecret { row("Credentials:", "SSH key from secret \(k)") }
        if let hook = s.webhookPath { row("Webhook:", "\(hook) (secret \(s.spec.webhookSecret ?? ""))") }
        row("Attempted:", s.status.lastAttempted.map { $0.short + ($0.author.isEmpty ? "" : " by \($0.author)") } ?? "-")
        row("Applied:", s.status.lastApplied.map { $0.short + (s.status.lastAppliedAt.map { " \(Render.age($0)) ago" } ?? "") } ?? "-")
        if let e = s.status.error { row("Error:", style.red(e)) }
        row("Message:", s.status.message ?? "")
        if !s.status.objects.isEmpty {
            out += "\n" + Render.table(["KIND", "NAME", "SYNC", "HEALTH", "FILE", "MESSAGE"], s.status.objects.map { o in
                [o.kind.lowercased(), o.name, o.sync, o.health, o.file ?? "-", [o.message, o.healthMessage].compactMap { $0 }.joined(separator: "; ")]
            }, style: style)
        }
        if !s.status.conditions.isEmpty {
            out += "\nConditions:\n" + Render.conditions(s.status.conditions, style: style)
        }
        out += "\nEvents:\n" + (events.isEmpty ? "  <none>\n" : Render.events(events, style: style, objects: false))
        return out
    }
}

/// A source file: the options of `source create`, as YAML properties, read with the
/// configuration's loader so every error names its line and property.
enum SourceFile {
    struct Problem: Error { var message: String }

    static func read(_ text: String, file: String) throws -> API.SourceRequest {
        let loaded = YAMLLoader.load(text)
        guard let root = loaded.root, case .map(let pairs) = root.value else {
            throw Problem(message: "\(file): expected a mapping of the source's properties (name, git, branch, …)")
        }
        func fail(_ node: YAMLNode, _ property: String, _ why: String) -> Problem {
            Problem(message: "\(file):\(node.location.line):\(node.location.column): source.\(property): \(why)")
        }
        let known: Set<String> = ["type", "name", "git", "branch", "tag", "commit", "path", "interval", "prune", "self_heal", "suspend",
                                  "token_secret", "username", "ssh_key_secret", "known_hosts", "webhook_secret"]
        for pair in pairs {
            guard case .string(let key) = pair.key.value else { throw fail(pair.key, "", "property names are strings") }
            if !known.contains(key) { throw fail(pair.key, key, "unknown property (known: \(known.sorted().joined(separator: ", ")))") }
        }
        func string(_ key: String) throws -> String? {
            guard let n = root[key], !n.isNull else { return nil }
            switch n.value {
            case .string(let s): return s
            case .int(let i): return String(i)
            default: throw fail(n, key, "expected a string, got \(n.kindName)")
            }
        }
        func bool(_ key: String) throws -> Bool {
            guard let n = root[key], !n.isNull else { return false }
            guard case .bool(let b) = n.value else { throw fail(n, key, "expected true or false, got \(n.kindName)") }
            return b
        }
        if let type = try string("type"), type != "source" { throw fail(root["type"]!, "type", "expected `source`, got `\(type)`") }
        guard let name = try string("name") else { throw Problem(message: "\(file): source.name: missing required property") }
        guard let url = try string("git") else { throw Problem(message: "\(file): source.git: missing required property (the repository's URL)") }
        let refs = try [("branch", string("branch").map(SourceRef.branch)), ("tag", string("tag").map(SourceRef.tag)),
                        ("commit", string("commit").map(SourceRef.commit))].filter { $0.1 != nil }
        if refs.count > 1 { throw fail(root[refs[1].0]!, refs[1].0, "give one of branch, tag and commit") }
        var interval = 60
        if let n = root["interval"], !n.isNull {
            switch Grammar.duration(n.displayText) {
            case .success(let s): interval = s
            case .failure(let e): throw fail(n, "interval", e.message)
            }
        }
        let spec = SourceSpec(url: url, ref: refs.first?.1 ?? .branch("main"), path: try string("path"), interval: interval,
                              prune: try bool("prune"), selfHeal: try bool("self_heal"), suspend: try bool("suspend"),
                              tokenSecret: try string("token_secret"), username: try string("username"), sshKeySecret: try string("ssh_key_secret"),
                              knownHosts: try string("known_hosts"), webhookSecret: try string("webhook_secret"))
        return API.SourceRequest(name: name, spec: spec)
    }
}

/// A line on standard output, in order with the tables written there.
func say(_ text: String) { Terminal.standardOutput.write(text + "\n") }
