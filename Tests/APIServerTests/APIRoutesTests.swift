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
                  auth: auth, store: store, backend: backend, logger: logger).register(on: router)
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
}
