import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// The real `setpoint` binary end to end: a server on a free port with a temporary data
/// directory, the CLI applying a `python3 -m http.server` service, requests through the proxy,
/// and stopping. Every process started is stopped by its PID.
@Suite(.serialized) struct ServerE2ETests {
    static var binary: URL {
        var dir = Bundle.main.bundleURL
        while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("setpoint").path), dir.path != "/" {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent("setpoint")
    }

    final class Server: @unchecked Sendable {
        let process = Process()
        let port: Int
        let dataDir: URL
        let home: URL
        let token: String
        var url: String { "http://127.0.0.1:\(port)" }

        /// More `setpoint server` arguments (`--kubeconfig …`), for the next start.
        var extraArguments: [String]
        /// The server's output, when kept (`logPath`).
        var logPath: String { dataDir.deletingLastPathComponent().appendingPathComponent("server.log").path }
        let keepLog: Bool

        /// More environment for the server process.
        let environment: [String: String]

        /// - Parameter token: the admin token (servers sharing a database share it).
        init(extraArguments: [String] = [], keepLog: Bool = false, start: Bool = true, environment: [String: String] = [:],
             token: String? = nil) throws {
            self.token = token ?? "e2e-" + UUID().uuidString.lowercased()
            self.extraArguments = extraArguments
            self.environment = environment
            self.keepLog = keepLog
            port = try freePort()
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-e2e-\(UUID().uuidString)")
            dataDir = base.appendingPathComponent("data")
            home = base.appendingPathComponent("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            if start { try self.start() }
        }

        func start() throws {
            let p = process.isRunning || process.processIdentifier != 0 ? Process() : process
            p.executableURL = ServerE2ETests.binary
            p.arguments = ["server", "--port", String(port), "--data-dir", dataDir.path] + extraArguments
            p.environment = ["HOME": home.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                             "SETPOINT_ADMIN_TOKEN": token].merging(environment) { _, b in b }
            if keepLog {
                if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
                let log = FileHandle(forWritingAtPath: logPath)
                log?.seekToEndOfFile()
                p.standardOutput = log
                p.standardError = log
            } else {
                p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
                p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            }
            try p.run()
            current = p
        }

        var current: Process?

        func waitHealthy() async throws {
            try await waitFor(timeout: 30) { (try? await get("/api/v1/healthz").status) == 200 }
        }

        func get(_ path: String, token: String? = nil, followRedirects: Bool = true) async throws -> (status: Int, body: String, location: String?) {
            var request = URLRequest(url: URL(string: url + path)!)
            request.timeoutInterval = 10
            if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            let session = followRedirects ? URLSession.shared : URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)
            let (data, response) = try await session.data(for: request)
            let http = response as? HTTPURLResponse
            return (http?.statusCode ?? 0, String(decoding: data, as: UTF8.self), http?.value(forHTTPHeaderField: "Location"))
        }

        /// Runs the CLI against this server (waiting off the cooperative pool, so request loops
        /// running meanwhile keep going).
        func cli(_ arguments: [String], env extra: [String: String] = [:], input: String? = nil) async throws -> (status: Int32, output: String) {
            var env = ["HOME": home.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                       "SETPOINT_URL": url, "SETPOINT_TOKEN": token, "SETPOINT_PROJECT": "main"]
            env.merge(extra) { _, b in b }
            return try await runProcess([ServerE2ETests.binary.path] + arguments, environment: env, inheritEnvironment: false, timeout: 300, input: input)
        }

        /// Signals the server and waits (bounded) for it to end. Not `waitUntilExit`: it can
        /// miss an exit and spin; a child Foundation has not noticed is reaped here.
        func kill(signal: Int32) {
            guard let p = current, p.isRunning else { return }
            Foundation.kill(p.processIdentifier, signal)
            waitForExit(p)
        }

        /// The same, waiting on a thread of its own: where the server's shutdown needs this test
        /// process (a fake API server in it), a wait that holds a cooperative thread can starve it.
        func terminate(signal: Int32) async {
            guard let p = current, p.isRunning else { return }
            Foundation.kill(p.processIdentifier, signal)
            await onThread { self.waitForExit(p) }
        }

