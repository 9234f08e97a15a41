import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// Project secrets with the real binary: set from standard input, used as
/// `${{ secrets.NAME }}` in `env`, filled in only in the replica's environment, never in the
/// API's output, the server's log or the data directory; a missing one is a located error at
/// plan time; a new value rolls the service.
@Suite(.serialized) struct SecretsE2ETests {
    @Test func secretsReachReplicasOnlyAndANewValueRolls() async throws {
        let server = try ServerE2ETests.Server(keepLog: true)
        defer { server.stop() }
        try await server.waitHealthy()
        let value = "s3cr3t-" + UUID().uuidString
        let file = try DataPathE2ETests.writeService(server.home, name: "api", body: """
            commands:
              - python3 testapp.py --port 8000 --name api
            env:
              - API_KEY=${{ secrets.API_KEY }}
              - AUTH=Bearer ${{ secrets.API_KEY }}
              - PLAIN=visible
            probes:
              - type: http
                url: /name
                interval: 1

            """)

        // Missing: refused at plan time with the file, line, property and secret; nothing stored.
        let missing = try await server.cli(["apply", "-f", file.path, "-y"])
        #expect(missing.status == 1, "\(missing.output)")
        #expect(missing.output.contains("api.dstack.yml:7:5: service.env.API_KEY: secret API_KEY is not set in project main"), "\(missing.output)")
        #expect(try await server.cli(["ps"]).output.contains("api") == false)

        // Set from standard input (not the command line); listing shows names only.
        let set = try await server.cli(["secret", "set", "API_KEY"], input: value + "\n")
        #expect(set.status == 0, "\(set.output)")
        let applied = try await server.cli(["apply", "-f", file.path, "-y"])
        #expect(applied.status == 0, "\(applied.output)")
        let base = server.url + "/proxy/services/main/api"
        #expect(await DataPathE2ETests.get(base + "/env?name=API_KEY", token: server.token) == (200, value))
        #expect(await DataPathE2ETests.get(base + "/env?name=AUTH", token: server.token) == (200, "Bearer " + value))
        #expect(await DataPathE2ETests.get(base + "/env?name=PLAIN", token: server.token) == (200, "visible"))
        let list = try await server.cli(["secret", "list"])
        #expect(list.output.contains("API_KEY") && list.output.contains("api"), "\(list.output)")

        // Nowhere to be read: CLI and API output, the events, the server's log, the data directory.
        var outputs = [set.output, applied.output, list.output]
        outputs.append(try await server.cli(["describe", "api", "-o", "json"]).output)
        outputs.append(try await server.cli(["ps", "-o", "json"]).output)
        outputs.append(try await server.cli(["secret", "list", "-o", "json"]).output)
        outputs.append(try await server.get("/api/v1/projects/main/secrets", token: server.token).body)
        outputs.append(try await server.get("/api/v1/projects/main/runs/api/replicas", token: server.token).body)
        outputs.append(try await server.get("/api/v1/projects/main/runs/api/events", token: server.token).body)
        for out in outputs { #expect(!out.contains(value), "the value leaked: \(out)") }
        #expect(outputs[3].contains("${{ secrets.API_KEY }}"), "the reference is shown: \(outputs[3])")
        #expect(try Self.filesContaining(value, under: server.dataDir).isEmpty)
        #expect(!(try String(contentsOfFile: server.logPath, encoding: .utf8)).contains(value))

        // A new value: the service rolls to it, without anyone applying again.
        let before = try await server.cli(["describe", "api", "-o", "json"]).output
        let changed = value + "-2"
        #expect(try await server.cli(["secret", "set", "API_KEY", changed]).status == 0)
        try await waitFor(timeout: 60) {
            await DataPathE2ETests.get(base + "/env?name=API_KEY", token: server.token) == (200, changed)
        }
        let after = try await server.cli(["describe", "api"])
        #expect(after.output.contains("RolloutStarted"), "\(after.output)")
        #expect(before.contains("\"deploymentNum\" : 1"), "\(before)")
        #expect(try Self.filesContaining(changed, under: server.dataDir).isEmpty)

        // Deleting a used secret says who uses it; the running replicas keep serving.
        let deleted = try await server.cli(["secret", "delete", "API_KEY", "-y"])
        #expect(deleted.status == 0 && deleted.output.contains("Still used by: api"), "\(deleted.output)")
        #expect(await DataPathE2ETests.get(base + "/env?name=API_KEY", token: server.token).0 == 200)
        #expect(try await server.cli(["stop", "api", "-y"]).status == 0)
    }

    /// Regular files under `directory` (not the replicas' own directories, which the service
    /// writes) whose bytes contain `text`.
    static func filesContaining(_ text: String, under directory: URL) throws -> [String] {
        let needle = Data(text.utf8)
        var found: [String] = []
        let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey])
        while let url = walker?.nextObject() as? URL {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true,
                  let data = try? Data(contentsOf: url), data.range(of: needle) != nil else { continue }
            found.append(url.path)
        }
        return found
    }
}
