import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// The OpenAPI document the server serves is valid OpenAPI 3.1 (openapi-spec-validator, from
/// PyPI; hack/test.sh installs it into .build/api-tools) and describes every route. hack/test.sh
/// then fuzzes a live server from it with schemathesis.
@Suite(.serialized) struct OpenAPIE2ETests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var validator: String? {
        let path = root.appendingPathComponent(".build/api-tools/bin/openapi-spec-validator").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }
    /// hack/test.sh sets SETPOINT_REQUIRE_API_TOOLS=1: there the check may not be skipped.
    static var required: Bool { ProcessInfo.processInfo.environment["SETPOINT_REQUIRE_API_TOOLS"] == "1" }

    @Test(.enabled(if: validator != nil || required, "openapi-spec-validator is not installed (hack/test.sh installs it)"))
    func theServedDocumentIsValidOpenAPIAndDescribesEveryRoute() async throws {
        let validate = try #require(Self.validator, "openapi-spec-validator is missing: run hack/test.sh, which installs it")
        let server = try ServerE2ETests.Server()
        defer { server.stop() }
        try await server.waitHealthy()
        let served = try await server.get("/api/v1/openapi.yaml")
        #expect(served.status == 200)
        let file = server.home.appendingPathComponent("openapi.yaml")
        try served.body.write(to: file, atomically: true, encoding: .utf8)
        let (status, output) = try await runProcess([validate, file.path])
        #expect(status == 0, "\(output)")
        #expect(served.body.hasPrefix("openapi: 3.1.0"))
        for path in ["/healthz:", "/offers:", "/users:", "/projects:", "/projects/{project}/runs/plan:", "/projects/{project}/runs/apply:",
                     "/projects/{project}/runs:", "/projects/{project}/runs/{name}:", "/projects/{project}/runs/{name}/stop:",
                     "/projects/{project}/runs/{name}/replicas:", "/projects/{project}/runs/{name}/events:",
                     "/projects/{project}/runs/{name}/logs:", "/projects/{project}/watch:", "/code/{sha256}:",
                     "/users/{name}:", "/projects/{project}/gateways/plan:", "/projects/{project}/gateways/apply:", "/projects/{project}/gateways:",
                     "/projects/{project}/gateways/{name}:", "/projects/{project}/gateways/{name}/events:", "/gateway/feed:", "/gateway/report:",
                     "/projects/{project}/sets/plan:", "/projects/{project}/sets/apply:", "/projects/{project}/secrets:",
                     "/projects/{project}/secrets/{name}:", "/projects/{project}/sources/apply:", "/projects/{project}/sources:",
                     "/projects/{project}/sources/{name}:", "/projects/{project}/sources/{name}/events:", "/projects/{project}/sources/{name}/sync:",
                     "/projects/{project}/sources/{name}/suspend:", "/projects/{project}/sources/{name}/resume:",
                     "/projects/{project}/sources/{name}/webhook:"] {
            #expect(served.body.contains("\n  \(path)\n"), "the document describes \(path)")
        }
        #expect(served.body.contains("'401':"), "401 answers are described")
    }
}
