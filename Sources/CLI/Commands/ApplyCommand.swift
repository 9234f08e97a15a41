import APIClient
import ArgumentParser
import Foundation
import Logging
import Model
import NIOCore
import Proxy
import Server
import SetpointConfiguration

struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Apply a service configuration: validate, plan, confirm, submit, and follow until it serves.")

    @OptionGroup var server: ServerOptions
    @Option(name: [.customShort("f"), .customLong("file")], help: "A .dstack.yml file, or a directory of them (repeatable).") var paths: [String]
    @Flag(name: .shortAndLong, help: "Do not ask for confirmation.") var yes = false
    @Flag(name: .shortAndLong, help: "Submit and return without following the run.") var detach = false
    @Flag(help: "Apply even when nothing changed or the run moved since the plan.") var force = false
    @Option(name: [.customShort("n"), .customLong("name")], help: "Run name (overrides `name`; one configuration only).") var name: String?
    @Option(name: [.customShort("e"), .customLong("env")], help: "Environment variable KEY=VALUE, or KEY to take it from your environment (repeatable).")
    var env: [String] = []
    @Option(help: "Apply the files as this set: its objects carry the name, and --prune deletes the ones no longer in the files (default with --prune: the repository's or folder's name).")
    var set: String?
    @Flag(help: "Delete the set's objects that are no longer in the files (never objects applied by hand or by another set).")
    var prune = false

    func validate() throws {
        if name != nil, set != nil || prune { throw ValidationError("-n names one run: it cannot be used with --set or --prune") }
    }

    func run() async throws {
        let environment = try Self.environment(env)
        let local: LocalSet
        do { local = try LocalSet.read(paths, env: environment) } catch is InvalidConfigurations {
            Terminal.standardError.write("error: nothing was applied: fix the configuration(s) above first\n")
            throw ExitCode(1)
        }
        let client = try server.client()
        let style = TextStyle(enabled: Terminal.standardOutput.isTerminal)
        if local.documents.count == 1, set == nil, !prune {
            let doc = local.documents[0]
            let entry = local.request.documents[0]
            guard case .service = doc.configuration else {
                try await applyGateway(doc.file, doc.text, client: client)
                return
            }
            try await applyService(doc.file, doc.text, code: entry.code.flatMap { local.request.archives[$0] }, env: local.request.env,
                                   summary: entry.code.flatMap { local.code[$0] }, client: client, style: style)
            return
        }
        if name != nil { throw UsageError(message: "-n names one run, and \(local.documents.count) configurations were found: apply one file with it") }
        try await applySet(local, client: client, style: style)
    }

    /// Several configurations (or a named set): one plan for all, one confirmation, applied
    /// as a unit by the server, then followed.
    func applySet(_ local: LocalSet, client: APIClient, style: TextStyle) async throws {
        var request = local.request
        request.set = set ?? (prune ? LocalSet.defaultName(for: paths) : nil)
        request.prune = prune
        request.force = force
        let plan = try await client.planSet(request)
        Terminal.standardOutput.write(SetPlanText.render(plan, style: style))
        if plan.inSync {
            print("Detected no changes.")
            return
        }
        guard try confirm("Apply these changes?", yes: yes) else { return }
        request.expected = plan.expected
        let result = try await client.applySet(request)
        for entry in result.plan.entries where entry.action == "delete" { print("Deleted \(entry.kind.lowercased()) \(entry.name).") }
        if detach {
            for run in result.runs { print("Run \(run.name) submitted: \(run.url)") }
            for g in result.gateways { print("Gateway \(g.name) submitted.") }
            return
        }
        for gateway in result.gateways { try await followGateway(gateway, client: client) }
        for run in result.runs {
            print(style.bold("Run \(run.name):"))
            try await follow(run, client: client, style: style)
        }
    }

    /// One service: dstack's plan (offers included), confirmation, apply, follow.
    func applyService(_ file: String, _ text: String, code: String?, env: [String: String], summary: (root: String, files: Int)?,
                      client: APIClient, style: TextStyle) async throws {
        var request = API.ApplyRequest(configuration: text, file: file, env: env, name: name, force: force, code: code)
        let plan = try await client.plan(request)
        Terminal.standardOutput.write(Self.describe(plan, file: file, style: style))
        if let code, let summary {
            print("Code: \(summary.files) file(s) from \(summary.root) (\(max(1, (code.count * 3 / 4) >> 10)) KB)\n")
        }
        switch plan.action {
        case "none":
            print("Detected no changes.")
            if !force {
                if yes { print("Use --force to apply anyway.") }
                return
            }
        case "update":
            print("Active run \(plan.runName) already exists.")
            if let source = plan.current?.managedBy {
                print(style.yellow("Warning: ") + "run \(plan.runName) is managed by source \(source): this change shows there as drift, and is reverted if it heals itself (change the repository instead, or `setpoint source suspend \(source)` first).")
            }
            if !plan.changes.inPlace.isEmpty { print("Changes applied in place: \(plan.changes.inPlace.joined(separator: ", "))") }
            if !plan.changes.rolling.isEmpty { print("Changes rolled out replica by replica: \(plan.changes.rolling.joined(separator: ", "))") }
            if !plan.changes.recreate.isEmpty { print("Changes that stop all replicas and start new ones: \(plan.changes.recreate.joined(separator: ", "))") }
        default:
            break
        }
        let question = plan.action == "update" ? "Update the run \(plan.runName)?" : "Submit the run \(plan.runName)?"
        guard try confirm(question, yes: yes) else { return }
        request.resourceVersion = plan.resourceVersion
        let run = try await client.apply(request)
        if detach {
            print("Run \(run.name) submitted. Follow it with `setpoint ps -w` or `setpoint describe \(run.name)`.")
            print("Service is published at:\n  \(run.url)")
            return
        }
        try await follow(run, client: client, style: style)
    }

    /// Plans a gateway (create, update in place, replace), confirms, applies, and follows it
    /// until it is Ready (or Stalled).
    func applyGateway(_ file: String, _ text: String, client: APIClient) async throws {
        var request = API.ApplyRequest(configuration: text, file: file, name: name, force: force)
        let plan = try await client.planGateway(request)
        print("Project:     \(plan.project)\nGateway:     \(plan.name)")
        for key in ["backend", "region", "domain", "replicas", "certificate"] {
            if let v = plan.configuration[key], v != .null { print("\(key.padding(toLength: 12, withPad: " ", startingAt: 0)) \({ if case .string(let s) = v { return s }; return v.serialized }())") }
        }
        switch plan.action {
        case "none":
            print("Detected no changes.")
            if !force { return }
        case "update": print("Changes applied in place: \(plan.changes.joined(separator: ", "))")
        case "replace": print("Changes that replace the gateway's processes: \(plan.changes.joined(separator: ", "))")
        default: break
        }
        guard try confirm(plan.action == "create" ? "Create the gateway \(plan.name)?" : "Update the gateway \(plan.name)?", yes: yes) else { return }
        request.resourceVersion = plan.resourceVersion
        let gateway = try await client.applyGateway(request)
        if detach {
            print("Gateway \(gateway.name) submitted. Follow it with `setpoint gateway describe \(gateway.name)`.")
            return
        }
        try await followGateway(gateway, client: client)
    }

    /// Waits until the gateway is Ready (or Stalled), saying what it waits for meanwhile.
    func followGateway(_ applied: API.Gateway, client: APIClient) async throws {
        var gateway = applied
        let generation = gateway.generation
        var lastMessage = ""
        while true {
            let g = try await client.gateway(gateway.name)
            gateway = g
            if let m = g.status.message, m != lastMessage { print("  \(m)"); lastMessage = m }
            if g.status.observedGeneration >= generation && g.status.conditions.isTrue("Ready") { break }
            if g.status.conditions.isTrue("Stalled") {
                let why = g.status.conditions.first { $0.type == "Stalled" }?.message ?? "stalled"
                Terminal.standardError.write("error: gateway \(g.name) cannot run: \(why)\n")
                throw ExitCode(1)
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        print("Gateway \(gateway.name) is serving at \(gateway.status.address ?? "?")\(gateway.status.httpPort.map { ":\($0)" } ?? "").")
        if let pattern = gateway.serviceURLPattern {
            print("Point *.\(gateway.status.domain ?? "") at it; services are published at \(pattern)")
        }
    }

    /// Shows progress until the run is Ready (or stalls, or fails), then where it is published.
    func follow(_ applied: API.Run, client: APIClient, style: TextStyle) async throws {
        let generation = applied.generation
        let run = try await RunFollower(name: applied.name, client: client, style: style).follow { run in
            run.status.observedGeneration >= generation && run.status.conditions.isTrue("Ready")
                && (run.status.readyReplicas > 0 || run.status.desiredReplicas == 0) ? .done : .waiting
        }
        print("Service is published at:\n  \(run.url)")
        if let model = run.modelURL, case .string(let name)? = run.configuration["model"]?["name"] {
            print("Model \(name) is published at:\n  \(model)")
        }
    }

    static func environment(_ pairs: [String]) throws -> [String: String] {
        var result: [String: String] = [:]
        for pair in pairs {
            if let eq = pair.firstIndex(of: "=") {
                result[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            } else if let v = ProcessInfo.processInfo.environment[pair] {
                result[pair] = v
            } else {
                throw UsageError(message: "-e \(pair): the variable is not set in your environment; use -e \(pair)=value")
            }
        }
        return result
    }

    /// The text of each `---`-separated document of a file (`ConfigurationParser.documentTexts`).
    static func documentTexts(_ text: String) -> [String] { ConfigurationParser.documentTexts(text) }

    /// `cpu=2.. mem=8GB.. disk=100GB..` (dstack's plan form) from normalized `resources`; GPUs
    /// only when asked for (a count above zero, or a name).
    static func resourcesText(_ r: JSONValue?) -> String {
        guard let r, r != .null else { return "-" }
        func text(_ v: JSONValue) -> String {
            switch v {
            case .string(let s): return s
            case .int(let i): return String(i)
            case .double(let d): return Memory.text(d).replacingOccurrences(of: "GB", with: "")
            default: return v.serialized
            }
        }
        func range(_ v: JSONValue?, unit: String = "") -> String? {
            guard let v, case .object = v else { return nil }
            let lo = v["min"].flatMap { $0 == .null ? nil : text($0) + unit } ?? ""
            let hi = v["max"].flatMap { $0 == .null ? nil : text($0) + unit } ?? ""
            return lo == hi ? lo : "\(lo)..\(hi)"
        }
        var parts: [String] = []
        if let cpu = range(r["cpu"]?["count"]) {
            let arch = r["cpu"]?["arch"].flatMap { if case .string(let a) = $0 { return a + ":" } else { return nil } } ?? ""
            parts.append("cpu=\(arch)\(cpu)")
        }
        if let mem = range(r["memory"], unit: "GB") { parts.append("mem=\(mem)") }
        if let gpu = r["gpu"], gpu != .null, let count = gpu["count"] {
            var names: [String] = []
            if case .array(let list)? = gpu["name"] { names = list.map(text) }
            let min: Int = { if case .int(let n)? = count["min"] { return n } else { return 0 } }()
            if min > 0 || !names.isEmpty {
                var g = "gpu=" + (names.isEmpty ? "" : names.joined(separator: ",") + ":")
                if let memory = range(gpu["memory"], unit: "GB") { g += memory + ":" }
                g += range(count) ?? ""
                parts.append(g)
            }
        }
        if let disk = range(r["disk"]?["size"], unit: "GB") { parts.append("disk=\(disk)") }
        if let shm = r["shm_size"], shm != .null { parts.append("shm=\(text(shm))GB") }
        return parts.joined(separator: " ")
    }

    static func describe(_ plan: API.Plan, file: String, style: TextStyle) -> String {
        let c = plan.configuration
        func text(_ v: JSONValue?) -> String {
            switch v {
            case .string(let s)?: return s
            case nil, .null?: return "-"
            case let other?: return other.serialized
            }
        }
        let resources = Self.resourcesText(c["resources"])
        var out = ""
        let rows: [(String, String)] = [
            ("Project", plan.project), ("User", plan.user), ("Configuration", file), ("Type", "service"),
            ("Run", plan.runName), ("Resources", resources), ("Spot policy", text(c["spot_policy"]) == "-" ? "on-demand" : text(c["spot_policy"])),
            ("Max price", text(c["max_price"])), ("Retry", text(c["retry"]) == "-" ? "no" : text(c["retry"])),
        ]
        for (k, v) in rows { out += " " + style.bold(k.padding(toLength: 15, withPad: " ", startingAt: 0)) + " " + v + "\n" }
        out += "\n" + OfferTable.render(plan.offers, style: style) + "\n"
        if let note = plan.offersNote { out += style.yellow("Warning: ") + note + "\n" }
        return out
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run the Setpoint server (the default), or list an installation's servers.",
        subcommands: [ServerRunCommand.self, ServerStatusCommand.self],
        defaultSubcommand: ServerRunCommand.self)
}

struct ServerRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the Setpoint server: API, controllers, backends and the proxy.",
        discussion: """
            Backends come from <data-dir>/config.yml (default: local processes); --kubeconfig runs replicas on a Kubernetes cluster instead.
            State is in <data-dir>/state.db (SQLite) unless --database names a PostgreSQL database, which several servers may share: \
            each serves the API and the proxy, and the one holding the leader lease runs the controllers.
            """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 3000
    @Option(name: .customLong("data-dir"), help: "Where state, workloads and the admin token live (default ~/.setpoint).")
    var dataDir: String?
    @Option(name: .customLong("proxy-timeout"), help: "Seconds a replica may stay silent before the proxy answers 504.")
    var proxyTimeout = 60
    @Option(name: .customLong("max-body-size"), help: "Largest request body the proxy accepts, in MiB (413 past it).")
    var maxBodySize = 64
    @Option(name: .customLong("hold-timeout"), help: "Seconds a request waits for a first ready replica (503 past it).")
    var holdTimeout = 300
    @Option(name: .customLong("hold-queue"), help: "Requests that may wait for a first ready replica, per service.")
    var holdQueue = 1000
    @Option(name: .customLong("header-timeout"), help: "Seconds a new connection has to send a whole request head (closed past it).")
    var headerTimeout = 30
    @Option(name: .customLong("idle-timeout"), help: "Seconds a keep-alive connection may wait for its next request (closed past it).")
    var idleTimeout = 75
    @Option(name: .customLong("max-connections"), help: "Client connections open at once (503 and closed past it).")
    var maxConnections = 10_000
    @Option(name: .customLong("config"), help: "The server configuration: backends (default <data-dir>/config.yml).")
    var config: String?
    @Option(name: .customLong("kubeconfig"), help: "Run replicas as Pods on this cluster (its current context) instead of <data-dir>/config.yml's backends.")
    var kubeconfig: String?
    @Option(name: .customLong("kube-context"), help: "With --kubeconfig: a context to use, each one a region (repeatable).")
    var kubeContexts: [String] = []
    @Option(name: .customLong("database"),
            help: "A PostgreSQL database for the state, shared by several servers: postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=verify-full&sslrootcert=CA] (default: SETPOINT_DATABASE_URL, else SQLite in the data directory).")
    var database: String?
    @Option(name: .customLong("server-name"), help: "This server's name among several (default <hostname>:<port>).")
    var serverName: String?

    func validate() throws {
        if !kubeContexts.isEmpty, kubeconfig == nil { throw ValidationError("--kube-context needs --kubeconfig") }
        if config != nil, kubeconfig != nil { throw ValidationError("--config and --kubeconfig both choose the backends: use one") }
        for (name, value) in [("--proxy-timeout", proxyTimeout), ("--max-body-size", maxBodySize), ("--hold-timeout", holdTimeout),
                              ("--hold-queue", holdQueue), ("--header-timeout", headerTimeout), ("--idle-timeout", idleTimeout),
                              ("--max-connections", maxConnections)] where value < 1 {
            throw ValidationError("\(name) must be at least 1, got \(value)")
        }
    }

    func run() async throws {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        let dataDirectory = dataDir ?? home + "/.setpoint"
        var logger = Logger(label: "setpoint")
        logger.logLevel = ProcessInfo.processInfo.environment["SETPOINT_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        var settings = ServerSettings(host: host, port: port, dataDirectory: dataDirectory,
                                      adminToken: ProcessInfo.processInfo.environment["SETPOINT_ADMIN_TOKEN"])
        settings.proxy.readTimeout = .seconds(Int64(proxyTimeout))
        settings.proxy.maxBodySize = maxBodySize << 20
        settings.proxy.holdTimeout = .seconds(Int64(holdTimeout))
        settings.proxy.holdQueue = holdQueue
        settings.proxy.headerTimeout = .seconds(Int64(headerTimeout))
        settings.proxy.idleTimeout = .seconds(Int64(idleTimeout))
        settings.proxy.maxConnections = maxConnections
        settings.kubeconfig = kubeconfig
        settings.configPath = config
        settings.kubeContexts = kubeContexts.isEmpty ? nil : kubeContexts
        settings.databaseURL = database ?? ProcessInfo.processInfo.environment["SETPOINT_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
        settings.serverName = serverName
        let url = settings.publicURL
        let host = settings.host
        try await SetpointServer.run(settings, logger: logger, onToken: { token, generated in
            // The token itself only on a terminal: redirected output (a log file) must not keep it.
            var out: String
            if !generated {
                out = "The admin token is the one in SETPOINT_ADMIN_TOKEN (also in \(dataDirectory)/admin-token)\n"
            } else if Terminal.standardOutput.isTerminal {
                out = "The admin token is \(token)\n(also in \(dataDirectory)/admin-token)\n"
            } else {
                out = "The admin token is in \(dataDirectory)/admin-token (mode 0600)\n"
            }
            if !FileManager.default.fileExists(atPath: ClientSettings.configPath) {
                try? ClientSettings.write(url: url, token: token, project: "main")
                out += "Wrote \(ClientSettings.configPath) for the CLI.\n"
            }
            Terminal.standardOutput.write(out)
        }, onListening: { port in
            Terminal.standardOutput.write("The server is running at http://\(host):\(port)\n")
        })
    }
}

/// `setpoint server status`: the installation's servers and which one leads.
struct ServerStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "List the installation's servers: which one leads (runs the controllers), since when, and when each was last heard of.")

    @OptionGroup var server: ServerOptions
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: String = "table"

    func validate() throws {
        guard ["table", "json"].contains(output) else { throw ValidationError("--output must be table or json, got \(output)") }
    }

    func run() async throws {
        let client = try server.client()
        let list = try await client.servers()
        if output == "json" {
            Terminal.standardOutput.write(String(decoding: try API.encoder.encode(list), as: UTF8.self) + "\n")
            return
        }
        let now = Date()
        let rows = list.servers.map { s in
            [s.name, s.role, s.address, Render.age(s.leaderSince ?? s.startedAt, now: now),
             s.heartbeat.map { Render.age($0, now: now) + " ago" } ?? "-", s.version]
        }
        Terminal.standardOutput.write(Render.table(["NAME", "ROLE", "ADDRESS", "SINCE", "LAST SEEN", "VERSION"], rows,
                                                   style: TextStyle(enabled: Terminal.standardOutput.isTerminal)))
        let store = list.store == "postgres" ? "PostgreSQL (shared)" : "SQLite (this server only)"
        Terminal.standardOutput.write("store: \(store); leader: \(list.leader ?? "none (being elected)")"
            + (list.leaseDurationSeconds.map { "; a lost leader is replaced within \($0) s" } ?? "") + "\n")
    }
}

