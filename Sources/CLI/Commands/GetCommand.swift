import APIClient
import ArgumentParser
import Foundation
import Model

/// `-o` of `get` and `events`: a table, the table with more columns, or the API's objects.
enum GetFormat: String, ExpressibleByArgument, CaseIterable {
    case table, wide, json, yaml
}

/// One kind as `setpoint get` shows it: its table columns and rows, from watch lines.
struct GetKind: Sendable {
    let kind: String
    let watchName: String
    let header: @Sendable (_ wide: Bool) -> [String]
    let row: @Sendable (_ event: API.WatchEvent, _ wide: Bool) -> [String]?

    static let all: [(names: [String], kind: GetKind)] = [
        (["runs", "run", "ps"], runs), (["replicas", "replica"], replicas), (["gateways", "gateway", "gw"], gateways),
        (["sources", "source"], sources), (["events", "event", "ev"], events),
    ]

    static func named(_ word: String) -> GetKind? { all.first { $0.names.contains(word.lowercased()) }?.kind }

    static let runs = GetKind(kind: RunKind.name, watchName: "run", header: { wide in
        ["NAME", "STATUS", "READY", "DEPLOYMENT", "AGE", "URL"] + (wide ? ["GATEWAY", "MANAGED-BY", "MESSAGE"] : [])
    }, row: { e, wide in
        guard let r = e.run else { return nil }
        var cells = PsCommand.row(r)
        if e.type == "deleted" { cells[1] = "deleted" }
        guard wide else { return cells }
        let owner: String = r.managedBy.map { "source/\($0)" } ?? r.set.map { "set/\($0)" } ?? "-"
        cells += [r.gateway ?? "-", owner, r.status.message.isEmpty ? "-" : r.status.message]
        return cells
    })

    static let replicas = GetKind(kind: ReplicaKind.name, watchName: "replica", header: { wide in
        ["NAME", "RUN", "PHASE", "READY", "AGE"] + (wide ? ["DEPLOYMENT", "ENDPOINT", "REASON", "MESSAGE"] : [])
    }, row: { e, wide in
        guard let r = e.replica else { return nil }
        let reason = r.status.conditions["Ready"]?.reason ?? "-"
        return [r.name, r.run ?? "-", e.type == "deleted" ? "deleted" : r.status.phase.rawValue, r.status.ready ? "yes" : "no",
                r.createdAt.map { Render.age($0) } ?? "-"]
            + (wide ? [String(r.deploymentNum), r.status.endpoint ?? "-", r.status.terminationReason?.rawValue ?? reason, r.status.message ?? "-"] : [])
    })

    static let gateways = GetKind(kind: GatewayKind.name, watchName: "gateway", header: { wide in
        ["NAME", "STATUS", "READY", "ADDRESS", "DOMAIN", "AGE"] + (wide ? ["MESSAGE"] : [])
    }, row: { e, wide in
        guard let g = e.gateway else { return nil }
        var cells = GatewayCommand.List.row(g)
        if e.type == "deleted" { cells[1] = "deleted" }
        return cells + (wide ? [g.status.message ?? "-"] : [])
    })

    static let sources = GetKind(kind: SourceKind.name, watchName: "source", header: { wide in
        ["NAME", "READY", "REVISION", "OBJECTS", "AGE"] + (wide ? ["REPOSITORY", "REF", "MESSAGE"] : [])
    }, row: { e, wide in
        guard let s = e.source else { return nil }
        return [s.name, e.type == "deleted" ? "deleted" : SourceText.ready(s), SourceText.revision(s), SourceText.objects(s), Render.age(s.createdAt)]
            + (wide ? [s.spec.url, s.spec.ref.description, s.status.message ?? "-"] : [])
    })

    static let events = GetKind(kind: EventKind.name, watchName: "event", header: { wide in
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] + (wide ? ["COMPONENT", "FIRST SEEN", "COUNT"] : [])
    }, row: { e, wide in
        guard let ev = e.event, e.type != "deleted" else { return nil }   // an event expiring is not news
        return EventsText.row(ev, wide: wide)
    })
}

enum EventsText {
    static func row(_ e: API.Event, wide: Bool) -> [String] {
        let seen = Render.age(e.lastTimestamp) + (e.count > 1 && !wide ? " (x\(e.count) over \(Render.age(e.firstTimestamp)))" : "")
        return [seen, e.type, e.reason, "\(Render.objectKind(e.kind))/\(e.object)", e.message]
            + (wide ? [e.component ?? "-", Render.age(e.firstTimestamp), String(e.count)] : [])
    }
}

