import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// The data path end to end with the real binary: a service that scales from zero holds and
/// serves concurrent requests and goes back to zero when idle; a scale-down under load fails no
/// request although the app dies at once on SIGTERM (the drain keeps it until its requests end).
@Suite(.serialized) struct DataPathE2ETests {
    static let appScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Apps/testapp.py")

    /// `<dir>/<name>/<name>.dstack.yml` with the test app beside it.
    static func writeService(_ dir: URL, name: String, body: String) throws -> URL {
        let project = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        let app = project.appendingPathComponent("testapp.py")
        try? FileManager.default.removeItem(at: app)
        try FileManager.default.copyItem(at: appScript, to: app)
        let file = project.appendingPathComponent("\(name).dstack.yml")
        try ("type: service\nname: \(name)\nport: 8000\n" + body).write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    static let session: URLSession = {
        let c = URLSessionConfiguration.ephemeral
        c.httpMaximumConnectionsPerHost = 64
        c.timeoutIntervalForRequest = 120
        return URLSession(configuration: c)
    }()

    static func get(_ url: String, token: String) async -> (Int, String) {
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 120
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        guard let (data, response) = try? await session.data(for: request) else { return (0, "") }
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    static func post(_ url: String, token: String, body: String) async -> (Int, String) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        request.timeoutInterval = 60
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        guard let (data, response) = try? await session.data(for: request) else { return (0, "") }
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// A replica killed whole (its process group: the app and the local bridge) refuses
    /// connections until it leaves the route: POSTs (not idempotent) that meet it never reached
    /// it, so they go to the other replica. Only the requests it had already taken can fail (one
    /// per client at most), never one that could not connect.
    @Test func postsMeetingAKilledReplicaGoToTheOtherOne() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        let file = try Self.writeService(server.home, name: "pk", body: "commands:\n  - python3 testapp.py --port 8000 --name pk\nreplicas: 2\n")
        #expect(try await server.cli(["apply", "-f", file.path, "-y"]).status == 0)
        let apps = { processes(matching: "testapp.py", prefix: "python3", in: server.dataDir.path) }
        try await waitFor(timeout: 30) { apps().count == 2 }
        let url = server.url + "/proxy/services/main/pk/echo"
        let token = server.token
        let stop = StopFlag()
        let done = RequestCount()
        let loop = Task {
            await withTaskGroup(of: [(Int, String)].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        var statuses: [(Int, String)] = []
                        while !stop.isSet, statuses.count < 5000 {
                            statuses.append(await Self.post(url, token: token, body: "hello"))
                            done.add()
                        }
                        return statuses
                    }
                }
                return await group.reduce(into: []) { $0 += $1 }
            }
        }
        // Requests flow, then one replica dies whole (app and bridge) while they do; the loop
        // goes on for 40 more requests (ten per client), past the moment it leaves the route.
        try await waitFor(timeout: 30) { done.value >= 20 }
        let victim = try #require(apps().first)
        kill(-getpgid(pid_t(victim)), SIGKILL)
        let atKill = done.value
        try await waitFor(timeout: 60) { done.value >= atKill + 40 }
        stop.set()
        let statuses = await loop.value
        let failed = statuses.filter { $0.0 != 200 }
        #expect(!failed.contains { $0.1.contains("could not connect") }, "\(failed.map(\.1))")
        #expect(failed.count <= 4, "\(failed.count) of \(statuses.count) POSTs failed: \(failed.map { "\($0.0) \($0.1)" })")
        #expect(try await server.cli(["stop", "pk", "-y"]).status == 0)
    }

    @Test func scaleFromZeroHoldsAndServesConcurrentRequestsThenReturnsToZero() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        let file = try Self.writeService(server.home, name: "cold", body: """
            commands:
              - python3 testapp.py --port 8000 --name cold
            replicas: 0..2
            scaling:
              metric: rps
              target: 50
              window: 30s
              scale_down_delay: 0s
            probes:
              - type: http
                url: /name
                interval: 1
            """)
        let applied = try await server.cli(["apply", "-f", file.path, "-y", "-d"])
        #expect(applied.status == 0, "\(applied.output)")
        let workloads = { processes(matching: "testapp.py", prefix: "python3", in: server.dataDir.path) }
        try await Task.sleep(nanoseconds: 500_000_000)
        #expect(workloads().isEmpty, "a 0..2 service starts with no replica")
        let idle = try await server.cli(["describe", "cold"])
        #expect(idle.output.contains("Status:       waiting for requests\n") && idle.output.contains("Replicas:     0..2\n"),
                "the status said once: \(idle.output)")

        // Ten requests at zero: held (not 503), counted as demand, all served once a replica is ready.
        let url = server.url + "/proxy/services/main/cold/name"
        let token = server.token
        let started = Date()
        let results = await withTaskGroup(of: (Int, String).self) { group in
            for _ in 0..<10 { group.addTask { await Self.get(url, token: token) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0 == (200, "cold") }, "\(results)")
        #expect(!workloads().isEmpty)
        let events = try await server.cli(["describe", "cold"])
        #expect(events.output.contains("Autoscaled") || events.output.contains("scale up from zero"), "\(events.output)")
        print("scale from zero: 10 held requests served in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")

        // Idle for the 30 s window: back to zero replicas.
        try await waitFor(timeout: 90) { workloads().isEmpty }
        let run = try await server.get("/api/v1/projects/main/runs/cold", token: server.token)
        #expect(run.body.contains("\"desiredReplicas\":0"), "\(run.body)")
    }

    @Test func scaleDownUnderLoadFailsNoRequest() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        func service(_ replicas: Int) throws -> URL {
            try Self.writeService(server.home, name: "slow", body: """
                commands:
                  - python3 testapp.py --port 8000 --name slow --delay-ms 400
                replicas: \(replicas)
                probes:
                  - type: http
                    url: /name
                    interval: 1
                """)
        }
        #expect(try await server.cli(["apply", "-f", try service(3).path, "-y"]).status == 0)
        let workloads = { processes(matching: "testapp.py", prefix: "python3", in: server.dataDir.path) }
        #expect(workloads().count == 3)
        let url = server.url + "/proxy/services/main/slow/work"
        let token = server.token
        let stop = StopFlag()
        // Four clients keep requests in flight on every replica while two of them go.
        let loop = Task {
            await withTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        var statuses: [Int] = []
                        while !stop.isSet, statuses.count < 2000 { statuses.append(await Self.get(url, token: token).0) }
                        return statuses
                    }
                }
                return await group.reduce(into: []) { $0 += $1 }
            }
        }
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let scaled = try await server.cli(["apply", "-f", try service(1).path, "-y"])
        #expect(scaled.status == 0, "\(scaled.output)")
        try await waitFor(timeout: 60) { workloads().count == 1 }
        try await Task.sleep(nanoseconds: 1_000_000_000)
        stop.set()
        let statuses = await loop.value
        let failed = statuses.filter { $0 != 200 }
        #expect(statuses.count > 10)
        #expect(failed.isEmpty, "\(failed.count) of \(statuses.count) requests failed: \(Set(failed))")
    }

    /// SIGTERM drains the proxy: a request in flight finishes with its answer, a new connection
    /// is refused, and the server exits once nothing is in flight (not after the 30 s bound).
    @Test func shutdownFinishesRequestsInFlight() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        let file = try Self.writeService(server.home, name: "slow", body: "commands:\n  - python3 testapp.py --port 8000 --name slow\n")
        #expect(try await server.cli(["apply", "-f", file.path, "-y"]).status == 0)
        let url = server.url + "/proxy/services/main/slow/delay?ms=3000"
        let token = server.token
        let inFlight = Task { await Self.get(url, token: token) }
        try await waitFor(timeout: 10) {
            let metrics = try await server.get("/metrics", token: server.token).body
            return metrics.contains(#"setpoint_proxy_in_flight{project="main",service="slow"} 1"#)
        }
        let pid = try #require(server.current?.processIdentifier)
        let started = Date()
        kill(pid, SIGTERM)
        // The listening socket closes at once: a new request finds nobody.
        try await waitFor(timeout: 5) { (try? await server.get("/api/v1/healthz")) == nil }
        let (status, body) = await inFlight.value
        #expect(status == 200 && body.contains("slow"), "\(status) \(body)")
        await onThread { server.current?.waitUntilExit() }
        #expect(Date().timeIntervalSince(started) < 20, "the server waited for the request, not for the drain bound")
    }
}

/// Requests finished so far, for a test to wait on.
final class RequestCount: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { lock.lock(); flag = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return flag }
}
