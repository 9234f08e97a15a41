import APIServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Model
import Reconcile
import Store
import Testing
import TestSupport

/// The API in-process (HummingbirdTesting's router client: no socket), over a memory store and
/// the fake backend: what the end-to-end tests check through the binary, at the level of
/// requests and stored objects.
@Suite struct APIRoutesTests {
    struct Setup {
        let store: MemoryStore
        let app: Application<RouterResponder<BasicRequestContext>>
        let token: String
    }

    func setup() async throws -> Setup {
        let store = MemoryStore()
        let backend = FakeBackend(clock: SystemClock())
        let auth = Authenticator(store: store)
        let token = try #require(try await auth.bootstrap(adminToken: "admin-token")).token
        try await auth.reload()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-api-\(UUID().uuidString)").path
        let router = Router()
        var logger = Logger(label: "api-test")
        logger.logLevel = .critical
        APIRoutes(runs: RunService(store: store, backend: backend, publicURL: "http://setpoint.test", codeDirectory: dir),
                  auth: auth, store: store, backend: backend, logger: logger,
                  secrets: ProjectSecrets(store: store, box: SecretBox(serverSecret: Data(repeating: 7, count: 32)))).register(on: router)
        return Setup(store: store, app: Application(router: router, logger: logger), token: token)
    }

    static let service = "type: service\nname: web\ncommands: [python3 -m http.server 8000]\nport: 8000\nreplicas: 2\n"

    func applyBody(_ yaml: String) throws -> ByteBuffer {
        ByteBuffer(data: try API.encoder.encode(API.ApplyRequest(configuration: yaml, file: "web.dstack.yml")))
    }

