import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// Defects a hostile trial found in the server and the CLI, each with the real binary.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HardeningE2ETests {
    static func setpoint(_ arguments: [String], home: URL, env: [String: String] = [:], timeout: TimeInterval = 60) async throws -> (status: Int32, output: String) {
        var environment = ["HOME": home.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        environment.merge(env) { _, b in b }
        return try await runProcess([ServerE2ETests.binary.path] + arguments, environment: environment, inheritEnvironment: false, timeout: timeout)
    }

    @Test func theCLISaysClearlyAndQuicklyThatNoServerAnswers() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: home) }
        let port = try freePort()   // nothing listens there
        let started = Date()
        let ps = try await Self.setpoint(["ps"], home: home, env: ["SETPOINT_URL": "http://127.0.0.1:\(port)", "SETPOINT_TOKEN": "t"], timeout: 30)
        #expect(ps.status != 0)
        #expect(ps.output.contains("cannot reach the Setpoint server at http://127.0.0.1:\(port): connection refused — is it running? (SETPOINT_URL"),
                "\(ps.output)")
        #expect(!ps.output.contains("errno"), "no raw socket error: \(ps.output)")
        #expect(Date().timeIntervalSince(started) < 20, "not after a 60 s timeout")
    }

    @Test func applyThatFollowsSaysWhenTheServerWentAway() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        // Never ready: nothing listens on the port, so apply keeps following.
        let file = server.home.appendingPathComponent("never.dstack.yml")
        try "type: service\nname: never\ncommands: [sleep 600]\nport: 8000\n".write(to: file, atomically: true, encoding: .utf8)
        // The CLI's output goes to a file, so the test kills the server once the CLI is
        // following (it printed a progress line), not merely once the run exists.
        let log = server.home.appendingPathComponent("apply.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let apply = Process()
        apply.executableURL = ServerE2ETests.binary
        apply.arguments = ["apply", "-f", file.path, "-y"]
        apply.environment = ["HOME": server.home.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                             "SETPOINT_URL": server.url, "SETPOINT_TOKEN": server.token, "SETPOINT_PROJECT": "main"]
        apply.standardOutput = FileHandle(forWritingAtPath: log.path)
        apply.standardError = apply.standardOutput
        try apply.run()
        defer { if apply.isRunning { kill(apply.processIdentifier, SIGKILL) } }
        try await waitFor("apply to follow the run", timeout: 30) { (try? String(contentsOf: log, encoding: .utf8))?.contains(" ready") == true }
        server.kill(signal: SIGKILL)
        try await waitFor("apply to end", timeout: 60) { !apply.isRunning }
        let output = try String(contentsOf: log, encoding: .utf8)
        #expect(apply.terminationStatus != 0)
        #expect(output.contains("The server went away while following never") && output.contains("connection refused"), "\(output)")
    }

    @Test func aServerOnATakenPortEndsAtOnceNamingTheAddress() async throws {
        let first = try ServerE2ETests.Server()
        defer { first.stop() }
        try await first.waitHealthy()
        let other = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-port-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: other) }
        let second = try await Self.setpoint(["server", "--port", String(first.port), "--data-dir", other.appendingPathComponent("data").path],
                                             home: other, timeout: 30)
        #expect(second.status != 0, "\(second.output)")
        #expect(second.output.contains("cannot listen on 127.0.0.1:\(first.port): the address is already in use"), "\(second.output)")
        #expect(!second.output.contains("admin token") && !second.output.contains("running at"), "nothing started: \(second.output)")
        #expect(try await first.get("/api/v1/healthz").status == 200, "the first server is untouched")
    }

    @Test func aSecondServerOnTheSameDataDirectoryIsRefused() async throws {
        let first = try ServerE2ETests.Server()
        defer { first.stop() }
        try await first.waitHealthy()
        let pid = try #require(first.current?.processIdentifier)
        let second = try await Self.setpoint(["server", "--port", String(try freePort()), "--data-dir", first.dataDir.path], home: first.home, timeout: 30)
        #expect(second.status != 0, "\(second.output)")
        #expect(second.output.contains("the data directory \(first.dataDir.path) is in use by another setpoint server (pid \(pid))"), "\(second.output)")
        #expect(try await first.get("/api/v1/healthz").status == 200)
        #expect(FileManager.default.fileExists(atPath: first.dataDir.appendingPathComponent("api.sock").path), "its API socket is still there")
        // Killed (no clean release), the directory is free again: the kernel drops the lock.
        first.kill(signal: SIGKILL)
        try first.start()
        try await first.waitHealthy()
    }

    @Test func applyUploadsARepositoryOfThousandsOfFiles() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        // 3,000 files: their list (~90 KB) and tar's output (~300 KB of incompressible bytes)
        // are each larger than a pipe's buffer.
        let project = server.home.appendingPathComponent("big-repo")
        // Thousands of file writes: on a thread of their own, not on the tests' cooperative threads.
        let written = await onThread { () -> Bool in
            var generator = SystemRandomNumberGenerator()
            for i in 0..<3000 {
                let dir = project.appendingPathComponent("src/module-\(String(format: "%03d", i / 100))")
                if i % 100 == 0 { try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
                var bytes = [UInt8](repeating: 0, count: 96)
                for j in bytes.indices { bytes[j] = UInt8.random(in: 0...255, using: &generator) }
                guard (try? Data(bytes).write(to: dir.appendingPathComponent("file-\(String(format: "%05d", i)).bin"))) != nil else { return false }
            }
            return true
        }
        #expect(written)
        let file = project.appendingPathComponent("svc.dstack.yml")
        try "type: service\nname: big-repo\ncommands: [python3 -m http.server 8000]\nport: 8000\n".write(to: file, atomically: true, encoding: .utf8)
        let applied = try await server.cli(["apply", "-f", file.path, "-y", "-d"])
        #expect(applied.status == 0, "\(applied.output)")
        #expect(applied.output.contains("Code: 3000 file(s)"), "the files, not the configuration: \(applied.output)")
        #expect(try await server.cli(["stop", "big-repo", "-y"]).status == 0)
    }

    static func send(_ server: ServerE2ETests.Server, _ method: String, _ path: String, _ body: String? = nil) async throws -> (status: Int, body: String) {
        var request = URLRequest(url: URL(string: server.url + path)!)
        request.httpMethod = method
        request.timeoutInterval = 10
        request.setValue("Bearer \(server.token)", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    @Test func badAPIInputIsRefusedNamingWhatIsWrong() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        let config = #"{"configuration":"type: service\nname: web\ncommands: [python3 -m http.server 8000]\nport: 8000\n"}"#
        // A plan needs only the configuration (env and force are optional, as documented).
        let plan = try await Self.send(server, "POST", "/api/v1/projects/main/runs/plan", config)
        #expect(plan.status == 200, "\(plan.body)")
        let applied = try await Self.send(server, "POST", "/api/v1/projects/main/runs/apply", config)
        #expect(applied.status == 200, "\(applied.body)")

        let cases: [(String, String, String?, Int, String)] = [
            ("DELETE", "/api/v1/projects/main/runs/nope", nil, 404, "nope"),
            ("POST", "/api/v1/projects/main/runs/web/stop", #"{"abort":"yes"}"#, 400, "`abort`: expected a boolean"),
            ("GET", "/api/v1/projects/main/runs/web/logs?replica=abc", nil, 400, "replica"),
            ("GET", "/api/v1/projects/main/watch?resourceVersion=abc", nil, 400, "resourceVersion"),
            ("POST", "/api/v1/projects/main/runs/apply",
             #"{"configuration":"type: service\nname: web\ncommands: [x]\nport: 8000\n","resourceVersion":-1}"#, 400, "resourceVersion"),
            ("POST", "/api/v1/users", #"{"name":"bob","projects":{"nope":"user"}}"#, 404, "project nope does not exist"),
            ("GET", "/api/v1/projects/nope/runs", nil, 404, "project nope does not exist"),
            ("GET", "/api/v1/projects/nope/watch", nil, 404, "project nope does not exist"),
        ]
        for (method, path, body, status, says) in cases {
            let r = try await Self.send(server, method, path, body)
            #expect(r.status == status && r.body.contains(says), "\(method) \(path): \(r.status) \(r.body)")
        }
        // Nothing of it changed anything: web still runs, no user bob.
        let run = try await server.get("/api/v1/projects/main/runs/web", token: server.token)
        #expect(run.status == 200 && !run.body.contains(#""stopRequested":true"#), "\(run.body)")
        #expect(!(try await Self.send(server, "GET", "/api/v1/users")).body.contains("bob"))

        // Projects are made on purpose, then users get roles in them.
        #expect(try await server.cli(["project", "create", "team-a", "--description", "Team A"]).status == 0)
        let user = try await server.cli(["user", "create", "bob", "--role", "team-a=user"])
        #expect(user.status == 0, "\(user.output)")
        let listed = try await server.cli(["project", "list"])
        #expect(listed.output.contains("team-a") && listed.output.contains("Team A") && listed.output.contains("main"), "\(listed.output)")
        #expect((try await Self.send(server, "GET", "/api/v1/projects/team-a/runs")).status == 200)
        #expect(try await server.cli(["stop", "web", "-y"]).status == 0)
    }

    /// A started server running `web`: two replicas of Python's http.server (which listens with
    /// a backlog of 5).
    static func serverWithTwoHTTPReplicas() async throws -> ServerE2ETests.Server {
        let server = try ServerE2ETests.Server()
        do {
            try await server.waitHealthy()
            let file = server.home.appendingPathComponent("web.dstack.yml")
            try "type: service\nname: web\ncommands: [python3 -m http.server 8000 --bind 127.0.0.1]\nport: 8000\nreplicas: 2\n"
                .write(to: file, atomically: true, encoding: .utf8)
            #expect(try await server.cli(["apply", "-f", file.path, "-y"]).status == 0)
            return server
        } catch {
            server.stop()   // started: stopped by its PID whatever went wrong
            throw error
        }
    }

    @Test func aKilledReplicaIsReplacedWithoutARetryPolicy() async throws {
        let server = try await Self.serverWithTwoHTTPReplicas()
        defer { server.stop() }
        let apps = { processes(matching: "http.server", prefix: "python3", in: server.dataDir.path) }
        try await waitFor(timeout: 30) { apps().count == 2 }
        let victim = try #require(apps().first)
        kill(pid_t(victim), SIGKILL)
        // Replaced after the first backoff (15 s), whatever `retry` says (there is none).
        try await waitFor(timeout: 60) {
            let now = apps()
            guard now.count == 2, !now.contains(victim) else { return false }
            return try await server.cli(["ps"]).output.contains("2/2")
        }
        let described = try await server.cli(["describe", "web"])
        #expect(described.output.contains("exited with status 137") && described.output.contains("replacing it"), "\(described.output)")
        #expect(try await server.cli(["stop", "web", "-y"]).status == 0)
    }

    /// A raw TCP client to the server (what slow or silent clients do).
    final class Socket: @unchecked Sendable {
        let fd: Int32
        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let ok = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard ok == 0 else { close(fd); throw E2EError(message: "connect failed: \(errno)") }
        }
        deinit { close(fd) }
        func send(_ text: String) { _ = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }
        /// Everything until the server closes (or 10 s pass).
        func readAll() -> String {
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                out += chunk[0..<n]
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    @Test func silentClientsAreClosedAndConnectionsAreLimited() async throws {
        let server = try ServerE2ETests.Server(extraArguments: ["--header-timeout", "2", "--idle-timeout", "3", "--max-connections", "40"])
        defer { server.stop() }
        try await server.waitHealthy()
        // 40 clients that send nothing, or half a request head: the limit is reached...
        var silent: [Socket] = []
        for i in 0..<40 {
            let s = try Socket(port: server.port)
            if i % 2 == 0 { s.send("GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n") }
            silent.append(s)
        }
        let extra = try Socket(port: server.port)
        extra.send("GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let refused = await onThread { extra.readAll() }
        #expect(refused.hasPrefix("HTTP/1.1 503") && refused.contains("Too many connections"), "\(refused)")
        // ...and every one of them is closed by the header timeout, without a response.
        for s in silent { #expect(await onThread { s.readAll() }.isEmpty) }
        #expect(try await server.get("/api/v1/healthz").status == 200, "served again once they are gone")
        // A keep-alive connection is closed after the idle timeout.
        let idle = try Socket(port: server.port)
        let started = Date()   // before the send: the idle clock cannot start earlier
        idle.send("GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = await onThread { idle.readAll() }
        #expect(answer.hasPrefix("HTTP/1.1 200") && Date().timeIntervalSince(started) >= 2.5, "\(answer)")
    }

    @Test func aBurstOfConnectionsToSmallBacklogsGetsNo502() async throws {
        let server = try await Self.serverWithTwoHTTPReplicas()
        defer { server.stop() }
        try await waitFor(timeout: 30) { try await server.cli(["ps"]).output.contains("2/2") }
        let url = server.url + "/proxy/services/main/web/"
        let burst = try await runProcess(["curl", "-s", "--no-progress-meter", "-w", "%{http_code}\n", "--parallel", "--parallel-immediate",
                                          "--parallel-max", "64", "-H", "Authorization: Bearer \(server.token)"]
                                         + (0..<512).flatMap { _ in ["-o", "/dev/null", url] }, timeout: 120)
        let codes = burst.output.split(separator: "\n").map(String.init)
        #expect(codes.count == 512, "\(burst.output.prefix(500))")
        let failures = codes.filter { $0 != "200" }
        #expect(failures.isEmpty, "\(failures.count) failed: \(Dictionary(grouping: failures, by: { $0 }).mapValues(\.count))")
        #expect(try await server.cli(["stop", "web", "-y"]).status == 0)
    }

    /// Mounts a tmpfs (root only, as the tests run) and returns a function that unmounts it.
    static func tmpfs(_ path: String, options: String) async throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mounted = try await runProcess(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path])
        guard mounted.status == 0 else { throw E2EError(message: "cannot mount a tmpfs: \(mounted.output)") }
    }

    static func unmount(_ path: String) async { _ = try? await runProcess(["umount", "-l", path]) }

    @Test func dataDirectoryProblemsNameThePathAndTheCause() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-dd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        func server(_ dataDir: String) async throws -> (status: Int32, output: String) {
            try await Self.setpoint(["server", "--port", String(try freePort()), "--data-dir", dataDir], home: base, timeout: 30)
        }
        let file = base.appendingPathComponent("afile").path
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let onFile = try await server(file)
        #expect(onFile.status != 0 && onFile.output.contains("the data directory \(file) is a file, not a directory"), "\(onFile.output)")
        #expect(!onFile.output.contains("NSCocoaErrorDomain"))

        let ro = base.appendingPathComponent("ro").path
        try await Self.tmpfs(ro, options: "ro,size=1m")
        let below = try await server(ro + "/data")
        #expect(below.status != 0 && below.output.contains("cannot create the data directory \(ro)/data") && below.output.contains("Read-only file system"),
                "\(below.output)")
        let onRO = try await server(ro)
        #expect(onRO.status != 0 && onRO.output.contains("the data directory \(ro) is not writable: Read-only file system"), "\(onRO.output)")
        await Self.unmount(ro)

        // A disk that fills up while the server runs.
        let small = base.appendingPathComponent("small").path
        try await Self.tmpfs(small, options: "size=8m")
        let data = small + "/data"
        let port = try freePort()
        let p = Process()
        p.executableURL = ServerE2ETests.binary
        p.arguments = ["server", "--port", String(port), "--data-dir", data]
        let token = "dd-" + UUID().uuidString.lowercased()
        p.environment = ["HOME": base.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "SETPOINT_ADMIN_TOKEN": token]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer {
            if p.isRunning { kill(p.processIdentifier, SIGTERM); p.waitUntilExit() }
            for pid in processes(inDirectory: data) { kill(pid_t(pid), SIGKILL) }
        }
        let env = ["SETPOINT_URL": "http://127.0.0.1:\(port)", "SETPOINT_TOKEN": token]
        try await waitFor(timeout: 30) { try await Self.setpoint(["ps"], home: base, env: env).status == 0 }
        let project = base.appendingPathComponent("project")
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        // A run stored before the disk fills (its own name: its status keeps changing, and an
        // update of it would race those writes with apply's version check).
        let before = project.appendingPathComponent("before.dstack.yml")
        try "type: service\nname: before\ncommands: [sleep 600]\nport: 8000\n".write(to: before, atomically: true, encoding: .utf8)
        #expect(try await Self.setpoint(["apply", "-f", before.path, "-y", "-d"], home: base, env: env).status == 0)
        let filler = small + "/filler"
        _ = try await runProcess(["dd", "if=/dev/zero", "of=\(filler)", "bs=64k"])   // until the disk is full
        let svc = project.appendingPathComponent("web.dstack.yml")
        try "type: service\nname: web\ncommands: [sleep 601]\nport: 8000\n".write(to: svc, atomically: true, encoding: .utf8)
        let full = try await Self.setpoint(["apply", "-f", svc.path, "-y", "-d"], home: base, env: env)
        #expect(full.status != 0, "\(full.output)")
        #expect(full.output.contains("No space left on device") || full.output.contains("is full"), "\(full.output)")
        #expect(full.output.contains(data), "names where: \(full.output)")
        #expect(!full.output.contains("internal error") && !full.output.contains("CocoaError"), "\(full.output)")
        // Space again: the same command works, nothing was lost.
        try FileManager.default.removeItem(atPath: filler)
        let again = try await Self.setpoint(["apply", "-f", svc.path, "-y", "-d"], home: base, env: env)
        #expect(again.status == 0, "\(again.output)")
        #expect(try await Self.setpoint(["ps", "-a"], home: base, env: env).output.contains("before"), "the run stored before is still there")
        #expect(try await Self.setpoint(["stop", "web", "-y"], home: base, env: env).status == 0)
        #expect(try await Self.setpoint(["stop", "before", "-y"], home: base, env: env).status == 0)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        await Self.unmount(small)
    }

    @Test func theLocalBackendRefusesWhatItCannotGive() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        // An image: refused at plan time, located, nothing stored.
        let imageFile = server.home.appendingPathComponent("img.dstack.yml")
        try "type: service\nname: img\nport: 8000\nimage: foo\ncommands: [serve]\n".write(to: imageFile, atomically: true, encoding: .utf8)
        let image = try await server.cli(["apply", "-f", imageFile.path, "-y"])
        #expect(image.status != 0, "\(image.output)")
        #expect(image.output.contains("img.dstack.yml:4:8: service.image: the local backend runs the commands on this machine and cannot run an image"),
                "\(image.output)")
        #expect(try await server.get("/api/v1/projects/main/runs/img", token: server.token).status == 404)
        // More memory and GPUs than the machine has: the plan warns, the replica waits as no capacity with the reason.
        let bigFile = server.home.appendingPathComponent("big.dstack.yml")
        try "type: service\nname: big\nport: 8000\ncommands: [sleep 600]\nresources:\n  memory: 5000GB\n  gpu: H100:8\n"
            .write(to: bigFile, atomically: true, encoding: .utf8)
        let big = try await server.cli(["apply", "-f", bigFile.path, "-y", "-d"])
        #expect(big.status == 0 && big.output.contains("No offer fits the resources: they need 5000GB of memory"), "\(big.output)")
        try await waitFor(timeout: 30) {
            try await server.cli(["describe", "big"]).output.contains("failed_to_start_due_to_no_capacity")
        }
        let described = try await server.cli(["describe", "big"])
        #expect(described.output.contains("this machine (local backend) cannot give the replica its resources: they need 5000GB of memory"), "\(described.output)")
        #expect(processes(matching: "sleep 600", in: server.dataDir.path).isEmpty, "nothing ran")
        #expect(try await server.cli(["stop", "big", "-y"]).status == 0)
    }

    @Test func theAdminTokenIsNotWrittenToRedirectedOutput() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-token-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: base) }
        let data = base.appendingPathComponent("data")
        let port = try freePort()
        let log = base.appendingPathComponent("server.log")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let p = Process()
        p.executableURL = ServerE2ETests.binary
        p.arguments = ["server", "--port", String(port), "--data-dir", data.path]
        p.environment = ["HOME": base.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGTERM); p.waitUntilExit() } }
        try await waitFor(timeout: 30) { FileManager.default.fileExists(atPath: data.appendingPathComponent("admin-token").path)
            && ((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("running at") }
        let token = try String(contentsOf: data.appendingPathComponent("admin-token"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let output = try String(contentsOf: log, encoding: .utf8)
        #expect(!token.isEmpty && !output.contains(token), "\(output)")
        #expect(output.contains("admin-token"), "says where the token is: \(output)")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "SIGTERM ends the server cleanly")
    }
}
