import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import Testing

/// Several servers on one PostgreSQL database (a real server, `hack/postgres.sh`): each serves
/// the API and the proxy, one leads; a leader killed with `kill -9` during a rollout is
/// replaced within the lease duration and the rollout finishes, with no duplicate replica and
/// no failed request through a surviving server; a leader cut off from the database stops
/// leading before another server can take over.
@Suite(.serialized) struct ServersE2ETests {
    typealias Server = ServerE2ETests.Server

    /// Servers of one installation: one database, one server secret, one admin token, one
    /// local backend root (so whichever leads adopts the replicas, and every proxy reaches them).
    final class Installation: @unchecked Sendable {
        let db: TestDatabase
        let base: URL
        let root: URL
        let config: URL
        let secret: Data
        let token = "e2e-" + UUID().uuidString.lowercased()
        var servers: [Server] = []

        init?() async throws {
            guard let db = try await TestDatabase.make() else { return nil }
            self.db = db
            base = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-ha-\(UUID().uuidString.prefix(8))")
            root = base.appendingPathComponent("local")
            config = base.appendingPathComponent("config.yml")
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            try "backends:\n  - type: local\n    root: \(root.path)\n".write(to: config, atomically: true, encoding: .utf8)
            secret = Data((0..<32).map { _ in UInt8.random(in: 0...255) })
        }

        /// A server of this installation; `database` overrides the URL (a relay in front of it).
        func add(name: String, database: String? = nil) throws -> Server {
            let server = try Server(extraArguments: ["--database", database ?? db.url, "--config", config.path, "--server-name", name],
                                    keepLog: true, start: false, token: token)
            try FileManager.default.createDirectory(at: server.dataDir, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: server.dataDir.appendingPathComponent("server-secret").path, contents: secret,
                                                 attributes: [.posixPermissions: 0o600]) else { throw ProcessRunnerError(message: "server-secret") }
            try server.start()
            servers.append(server)
            return server
        }

        func stop() async {
            for s in servers { s.stop() }
            for pid in processes(inDirectory: root.path) { kill(pid_t(pid), SIGKILL) }
            try? FileManager.default.removeItem(at: base)
            await db.drop()
        }
    }

    struct Status: Decodable {
        struct Row: Decodable {
            var name: String
            var role: String
            var leaderSince: String?
        }

        var store: String
        var leader: String?
        var leaseDurationSeconds: Int?
        var servers: [Row]
    }

    static func status(_ server: Server) async throws -> Status? {
        let r = try await server.get("/api/v1/servers", token: server.token)
        guard r.status == 200 else { return nil }
        return try JSONDecoder().decode(Status.self, from: Data(r.body.utf8))
    }

    /// Runs `body` with a new installation, then stops its servers and drops its database.
    static func withInstallation(_ body: (Installation) async throws -> Void) async throws {
        guard let ha = try await Installation() else { return }
        do { try await body(ha) } catch {
            for s in ha.servers { print("--- log of \(s.dataDir.path)\n" + log(s).suffix(4000)) }
            await ha.stop()
            throw error
        }
        await ha.stop()
    }