        /// How the last stop ended (0: a clean exit), whoever reaped the process.
        var exitStatus: Int32? {
            if let reaped = lock.withLock({ reapedStatus }) { return reaped }
            guard let p = current, !p.isRunning else { return nil }
            return p.terminationReason == .exit ? p.terminationStatus : 128 + p.terminationStatus
        }
        private let lock = NSLock()
        private var reapedStatus: Int32?

        private func waitForExit(_ p: Process) {
            let pid = p.processIdentifier
            let deadline = Date().addingTimeInterval(60)
            var status: Int32 = 0
            lock.withLock { reapedStatus = nil }
            while p.isRunning, Date() < deadline {
                let r = waitpid(pid, &status, WNOHANG)
                if r == pid {
                    let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                    lock.withLock { reapedStatus = code }
                    break
                }
                if r < 0 && errno == ECHILD { break }
                usleep(10_000)
            }
        }

        func stop() {
            kill(signal: SIGTERM)
            // Workloads are process groups the server started (they survive a server restart on
            // purpose); none may outlive the test.
            for pid in processes(inDirectory: dataDir.path) { Foundation.kill(pid_t(pid), SIGKILL) }
            try? FileManager.default.removeItem(at: dataDir.deletingLastPathComponent())
        }
    }

    /// The service and its code (an `index.html` the server serves) in `<dir>/project`.
    static func writeService(_ dir: URL, replicas: Int = 2, env: String = "v1") throws -> URL {
        let project = dir.appendingPathComponent("project")
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        try "<p>uploaded code \(env)</p>\n".write(to: project.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        let file = project.appendingPathComponent("web.dstack.yml")
        try """
            type: service
            name: web
            commands:
              - python3 -m http.server 8000 --bind 127.0.0.1
            env:
              - VERSION=\(env)
            port: 8000
            replicas: \(replicas)
            probes:
              - type: http
                url: /
                interval: 1
            """.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    @Test func applyServeAuthStop() async throws {
        let server = try Server()
        defer { server.stop() }
        try await server.waitHealthy()
        let file = try Self.writeService(server.home)

        let applied = try await server.cli(["apply", "-f", file.path, "-y"])
        #expect(applied.status == 0, "\(applied.output)")
        #expect(applied.output.contains("Service is published at:"))
        #expect(applied.output.contains("\(server.url)/proxy/services/main/web/"))

        let ok = try await server.get("/proxy/services/main/web/", token: server.token)
        #expect(ok.status == 200)
        #expect(ok.body.contains("uploaded code v1"), "the replica runs in a directory holding the uploaded code")
        #expect(try await server.get("/proxy/services/main/web/").status == 401)
        #expect(try await server.get("/proxy/services/main/web/", token: "wrong").status == 401)
        let redirect = try await server.get("/proxy/services/main/web", token: server.token, followRedirects: false)
        #expect(redirect.status == 308 && redirect.location == "/proxy/services/main/web/")
        #expect(try await server.get("/proxy/services/main/nope/", token: server.token).status == 404)
        #expect(processes(matching: "http.server 8000", prefix: "python3", in: server.dataDir.path).count == 2)

        let ps = try await server.cli(["ps"])
        #expect(ps.output.contains("web") && ps.output.contains("running") && ps.output.contains("2/2"))
        let json = try await server.cli(["ps", "-o", "json"])
        #expect(json.output.contains("\"readyReplicas\" : 2"))

        // Logs, the watch stream, offers and YAML output.
        let logs = try await server.cli(["logs", "web", "--replica", "0"])
        #expect(logs.status == 0 && logs.output.contains("GET / HTTP/1.1"), "\(logs.output)")
        #expect(!logs.output.contains("socat"), "the app's output only, not the local bridge's: \(logs.output)")
        let watch = try await firstLine(server.url + "/api/v1/projects/main/watch", token: server.token)
        #expect(watch.contains("\"kind\":\"Run\"") && watch.contains("\"name\":\"web\""))
        let offers = try await server.cli(["offer", "-o", "yaml"])
        #expect(offers.status == 0 && offers.output.contains("backend: local"))
        let yaml = try await server.cli(["describe", "web", "-o", "yaml"])
        #expect(yaml.output.contains("phase: running"))
        // Read as a person would: resources as the plan shows them, the replica count, no JSON.
        let text = try await server.cli(["describe", "web"])
        #expect(text.output.contains("Resources:    cpu=2.. mem=8GB.. disk=100GB..\n") && text.output.contains("Replicas:     2\n"), "\(text.output)")
        #expect(!text.output.contains("\"vendor\""), "\(text.output)")

        // A user without a role in the project: 403 on the API and the proxy.
        #expect(try await server.cli(["project", "create", "other"]).status == 0)
        let created = try await server.cli(["user", "create", "viewer", "--role", "other=user"])
        #expect(created.status == 0, "\(created.output)")
        let viewerToken = String(created.output.split(separator: " ").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try await server.get("/api/v1/projects/main/runs", token: viewerToken).status == 403)
        #expect(try await server.get("/proxy/services/main/web/", token: viewerToken).status == 403)
        #expect(try await server.get("/api/v1/projects/other/runs", token: viewerToken).status == 200)

        let stop = try await server.cli(["stop", "web", "-y"])
        #expect(stop.status == 0)
        try await waitFor(timeout: 30) { processes(matching: "http.server 8000", prefix: "python3", in: server.dataDir.path).isEmpty }
        let described = try await server.cli(["describe", "web"])
        #expect(described.output.contains("terminated"))
    }

    @Test func invalidConfigurationIsRejectedBeforeAnythingIsSent() async throws {
        let server = try Server()
        defer { server.stop() }
        try await server.waitHealthy()
        let file = server.home.appendingPathComponent("bad.dstack.yml")
        try "type: service\nname: bad\ncommands: [x]\nport: 70000\n".write(to: file, atomically: true, encoding: .utf8)
        let result = try await server.cli(["apply", "-f", file.path, "-y"])
        #expect(result.status == 1)
        #expect(result.output.contains("\(file.path):4:7") && result.output.contains("service.port"))
        let runs = try await server.get("/api/v1/projects/main/runs", token: server.token)
        #expect(runs.status == 200 && runs.body == "[]")
        // The API validates again and answers 400 with located issues.
        var request = URLRequest(url: URL(string: server.url + "/api/v1/projects/main/runs/apply")!)
        request.httpMethod = "POST"
        request.setValue("Bearer \(server.token)", forHTTPHeaderField: "Authorization")
        request.httpBody = Data(#"{"configuration": "type: service\nname: bad\nport: 8000\n", "env": {}, "force": false}"#.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 400)
        #expect(String(decoding: data, as: UTF8.self).contains("either `commands` or `image` must be set"))
        request.httpBody = Data(#"{"env": {}}"#.utf8)
        let (bad, badResponse) = try await URLSession.shared.data(for: request)
        #expect((badResponse as? HTTPURLResponse)?.statusCode == 400)
        #expect(String(decoding: bad, as: UTF8.self).contains("configuration"))
    }

    @Test func rollingUpdateFailsNoRequest() async throws {
        let server = try Server()
        defer { server.stop() }
        try await server.waitHealthy()
        var file = try Self.writeService(server.home)
        #expect(try await server.cli(["apply", "-f", file.path, "-y"]).status == 0)
        // A bounded request loop runs while the new deployment rolls out.
        let stop = StopFlag()
        let loop = requestLoop(url: server.url, token: server.token, until: stop)
        file = try Self.writeService(server.home, env: "v2")
        let rolled = try await server.cli(["apply", "-f", file.path, "-y"])
        #expect(rolled.status == 0, "\(rolled.output)")
        // `apply` returned once the new generation is observed: every replica is of deployment 2.
        let run = try await server.get("/api/v1/projects/main/runs/web", token: server.token)
        #expect(run.body.contains("\"observedGeneration\":2") && run.body.contains("\"deploymentNum\":2"))
        stop.set()
        let (count, failures) = await loop.value
        #expect(count > 0)
        #expect(failures.isEmpty, "\(failures.count) of \(count) requests failed: \(Set(failures))")
    }

    @Test func killNineDuringRolloutThenRestartConverges() async throws {
        let server = try Server()
        defer { server.stop() }
        try await server.waitHealthy()
        var file = try Self.writeService(server.home)
        #expect(try await server.cli(["apply", "-f", file.path, "-y"]).status == 0)
        file = try Self.writeService(server.home, env: "v2")
        #expect(try await server.cli(["apply", "-f", file.path, "-y", "-d"]).status == 0)
        server.kill(signal: SIGKILL)
        try server.start()
        try await server.waitHealthy()
        try await waitFor(timeout: 60) {
            let r = try await server.get("/api/v1/projects/main/runs/web", token: server.token)
            return r.body.contains("\"readyReplicas\":2") && r.body.contains("\"observedGeneration\":2")
        }
        // No duplicate and no orphan: exactly two servers run, both of the new deployment.
        do {
            try await waitFor(timeout: 30) { processes(matching: "http.server 8000", prefix: "python3", in: server.dataDir.path).count == 2 }
        } catch {
            let replicas = try await server.get("/api/v1/projects/main/runs/web/replicas", token: server.token)
            Issue.record("\(processes(matching: "http.server 8000", prefix: "python3", in: server.dataDir.path).count) python processes; replicas: \(replicas.body)")
        }
        let replicas = try await server.get("/api/v1/projects/main/runs/web/replicas", token: server.token)
        #expect(replicas.status == 200)
        let live = replicas.body.components(separatedBy: "\"phase\":\"running\"").count - 1
        #expect(live == 2)
        #expect(try await server.get("/proxy/services/main/web/", token: server.token).status == 200)
    }
}

/// Requests to `path` one after another until `stop` is set (or `seconds`, or `limit` requests):
/// how many were sent, and the statuses that were not 200. Stopped by a flag, never by
/// cancelling: cancelling an in-flight URLSession request can deadlock FoundationNetworking on
/// Linux (the cancel handler and the completion wait on each other).
func requestLoop(url: String, token: String, path: String = "/proxy/services/main/web/", until stop: StopFlag,
                 seconds: TimeInterval = 60, limit: Int = 20_000) -> Task<(Int, [Int]), Never> {
    Task {
        var failures: [Int] = []
        var count = 0
        let deadline = Date().addingTimeInterval(seconds)
        while !stop.isSet, Date() < deadline, count < limit {
            var request = URLRequest(url: URL(string: url + path)!)
            request.timeoutInterval = 10
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
            let status = ((try? await URLSession.shared.data(for: request))?.1 as? HTTPURLResponse)?.statusCode ?? 0
            if status != 200 { failures.append(status) }
            count += 1
        }
        return (count, failures)
    }
}

/// The first line of a streamed (NDJSON) response, read for at most two seconds (with curl:
/// the stream does not end by itself).
func firstLine(_ url: String, token: String) async throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["curl", "-sN", "--max-time", "2", "-H", "Authorization: Bearer \(token)", url]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle(forWritingAtPath: "/dev/null")
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
}

final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}


/// Pids whose command line contains `text` and starts with `prefix`, running in a directory
/// under `directory` (a test's own data directory).
func processes(matching text: String, prefix: String = "", in directory: String) -> [Int] {
    processes(inDirectory: directory).filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let cmd = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return cmd.contains(text) && cmd.hasPrefix(prefix)
    }
}

/// Pids whose working directory is inside `directory` (the workloads of a data directory).
func processes(inDirectory directory: String) -> [Int] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int.init).filter { pid in
        guard let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd") else { return false }
        return cwd.hasPrefix(directory)
    }
}

struct E2EError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
