import Foundation
import Testing
import TestSupport

/// `setpoint get` and `setpoint events` with the real binary: every kind listed, events from the
/// controllers with `--for` and `--since`, `describe` with condition ages; a `get -w` that goes
/// on across a server restart, printing each change once and ending at the server's state.
@Suite(.serialized, .timeLimit(.minutes(5))) struct WatchE2ETests {
    /// A long-running CLI command writing to a file (stopped by its PID).
    final class Watcher: @unchecked Sendable {
        let process = Process()
        let log: URL

        init(_ server: ServerE2ETests.Server, _ arguments: [String], name: String) throws {
            log = server.home.appendingPathComponent(name)
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            process.executableURL = ServerE2ETests.binary
            process.arguments = arguments
            process.environment = ["HOME": server.home.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                                   "SETPOINT_URL": server.url, "SETPOINT_TOKEN": server.token, "SETPOINT_PROJECT": "main"]
            process.standardOutput = FileHandle(forWritingAtPath: log.path)
            process.standardError = FileHandle(forWritingAtPath: log.path + ".err")
            try process.run()
        }

        var text: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        var lines: [String] { text.split(separator: "\n").map(String.init) }

        func stop() {
            guard process.isRunning else { return }
            kill(process.processIdentifier, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(process.processIdentifier, &status, 0)
        }
    }

    @Test func getEveryKindEventsAndAWatchThatOutlivesARestart() async throws {
        let server = try ServerE2ETests.Server(keepLog: true)
        defer { server.stop() }
        try await server.waitHealthy()
        let empty = try await server.cli(["get", "runs"])
        #expect(empty.status == 0 && empty.output.contains("No runs in project."), "\(empty.output)")
        #expect(try await server.cli(["get", "pods"]).status == 2)

        let file = try ServerE2ETests.writeService(server.home, replicas: 2)
        let json = try Watcher(server, ["get", "runs", "-w", "-o", "json"], name: "runs.jsonl")
        defer { json.stop() }
        let table = try Watcher(server, ["get", "replicas", "-w"], name: "replicas.txt")
        defer { table.stop() }
        try await waitFor("the watchers' first list", timeout: 30) { FileManager.default.fileExists(atPath: table.log.path) && !table.text.isEmpty }
        #expect(try await server.cli(["apply", "-f", file.path, "-y"]).status == 0)

        let runs = try await server.cli(["get", "runs", "-o", "wide"])
        #expect(runs.status == 0 && runs.output.contains("web") && runs.output.contains("2/2") && runs.output.contains("MANAGED-BY"), "\(runs.output)")
        let replicas = try await server.cli(["get", "replicas", "web"])
        #expect(replicas.output.split(separator: "\n").filter { $0.hasPrefix("web.") && $0.contains(" running ") && $0.contains(" yes ") }.count == 2,
                "\(replicas.output)")
        let missing = try await server.cli(["get", "runs", "nope"])
        #expect(missing.status == 1 && missing.output.contains("run nope not found"))
        // The replica table's watch printed each replica turning ready, aligned under the header.
        try await waitFor("replicas ready in the watch", timeout: 30) { table.lines.filter { $0.contains(" running ") && $0.contains(" yes ") }.count >= 2 }
        #expect(table.lines.first?.hasPrefix("NAME") == true)

        // Events: every step of the rollout, from the controllers that took it.
        let events = try await server.cli(["events", "--for", "run/web", "-o", "wide"])
        for reason in ["ScaledUp", "Published", "Created", "Started", "Ready", "EndpointsReady"] {
            #expect(events.output.contains(reason), "\(reason) in \(events.output)")
        }
        #expect(events.output.contains("replica-controller") && events.output.contains("route-controller") && events.output.contains("run-controller"))
        #expect(try await server.cli(["events", "--since", "soon"]).status == 2)
        #expect(try await server.cli(["events", "--for", "pod/x"]).status == 2)
        let later = try await server.cli(["events", "--since", Self.rfc3339(Date().addingTimeInterval(60))])
        #expect(later.status == 0 && later.output.contains("No events"), "\(later.output)")
        let describe = try await server.cli(["describe", "web"])
        #expect(describe.output.range(of: #"TYPE\s+STATUS\s+AGE\s+REASON"#, options: .regularExpression) != nil, "conditions with their age: \(describe.output)")
        #expect(describe.output.range(of: #"\n\d+s\s+Normal\s+Ready\s+replica/web\."#, options: .regularExpression) != nil, "the last events: \(describe.output)")

        // A restart while watching: the watch reconnects, lists again, and prints what changed
        // meanwhile once.
        let eventsWatch = try Watcher(server, ["events", "-w", "--for", "run/web"], name: "events.txt")
        defer { eventsWatch.stop() }
        try await waitFor("the events watch", timeout: 30) { eventsWatch.text.contains("ScaledUp") }
        #expect(try await server.cli(["stop", "web", "-y"]).status == 0)
        try await waitFor("the stop in the watch", timeout: 60) { json.text.contains("\"phase\":\"terminated\"") }
        // Three open watches do not hold the shutdown for the front's drain timeout (30 s): the
        // API ends its streams first.
        let stopping = Date()
        server.kill(signal: SIGTERM)
        #expect(Date().timeIntervalSince(stopping) < 20, "SIGTERM took \(Date().timeIntervalSince(stopping)) s with watches open")
        try server.start()
        try await server.waitHealthy()
        #expect(try await server.cli(["apply", "-f", file.path, "-y"]).status == 0)
        do {
            try await waitFor("the new deployment in the watch after the restart", timeout: 60) {
                json.lines.compactMap(Self.decode).last { $0.name == "web" }.map { $0.phase == "running" && $0.ready == 2 } == true
            }
        } catch {
            // What the server and the API said, for the next look (this wait failed twice in
            // about ten full runs, under load, not yet understood).
            let replicas = try? await server.get("/api/v1/projects/main/runs/web/replicas", token: server.token)
            print("--- replicas: \(replicas?.body ?? "-")\n--- server log:\n"
                  + String(((try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? "").suffix(8000)))
            throw error
        }
        try await waitFor("the events after the restart", timeout: 30) { eventsWatch.text.contains("RolloutStarted") || eventsWatch.text.contains("Stopped") }

        // Every line is a change not printed before, and the last state is the server's.
        let seen = json.lines.compactMap(Self.decode)
        let keys = seen.map { "\($0.name)@\($0.resourceVersion)" }
        #expect(Set(keys).count == keys.count, "no change printed twice: \(keys)")
        let now = try await server.cli(["get", "runs", "web", "-o", "json"])
        let current = try #require(try JSONSerialization.jsonObject(with: Data(now.output.utf8)) as? [[String: Any]]).first
        #expect(seen.last { $0.name == "web" }?.resourceVersion == current?["resourceVersion"] as? Int, "\(keys) vs \(now.output)")
        #expect(Set(eventsWatch.lines).count == eventsWatch.lines.count, "no event line twice:\n\(eventsWatch.text)")
    }

    struct Line {
        var name: String
        var resourceVersion: Int
        var phase: String
        var ready: Int
    }

    static func decode(_ line: String) -> Line? {
        guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let run = o["run"] as? [String: Any],
              let status = run["status"] as? [String: Any] else { return nil }
        return Line(name: run["name"] as? String ?? "", resourceVersion: o["resourceVersion"] as? Int ?? -1,
                    phase: status["phase"] as? String ?? "", ready: status["readyReplicas"] as? Int ?? -1)
    }

    static func rfc3339(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }
}