    /// `<home>/project/web.dstack.yml` with this text.
    static func writeConfiguration(_ server: Server, _ yaml: String) throws -> URL {
        let project = server.home.appendingPathComponent("project")
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        let file = project.appendingPathComponent("web.dstack.yml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    static func log(_ server: Server) -> String { (try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? "" }

    @Test func theLeaderKilledDuringARolloutIsReplacedAndTheRolloutFinishes() async throws {
        try await Self.withInstallation { ha in
            let a = try ha.add(name: "a")
            try await a.waitHealthy()
            // `a` started first and leads; `b` and `c` follow.
            try await waitFor(timeout: 30) { try await Self.status(a)?.leader == "a" }
            let b = try ha.add(name: "b")
            let c = try ha.add(name: "c")
            try await b.waitHealthy()
            try await c.waitHealthy()
            try await waitFor(timeout: 30) { try await Self.status(c)?.servers.count == 3 }
            let listed = try await c.cli(["server", "status"])
            #expect(listed.status == 0 && listed.output.contains("PostgreSQL (shared)"), "\(listed.output)")
            let roles = listed.output.split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").dropFirst().first }
        #expect(roles.filter { $0 == "leader" }.count == 1 && roles.filter { $0 == "follower" }.count == 2, "\(listed.output)")
            #expect(listed.output.contains("within 15 s"), "\(listed.output)")

            // Applied through a follower; served through every server.
            var file = try ServerE2ETests.writeService(b.home)
            let applied = try await b.cli(["apply", "-f", file.path, "-y"])
            #expect(applied.status == 0, "\(applied.output)")
            for s in [a, b, c] {
                try await waitFor(timeout: 60) { try await s.get("/proxy/services/main/web/", token: s.token).status == 200 }
            }

            // A rollout starts; requests go through `c` all along.
            let stop = StopFlag()
            let loop = requestLoop(url: c.url, token: ha.token, until: stop, seconds: 120, limit: .max)
            file = try ServerE2ETests.writeService(b.home, env: "v2")
            #expect(try await b.cli(["apply", "-f", file.path, "-y", "-d"]).status == 0)
            // The leader dies mid-rollout.
            try await waitFor(timeout: 30) {
                let r = try await c.get("/api/v1/projects/main/runs/web/replicas", token: c.token)
                return r.body.contains("\"deploymentNum\":2")
            }
            let killed = Date()
            a.kill(signal: SIGKILL)

            // Another server takes over within the lease duration (plus a retry), and finishes.
            var newLeader: String?
            try await waitFor(timeout: 30) {
                newLeader = try await Self.status(c)?.leader
                return newLeader == "b" || newLeader == "c"
            }
            let tookOver = Date().timeIntervalSince(killed)
            print("failover: a new leader (\(newLeader ?? "?")) \(String(format: "%.1f", tookOver)) s after kill -9")
            #expect(tookOver <= 17, "took over after \(tookOver) s")
            try await waitFor(timeout: 90) {
                let r = try await c.get("/api/v1/projects/main/runs/web", token: c.token)
                return r.body.contains("\"readyReplicas\":2") && r.body.contains("\"observedGeneration\":2")
                    && !r.body.contains("\"deploymentNum\":1")
            }
            // No duplicate and no orphan: two app processes, both of the new deployment.
            try await waitFor("two app processes", timeout: 30) {
                processes(matching: "http.server 8000", prefix: "python3", in: ha.root.path).count == 2
            }
            let replicas = try await c.get("/api/v1/projects/main/runs/web/replicas", token: c.token)
            #expect(replicas.body.components(separatedBy: "\"phase\":\"running\"").count - 1 == 2, "\(replicas.body)")
            stop.set()
            let (count, failures) = await loop.value
            #expect(count > 0)
            #expect(failures.isEmpty, "\(failures.count) of \(count) requests through a surviving server failed: \(Set(failures))")
            // The dead server shows as gone only once silent; the survivors serve.
            #expect(try await b.get("/proxy/services/main/web/", token: b.token).status == 200)
        }
    }

    @Test func aLeaderCutOffFromTheDatabaseStopsLeadingBeforeAnotherTakesOver() async throws {
        // (The servers' own stops are bounded too: a cut-off one still ends on SIGTERM.)
        try await Self.withInstallation { ha in
            // `a` reaches the database through a relay the test can cut.
            let db = URLComponents(string: ha.db.url)!
            let relayPort = try freePort()
            let relay = try spawnDetached(["socat", "TCP-LISTEN:\(relayPort),bind=127.0.0.1,reuseaddr,fork", "TCP:127.0.0.1:\(db.port!)"])
            defer { kill(-relay, SIGCONT); kill(-relay, SIGKILL) }
            var relayed = db
            relayed.port = relayPort
            try await waitFor(timeout: 10) { (try? HardeningE2ETests.Socket(port: relayPort)) != nil }
            let a = try ha.add(name: "a", database: relayed.string!)
            try await a.waitHealthy()
            try await waitFor(timeout: 30) { try await Self.status(a)?.leader == "a" }
            let b = try ha.add(name: "b")
            try await b.waitHealthy()
            try await waitFor(timeout: 30) { try await Self.status(b)?.servers.count == 2 }

            // The partition: the relay stops, so a's connections stay open and go silent (as
            // behind a dropped route), and new ones hang in its backlog: nothing fails fast.
            kill(-relay, SIGSTOP)
            let cut = Date()
            var stepDown: Date?
            var takeover: Date?
            try await waitFor(timeout: 40, poll: .milliseconds(50)) {
                if stepDown == nil, Self.log(a).contains("lost the leader lease") { stepDown = Date() }
                if takeover == nil, try await Self.status(b)?.leader == "b" { takeover = Date() }
                return stepDown != nil && takeover != nil
            }
            let down = stepDown!.timeIntervalSince(cut)
            let over = takeover!.timeIntervalSince(cut)
            print("partition: a stopped leading after \(String(format: "%.1f", down)) s, b led after \(String(format: "%.1f", over)) s")
            #expect(down < over, "the old leader stopped its controllers (\(down) s) before the new one took over (\(over) s)")
            #expect(over >= 10, "not before the lease expired")
            #expect(a.current?.isRunning == true, "the cut-off server keeps running, as a candidate")
            // Still cut off, it stops promptly and cleanly: nothing waits on the database unbounded.
            let stopping = Date()
            await a.terminate(signal: SIGTERM)
            let took = Date().timeIntervalSince(stopping)
            #expect(took < 20 && a.exitStatus == 0, "SIGTERM while cut off took \(took) s, status \(a.exitStatus.map(String.init) ?? "none")")
        }
    }

    /// The leader's autoscaler counts what every server's proxy serves: traffic that reaches
    /// only a follower scales the service up.
    @Test func trafficThroughAFollowerScalesTheServiceUp() async throws {
        try await Self.withInstallation { ha in
            let a = try ha.add(name: "a")
            try await a.waitHealthy()
            try await waitFor(timeout: 30) { try await Self.status(a)?.leader == "a" }
            let b = try ha.add(name: "b")
            try await b.waitHealthy()
            let file = try Self.writeConfiguration(b, """
                type: service
                name: web
                commands:
                  - python3 -m http.server 8000 --bind 127.0.0.1
                port: 8000
                replicas: 1..2
                scaling:
                  metric: rps
                  target: 2
                  scale_up_delay: 0s
                probes:
                  - type: http
                    url: /
                    interval: 1
                """)
            #expect(try await b.cli(["apply", "-f", file.path, "-y"]).status == 0)
            let workloads = { processes(matching: "http.server 8000", prefix: "python3", in: ha.root.path) }
            #expect(workloads().count == 1)
            // About 20 requests a second for 25 s, only through the follower: 10x the target.
            let served = try await GatewayE2ETests.sustainedLoad(port: b.port, path: "/proxy/services/main/web/", token: ha.token)
            #expect(served > 60, "\(served) requests served")
            try await waitFor(timeout: 30) { workloads().count == 2 }
            let described = try await a.cli(["describe", "web"])
            #expect(described.output.contains("Autoscaled"), "the leader's autoscaler: \(described.output)")
        }
    }

    /// `setpoint store copy`: an installation on SQLite moves to PostgreSQL and back, its
    /// services running on (adopted, not started again), its secrets still opening.
    @Test func anInstallationMovesFromSQLiteToPostgreSQLAndBack() async throws {
        guard let db = try await TestDatabase.make() else { return }
        let server = try Server(keepLog: true)
        defer { server.stop() }
        do {
            try await server.waitHealthy()
            #expect(try await server.cli(["secret", "set", "API_KEY"], input: "copied-secret-value\n").status == 0)
            let file = try Self.writeConfiguration(server, """
                type: service
                name: web
                commands:
                  - python3 -m http.server 8000 --bind 127.0.0.1
                env:
                  - API_KEY=${{ secrets.API_KEY }}
                port: 8000
                replicas: 2
                """)
            #expect(try await server.cli(["apply", "-f", file.path, "-y"]).status == 0)
            struct Run: Decodable { var uid: String; var generation: Int }
            struct Replica: Decodable { var name: String }
            func run() async throws -> Run? {
                let r = try await server.get("/api/v1/projects/main/runs/web", token: server.token)
                return try? JSONDecoder().decode(Run.self, from: Data(r.body.utf8))
            }
            func replicas() async throws -> Set<String> {
                let r = try await server.get("/api/v1/projects/main/runs/web/replicas", token: server.token)
                return Set(((try? JSONDecoder().decode([Replica].self, from: Data(r.body.utf8))) ?? []).map(\.name))
            }
            func served() async throws -> Bool {
                guard try await server.get("/proxy/services/main/web/", token: server.token).status == 200 else { return false }
                return try await server.get("/api/v1/projects/main/runs/web", token: server.token).body.contains("\"readyReplicas\":2")
            }
            try await waitFor(timeout: 60) { try await served() }
            let original = try #require(try await run())
            let originalReplicas = try await replicas()
            #expect(originalReplicas.count == 2)

            // To PostgreSQL (the server stopped; its replicas go on running).
            server.kill(signal: SIGTERM)
            let state = "sqlite:" + server.dataDir.path
            let there = try await server.cli(["store", "copy", "--from", state, "--to", db.url])
            print("store copy to PostgreSQL: \(there.output)")
            #expect(there.status == 0 && there.output.contains("Copied") && there.output.contains("Run") && there.output.contains("Secret"), "\(there.output)")
            #expect(!there.output.contains("setpoint-test-only"), "the database password is not printed")
            let again = try await server.cli(["store", "copy", "--from", state, "--to", db.url])
            #expect(again.status == 1 && again.output.contains("already holds"), "\(again.output)")
            server.extraArguments = ["--database", db.url]
            try server.start()
            try await server.waitHealthy()
            try await waitFor(timeout: 60) { try await served() }
            #expect(try await server.cli(["server", "status"]).output.contains("PostgreSQL"))
            let moved = try await run()
            #expect(moved?.uid == original.uid && moved?.generation == original.generation)
            #expect(try await replicas() == originalReplicas, "the same replicas, adopted")
            #expect(try await server.cli(["secret", "list"]).output.contains("API_KEY"))

            // And back to SQLite, in place of the original file.
            server.kill(signal: SIGTERM)
            let back = server.dataDir.deletingLastPathComponent().appendingPathComponent("back")
            let home = try await server.cli(["store", "copy", "--from", db.url, "--to", "sqlite:" + back.path])
            #expect(home.status == 0 && home.output.contains("Copied"), "\(home.output)")
            // The same objects both ways.
            let counts = { (text: String) in text.split(separator: "\n").first.map(String.init)?.replacingOccurrences(of: #"at resourceVersion \d+"#, with: "", options: .regularExpression) }
            #expect(counts(home.output) == counts(there.output), "\(home.output) vs \(there.output)")
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(at: server.dataDir.appendingPathComponent("state.db" + suffix)) }
            try FileManager.default.moveItem(at: back.appendingPathComponent("state.db"), to: server.dataDir.appendingPathComponent("state.db"))
            server.extraArguments = []
            try server.start()
            try await server.waitHealthy()
            try await waitFor(timeout: 60) { try await served() }
            #expect(try await run()?.uid == original.uid)
            #expect(try await replicas() == originalReplicas)
            #expect(try await server.cli(["server", "status"]).output.contains("SQLite"))
            #expect(processes(matching: "http.server 8000", prefix: "python3", in: server.dataDir.path).count == 2, "nothing started twice")
        } catch {
            print(Self.log(server).suffix(4000))
            await db.drop()
            throw error
        }
        await db.drop()
    }
}

/// Starts a process in a session of its own (so it and its children can be killed together
/// with `kill(-pid, …)`) and returns its pid.
func spawnDetached(_ argv: [String]) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    // setsid(1) makes the session (not being a group leader here, it does not fork).
    let args = (["/usr/bin/env", "setsid"] + argv).map { strdup($0) } + [nil]
    defer { for a in args { free(a) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, args, environ)
    guard spawned == 0 else { throw ProcessRunnerError(message: "cannot start \(argv[0]): \(String(cString: strerror(spawned)))") }
    return pid
}
