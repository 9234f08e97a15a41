import Foundation
import Testing
import TestSupport

/// Gateways end to end with the real binary: a `backend: local` gateway whose processes the
/// server starts (`setpoint gateway run`), services reached by `Host: <run>.<domain>` (curl
/// `--resolve`), the models API at `gateway.<domain>`, WebSockets, token revocation, the
/// control plane killed while the gateway keeps serving, and autoscaling from gateway traffic
/// with a gateway replica killed.
@Suite(.serialized, .timeLimit(.minutes(4))) struct GatewayE2ETests {
    /// A server whose `config.yml` puts local gateways on a free loopback port (or `httpPort`),
    /// with `more` after `gateways.local.http_port`.
    static func server(httpPort: Int? = nil, more: String = "") throws -> (ServerE2ETests.Server, Int) {
        let server = try ServerE2ETests.Server(keepLog: true, start: false)
        let port = try httpPort ?? freePort()
        try FileManager.default.createDirectory(at: server.dataDir, withIntermediateDirectories: true)
        try """
            backends:
              - type: local
            gateways:
              local:
                host: 127.0.0.1
                http_port: \(port)

            """.appending(more).write(to: server.dataDir.appendingPathComponent("config.yml"), atomically: true, encoding: .utf8)
        try server.start()
        return (server, port)
    }

    /// Gateway `edge` for `example.test`; `certificate` is the line's value (nil: no line, the
    /// default `lets-encrypt`).
    static func writeGateway(_ dir: URL, replicas: Int = 1, certificate: String? = "null") throws -> URL {
        let file = dir.appendingPathComponent("gateway.dstack.yml")
        try """
            type: gateway
            name: edge
            backend: local
            region: local
            domain: example.test
            replicas: \(replicas)

            """.appending(certificate.map { "certificate: \($0)\n" } ?? "").write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    /// Service `web`: the test app, probed on `/name`.
    static func writeWeb(_ dir: URL) throws -> URL {
        try DataPathE2ETests.writeService(dir, name: "web", body: """
            commands:
              - python3 testapp.py --port 8000 --name web
            probes:
              - type: http
                url: /name
                interval: 1
            """)
    }

    /// `curl --resolve HOST:PORT:127.0.0.1`: status and body.
    static func curl(_ host: String, _ port: Int, _ path: String, token: String?, body: String? = nil) async throws -> (Int, String) {
        var argv = ["curl", "-sS", "-m", "60", "--resolve", "\(host):\(port):127.0.0.1", "-w", "\n%{http_code}"]
        if let token { argv += ["-H", "Authorization: Bearer \(token)"] }
        if let body { argv += ["-H", "Content-Type: application/json", "--data", body] }
        argv.append("http://\(host):\(port)\(path)")
        let out = try await runProcess(argv, timeout: 90).output
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    static func gatewayProcesses(_ server: ServerE2ETests.Server) -> [Int] {
        processes(matching: "gateway run", in: server.dataDir.path)
    }

    @Test func aServiceOnAGatewayFromApplyToRevocationAndAControlPlaneOutage() async throws {
        let (server, port) = try Self.server()
        defer { server.stop() }
        try await server.waitHealthy()
        let gateway = try await server.cli(["apply", "-f", Self.writeGateway(server.home).path, "-y"])
        #expect(gateway.status == 0 && gateway.output.contains("Gateway edge is serving at 127.0.0.1:\(port)"), "\(gateway.output)")
        // The test domain resolves nowhere: describe says so, and what to do.
        let described0 = try await server.cli(["gateway", "describe", "edge"])
        #expect(described0.output.contains("DNS:          gateway.example.test does not resolve"), "\(described0.output)")
        let listed = try await server.cli(["gateway", "list"])
        #expect(listed.output.contains("edge (default)") && listed.output.contains("running") && listed.output.contains("1/1"), "\(listed.output)")

        let file = try DataPathE2ETests.writeService(server.home, name: "web", body: """
            commands:
              - python3 testapp.py --port 8000 --name web
            model: test-model
            probes:
              - type: http
                url: /name
                interval: 1
            """)
        let applied = try await server.cli(["apply", "-f", file.path, "-y"])
        #expect(applied.status == 0 && applied.output.contains("http://web.example.test:\(port)/"), "the run's URL is on the gateway: \(applied.output)")
        let described = try await server.cli(["describe", "web", "-o", "json"])
        #expect(described.output.contains("\"gateway\" : \"edge\"") && described.output.contains(#"\/proxy\/services\/main\/web\/"#), "\(described.output)")

        // The whole path reaches the app (no prefix); a token is required.
        let host = "web.example.test"
        let anonymous = try await Self.curl(host, port, "/name", token: nil)
        #expect(anonymous.0 == 401, "\(anonymous)")
        try await waitFor(timeout: 30) { try await Self.curl(host, port, "/name", token: server.token) == (200, "web") }
        let headers = try await Self.curl(host, port, "/headers?x=1", token: server.token)
        #expect(headers.0 == 200 && headers.1.contains("/headers?x=1") && !headers.1.contains("X-Forwarded-Prefix"), "\(headers)")
        // The server's own path keeps working.
        #expect(try await server.get("/proxy/services/main/web/name", token: server.token).body == "web")
        // An unknown run on the gateway's domain, and another domain.
        #expect(try await Self.curl("nope.example.test", port, "/", token: server.token).0 == 404)
        #expect(try await Self.curl("web.other.test", port, "/", token: server.token).0 == 404)

        // The project's models API at gateway.<domain>, with or without /v1.
        let models = try await Self.curl("gateway.example.test", port, "/v1/models", token: server.token)
        #expect(models.0 == 200 && models.1.contains("test-model"), "\(models)")
        let chat = try await Self.curl("gateway.example.test", port, "/chat/completions", token: server.token,
                                       body: #"{"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}"#)
        #expect(chat.0 == 200 && chat.1.contains("Hello"), "\(chat)")

        // A WebSocket through the gateway.
        let ws = try await runProcess(["python3", "-c", Self.webSocketClient, String(port), host, server.token], timeout: 30)
        #expect(ws.output.contains("101") && ws.output.contains("echo: hello"), "\(ws.output)")

        // A user's token works, then stops working on the gateway once the user is deleted.
        let created = try await server.cli(["user", "create", "bob", "--role", "main=user"])
        let bobToken = String(created.output.split(separator: " ").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        try await waitFor(timeout: 10) { try await Self.curl(host, port, "/name", token: bobToken).0 == 200 }
        #expect(try await server.cli(["user", "delete", "bob", "-y"]).status == 0)
        try await waitFor(timeout: 5) { try await Self.curl(host, port, "/name", token: bobToken).0 == 401 }

        // The control plane goes away: the gateway keeps serving what it knows.
        let before = Self.gatewayProcesses(server)
        #expect(before.count == 1, "one gateway process: \(before)")
        server.kill(signal: SIGKILL)
        for _ in 0..<5 { #expect(try await Self.curl(host, port, "/name", token: server.token) == (200, "web")) }
        // Back again: it adopts the running gateway process (no second one, not stuck provisioning).
        try server.start()
        try await server.waitHealthy()
        try await waitFor(timeout: 30) {
            let g = try await server.cli(["gateway", "list"]).output
            return g.contains("running") && g.contains("1/1")
        }
        #expect(Self.gatewayProcesses(server) == before, "the same gateway process serves after the restart")
        #expect(try await Self.curl(host, port, "/name", token: server.token) == (200, "web"))

        // Deleting the gateway stops its processes; the service stays on the server's path.
        #expect(try await server.cli(["gateway", "delete", "edge", "-y"]).status == 0)
        try await waitFor(timeout: 30) { Self.gatewayProcesses(server).isEmpty }
        #expect(try await server.get("/proxy/services/main/web/name", token: server.token).body == "web")
    }

    @Test func autoscalingFromGatewayTrafficSurvivesAKilledGatewayReplica() async throws {
        let (server, port) = try Self.server()
        defer { server.stop() }
        try await server.waitHealthy()
        let gateway = try await server.cli(["apply", "-f", Self.writeGateway(server.home, replicas: 2).path, "-y"])
        #expect(gateway.status == 0, "\(gateway.output)")
        #expect(Self.gatewayProcesses(server).count == 2)
        func service(_ name: String) throws -> URL {
            try DataPathE2ETests.writeService(server.home, name: name, body: """
                commands:
                  - python3 testapp.py --port 8000 --name \(name)
                replicas: 0..1
                scaling:
                  metric: rps
                  target: 10
                probes:
                  - type: http
                    url: /name
                    interval: 1
                """)
        }
        #expect(try await server.cli(["apply", "-f", service("cold").path, "-y", "-d"]).status == 0)
        let workloads = { (name: String) in processes(matching: "testapp.py --port 8000 --name \(name)", prefix: "python3", in: server.dataDir.path) }
        #expect(workloads("cold").isEmpty, "a 0..1 service starts with no replica")
        // A request at zero on the gateway is held, wakes the service, and is served. (Until
        // the gateway has the new route, it answers 404 at once.)
        try await waitFor(timeout: 60) { try await Self.curl("cold.example.test", port, "/name", token: server.token) == (200, "cold") }
        #expect(workloads("cold").count == 1)

        // One gateway replica killed: the other serves, scaling from gateway traffic still works,
        // and the controller starts the killed one again.
        let victim = try #require(Self.gatewayProcesses(server).first)
        kill(pid_t(victim), SIGKILL)
        #expect(try await server.cli(["apply", "-f", service("warm").path, "-y", "-d"]).status == 0)
        try await waitFor(timeout: 60) { try await Self.curl("warm.example.test", port, "/name", token: server.token) == (200, "warm") }
        #expect(workloads("warm").count == 1)
        try await waitFor(timeout: 30) { try await server.cli(["gateway", "describe", "edge"]).output.contains("GatewayReplicaExited") }
        try await waitFor(timeout: 60) { try await server.cli(["gateway", "describe", "edge"]).output.contains("Replicas:     2/2 ready") }
        let running = Self.gatewayProcesses(server)
        #expect(running.count == 2 && !running.contains(victim), "\(running)")
    }

    /// A WebSocket client (standard library only): the upgrade through the gateway by `Host`,
    /// one masked text frame, the echo.
    static let webSocketClient = #"""
        import base64, os, socket, sys
        port, host, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n" % (host, key, token)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        print(head.split(b"\r\n")[0].decode())
        payload, mask = b"hello", os.urandom(4)
        s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        frame = s.recv(2)
        length = frame[1] & 0x7F
        data = b""
        while len(data) < length:
            data += s.recv(length - len(data))
        print(data.decode())
        """#
}

struct PebbleFailure: Error, CustomStringConvertible { var description: String }

/// Debian's `pebble` ACME test server with `pebble-challtestsrv` as its DNS (every name
/// resolves to 127.0.0.1), so HTTP-01 validation really connects to the gateway's port.
final class Pebble: @unchecked Sendable {
    let dir: URL
    let port: Int
    let managementPort: Int
    var processes: [Process] = []

    /// - Parameters: httpPort: where pebble validates HTTP-01 (the gateway's port); validity:
    ///   the certificates' lifetime in seconds.
    /// With `eab`, new accounts need External Account Binding with this key ID and base64url HMAC key.
    init(httpPort: Int, validity: Int, eab: (kid: String, key: String)? = nil) async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pebble-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        port = try freePort()
        managementPort = try freePort()
        let dnsPort = try freePort()
        _ = try await TestCertificates.make(in: dir.path)
        try """
            {"pebble": {"listenAddress": "127.0.0.1:\(port)", "managementListenAddress": "127.0.0.1:\(managementPort)",
             "certificate": "\(dir.path)/server.crt", "privateKey": "\(dir.path)/server.key", "httpPort": \(httpPort), "tlsPort": \(try freePort()),
             "ocspResponderURL": "", "certificateValidityPeriod": \(validity),
             "externalAccountBindingRequired": \(eab != nil), "externalAccountMACKeys": {\(eab.map { "\"\($0.kid)\": \"\($0.key)\"" } ?? "")}}}
            """.write(to: dir.appendingPathComponent("pebble.json"), atomically: true, encoding: .utf8)
        try start(["/usr/bin/pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-http01", "", "-https01", "",
                   "-tlsalpn01", "", "-dns01", "127.0.0.1:\(dnsPort)", "-management", "127.0.0.1:\(try freePort())"], log: "chall.log")
        try start(["/usr/bin/pebble", "-config", dir.appendingPathComponent("pebble.json").path, "-dnsserver", "127.0.0.1:\(dnsPort)"],
                  log: "pebble.log", env: ["PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"])
        try await waitFor(timeout: 20) { (try? await runProcess(["curl", "-fsS", "--cacert", self.ca, self.directory]))?.status == 0 }
    }

    var ca: String { dir.appendingPathComponent("ca.crt").path }
    var directory: String { "https://127.0.0.1:\(port)/dir" }
    var log: String { (try? String(contentsOf: dir.appendingPathComponent("pebble.log"), encoding: .utf8)) ?? "" }

    /// The root the issued certificates chain to (pebble makes a new one each start).
    func root() async throws -> String {
        let path = dir.appendingPathComponent("root.pem").path
        let fetched = try await runProcess(["curl", "-fsS", "--cacert", ca, "-o", path, "https://127.0.0.1:\(managementPort)/roots/0"])
        guard fetched.status == 0 else { throw PebbleFailure(description: "cannot fetch pebble's root: \(fetched.output)") }
        return path
    }

    private func start(_ argv: [String], log: String, env: [String: String] = [:]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.environment = ProcessInfo.processInfo.environment.merging(env) { _, b in b }
        let path = dir.appendingPathComponent(log).path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: path)
        p.standardError = FileHandle(forWritingAtPath: path)
        try p.run()
        processes.append(p)
    }

    func stop() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        try? FileManager.default.removeItem(at: dir)
    }
}

extension GatewayE2ETests {
    @Test func httpsWithACertificateFromPebbleRenewedBeforeItExpiresAndKeptAcrossARestart() async throws {
        let httpPort = try freePort(), httpsPort = try freePort()
        // The CA requires External Account Binding (as ZeroSSL does).
        let eab = (kid: "kid-1", key: "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W")
        let pebble = try await Pebble(httpPort: httpPort, validity: 90, eab: eab)
        defer { pebble.stop() }
        // Renew 60 s before expiry: a 90 s certificate is renewed 30 s after it is issued.
        let (server, _) = try Self.server(httpPort: httpPort, more: """
                https_port: \(httpsPort)
            acme:
              directory: \(pebble.directory)
              ca_file: \(pebble.ca)
              renew_before_days: \(60.0 / 86_400)
              eab_kid: \(eab.kid)
              eab_hmac_key: \(eab.key)
            """)
        defer { server.stop() }
        try await server.waitHealthy()
        #expect(try await server.cli(["apply", "-f", Self.writeGateway(server.home, certificate: nil).path, "-y"]).status == 0)
        let service = try Self.writeWeb(server.home)
        #expect(try await server.cli(["apply", "-f", service.path, "-y"]).status == 0)
        // Both names get a certificate from pebble, which validates through the gateway.
        try await waitFor(timeout: 90) {
            let d = try await server.cli(["gateway", "describe", "edge"]).output
            return d.contains("web.example.test: issued") && d.contains("gateway.example.test: issued")
        }
        let root = try await pebble.root()
        func https(_ host: String, _ path: String) async throws -> (Int32, String) {
            try await runProcess(["curl", "-sS", "-m", "20", "--cacert", root, "--resolve", "\(host):\(httpsPort):127.0.0.1",
                                  "-H", "Authorization: Bearer \(server.token)", "https://\(host):\(httpsPort)\(path)"])
        }
        let served = try await https("web.example.test", "/headers")
        #expect(served.0 == 0 && served.1.contains("\"x-forwarded-proto\": \"https\""), "the app is reached over HTTPS: \(served.1)")
        let ps = try await server.cli(["ps"])
        #expect(ps.output.contains("https://web.example.test:\(httpsPort)/"), "\(ps.output)")
        // Plain HTTP for a name with a certificate is redirected to HTTPS.
        let redirect = try await runProcess(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--resolve",
                                             "web.example.test:\(httpPort):127.0.0.1", "http://web.example.test:\(httpPort)/name?x=1"])
        #expect(redirect.output == "308 https://web.example.test:\(httpsPort)/name?x=1", "\(redirect.output)")
        // A name the gateway has no certificate for fails verification (not someone else's certificate).
        #expect(try await https("other.example.test", "/").0 != 0)
        let ordersBefore = pebble.log.components(separatedBy: "Issued certificate serial").count - 1
        #expect(ordersBefore >= 2)

        // Renewal: a new certificate before the first expires, served without a gap.
        let first = try await Self.notAfter(root: root, host: "web.example.test", port: httpsPort)
        try await waitFor(timeout: 90) {
            let now = try? await Self.notAfter(root: root, host: "web.example.test", port: httpsPort)
            return now != nil && now != first
        }
        let history = try await server.cli(["gateway", "describe", "edge"])
        #expect(history.output.contains("Renewing") && history.output.contains("Issued"), "the certificates' events: \(history.output)")

        // A restart orders nothing it already has (the account and the certificates are stored).
        server.kill(signal: SIGTERM)
        let issuedBefore = pebble.log.components(separatedBy: "Issued certificate serial").count
        try server.start()
        try await server.waitHealthy()
        try await waitFor(timeout: 20) { try await server.cli(["gateway", "list"]).output.contains("1/1") }
        #expect(try await https("web.example.test", "/name") == (0, "web"))
        let issuedAfter = pebble.log.components(separatedBy: "Issued certificate serial").count
        #expect(issuedAfter - issuedBefore <= 2, "at most the renewals that fell due, not a new order per name on start")
    }

    /// The `notAfter` of the certificate the gateway serves for `host`.
    static func notAfter(root: String, host: String, port: Int) async throws -> String {
        let out = try await runProcess(["/bin/sh", "-c",
            "echo | openssl s_client -connect 127.0.0.1:\(port) -servername \(host) -CAfile \(root) 2>/dev/null | openssl x509 -noout -enddate"])
        return out.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension GatewayE2ETests {
    @Test func theOperatorsWildcardCertificateIsServedAndNothingIsOrdered() async throws {
        // A CA and a certificate for *.example.test, as an operator would bring.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wildcard-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let made = try await runProcess(["/bin/sh", "-c", """
            set -e; cd '\(dir.path)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=operator-ca 2>/dev/null
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout wild.key -out wild.csr -subj /CN=*.example.test 2>/dev/null
            printf 'subjectAltName=DNS:*.example.test\\n' > san.ext
            openssl x509 -req -in wild.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out wild.crt -days 2 -extfile san.ext 2>/dev/null
            """])
        #expect(made.status == 0, "\(made.output)")
        let httpsPort = try freePort()
        let (server, _) = try Self.server(more: """
                https_port: \(httpsPort)
                certificate: {cert: \(dir.path)/wild.crt, key: \(dir.path)/wild.key}
            acme:
              directory: https://127.0.0.1:1/nothing-is-ordered
            """)
        defer { server.stop() }
        try await server.waitHealthy()
        #expect(try await server.cli(["apply", "-f", Self.writeGateway(server.home, certificate: nil).path, "-y"]).status == 0)
        let service = try Self.writeWeb(server.home)
        let applied = try await server.cli(["apply", "-f", service.path, "-y"])
        #expect(applied.output.contains("https://web.example.test:\(httpsPort)/"), "https at once: \(applied.output)")
        try await waitFor(timeout: 30) {
            try await runProcess(["curl", "-sS", "-m", "10", "--cacert", dir.appendingPathComponent("ca.crt").path,
                                  "--resolve", "web.example.test:\(httpsPort):127.0.0.1", "-H", "Authorization: Bearer \(server.token)",
                                  "https://web.example.test:\(httpsPort)/name"]) == (0, "web")
        }
        let described = try await server.cli(["gateway", "describe", "edge"])
        #expect(described.output.contains("*.example.test: provided"), "\(described.output)")
        #expect(!described.output.contains("web.example.test: pending"), "nothing is ordered: \(described.output)")
    }

    @Test func sustainedTrafficThroughTheGatewayScalesTheServiceUp() async throws {
        let (server, port) = try Self.server()
        defer { server.stop() }
        try await server.waitHealthy()
        #expect(try await server.cli(["apply", "-f", Self.writeGateway(server.home).path, "-y"]).status == 0)
        let service = try DataPathE2ETests.writeService(server.home, name: "busy", body: """
            commands:
              - python3 testapp.py --port 8000 --name busy
            replicas: 1..2
            scaling:
              metric: rps
              target: 2
              scale_up_delay: 0s
            probes:
              - type: http
                url: /name
                interval: 1
            """)
        #expect(try await server.cli(["apply", "-f", service.path, "-y"]).status == 0)
        let workloads = { processes(matching: "testapp.py --port 8000 --name busy", prefix: "python3", in: server.dataDir.path) }
        #expect(workloads().count == 1)
        // About 20 requests a second for 25 s, only through the gateway: 10x the target.
        let served = try await Self.sustainedLoad(port: port, path: "/name", host: "busy.example.test", token: server.token)
        #expect(served > 60, "\(served) requests served")
        try await waitFor(timeout: 30) { workloads().count == 2 }
        let described = try await server.cli(["describe", "busy"])
        #expect(described.output.contains("Autoscaled"), "the autoscaler's event: \(described.output)")
    }

    /// About 20 requests a second for 25 s (4 clients, one every 0.2 s each) to `path` on
    /// `port`: how many were answered 200.
    static func sustainedLoad(port: Int, path: String, host: String? = nil, token: String) async throws -> Int {
        let load = try await runProcess(["python3", "-c", #"""
            import http.client, sys, time, threading
            port, path, host, token = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
            done = time.time() + 25
            ok = [0]
            def worker():
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                headers = {"Authorization": "Bearer " + token}
                if host: headers["Host"] = host
                while time.time() < done:
                    c.request("GET", path, headers=headers)
                    r = c.getresponse(); r.read()
                    if r.status == 200: ok[0] += 1
                    time.sleep(0.2)
            threads = [threading.Thread(target=worker) for _ in range(4)]
            for t in threads: t.start()
            for t in threads: t.join()
            print(ok[0])
            """#, String(port), path, host ?? "", token], timeout: 90)
        return Int(load.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}
