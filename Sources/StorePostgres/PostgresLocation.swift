import Foundation
import NIOSSL
import PostgresNIO
import Primitives
import Store

/// Where the database is: a `postgres://` (or `postgresql://`) URL as libpq reads it, with
/// `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`; libpq's default
/// `prefer`), `sslrootcert` (the CA file for the verifying modes) and `host=/socket/dir` for a
/// Unix socket. The password is never part of `description` or of any error.
public struct PostgresLocation: Sendable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    /// A Unix socket directory (`?host=/run/postgresql`), instead of TCP.
    public var socketDirectory: String?
    public var database: String
    public var username: String
    public var password: String?
    public var tls: TLSMode
    public var rootCertificate: String?

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Parses a database URL; errors say which part is wrong (never echoing the password).
    public static func parse(_ url: String) throws -> PostgresLocation {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw Invalid(description: "not a database URL (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw Invalid(description: "unsupported database scheme \(scheme)://: use postgres://USER:PASSWORD@HOST:PORT/DATABASE (SQLite is the default without --database)")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let known: Set<String> = ["sslmode", "sslrootcert", "host", "port", "user", "password", "dbname", "application_name", "connect_timeout"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw Invalid(description: "unknown database URL parameter \(unknown) (supported: sslmode, sslrootcert, host)")
        }
        let mode: TLSMode
        if let raw = query["sslmode"] {
            guard let m = TLSMode(rawValue: raw) else {
                throw Invalid(description: "sslmode=\(raw) is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            mode = m
        } else {
            mode = .prefer
        }
        var location = PostgresLocation(
            host: components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1",
            port: components.port ?? query["port"].flatMap(Int.init) ?? 5432,
            socketDirectory: query["host"].flatMap { $0.hasPrefix("/") ? $0 : nil },
            database: String(components.path.drop(while: { $0 == "/" })),
            username: components.user ?? query["user"] ?? "postgres",
            password: components.password ?? query["password"],
            tls: mode, rootCertificate: query["sslrootcert"])
        if let dbname = query["dbname"] { location.database = dbname }
        if location.database.isEmpty { location.database = location.username }
        if (mode == .verifyCA || mode == .verifyFull), let ca = location.rootCertificate, !FileManager.default.isReadableFile(atPath: ca) {
            throw Invalid(description: "sslrootcert \(ca): no such readable file")
        }
        return location
    }

    public var description: String {
        let place = socketDirectory.map { "\($0)/.s.PGSQL.\(port)" } ?? "\(host):\(port)"
        return "postgres://\(username)@\(place)/\(database)"
    }

    /// The TLS settings for `tls`: nil for `disable`; whether a plain connection is refused.
    func tlsSettings() throws -> (config: TLSConfiguration, required: Bool)? {
        var config = TLSConfiguration.makeClientConfiguration()
        switch tls {
        case .disable:
            return nil
        case .prefer, .require:
            // libpq's `prefer` and `require` encrypt without checking the server's certificate.
            config.certificateVerification = .none
            return (config, tls == .require)
        case .verifyCA, .verifyFull:
            if let ca = rootCertificate {
                config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            }
            config.certificateVerification = tls == .verifyFull ? .fullVerification : .noHostnameVerification
            return (config, true)
        }
    }

    func tlsConfiguration() throws -> PostgresClient.Configuration.TLS {
        guard let (config, required) = try tlsSettings() else { return .disable }
        return required ? .require(config) : .prefer(config)
    }

    func clientConfiguration() throws -> PostgresClient.Configuration {
        var c: PostgresClient.Configuration
        if let dir = socketDirectory {
            c = .init(unixSocketPath: "\(dir)/.s.PGSQL.\(port)", username: username, password: password, database: database)
        } else {
            c = .init(host: host, port: port, username: username, password: password, database: database, tls: try tlsConfiguration())
        }
        c.options.connectTimeout = .seconds(10)
        c.options.maximumConnections = 10
        // The database ends what the client would give up on, so a timed-out write is rolled
        // back there rather than left to commit after its caller heard it failed; and a client
        // that vanished mid-transaction does not hold the store's write lock.
        c.options.additionalStartupParameters = [("application_name", "setpoint"), ("lock_timeout", "10s"),
                                                 ("statement_timeout", "20s"), ("idle_in_transaction_session_timeout", "30s")]
        return c
    }

    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var c: PostgresConnection.Configuration
        if let dir = socketDirectory {
            c = .init(unixSocketPath: "\(dir)/.s.PGSQL.\(port)", username: username, password: password, database: database)
        } else {
            let mode: PostgresConnection.Configuration.TLS
            if let (config, required) = try tlsSettings() {
                let context = try NIOSSLContext(configuration: config)
                mode = required ? .require(context) : .prefer(context)
            } else {
                mode = .disable
            }
            c = .init(host: host, port: port, username: username, password: password, database: database, tls: mode)
        }
        c.options.connectTimeout = .seconds(10)
        return c
    }

    /// A database error in words a user can act on; nothing of the URL's password.
    func explain(_ error: any Error, doing: String) -> StoreError {
        if let e = error as? StoreError { return e }
        if let e = error as? PSQLError {
            if let info = e.serverInfo, let message = info[.message] {
                let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return StoreError(.unavailable, "\(self): \(doing): \(message)\(state)")
            }
            switch e.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown:
                let cause = e.underlying.map { "\($0)" } ?? "\(e.code)"
                return StoreError(.unavailable, "\(self): \(doing): cannot reach the database (\(cause)); is it running, and is --database right?")
            case .sslUnsupported:
                return StoreError(.unavailable, "\(self): the server does not offer TLS, which sslmode=\(tls.rawValue) requires")
            case .authMechanismRequiresPassword:
                return StoreError(.unavailable, "\(self): the server asks for a password and the URL has none")
            default:
                return StoreError(.unavailable, "\(self): \(doing): \(e.code)\(e.underlying.map { ": \($0)" } ?? "")")
            }
        }
        if error is CancellationError { return StoreError(.unavailable, "\(self): \(doing): cancelled") }
        if let timeout = error as? Deadline.Exceeded { return StoreError(.unavailable, "\(self): \(doing): \(timeout)") }
        return StoreError(.unavailable, "\(self): \(doing): \(error)")
    }
}

/// Runs an operation with a bound: a database that stops answering gives an error within it,
/// instead of holding a controller (or the leader's renewal) forever.
enum Deadline {
    struct Exceeded: Error, CustomStringConvertible {
        var seconds: Double
        var description: String { "no answer within \(seconds) s" }
    }

    static func run<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let value = try await bounded(.milliseconds(Int(seconds * 1000)), body) else {
            try Task.checkCancellation()
            throw Exceeded(seconds: seconds)
        }
        return value
    }
}
