import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Crypto
import Testing
import TestSupport

/// A bare repository with a work tree that commits and pushes to it.
final class GitRepository: @unchecked Sendable {
    let root: URL
    let bare: URL
    let work: URL

    init(in dir: URL, name: String = "configs") async throws {
        root = dir
        bare = dir.appendingPathComponent("\(name).git")
        work = dir.appendingPathComponent("\(name)-work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try await git(["init", "-q", "--bare", bare.path], in: dir)
        try await git(["init", "-q", "-b", "main"], in: work)
        try await git(["config", "user.email", "dev@example.com"], in: work)
        try await git(["config", "user.name", "Dev"], in: work)
        try FileManager.default.copyItem(at: DataPathE2ETests.appScript, to: work.appendingPathComponent("testapp.py"))
    }

    @discardableResult
    func git(_ arguments: [String], in dir: URL? = nil) async throws -> String {
        let r = try await runProcess(["git", "-C", (dir ?? work).path] + arguments,
                                     environment: ["GIT_CONFIG_NOSYSTEM": "1", "HOME": root.path], timeout: 60)
        guard r.status == 0 else { throw E2EError(message: "git \(arguments.joined(separator: " ")): \(r.output)") }
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes (or, for nil, removes) files, commits them and pushes `main`; the commit's hash.
    @discardableResult
    func commit(_ message: String, _ files: [String: String?], branch: String = "main") async throws -> String {
        for (name, content) in files {
            let url = work.appendingPathComponent(name)
            if let content {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try content.write(to: url, atomically: true, encoding: .utf8)
            } else {
                try? FileManager.default.removeItem(at: url)
            }
        }
        try await git(["add", "-A"])
        try await git(["commit", "-q", "-m", message])
        try await git(["push", "-q", bare.path, "HEAD:refs/heads/\(branch)"])
        return try await git(["rev-parse", "HEAD"])
    }

    /// A service of the test app, its version in `VERSION`.
    static func service(_ name: String, version: String = "v1", extra: String = "") -> String {
        """
        type: service
        name: \(name)
        port: 8000
        commands:
          - python3 testapp.py --port 8000 --name \(name)
        env:
          - VERSION=\(version)
        probes:
          - type: http
            url: /name
            interval: 1
        \(extra)
        """
    }
}

/// A program the test started (git daemon, the smart HTTP server), stopped by its PID.
final class Daemon: @unchecked Sendable {
    let process = Process()
    let port: Int

    init(_ argv: [String], port: Int) throws {
        self.port = port
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
    }

    /// Killed, and waited for a bounded while (`waitUntilExit` can spin on a thread without a
    /// run loop).
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(10_000) }
    }
}

/// GitOps with real Git: repositories served on loopback by `git daemon` and by smart HTTP
/// (`git http-backend` behind a token), a server syncing them. Commits that add, change and
/// remove services; a bad commit and its revert; drift with and without self-heal; prune;
/// suspend; webhooks; secrets from the project for credentials, `env` and `registry_auth`.
@Suite(.serialized) struct GitOpsE2ETests {
    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    static func source(_ server: ServerE2ETests.Server, _ name: String = "infra") async throws -> [String: Any] {
        json(try await server.cli(["source", "describe", name, "-o", "json"]).output)
    }

    static func status(_ s: [String: Any]) -> [String: Any] { s["status"] as? [String: Any] ?? [:] }

    static func objects(_ s: [String: Any]) -> [String: (sync: String, health: String, message: String)] {
        var out: [String: (String, String, String)] = [:]
        for o in status(s)["objects"] as? [[String: Any]] ?? [] {
            out["\(o["kind"] ?? "")/\(o["name"] ?? "")"] = (o["sync"] as? String ?? "", o["health"] as? String ?? "",
                                                            [o["message"] as? String, o["healthMessage"] as? String].compactMap { $0 }.joined(separator: "; "))
        }
        return out
    }