    @Test func applyStoresTheRunAndGetShowsIt() async throws {
        let s = try await setup()
        try await s.app.test(.router) { client in
            let auth: HTTPFields = [.authorization: "Bearer \(s.token)", .contentType: "application/json"]
            try await client.execute(uri: "/api/v1/projects/main/runs/apply", method: .post, headers: auth, body: try applyBody(Self.service)) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
            }
            try await client.execute(uri: "/api/v1/projects/main/runs/web", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let run = try API.decoder.decode(API.Run.self, from: Data(buffer: response.body))
                #expect(run.name == "web" && run.url == "http://setpoint.test/proxy/services/main/web/")
            }
        }
        let stored = try #require(try await TypedStore<RunKind>(s.store).get(project: "main", name: "web"))
        #expect(stored.spec.configuration.replicaGroups.first?.replicas.min == 2)
    }

    @Test func badInputNamesTheFieldAndChangesNothing() async throws {
        let s = try await setup()
        let writes = await s.store.writeCount()
        try await s.app.test(.router) { client in
            let auth: HTTPFields = [.authorization: "Bearer \(s.token)", .contentType: "application/json"]
            try await client.execute(uri: "/api/v1/projects/main/runs/apply", method: .post, headers: auth,
                                     body: try applyBody("type: service\nname: web\ncommands: [x]\nport: 99999\n")) { response in
                #expect(response.status == .badRequest || response.status == .unprocessableContent)
                let text = String(buffer: response.body)
                #expect(text.contains("web.dstack.yml") && text.contains("port"), "\(text)")
            }
        }
        #expect(await s.store.writeCount() == writes, "nothing stored")
    }

    /// Secrets are sealed in the store (bound to their project and name), listed by name only,
    /// set by admins and managers only, and setting the same value again writes nothing.
    @Test func secretsAreSealedListedByNameAndSetByManagers() async throws {
        let s = try await setup()
        let box = SecretBox(serverSecret: Data(repeating: 7, count: 32))
        try await s.app.test(.router) { client in
            let auth: HTTPFields = [.authorization: "Bearer \(s.token)", .contentType: "application/json"]
            let body = ByteBuffer(data: try API.encoder.encode(API.SecretRequest(value: "hunter2-value")))
            try await client.execute(uri: "/api/v1/projects/main/secrets/HF_TOKEN", method: .put, headers: auth, body: body) { response in
                #expect(response.status == .ok)
                #expect(!String(buffer: response.body).contains("hunter2"))
            }
            let writes = await s.store.writeCount()
            try await client.execute(uri: "/api/v1/projects/main/secrets/HF_TOKEN", method: .put, headers: auth, body: body) { response in
                #expect(response.status == .ok)
            }
            #expect(await s.store.writeCount() == writes, "the same value again writes nothing")
            try await client.execute(uri: "/api/v1/projects/main/secrets/bad-name", method: .put, headers: auth, body: body) { response in
                #expect(response.status == .badRequest && String(buffer: response.body).contains("invalid secret name `bad-name`"))
            }
            try await client.execute(uri: "/api/v1/projects/main/secrets", method: .get, headers: auth) { response in
                let list = try API.decoder.decode([API.SecretInfo].self, from: Data(buffer: response.body))
                #expect(list.map(\.name) == ["HF_TOKEN"])
                #expect(!String(buffer: response.body).contains("hunter2"))
            }
        }
        let stored = try #require(try await TypedStore<SecretKind>(s.store).get(project: "main", name: "HF_TOKEN"))
        let raw = try #require(try await s.store.get(stored.key))
        #expect(!String(decoding: raw.spec, as: UTF8.self).contains("hunter2"), "sealed at rest")
        #expect(try box.open(stored.spec.sealed, project: "main", name: "HF_TOKEN") == "hunter2-value")
        #expect(throws: (any Error).self, "bound to its name") { try box.open(stored.spec.sealed, project: "main", name: "OTHER") }
        #expect(throws: (any Error).self, "and to the server's key") {
            try SecretBox(serverSecret: Data(repeating: 8, count: 32)).open(stored.spec.sealed, project: "main", name: "HF_TOKEN")
        }
        #expect(box.digest("a", project: "main", name: "X") != box.digest("b", project: "main", name: "X"))
    }

    /// A set with a gateway and a service that uses it: the gateway is planned and applied
    /// first (the service resolves it though it does not exist yet), both carry the set's name,
    /// and applying the same set again writes nothing.
    @Test func aSetAppliesGatewaysFirstAndWritesNothingWhenUnchanged() async throws {
        let store = MemoryStore()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-set-\(UUID().uuidString)").path
        let runs = RunService(store: store, backend: FakeBackend(clock: SystemClock()), publicURL: "http://setpoint.test", codeDirectory: dir)
        let sets = SetService(runs: runs, gateways: GatewayService(store: store, backends: ["local"]))
        let request = API.SetRequest(set: "demo", documents: [
            API.SetDocument(file: "web.dstack.yml", configuration: Self.service + "gateway: edge\n"),
            API.SetDocument(file: "gateway.dstack.yml", configuration: "type: gateway\nname: edge\nbackend: local\nregion: local\ndomain: example.test\n"),
        ])
        let options = SetService.Options(set: "demo")
        let plan = try await sets.plan(project: "main", user: "admin", request, options: options)
        #expect(plan.entries.map { "\($0.action) \($0.kind)/\($0.name)" } == ["create Gateway/edge", "create Run/web"])
        _ = try await sets.apply(project: "main", user: "admin", request, options: options)
        let run = try #require(try await TypedStore<RunKind>(store).get(project: "main", name: "web"))
        #expect(run.spec.gateway == "edge" && run.meta.labels[Labels.set] == "demo")
        #expect(try await TypedStore<GatewayKind>(store).get(project: "main", name: "edge")?.meta.labels[Labels.set] == "demo")
        let writes = await store.writeCount()
        let again = try await sets.apply(project: "main", user: "admin", request, options: options)
        #expect(again.plan.inSync && again.runs.isEmpty)
        #expect(await store.writeCount() == writes, "an unchanged set writes nothing")
        // Another set cannot take them; a plain apply of many can change them (they stay in theirs).
        await #expect(throws: RunService.Failure.self) { try await sets.plan(project: "main", user: "admin", request, options: SetService.Options(set: "other")) }
    }

    @Test func withoutATokenNothingIsShownOrDone() async throws {
        let s = try await setup()
        try await s.app.test(.router) { client in
            try await client.execute(uri: "/api/v1/projects/main/runs", method: .get) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/api/v1/projects/main/runs/apply", method: .post,
                                     headers: [.authorization: "Bearer wrong", .contentType: "application/json"],
                                     body: try applyBody(Self.service)) { response in
                #expect(response.status == .unauthorized)
                #expect(!String(buffer: response.body).contains("wrong"), "the token is not echoed")
            }
        }
        #expect(try await TypedStore<RunKind>(s.store).get(project: "main", name: "web") == nil)
    }

    @Test func theStatusPageIsServedWithAStrictPolicyAndTheEventsAPIChecksItsQuery() async throws {
        let s = try await setup()
        try await s.app.test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .found && response.headers[.location] == "/ui/")
            }
            var etag = ""
            try await client.execute(uri: "/ui/", method: .get) { response in
                #expect(response.status == .ok)
                let html = String(buffer: response.body)
                #expect(html.contains("<script src=\"/ui/app.js\" defer></script>") && html.contains("<label for=\"token\">Token</label>"))
                #expect(!html.contains("http://") && !html.contains("https://"), "nothing from another origin")
                let policy = response.headers[.contentSecurityPolicy] ?? ""
                #expect(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe-inline"))
            }
            try await client.execute(uri: "/ui/app.js", method: .get) { response in
                #expect(response.status == .ok && response.headers[.contentType]?.hasPrefix("text/javascript") == true)
                #expect(String(buffer: response.body).contains("sessionStorage"))
                etag = response.headers[.eTag] ?? ""
            }
            try await client.execute(uri: "/ui/app.js", method: .get, headers: [.ifNoneMatch: etag]) { response in
                #expect(response.status == .notModified)
            }
            try await client.execute(uri: "/ui/missing.js", method: .get) { response in #expect(response.status == .notFound) }
            let auth: HTTPFields = [.authorization: "Bearer \(s.token)"]
            try await client.execute(uri: "/api/v1/projects/main/events?for=run/web&since=10m", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let events = try API.decoder.decode([API.Event].self, from: Data(buffer: response.body))
                #expect(events.isEmpty)
            }
            try await client.execute(uri: "/api/v1/projects/main/events?since=soon", method: .get, headers: auth) { response in
                #expect(response.status == .badRequest && String(buffer: response.body).contains("since:"))
            }
            try await client.execute(uri: "/api/v1/projects/main/events?for=pod/x", method: .get, headers: auth) { response in
                #expect(response.status == .badRequest && String(buffer: response.body).contains("for:"))
            }
            try await client.execute(uri: "/api/v1/projects/main/watch?kind=pods", method: .get, headers: auth) { response in
                #expect(response.status == .badRequest && String(buffer: response.body).contains("kind:"))
            }
            try await client.execute(uri: "/api/v1/projects/main/replicas", method: .get, headers: auth) { response in
                #expect(response.status == .ok && String(buffer: response.body) == "[]")
            }
            try await client.execute(uri: "/api/v1/projects/main/events", method: .get) { response in #expect(response.status == .unauthorized) }
        }
    }
}