/// Prints a kind as a table or as objects, and in watch mode one row (or object) per change,
/// the rows aligned to the columns of the first list, as `kubectl get -w` does.
struct GetPrinter {
    let kind: GetKind
    let format: GetFormat
    let filter: @Sendable (API.WatchEvent) -> Bool
    var widths: [Int] = []
    /// What was shown of each object (its resourceVersion), to report a relist as changes.
    var shown: [String: (Int64, API.WatchEvent)] = [:]

    var wide: Bool { format == .wide }

    mutating func list(_ events: [API.WatchEvent], watching: Bool) {
        let items = events.filter(filter)
        for e in items { shown[e.name] = (e.resourceVersion, e) }
        switch format {
        case .json:
            if watching { for e in items { say(Self.compact(e)) } } else { say(Render.json(items.compactMap(Self.object))) }
        case .yaml:
            if watching {
                for e in items { Terminal.standardOutput.write("---\n" + Render.yaml(Self.object(e) ?? AnyEncodable(e))) }
            } else {
                Terminal.standardOutput.write(Render.yaml(items.compactMap(Self.object)))
            }
        case .table, .wide:
            let header = kind.header(wide)
            let rows = items.compactMap { kind.row($0, wide) }
            widths = header.map(\.count)
            for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
            if rows.isEmpty && !watching {
                Terminal.standardError.write("No \(kind.watchName)s in project.\n")
                return
            }
            let style = TextStyle(enabled: Terminal.standardOutput.isTerminal)
            Terminal.standardOutput.write(style.bold(line(header)) + "\n" + rows.map { line($0) + "\n" }.joined())
        }
    }

    /// A relist (the server lost our position): what differs from what was shown, as changes.
    mutating func relisted(_ events: [API.WatchEvent]) {
        let items = events.filter(filter)
        let names = Set(items.map(\.name))
        for e in items where shown[e.name]?.0 != e.resourceVersion { change(e) }
        for (name, (_, last)) in shown where !names.contains(name) {
            var gone = last
            gone.type = "deleted"
            change(gone)
        }
    }

    mutating func change(_ e: API.WatchEvent) {
        guard filter(e) else { return }
        if e.type == "deleted" { shown[e.name] = nil } else { shown[e.name] = (e.resourceVersion, e) }
        switch format {
        case .json: say(Self.compact(e))
        case .yaml: Terminal.standardOutput.write("---\n" + Render.yaml(e))
        case .table, .wide:
            guard let row = kind.row(e, wide) else { return }
            if widths.isEmpty { widths = kind.header(wide).map(\.count) }
            Terminal.standardOutput.write(line(row) + "\n")
        }
    }

    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in i == cells.count - 1 || i >= widths.count ? c : c.padding(toLength: max(widths[i], c.count), withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }

    static func object(_ e: API.WatchEvent) -> AnyEncodable? {
        if let v = e.run { return AnyEncodable(v) }
        if let v = e.replica { return AnyEncodable(v) }
        if let v = e.gateway { return AnyEncodable(v) }
        if let v = e.source { return AnyEncodable(v) }
        if let v = e.event { return AnyEncodable(v) }
        return nil
    }

    /// One watch line as JSON on one line (`-w -o json`: a stream a script reads line by line).
    static func compact(_ e: API.WatchEvent) -> String { String(decoding: (try? API.encoder.encode(e)) ?? Data(), as: UTF8.self) }
}

struct AnyEncodable: Encodable {
    let encodeValue: (Encoder) throws -> Void
    init<T: Encodable>(_ value: T) { encodeValue = value.encode(to:) }
    func encode(to encoder: Encoder) throws { try encodeValue(encoder) }
}

struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "List runs, replicas, gateways, sources or events; -w keeps watching.",
        discussion: """
            KIND is runs, replicas, gateways, sources or events. With -w the list is printed, then one \
            line per change as it happens (no polling); a dropped connection is resumed from the last \
            position, so no change is missed or printed twice. -o json with -w prints one watch line \
            (type, kind, name, resourceVersion and the object) per change.
            """)

    @OptionGroup var server: ServerOptions
    @Argument(help: "runs, replicas, gateways, sources or events.") var kind: String
    @Argument(help: "Only this object (for replicas: a run's name shows its replicas; for events: the object's name).") var name: String?
    @Flag(name: .shortAndLong, help: "Keep watching: print a line for every change.") var watch = false
    @Option(name: [.customShort("o"), .customLong("output")], help: "table, wide, json or yaml.") var output: GetFormat = .table

    func run() async throws {
        guard let kind = GetKind.named(self.kind) else {
            throw UsageError(message: "unknown kind `\(self.kind)`: expected one of runs, replicas, gateways, sources, events")
        }
        let name = self.name
        let filter: @Sendable (API.WatchEvent) -> Bool = { e in
            guard e.kind == kind.kind else { return false }
            guard let name else { return true }
            switch kind.kind {
            case ReplicaKind.name: return e.name == name || e.replica?.run == name
            case EventKind.name: return e.event?.object == name || e.event?.run == name || e.name == name
            default: return e.name == name
            }
        }
        var printer = GetPrinter(kind: kind, format: output, filter: filter)
        do {
            try await ResumingWatch(client: try server.client(), kinds: [kind.watchName]).run { update in
            switch update {
            case .listed(let items, let relisted):
                if relisted { printer.relisted(items); return }
                let shown = items.filter(filter)
                if let name, shown.isEmpty, !watch, kind.kind != EventKind.name {
                    Terminal.standardError.write("error: \(kind.watchName) \(name) not found\n")
                    throw ExitCode(1)
                }
                printer.list(kind.kind == EventKind.name ? shown.sorted(by: Self.eventOrder) : items, watching: watch)
                if !watch { throw Done() }
            case .changed(let e):
                printer.change(e)
            }
            }
        } catch is Done {}
    }

    struct Done: Error {}

    static func eventOrder(_ a: API.WatchEvent, _ b: API.WatchEvent) -> Bool {
        (a.event?.lastTimestamp ?? .distantPast, a.name) < (b.event?.lastTimestamp ?? .distantPast, b.name)
    }
}

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "What the controllers did and why: the project's events, oldest first; -w keeps watching.",
        discussion: """
            An event repeated on the same object is one line whose count grows ("2m (x3 over 10m)"). \
            --for run/NAME shows a run's events with its replicas' and route's; also replica/NAME, \
            route/NAME, gateway/NAME, source/NAME. Events are kept 24 hours, at most 50 per object \
            and 1000 per project.
            """)

    @OptionGroup var server: ServerOptions
    @Flag(name: .shortAndLong, help: "Keep watching: print new events (and repeats) as they happen.") var watch = false
    @Option(name: .customLong("for"), help: "Only the events of KIND/NAME (run/NAME includes its replicas and route).") var selector: String?
    @Option(help: "Only events seen in this window (30s, 10m, 2h, 1d) or since an RFC 3339 time.") var since: String?
    @Option(name: [.customShort("o"), .customLong("output")], help: "table, wide, json or yaml.") var output: GetFormat = .table

    func run() async throws {
        let client = try server.client()
        var parsedSelector: EventSelector?
        if let selector {
            guard let parsed = EventSelector.parse(selector) else {
                throw UsageError(message: "--for: expected \(EventSelector.expected) (got `\(selector)`)")
            }
            parsedSelector = parsed
        }
        var parsedSince: Date?
        if let since {
            guard let d = Timestamps.since(since, now: Date()) else {
                throw UsageError(message: "--since: expected a duration such as 30s, 10m, 2h, 1d or an RFC 3339 time (got `\(since)`)")
            }
            parsedSince = d
        }
        let sinceDate = parsedSince
        let selector = self.selector
        let parsedSelectorValue = parsedSelector
        let filter: @Sendable (API.WatchEvent) -> Bool = { e in
            guard e.kind == EventKind.name, let ev = e.event else { return false }
            return (parsedSelectorValue?.matches(ev) ?? true) && (sinceDate.map { ev.lastTimestamp >= $0 } ?? true)
        }
        guard watch else {
            let events = try await client.projectEvents(for: selector, since: since)
            switch output {
            case .json: say(Render.json(events))
            case .yaml: Terminal.standardOutput.write(Render.yaml(events))
            case .table, .wide:
                guard !events.isEmpty else {
                    Terminal.standardError.write("No events\(selector.map { " for \($0)" } ?? "")\(since.map { " in the last \($0)" } ?? "").\n")
                    return
                }
                Terminal.standardOutput.write(Render.table(GetKind.events.header(output == .wide), events.map { EventsText.row($0, wide: output == .wide) },
                                                           style: TextStyle(enabled: Terminal.standardOutput.isTerminal)))
            }
            return
        }
        var printer = GetPrinter(kind: .events, format: output, filter: filter)
        try await ResumingWatch(client: client, kinds: ["event"]).run { update in
            switch update {
            case .listed(let items, let relisted):
                if relisted { printer.relisted(items) } else { printer.list(items.filter(filter).sorted(by: GetCommand.eventOrder), watching: true) }
            case .changed(let e):
                printer.change(e)
            }
        }
    }
}
