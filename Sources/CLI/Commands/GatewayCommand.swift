import APIClient
import ArgumentParser
import Foundation
import GatewayAgent
import Logging
import Model
import NIOCore

/// `setpoint gateway list|describe|delete|run` (dstack's `dstack gateway list/delete`; a
/// gateway is created and updated with `setpoint apply`).
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gateway", abstract: "List, describe and delete gateways; run a gateway process.",
                                                    subcommands: [List.self, Describe.self, Delete.self, Run.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the project's gateways.")
        @OptionGroup var server: ServerOptions
        @Option(name: [.customShort("o"), .customLong("output")], help: "table, json or yaml.") var output: OutputFormat = .table

        /// NAME, STATUS, READY, ADDRESS, DOMAIN, AGE (also `setpoint get gateways`).
        static func row(_ g: API.Gateway) -> [String] {
            [g.name + (g.isDefault ? " (default)" : ""), g.deleting ? "deleting" : g.status.phase.rawValue,
             "\(g.status.readyReplicas)/\(g.status.desiredReplicas)", g.status.address.map { a in a + (g.status.httpPort.map { ":\($0)" } ?? "") } ?? "-",
             g.status.domain ?? "-", Render.age(g.createdAt)]
        }

        func run() async throws {
            let gateways = try await server.client().gateways()
            switch output {
            case .json: print(Render.json(gateways))
            case .yaml: print(Render.yaml(gateways), terminator: "")
            case .table:
                let rows = gateways.map(Self.row)
                Terminal.standardOutput.write(Render.table(["NAME", "STATUS", "READY", "ADDRESS", "DOMAIN", "AGE"], rows,
                                                           style: TextStyle(enabled: Terminal.standardOutput.isTerminal)))
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a gateway: configuration, address, replicas, certificates, conditions, events.")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Gateway name.") var name: String
        @Option(name: [.customShort("o"), .customLong("output")], help: "table, json or yaml.") var output: OutputFormat = .table

        struct Description: Encodable {
            var gateway: API.Gateway
            var events: [EventSpec]
        }

        func run() async throws {
            let client = try server.client()
            let g = try await client.gateway(name)
            let events = try await client.gatewayEvents(name)
            switch output {
            case .json: print(Render.json(Description(gateway: g, events: events)))
            case .yaml: print(Render.yaml(Description(gateway: g, events: events)), terminator: "")
            case .table: Terminal.standardOutput.write(Self.text(g, events))
            }
        }

        static func text(_ g: API.Gateway, _ events: [EventSpec]) -> String {
            var out = ""
            func field(_ k: String) -> String {
                guard let v = g.configuration[k], v != .null else { return "-" }
                if case .string(let s) = v { return s }
                return v.serialized
            }
            out += "Name:         \(g.project)/\(g.name)\(g.isDefault ? " (the project's default gateway)" : "")\n"
            out += "Status:       \(g.deleting ? "deleting" : g.status.phase.rawValue)\(g.status.message.map { " — \($0)" } ?? "")\n"
            out += "Backend:      \(field("backend")) (region \(field("region")))\n"
            out += "Replicas:     \(g.status.readyReplicas)/\(g.status.desiredReplicas) ready\n"
            out += "Address:      \(g.status.address ?? "-")\(g.status.httpPort.map { " (http \($0))" } ?? "")\n"
            out += "Domain:       \(g.status.domain ?? "- (set `domain` to publish services on it)")\n"
            if let dns = g.status.conditions.first(where: { $0.type == "DNSConfigured" }) { out += "DNS:          \(dns.message)\n" }
            if let pattern = g.serviceURLPattern { out += "Services at:  \(pattern)\n" }
            if let models = g.modelURL { out += "Models at:    \(models)\n" }
            let certificate = field("certificate")
            out += "Certificate:  \(certificate == "-" ? "none (plain HTTP)" : certificate)\n"
            for c in g.status.certificates {
                out += "  \(c.domain): \(c.state)\(c.notAfter.map { " until \(ISO8601DateFormatter().string(from: $0))" } ?? "")\(c.message.map { " — \($0)" } ?? "")\n"
            }
            if !g.status.replicas.isEmpty {
                out += "Replica processes:\n"
                for r in g.status.replicas {
                    out += "  \(r.num)  \(r.state)\(r.ready ? " (ready)" : "")\(r.restarts > 0 ? ", \(r.restarts) restart(s)" : "")\(r.message.map { " — \($0)" } ?? "")\n"
                }
            }
            out += "Observed generation: \(g.status.observedGeneration) of \(g.generation)\n"
            out += "\nConditions:\n" + Render.conditions(g.status.conditions, style: TextStyle(enabled: Terminal.standardOutput.isTerminal))
            out += "\nEvents:\n" + (events.isEmpty ? "  <none>\n" : Render.events(events, style: TextStyle(enabled: Terminal.standardOutput.isTerminal), objects: false))
            return out
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a gateway: its processes stop; its services stay on the server's own path.")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Gateway name.") var name: String
        @Flag(name: .shortAndLong, help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            guard try confirm("Delete the gateway \(name)?", yes: yes) else { return }
            _ = try await server.client().deleteGateway(name)
            print("Gateway \(name) is being deleted.")
        }
    }

    /// A gateway replica: what the gateway controller starts (docs/gateways.md).
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run one gateway process: serve <run>.<domain> and gateway.<domain> for a gateway, fed by the control plane.")
        @Option(help: "The control plane's URL.") var server: String
        @Option(help: "The gateway's project.") var project: String
        @Option(help: "The gateway's name.") var name: String
        @Option(help: "This process's replica number.") var replica: Int = 0
        @Option(help: "HOST:PORT to listen on.") var listen: String = "0.0.0.0:80"
        @Option(name: .customLong("https-listen"), help: "HOST:PORT to serve HTTPS on (with the certificates the control plane sends).") var httpsListen: String?
        @Option(name: .customLong("read-timeout"), help: "Seconds a replica may stay silent once a request is sent.") var readTimeout: Int = 3600
        @Option(name: .customLong("state-file"), help: "Where the last routes are kept, to serve them after a restart while the control plane is away.")
        var stateFile: String?

        func run() async throws {
            guard let credential = ProcessInfo.processInfo.environment["SETPOINT_GATEWAY_CREDENTIAL"], !credential.isEmpty else {
                throw UsageError(message: "SETPOINT_GATEWAY_CREDENTIAL is not set: the gateway controller sets it when it starts a gateway process")
            }
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
                throw UsageError(message: "--listen \(listen): expected HOST:PORT")
            }
            var settings = GatewayAgentSettings(serverURL: server, credential: credential, project: project, name: name, replica: replica,
                                                host: String(listen[..<colon]), port: port)
            settings.proxy.readTimeout = .seconds(Int64(readTimeout))
            if let httpsListen {
                guard let c = httpsListen.lastIndex(of: ":"), let p = Int(httpsListen[httpsListen.index(after: c)...]) else {
                    throw UsageError(message: "--https-listen \(httpsListen): expected HOST:PORT")
                }
                settings.httpsPort = p
            }
            settings.statePath = stateFile
            var logger = Logger(label: "setpoint.gateway")
            logger.logLevel = .info
            do {
                try await GatewayAgent(settings: settings, logger: logger).run()
            } catch {
                Terminal.standardError.write("error: \(error)\n")
                throw ExitCode(1)
            }
        }
    }
}
