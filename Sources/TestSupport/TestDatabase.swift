import Foundation
import Testing

/// A database of its own on the test PostgreSQL server (`hack/postgres.sh start`, which
/// `hack/test.sh` runs): `SETPOINT_TEST_DATABASE_URL` names the server, and each test makes and
/// drops a database there with `psql`. Without that server the PostgreSQL cases are skipped,
/// unless `SETPOINT_REQUIRE_POSTGRES=1` (CI), where they fail.
public struct TestDatabase: Sendable {
    public let name: String
    /// The new database's URL (TLS, password), as a server's `--database` takes it.
    public let url: String
    let adminURL: String

    public static var serverURL: String? { ProcessInfo.processInfo.environment["SETPOINT_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    /// A new, empty database; nil (the case skipped) when no test server is set up and none is required.
    public static func make(sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestDatabase? {
        guard let admin = serverURL else {
            if ProcessInfo.processInfo.environment["SETPOINT_REQUIRE_POSTGRES"] == "1" {
                Issue.record("SETPOINT_TEST_DATABASE_URL is not set: start the test database with hack/postgres.sh start", sourceLocation: sourceLocation)
            }
            return nil
        }
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        try await psql(admin, "CREATE DATABASE \(name)")
        var components = URLComponents(string: admin)!
        components.path = "/" + name
        return TestDatabase(name: String(name), url: components.string!, adminURL: admin)
    }

    /// Removes the database (connections still open to it are ended).
    public func drop() async {
        _ = try? await Self.psql(adminURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs one statement with `psql` against `url`; throws with psql's output on failure.
    @discardableResult
    public static func psql(_ url: String, _ sql: String) async throws -> String {
        let r = try await runProcess(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], timeout: 60)
        guard r.status == 0 else { throw ProcessRunnerError(message: "psql \(sql): \(r.output)") }
        return r.output
    }
}
