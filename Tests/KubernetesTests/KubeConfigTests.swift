import Foundation
import Kubernetes
import Primitives
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct KubeConfigTests {
    @Test func mergesFilesLikeKubectlAndResolvesCredentials() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "token-from-file\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".write(toFile: dir + "/ca.crt", atomically: true, encoding: .utf8)
        try """
            apiVersion: v1
            kind: Config
            current-context: dev
            clusters:
            - name: dev-cluster
              cluster: {server: "https://10.0.0.1:6443", certificate-authority: ca.crt}
            - name: prod-cluster
              cluster: {server: "https://prod.example:443", insecure-skip-tls-verify: true}
            users:
            - name: dev-user
              user: {tokenFile: token}
            - name: prod-user
              user:
                exec:
                  apiVersion: client.authentication.k8s.io/v1
                  command: ./cred.sh
                  args: [--cluster, prod]
                  env: [{name: CRED_ENV, value: "1"}]
            contexts:
            - name: dev
              context: {cluster: dev-cluster, user: dev-user, namespace: team-a}
            - name: prod
              context: {cluster: prod-cluster, user: prod-user}
            """.write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        // The second file may not override what the first one set.
        try """
            current-context: other
            clusters:
            - name: dev-cluster
              cluster: {server: "https://ignored:1"}
            contexts:
            - name: extra
              context: {cluster: dev-cluster}
            """.write(toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
        let paths = KubeConfig.defaultPaths(environment: ["KUBECONFIG": "\(dir)/a.yaml:\(dir)/missing.yaml:\(dir)/b.yaml"])
        let config = try KubeConfig.load(paths: paths)
        #expect(config.currentContext == "dev")
        #expect(config.contextNames == ["dev", "extra", "prod"])
        let dev = try config.connection()
        #expect(dev.server.absoluteString == "https://10.0.0.1:6443" && dev.namespace == "team-a" && dev.context == "dev")
        #expect(dev.credentials == .tokenFile(dir + "/token"))
        #expect(dev.certificateAuthorityPEM.map { String(decoding: $0, as: UTF8.self) }?.contains("BEGIN CERTIFICATE") == true)
        let prod = try config.connection(context: "prod")
        #expect(prod.insecureSkipTLSVerify && prod.namespace == "default")
        guard case .exec(let exec) = prod.credentials else { Issue.record("exec credentials expected"); return }
        #expect(exec.command == "./cred.sh" && exec.args == ["--cluster", "prod"] && exec.env == ["CRED_ENV": "1"] && exec.baseDirectory == dir)
        #expect(throws: KubeConfigError.self) { try config.connection(context: "nope") }
        do { _ = try config.connection(context: "nope") } catch {
            #expect("\(error)".contains("context `nope` not found (contexts: dev, extra, prod)"))
        }
        #expect(KubeConfig.defaultPaths(environment: ["HOME": "/home/u"]) == ["/home/u/.kube/config"])
    }

    @Test func execPluginTokensAuthenticateAndAreRefreshedAfter401() async throws {
        let fake = FakeKubernetes()
        try await fake.start()
        defer { fake.stop() }
        fake.requireToken("exec-token-1")
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The plugin prints the token named in a file, and counts its runs.
        try "exec-token-1".write(toFile: dir + "/current", atomically: true, encoding: .utf8)
        let script = """
            #!/bin/sh
            echo run >> "\(dir)/runs"
            [ -n "$KUBERNETES_EXEC_INFO" ] || exit 3
            printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$(cat "\(dir)/current")"
            """
        try script.write(toFile: dir + "/cred.sh", atomically: true, encoding: .utf8)
        chmod(dir + "/cred.sh", 0o755)
        try """
            clusters: [{name: c, cluster: {server: "\(fake.url)"}}]
            users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: ./cred.sh}}}]
            contexts: [{name: x, context: {cluster: c, user: u}}]
            current-context: x
            """.write(toFile: dir + "/config", atomically: true, encoding: .utf8)
        let client = try KubeClient(connection: try KubeConfig.load(paths: [dir + "/config"]).connection(), logger: quietLogger)
        #expect(try await client.get(Namespace.self, name: "default") != nil)
        #expect(try await client.get(Namespace.self, name: "default") != nil)
        #expect(try String(contentsOfFile: dir + "/runs", encoding: .utf8).split(separator: "\n").count == 1, "the token is cached")
        // The token rotates: a 401 makes the client ask the plugin again.
        fake.requireToken("exec-token-2")
        try "exec-token-2".write(toFile: dir + "/current", atomically: true, encoding: .utf8)
        #expect(try await client.get(Namespace.self, name: "default") != nil)
        #expect(try String(contentsOfFile: dir + "/runs", encoding: .utf8).split(separator: "\n").count == 2)
        // A wrong static token gives a clear 401.
        let wrong = try makeClient(fake, token: "nope")
        do {
            _ = try await wrong.get(Namespace.self, name: "default")
            Issue.record("401 expected")
        } catch let e as KubeAPIError {
            #expect(e.code == 401 && e.description.contains("401 Unauthorized"))
        }
    }

    @Test func inClusterConfigurationComesFromTheServiceAccount() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(ClusterConnection.inCluster(environment: [:], directory: dir) == nil)
        try "sa-token".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try "setpoint\n".write(toFile: dir + "/namespace", atomically: true, encoding: .utf8)
        try "CA".write(toFile: dir + "/ca.crt", atomically: true, encoding: .utf8)
        let c = try #require(ClusterConnection.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: dir))
        #expect(c.server.absoluteString == "https://10.96.0.1:443" && c.namespace == "setpoint" && c.inCluster && c.context == "in-cluster")
        #expect(c.credentials == .tokenFile(dir + "/token") && c.certificateAuthorityPEM == Array("CA".utf8))
    }
}

@Suite struct RateLimitTests {
    @Test func tokenBucketAllowsTheBurstThenQPS() {
        let t0 = ContinuousClock.now
        let bucket = RequestLimiter(qps: 10, burst: 3, start: t0)
        // The burst goes at once; then one request per 100 ms, waiters queued in order.
        #expect((0..<3).map { _ in bucket.reserve(at: t0) } == [0, 0, 0])
        let queued = (0..<3).map { _ in bucket.reserve(at: t0) }
        #expect(zip(queued, [0.1, 0.2, 0.3]).allSatisfy { abs($0 - $1) < 1e-9 }, "\(queued)")
        // After a quiet second the bucket is full again (never more than the burst).
        let later = t0.advanced(by: .seconds(2))
        #expect((0..<3).map { _ in bucket.reserve(at: later) } == [0, 0, 0])
        #expect(abs(bucket.reserve(at: later) - 0.1) < 1e-9)
        // qps 0: no limit.
        #expect(RequestLimiter(qps: 0, burst: 0).reserve(at: t0) == 0)
    }

    /// The one bucket, as the proxy's `rate_limits` use it: take or refuse with the wait.
    @Test func theOneTokenBucketTakesOrSaysHowLongToWait() {
        var bucket = TokenBucket(rate: 0.5, capacity: 2, now: 100)
        #expect(bucket.take(now: 100) == nil && bucket.take(now: 100) == nil)
        #expect(bucket.take(now: 100) == 2, "one token in 2 s at 0.5/s")
        #expect(bucket.take(now: 101) == 1, "a refused request takes nothing")
        #expect(bucket.take(now: 102) == nil)
        #expect(!bucket.isFull(at: 102) && bucket.isFull(at: 106))
        // Time going backwards (another clock) never adds tokens.
        #expect(bucket.take(now: 50) == 2)
    }
}