    static func env(_ server: ServerE2ETests.Server, _ run: String, _ name: String) async -> String {
        await DataPathE2ETests.get(server.url + "/proxy/services/main/\(run)/env?name=\(name)", token: server.token).1
    }

    static func generation(_ server: ServerE2ETests.Server, _ run: String) async throws -> Int {
        json(try await server.cli(["describe", run, "-o", "json"]).output)["generation"] as? Int ?? -1
    }

    @Test func gitDaemonAddChangeBadCommitRevertDriftPruneSuspend() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        let repo = try await GitRepository(in: server.home)
        // The daemon itself (not `git daemon`, a wrapper whose death would leave it running).
        let daemon = try Daemon(["/usr/lib/git-core/git-daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1", "--port=\(try freePort())",
                                 "--base-path=\(repo.root.path)", repo.root.path], port: 0)
        defer { daemon.stop() }
        try await server.waitHealthy()
        let port = try #require(Int(daemon.process.arguments?.first { $0.hasPrefix("--port=") }?.dropFirst(7) ?? ""))
        try await Daemon.wait(port: port)

        // Two services; the source applies them.
        try await repo.commit("alpha and beta", ["services/alpha.dstack.yml": GitRepository.service("alpha"),
                                                 "services/beta.dstack.yml": GitRepository.service("beta")])
        let created = try await server.cli(["source", "create", "infra", "--git", "git://127.0.0.1:\(port)/configs.git",
                                            "--path", "services", "--interval", "1h", "--prune"])
        #expect(created.status == 0, "\(created.output)")
        #expect(created.output.contains("run   alpha  Synced  Healthy"), "\(created.output)")
        #expect(await Self.env(server, "alpha", "VERSION") == "v1")
        let betaGeneration = try await Self.generation(server, "beta")

        // A change to one: only it is applied (the other is not written).
        try await repo.commit("alpha v2", ["services/alpha.dstack.yml": GitRepository.service("alpha", version: "v2")])
        let synced = try await server.cli(["source", "sync", "infra"])
        #expect(synced.status == 0, "\(synced.output)")
        try await waitFor("alpha to serve v2", timeout: 60) { await Self.env(server, "alpha", "VERSION") == "v2" }
        #expect(try await Self.generation(server, "beta") == betaGeneration, "an unchanged service is not applied again")