/// `setpoint store copy`: move an installation between SQLite and PostgreSQL.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Work on a server's store directly (with the servers stopped).",
        subcommands: [Copy.self])

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "copy",
            abstract: "Copy every object of a store into an empty one: SQLite to PostgreSQL, and back.",
            discussion: """
                A store is sqlite:PATH (a state.db, or a data directory) or postgres://USER:PASSWORD@HOST:PORT/DB. Objects keep their \\
                metadata (uid, generation, resourceVersion, finalizers, status), so the servers started on the copy carry on where \\
                they stopped; watch positions from before are listed again. Stop the servers first (an SQLite store in use is refused). \\
                Project secrets are sealed under the server secret: start the servers on the copy with the same <data-dir>/server-secret.
                """)

        @Option(help: "The store to copy from.") var from: String
        @Option(help: "The store to copy to; it must hold no object.") var to: String

        func run() async throws {
            var logger = Logger(label: "setpoint")
            logger.logLevel = .warning
            let report: StoreCopy.Report
            do {
                report = try await StoreCopy.copy(from: from, to: to, logger: logger)
            } catch {
                Terminal.standardError.write("error: \(error)\n")
                throw ExitCode(1)
            }
            let kinds = report.kinds.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            Terminal.standardOutput.write("Copied \(report.objects) objects (\(kinds.isEmpty ? "none" : kinds)) at resourceVersion \(report.version)\n  from \(report.from)\n  to   \(report.to)\n")
        }
    }
}
