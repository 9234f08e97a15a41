import Foundation
import Testing
import TestSupport

/// The status page in headless Chromium against the real binary (`Tests/Apps/ui_test.py`, over
/// the DevTools protocol): sign in, a service appearing and turning running without a reload,
/// its log tail, the gateway, source and event pages, accessibility basics. Screenshots of each
/// page go to `.build/test-output/web-ui/`.
@Suite(.serialized, .timeLimit(.minutes(6))) struct WebUIE2ETests {
    static var apps: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Apps") }
    static var output: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/test-output/web-ui")
    }

    static func chromiumInstalled() -> Bool {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test func signInWatchAServiceComeUpOpenItsLogAndEveryPage() async throws {
        guard Self.chromiumInstalled() else {
            // hack/test.sh installs Debian's chromium and sets SETPOINT_REQUIRE_CHROMIUM.
            #expect(ProcessInfo.processInfo.environment["SETPOINT_REQUIRE_CHROMIUM"] == nil, "chromium is required but not installed")
            return
        }
        let (server, _) = try GatewayE2ETests.server()
        defer { server.stop() }
        try await server.waitHealthy()
        let work = server.home.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try """
            type: service
            name: web
            commands:
              - python3 -m http.server 8000 --bind 127.0.0.1
            env:
              - API_KEY=${{ secrets.API_KEY }}
            port: 8000
            replicas: 2
            probes:
              - type: http
                url: /
                interval: 1
            """.write(to: work.appendingPathComponent("web.dstack.yml"), atomically: true, encoding: .utf8)
        _ = try GatewayE2ETests.writeGateway(work)
        // The source's repository: one service.
        let repo = work.appendingPathComponent("repo")
        try FileManager.default.createDirectory(at: repo, withIntermediateDirectories: true)
        try """
            type: service
            name: hello
            commands:
              - python3 -m http.server 8000 --bind 127.0.0.1
            port: 8000
            """.write(to: repo.appendingPathComponent("hello.dstack.yml"), atomically: true, encoding: .utf8)
        let git = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test",
                   "HOME": server.home.path]
        for args in [["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "hello"]] {
            let r = try await runProcess(["git", "-C", repo.path] + args, environment: git, timeout: 60)
            #expect(r.status == 0, "git \(args): \(r.output)")
        }

        try? FileManager.default.removeItem(at: Self.output)
        let result = try await runProcess(
            ["python3", Self.apps.appendingPathComponent("ui_test.py").path],
            environment: ["SETPOINT_URL": server.url, "SETPOINT_TOKEN": server.token, "SETPOINT_PROJECT": "main",
                          "SETPOINT_BIN": ServerE2ETests.binary.path, "WORK": work.path, "OUT": Self.output.path,
                          "HOME": server.home.path, "PYTHONPATH": Self.apps.path],
            timeout: 300)
        #expect(result.status == 0, "\(result.output)")
        let last = result.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.contains("\"ok\": true"), "\(result.output)")
        for shot in ["01-signin", "02-services", "03-service", "04-gateways", "05-source", "06-events"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: Self.output.appendingPathComponent(shot + ".png").path)[.size] as? Int) ?? 0
            #expect(size > 10_000, "screenshot \(shot).png (\(size) bytes)")
        }
    }
}