        // A bad commit: nothing of it is applied; the status names commit, file, line and property.
        let bad = try await repo.commit("gamma, broken", ["services/gamma.dstack.yml": "type: service\nname: gamma\nport: 99999\ncommands: [x]\n",
                                                          "services/alpha.dstack.yml": GitRepository.service("alpha", version: "v3")])
        let refused = try await server.cli(["source", "sync", "infra"])
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.output.contains("commit \(bad.prefix(12)) cannot be applied, so nothing of it was: services/gamma.dstack.yml:3:7: service.port"),
                "\(refused.output)")
        #expect(refused.output.contains("Stalled") && refused.output.contains("\"alpha v2\" keeps running"), "\(refused.output)")
        #expect(await Self.env(server, "alpha", "VERSION") == "v2", "the last good revision keeps running")
        #expect(!(try await server.cli(["ps", "-a"]).output.contains("gamma")))

        // Its revert: applied, Ready again.
        try await repo.git(["revert", "--no-edit", "HEAD"])
        try await repo.git(["push", "-q", repo.bare.path, "HEAD:refs/heads/main"])
        let reverted = try await server.cli(["source", "sync", "infra"])
        #expect(reverted.status == 0 && reverted.output.contains("Ready        True"), "\(reverted.output)")

        // Drift: a hand apply shows as OutOfSync and stays (self-heal is off) …
        let hand = server.home.appendingPathComponent("hand")
        try FileManager.default.createDirectory(at: hand, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: DataPathE2ETests.appScript, to: hand.appendingPathComponent("testapp.py"))
        try GitRepository.service("alpha", version: "hand").write(to: hand.appendingPathComponent("alpha.dstack.yml"), atomically: true, encoding: .utf8)
        let drifted = try await server.cli(["apply", "-f", hand.appendingPathComponent("alpha.dstack.yml").path, "-y"])
        #expect(drifted.status == 0 && drifted.output.contains("is managed by source infra"), "\(drifted.output)")
        try await waitFor("alpha to show as out of sync", timeout: 30) {
            let o = Self.objects(try await Self.source(server))["Run/alpha"]
            return o?.sync == "OutOfSync" && o?.message.contains("env.VERSION is hand here, v2 in the repository") == true
        }
        #expect(await Self.env(server, "alpha", "VERSION") == "hand")
        // … and is reverted once self-heal is on.
        let healing = try await server.cli(["source", "create", "infra", "--git", "git://127.0.0.1:\(port)/configs.git",
                                            "--path", "services", "--interval", "1h", "--prune", "--self-heal", "-d"])
        #expect(healing.status == 0, "\(healing.output)")
        try await waitFor("self-heal to put v2 back", timeout: 60) { await Self.env(server, "alpha", "VERSION") == "v2" }

        // A service applied by hand is never pruned; beta, removed from the repository, is.
        #expect(try await server.cli(["apply", "-f", hand.appendingPathComponent("alpha.dstack.yml").path, "-n", "handmade", "-y", "-d"]).status == 0)
        try await repo.commit("drop beta", ["services/beta.dstack.yml": nil])
        #expect(try await server.cli(["source", "sync", "infra"]).status == 0)
        try await waitFor("beta to be pruned", timeout: 30) { !(try await server.cli(["ps", "-a"]).output.contains("beta")) }
        #expect(Self.objects(try await Self.source(server))["Run/beta"]?.sync == "Pruned")
        #expect(try await server.cli(["ps"]).output.contains("handmade"))

        // Suspended: a pushed commit is neither fetched nor applied, even when asked; resumed, it is.
        #expect(try await server.cli(["source", "suspend", "infra"]).status == 0)
        let suspendedAt = Self.status(try await Self.source(server))["lastAttempted"] as? [String: Any]
        try await repo.commit("alpha v4", ["services/alpha.dstack.yml": GitRepository.service("alpha", version: "v4")])
        #expect(try await server.cli(["source", "sync", "infra", "-d"]).status == 0)
        try await waitFor("the suspended source to see the request", timeout: 30) {
            let s = try await Self.source(server)
            return (Self.status(s)["observedGeneration"] as? Int) == (s["generation"] as? Int)
        }
        let still = Self.status(try await Self.source(server))["lastAttempted"] as? [String: Any]
        #expect(still?["commit"] as? String == suspendedAt?["commit"] as? String)
        #expect(await Self.env(server, "alpha", "VERSION") == "v2")
        #expect(try await server.cli(["source", "resume", "infra"]).status == 0)
        #expect(try await server.cli(["source", "sync", "infra"]).status == 0)
        try await waitFor("alpha to serve v4", timeout: 60) { await Self.env(server, "alpha", "VERSION") == "v4" }

        // Deleted without --cascade: its services stay, applied by hand from now on.
        let deleted = try await server.cli(["source", "delete", "infra", "-y"])
        #expect(deleted.status == 0 && deleted.output.contains("its objects stay"), "\(deleted.output)")
        let alpha = Self.json(try await server.cli(["describe", "alpha", "-o", "json"]).output)
        #expect(alpha["managedBy"] == nil && alpha["set"] == nil, "\(alpha)")
        #expect(await Self.env(server, "alpha", "VERSION") == "v4")
    }

    @Test func smartHTTPWithATokenWebhooksSecretsAndCascade() async throws {
        let server = try ServerE2ETests.Server(keepLog: true)
        defer { server.stop() }
        let repo = try await GitRepository(in: server.home)
        let token = "tok-" + UUID().uuidString
        let port = try freePort()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Apps/git-http.py")
        let http = try Daemon(["python3", script.path, "--root", repo.root.path, "--token", token, "--port", String(port)], port: port)
        defer { http.stop() }
        try await server.waitHealthy()
        try await Daemon.wait(port: port)

        // The service takes API_KEY from the project secret of that name (a bare env name in a
        // synced file), and its registry password from another.
        let apiKey = "key-" + UUID().uuidString
        let registry = "reg-" + UUID().uuidString
        try await repo.commit("web", ["gone.dstack.yml": GitRepository.service("gone"), "web.dstack.yml": GitRepository.service("web", extra: """
            registry_auth:
              username: bot
              password: ${{ secrets.REGISTRY }}
            """).replacingOccurrences(of: "  - VERSION=v1", with: "  - VERSION=v1\n  - API_KEY")])
        let url = "http://127.0.0.1:\(port)/configs.git"
        for (name, value) in [("GIT_TOKEN", "wrong"), ("API_KEY", apiKey), ("REGISTRY", registry), ("HOOK", "hook-secret")] {
            #expect(try await server.cli(["secret", "set", name, value]).status == 0)
        }
        let wrong = try await server.cli(["source", "create", "infra", "--git", url, "--token-secret", "GIT_TOKEN", "--interval", "1h",
                                          "--webhook-secret", "HOOK"])
        #expect(wrong.status == 1 && wrong.output.contains("failed") && wrong.output.contains("fetching branch main of \(url)"), "\(wrong.output)")
        #expect(try await server.cli(["secret", "set", "GIT_TOKEN"], input: token + "\n").status == 0)
        let synced = try await server.cli(["source", "sync", "infra"])
        #expect(synced.status == 0, "\(synced.output)")
        #expect(await Self.env(server, "web", "API_KEY") == apiKey)

        // `source describe -w` shows what changes, live, while a push announced by a webhook is
        // applied at once (the interval is an hour).
        let watchLog = server.home.appendingPathComponent("watch.log")
        _ = FileManager.default.createFile(atPath: watchLog.path, contents: nil)
        let watcher = Process()
        watcher.executableURL = ServerE2ETests.binary
        watcher.arguments = ["source", "describe", "infra", "-w"]
        watcher.environment = ["HOME": server.home.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                               "SETPOINT_URL": server.url, "SETPOINT_TOKEN": server.token, "SETPOINT_PROJECT": "main"]
        watcher.standardOutput = FileHandle(forWritingAtPath: watchLog.path)
        watcher.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try watcher.run()
        defer { if watcher.isRunning { kill(watcher.processIdentifier, SIGKILL) } }
        try await waitFor("the first description", timeout: 30) { (try? String(contentsOf: watchLog, encoding: .utf8))?.contains("Source:") == true }
        try await repo.commit("web v2", ["web.dstack.yml": try String(contentsOf: repo.work.appendingPathComponent("web.dstack.yml"), encoding: .utf8)
            .replacingOccurrences(of: "VERSION=v1", with: "VERSION=v2")])
        let hook = server.url + "/api/v1/projects/main/sources/infra/webhook"
        let push = Data(#"{"ref":"refs/heads/main","after":"x"}"#.utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: push, using: SymmetricKey(data: Data("hook-secret".utf8))).map { String(format: "%02x", $0) }.joined()
        #expect(await Self.post(hook, push, ["X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + String(repeating: "0", count: 64)]).0 == 401)
        #expect(await Self.post(hook, Data(#"{"ref":"refs/heads/other"}"#.utf8), ["X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "hook-secret"]).1
            .contains("ignored"))
        let accepted = await Self.post(hook, push, ["X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + mac])
        #expect(accepted.0 == 202 && accepted.1.contains("\"accepted\":true"), "\(accepted)")
        try await waitFor("the pushed version", timeout: 60) { await Self.env(server, "web", "VERSION") == "v2" }
        try await waitFor("the watch to show the new revision applied", timeout: 30) {
            let text = (try? String(contentsOf: watchLog, encoding: .utf8)) ?? ""
            return text.contains("---\n") && text.contains("\"web v2\" applied: 2 object(s) synced and healthy")
        }
        kill(watcher.processIdentifier, SIGKILL)

        // Removed from the repository with prune off: it stays, shown as no longer there.
        try await repo.commit("drop gone", ["gone.dstack.yml": nil])
        #expect(try await server.cli(["source", "sync", "infra"]).status == 0)
        #expect(try await server.cli(["ps"]).output.contains("gone"))
        let orphan = Self.objects(try await Self.source(server))["Run/gone"]
        #expect(orphan?.sync == "OutOfSync" && orphan?.message.contains("no longer in the repository (prune is off)") == true, "\(String(describing: orphan))")
        #expect(await Self.post(hook, push, ["X-Gitea-Event": "push", "X-Gitea-Signature": mac]).0 == 202)
        #expect(await Self.post(hook, push, ["X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "hook-secret"]).0 == 202)

        // No secret anywhere it could be read.
        var outputs = [synced.output, wrong.output]
        outputs.append(try await server.cli(["source", "describe", "infra", "-o", "json"]).output)
        outputs.append(try await server.cli(["describe", "web", "-o", "json"]).output)
        outputs.append(try await server.get("/api/v1/projects/main/sources/infra/events", token: server.token).body)
        for out in outputs {
            for secret in [token, apiKey, registry] { #expect(!out.contains(secret), "a secret leaked: \(out)") }
        }
        #expect(outputs[3].contains("${{ secrets.REGISTRY }}") && outputs[3].contains("${{ secrets.API_KEY }}"), "\(outputs[3])")
        let log = try String(contentsOfFile: server.logPath, encoding: .utf8)
        for secret in [token, apiKey, registry] {
            #expect(!log.contains(secret))
            #expect(try SecretsE2ETests.filesContaining(secret, under: server.dataDir).isEmpty, "\(secret.prefix(4)) is in the data directory")
        }

        // Two sources claiming one service: an error on the second, the first keeps it.
        let file = server.home.appendingPathComponent("copy.source.yml")
        try "name: copy\ngit: \(url)\nbrnach: main\n".write(to: file, atomically: true, encoding: .utf8)
        let misspelt = try await server.cli(["source", "apply", "-f", file.path])
        #expect(misspelt.status == 1 && misspelt.output.contains("copy.source.yml:3:1: source.brnach: unknown property"), "\(misspelt.output)")
        try "name: copy\ngit: \(url)\nbranch: main\ninterval: 1h\ntoken_secret: GIT_TOKEN\n".write(to: file, atomically: true, encoding: .utf8)
        let second = try await server.cli(["source", "apply", "-f", file.path])
        #expect(second.status == 1 && second.output.contains("run web is managed by source infra; two sources cannot manage one object"),
                "\(second.output)")
        #expect(try await server.cli(["source", "delete", "copy", "-y"]).status == 0)

        // Deleted with --cascade: its service goes too.
        let deleted = try await server.cli(["source", "delete", "infra", "--cascade", "-y"])
        #expect(deleted.status == 0, "\(deleted.output)")
        // Both of its services go: `gone` left the repository but is still the source's.
        try await waitFor("web and gone to be deleted", timeout: 60) {
            let ps = try await server.cli(["ps", "-a"]).output
            return !ps.contains("web") && !ps.contains("gone")
        }
    }

    /// hack/test.sh installs openssh-server and sets SETPOINT_REQUIRE_SSHD=1: there this test
    /// may not be skipped.
    static var sshd: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") || ProcessInfo.processInfo.environment["SETPOINT_REQUIRE_SSHD"] == "1" }

    /// SSH with a deploy key held as a project secret, against a real sshd on loopback: the
    /// host key pinned from a known_hosts file; a wrong one refuses the fetch.
    @Test(.enabled(if: sshd, "sshd is not installed (hack/test.sh installs openssh-server)"))
    func sshWithADeployKeyAndPinnedHostKey() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        let repo = try await GitRepository(in: server.home)
        let dir = server.home.appendingPathComponent("ssh")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for (file, type) in [("host", "ed25519"), ("client", "ed25519"), ("other", "ed25519")] {
            let made = try await runProcess(["ssh-keygen", "-q", "-t", type, "-N", "", "-f", dir.appendingPathComponent(file).path])
            #expect(made.status == 0, "\(made.output)")
        }
        try FileManager.default.copyItem(at: dir.appendingPathComponent("client.pub"), to: dir.appendingPathComponent("authorized_keys"))
        let port = try freePort()
        try """
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(dir.path)/host
            AuthorizedKeysFile \(dir.path)/authorized_keys
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PermitRootLogin prohibit-password
            PidFile \(dir.path)/sshd.pid

            """.write(to: dir.appendingPathComponent("sshd_config"), atomically: true, encoding: .utf8)
        try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let sshd = try Daemon(["/usr/sbin/sshd", "-D", "-e", "-f", dir.appendingPathComponent("sshd_config").path], port: port)
        defer { sshd.stop() }
        try await server.waitHealthy()
        try await Daemon.wait(port: port)

        let hostKey = try String(contentsOf: dir.appendingPathComponent("host.pub"), encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        let otherKey = try String(contentsOf: dir.appendingPathComponent("other.pub"), encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        try "[127.0.0.1]:\(port) \(hostKey)\n".write(to: dir.appendingPathComponent("known_hosts"), atomically: true, encoding: .utf8)
        try "[127.0.0.1]:\(port) \(otherKey)\n".write(to: dir.appendingPathComponent("wrong_hosts"), atomically: true, encoding: .utf8)
        #expect(try await server.cli(["secret", "set", "DEPLOY_KEY", "--from-file", dir.appendingPathComponent("client").path]).status == 0)
        try await repo.commit("web", ["web.dstack.yml": GitRepository.service("web")])
        let user = ProcessInfo.processInfo.environment["USER"] ?? String(cString: getpwuid(getuid()).pointee.pw_name)
        let url = "ssh://\(user)@127.0.0.1:\(port)\(repo.bare.path)"

        let refused = try await server.cli(["source", "create", "bad", "--git", url, "--ssh-key-secret", "DEPLOY_KEY",
                                            "--known-hosts-file", dir.appendingPathComponent("wrong_hosts").path, "--interval", "1h"])
        #expect(refused.status == 1 && refused.output.contains("Host key verification failed"), "\(refused.output)")
        #expect(try await server.cli(["source", "delete", "bad", "-y"]).status == 0)

        let created = try await server.cli(["source", "create", "infra", "--git", url, "--ssh-key-secret", "DEPLOY_KEY",
                                            "--known-hosts-file", dir.appendingPathComponent("known_hosts").path, "--interval", "1h"])
        #expect(created.status == 0 && created.output.contains("run   web   Synced  Healthy"), "\(created.output)")
        #expect(await Self.env(server, "web", "VERSION") == "v1")
        let key = try String(contentsOf: dir.appendingPathComponent("client"), encoding: .utf8)
        let keyLine = String(key.split(separator: "\n")[1])
        #expect(try SecretsE2ETests.filesContaining(keyLine, under: server.dataDir).isEmpty, "the key is nowhere in the data directory")
        #expect(!(try await server.cli(["source", "describe", "infra", "-o", "json"]).output.contains(keyLine)))
    }

    static func post(_ url: String, _ body: Data, _ headers: [String: String]) async -> (Int, String) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.httpBody = body
        request.timeoutInterval = 30
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        guard let (data, response) = try? await URLSession.shared.data(for: request) else { return (0, "") }
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }
}

extension Daemon {
    static func wait(port: Int) async throws {
        try await waitFor("port \(port) to accept connections", timeout: 20) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        }
    }
}
