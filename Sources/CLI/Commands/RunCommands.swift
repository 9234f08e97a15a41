import APIClient
import ArgumentParser
import Foundation
import Model
import SetpointConfiguration

/// Options every command that talks to a server shares.
struct ServerOptions: ParsableArguments {
    @Option(name: .customLong("project"), help: "Project (default: SETPOINT_PROJECT, the config file, or main).")
    var project: String?

    func client() throws -> APIClient {
        var settings = try ClientSettings.load()
        if let project { settings.project = project }
        return settings.client
    }
}

/// Asks a yes/no question on a terminal; without a terminal, `-y` is required.
func confirm(_ question: String, yes: Bool) throws -> Bool {
    if yes { return true }
    guard isatty(STDIN_FILENO) == 1 else {
        throw UsageError(message: "\(question) — no terminal to ask on; pass -y to confirm")
    }
    Terminal.standardOutput.write("\(question) [y/n]: ")
    let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
    return answer == "y" || answer == "yes"
}

extension API.Run {
    var readyText: String { "\(status.readyReplicas)/\(status.desiredReplicas)" }
    var phaseText: String {
        if deleting { return "deleting" }
        if status.phase == .pending, status.desiredReplicas == 0 { return "waiting for requests" }
        if status.conditions.isTrue("Degraded") { return "\(status.phase.rawValue) (degraded)" }
        return status.phase.rawValue
    }
}

struct PsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List runs.")

    @OptionGroup var server: ServerOptions
    @Flag(name: .shortAndLong, help: "Include finished runs.") var all = false
    @Flag(name: .shortAndLong, help: "Keep watching and print the list again on every change.") var watch = false
    @Flag(name: .shortAndLong, help: "Show each run's status message (why replicas wait or fail).") var verbose = false
    @Option(name: [.customShort("o"), .customLong("output")], help: "table, json or yaml.") var output: OutputFormat = .table

    func run() async throws {
        let client = try server.client()
        try await render(try await client.runs())
        guard watch else { return }
        var last = ""
        for try await event in client.watch(kinds: ["run"]) where event.type != "bookmark" {
            let runs = try await client.runs()
            let text = table(runs)
            if text != last {
                if Terminal.standardOutput.isTerminal { Terminal.standardOutput.write("\u{1B}[H\u{1B}[2J") }
                Terminal.standardOutput.write(text)
                last = text
            }
        }
    }

    func visible(_ runs: [API.Run]) -> [API.Run] {
        runs.filter { all || !$0.status.phase.isFinished }.sorted { $0.createdAt > $1.createdAt }
    }

    func table(_ runs: [API.Run]) -> String {
        let style = TextStyle(enabled: Terminal.standardOutput.isTerminal)
        let rows = visible(runs).map { r in Self.row(r) + (verbose ? [r.status.message] : []) }
        return Render.table(["NAME", "STATUS", "READY", "DEPLOYMENT", "AGE", "URL"] + (verbose ? ["MESSAGE"] : []), rows, style: style)
    }

    /// NAME, STATUS, READY, DEPLOYMENT, AGE, URL (also `setpoint get runs`).
    static func row(_ r: API.Run) -> [String] {
        [r.name, r.phaseText, r.readyText, String(r.status.deploymentNum), Render.age(r.createdAt), r.url]
    }

    func render(_ runs: [API.Run]) async throws {
        switch output {
        case .json: print(Render.json(visible(runs)))
        case .yaml: print(Render.yaml(visible(runs)), terminator: "")
        case .table: Terminal.standardOutput.write(table(runs))
        }
    }
}

struct DescribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe", abstract: "Show a run: spec, conditions, replicas, events.")

    @OptionGroup var server: ServerOptions
    @Argument(help: "Run name.") var name: String
    @Option(name: [.customShort("o"), .customLong("output")], help: "table, json or yaml.") var output: OutputFormat = .table

    struct Description: Encodable {
        var run: API.Run
        var replicas: [API.Replica]
        var events: [EventSpec]
    }

    func run() async throws {
        let client = try server.client()
        let run = try await client.run(name)
        let replicas = try await client.replicas(name)
        let events = try await client.events(name)
        switch output {
        case .json: print(Render.json(Description(run: run, replicas: replicas, events: events)))
        case .yaml: print(Render.yaml(Description(run: run, replicas: replicas, events: events)), terminator: "")
        case .table:
            let style = TextStyle(enabled: Terminal.standardOutput.isTerminal)
            var out = ""
            let c = run.configuration
            func field(_ k: String) -> String {
                guard let v = c[k] else { return "-" }
                if case .null = v { return "-" }
                if case .string(let s) = v { return s }
                return v.serialized
            }
            out += "Name:         \(run.project)/\(run.name)\n"
            let message = run.status.message
            out += "Status:       \(run.phaseText)\(message.isEmpty || run.phaseText.contains(message) ? "" : " — \(message)")\n"
            out += "Ready:        \(run.readyText)\n"
            out += "Deployment:   \(run.status.deploymentNum) (generation \(run.generation), observed \(run.status.observedGeneration))\n"
            out += "URL:          \(run.url)\n"
            if let m = run.modelURL { out += "Model URL:    \(m)\n" }
            out += "Image:        \(field("image"))\n"
            out += "Commands:     \(field("commands"))\n"
            out += "Port:         \(c["port"]?["container_port"]?.serialized ?? "-")\n"
            out += "Replicas:     \(Self.replicasText(c))\n"
            out += "Resources:    \(ApplyCommand.resourcesText(c["resources"]))\n"
            out += "\nConditions:\n"
            out += Render.conditions(run.status.conditions, style: style)
            out += "\nReplicas:\n"
            out += Render.table(["NAME", "PHASE", "READY", "DEPLOYMENT", "REASON", "ENDPOINT", "MESSAGE"], replicas.map { r in
                [r.name, r.status.phase.rawValue, r.status.ready ? "yes" : "no", String(r.deploymentNum),
                 r.status.terminationReason?.rawValue ?? "-", r.status.endpoint ?? "-", r.status.message ?? "-"]
            }, style: style)
            out += "\nEvents:\n"
            out += events.isEmpty ? "  <none>\n" : Render.events(events, style: style)
            Terminal.standardOutput.write(out)
        }
    }
}

