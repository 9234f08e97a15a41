import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// `apply -f DIR` as one unit and `diff` with the real binary: every file validated before
/// anything is applied (server checks included), the plan and the diff of normalized
/// configurations, prune by the set's inventory only, and `diff`'s exit codes.
@Suite(.serialized) struct SetsE2ETests {
    /// A service of the test app (`GitRepository.service`) in `<dir>/<name>.dstack.yml`.
    static func writeApp(_ dir: URL, _ name: String, version: String = "v1", extra: String = "") throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let app = dir.appendingPathComponent("testapp.py")
        if !FileManager.default.fileExists(atPath: app.path) { try FileManager.default.copyItem(at: DataPathE2ETests.appScript, to: app) }
        try GitRepository.service(name, version: version, extra: extra).write(to: dir.appendingPathComponent("\(name).dstack.yml"), atomically: true, encoding: .utf8)
    }

    @Test func applyASetDiffAndPrune() async throws {
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        let dir = server.home.appendingPathComponent("repo")
        try Self.writeApp(dir, "alpha")
        try Self.writeApp(dir, "beta")

        // Before: everything to create; diff exits 1.
        var diff = try await server.cli(["diff", "-f", dir.path])
        #expect(diff.status == 1 && diff.output.contains("+ create    run     alpha") && diff.output.contains("+ create    run     beta"), "\(diff.output)")

        let applied = try await server.cli(["apply", "-f", dir.path, "--set", "demo", "-y"])
        #expect(applied.status == 0, "\(applied.output)")
        #expect(applied.output.contains("Set: demo") && applied.output.contains("2 to change, 0 unchanged."), "\(applied.output)")
        #expect(await DataPathE2ETests.get(server.url + "/proxy/services/main/beta/name", token: server.token).1.contains("beta"))
        diff = try await server.cli(["diff", "-f", dir.path, "--set", "demo"])
        #expect(diff.status == 0 && diff.output.contains("In sync: 2 object(s) unchanged."), "\(diff.output)")

        // One change: only it shows, as the property that changed.
        try Self.writeApp(dir, "alpha", version: "v2")
        diff = try await server.cli(["diff", "-f", dir.path, "--set", "demo"])
        #expect(diff.status == 1, "\(diff.output)")
        #expect(diff.output.contains("~ update    run     alpha") && diff.output.contains("rolling: env"), "\(diff.output)")
        #expect(diff.output.contains("- env.VERSION: v1\n") && diff.output.contains("+ env.VERSION: v2\n"), "\(diff.output)")
        #expect(!diff.output.contains("beta"), "unchanged objects are not listed: \(diff.output)")

        // Any invalid file, locally or by the server's checks: nothing is applied, every error shown.
        try "type: service\nname: gamma\nport: 99999\ncommands: [x]\n".write(to: dir.appendingPathComponent("gamma.dstack.yml"), atomically: true, encoding: .utf8)
        var refused = try await server.cli(["apply", "-f", dir.path, "--set", "demo", "-y"])
        #expect(refused.status == 1 && refused.output.contains("gamma.dstack.yml") && refused.output.contains("nothing was applied"), "\(refused.output)")
        try Self.writeApp(dir, "gamma", extra: "registry_auth:\n  username: u\n  password: ${{ secrets.NOPE }}\n")
        try Self.writeApp(dir, "delta", extra: "gateway: missing-gw\n")
        refused = try await server.cli(["apply", "-f", dir.path, "--set", "demo", "-y"])
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.output.contains("2 of 4 configuration(s) cannot be applied, so nothing was"), "\(refused.output)")
        #expect(refused.output.contains("gamma.dstack.yml:14:13: service.registry_auth.password: secret NOPE is not set"), "\(refused.output)")
        #expect(refused.output.contains("delta.dstack.yml") && refused.output.contains("gateway missing-gw does not exist"), "\(refused.output)")
        let alpha = try await server.cli(["describe", "alpha", "-o", "json"])
        #expect(alpha.output.contains("\"VERSION\" : \"v1\""), "alpha kept its applied configuration: \(alpha.output)")
        try FileManager.default.removeItem(at: dir.appendingPathComponent("gamma.dstack.yml"))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("delta.dstack.yml"))

        // A service applied by hand, and another set claiming a set's object.
        let elsewhere = server.home.appendingPathComponent("other")
        try Self.writeApp(elsewhere, "hand")
        #expect(try await server.cli(["apply", "-f", elsewhere.appendingPathComponent("hand.dstack.yml").path, "-y", "-d"]).status == 0)
        try Self.writeApp(elsewhere, "beta")
        let claimed = try await server.cli(["apply", "-f", elsewhere.path, "--set", "other", "-y"])
        #expect(claimed.status == 1 && claimed.output.contains("run beta belongs to set demo, not other"), "\(claimed.output)")

        // beta leaves the folder: without --prune it stays; with it, it goes; `hand` stays.
        try FileManager.default.removeItem(at: dir.appendingPathComponent("beta.dstack.yml"))
        let kept = try await server.cli(["apply", "-f", dir.path, "--set", "demo", "-y"])
        #expect(kept.status == 0 && !kept.output.contains("delete"), "\(kept.output)")
        #expect(try await server.cli(["ps"]).output.contains("beta"))
        diff = try await server.cli(["diff", "-f", dir.path, "--set", "demo", "--prune"])
        #expect(diff.status == 1 && diff.output.contains("- delete    run     beta"), "\(diff.output)")
        let pruned = try await server.cli(["apply", "-f", dir.path, "--set", "demo", "--prune", "-y"])
        #expect(pruned.status == 0 && pruned.output.contains("Deleted run beta."), "\(pruned.output)")
        try await waitFor(timeout: 30) { !(try await server.cli(["ps", "-a"]).output.contains("beta")) }
        let ps = try await server.cli(["ps", "-a"])
        #expect(ps.output.contains("alpha") && ps.output.contains("hand"), "\(ps.output)")
        diff = try await server.cli(["diff", "-f", dir.path, "--set", "demo", "--prune"])
        #expect(diff.status == 0, "\(diff.output)")

        // --prune without --set names the set after the folder (`repo`): not demo, whose objects it cannot take.
        let defaulted = try await server.cli(["diff", "-f", dir.path, "--prune"])
        #expect(defaulted.status == 2 && defaulted.output.contains("run alpha belongs to set demo, not repo"), "\(defaulted.output)")

        // diff: 2 on error (no such path, an invalid file, an unreachable server).
        #expect(try await server.cli(["diff", "-f", dir.appendingPathComponent("nope").path]).status == 2)
        try "type: service\nport: x\n".write(to: dir.appendingPathComponent("bad.dstack.yml"), atomically: true, encoding: .utf8)
        #expect(try await server.cli(["diff", "-f", dir.path]).status == 2)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("bad.dstack.yml"))
        #expect(try await server.cli(["diff", "-f", dir.path], env: ["SETPOINT_URL": "http://127.0.0.1:1"]).status == 2)
    }
}