extension DescribeCommand {
    /// `2`, `0..4` (autoscaled), or per group `a: 1, b: 0..2`; `1` when not set.
    static func replicasText(_ c: JSONValue) -> String {
        func range(_ v: JSONValue?) -> String {
            guard let v, v != .null else { return "1" }
            let lo: String = { if case .int(let n)? = v["min"] { return String(n) } else { return "" } }()
            let hi: String = { if case .int(let n)? = v["max"] { return String(n) } else { return "" } }()
            return lo == hi ? lo : "\(lo)..\(hi)"
        }
        if case .array(let groups)? = c["groups"] {
            return groups.map { g in
                let name: String = { if case .string(let s)? = g["name"] { return s } else { return "?" } }()
                return "\(name): \(range(g["replicas"]))"
            }.joined(separator: ", ")
        }
        return range(c["replicas"])
    }
}

struct StopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a run (gracefully, or at once with -x).")

    @OptionGroup var server: ServerOptions
    @Argument(help: "Run name.") var name: String
    @Flag(name: [.customShort("x"), .customLong("abort")], help: "Kill replicas at once instead of stopping them gracefully.") var abort = false
    @Flag(name: .shortAndLong, help: "Do not ask for confirmation.") var yes = false
    @Flag(name: .shortAndLong, help: "Return once the stop is requested, without waiting for the replicas to end.") var detach = false

    func run() async throws {
        let client = try server.client()
        guard try confirm("Stop the run \(name)?", yes: yes) else { return }
        _ = try await client.stop(name, abort: abort)
        print("Stopping \(name)\(abort ? " (abort)" : "")")
        guard !detach else { return }
        let style = TextStyle(enabled: Terminal.standardOutput.isTerminal)
        _ = try await RunFollower(name: name, client: client, style: style).follow { run in
            run.status.phase.isFinished ? .done : .waiting
        }
        print("Stopped \(name)")
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a run and everything it runs.")

    @OptionGroup var server: ServerOptions
    @Argument(help: "Run name.") var name: String
    @Flag(name: .shortAndLong, help: "Do not ask for confirmation.") var yes = false

    func run() async throws {
        let client = try server.client()
        guard try confirm("Delete the run \(name)?", yes: yes) else { return }
        _ = try await client.delete(name)
        print("Deleting \(name)")
    }
}

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show a run's output.")

    @OptionGroup var server: ServerOptions
    @Argument(help: "Run name.") var name: String
    @Option(help: "Only this replica number (default: every replica, each line prefixed with its replica when there are several).")
    var replica: Int?
    @Flag(name: .shortAndLong, help: "Keep following new output.") var follow = false

    func run() async throws {
        let client = try server.client()
        let prefix = replica == nil ? try await client.replicas(name).count > 1 : false
        var failed: [String] = []
        for try await line in client.logs(name, replica: replica, follow: follow) {
            if let error = line.error {
                failed.append(line.replica)
                Terminal.standardError.write("error: cannot read the logs of replica \(line.replica): \(error)\n")
                continue
            }
            print(prefix ? "[\(line.replica)] \(line.text)" : line.text)
        }
        if !failed.isEmpty { throw ExitCode.failure }
    }
}

struct OfferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "offer", abstract: "Show what the server's backends offer.")

    @OptionGroup var server: ServerOptions
    @Option(name: [.customShort("o"), .customLong("output")], help: "table, json or yaml.") var output: OutputFormat = .table

    func run() async throws {
        let offers = try await server.client().offers()
        switch output {
        case .json: print(Render.json(offers))
        case .yaml: print(Render.yaml(offers), terminator: "")
        case .table: Terminal.standardOutput.write(OfferTable.render(offers, style: TextStyle(enabled: Terminal.standardOutput.isTerminal)))
        }
    }
}

enum OfferTable {
    static func render(_ offers: [API.OfferInfo], style: TextStyle) -> String {
        Render.table(["#", "BACKEND", "REGION", "INSTANCE", "RESOURCES", "SPOT", "PRICE"], offers.enumerated().map { i, o in
            let gpus = o.gpus.isEmpty ? "" : ", " + o.gpus.joined(separator: ",")
            return [String(i + 1), o.backend, o.region, o.instance,
                    "\(o.cpus)xCPU, \(Memory.text(o.memoryGB)), \(Memory.text(o.diskGB)) (disk)\(gpus)",
                    o.spot ? "yes" : "no", "$\(PythonFormat.float(o.price).replacingOccurrences(of: ".0", with: ""))"]
        }, style: style)
    }
}
