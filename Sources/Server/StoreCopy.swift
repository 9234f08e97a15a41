import Foundation
import Logging
import Model
import Store
import StorePostgres
import StoreSQLite

/// `setpoint store copy`: an installation's whole state from one store to another (SQLite to
/// PostgreSQL when it grows to several servers, and back), with every object's metadata and
/// the store's version, into a store that holds nothing yet.
public enum StoreCopy {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// What was copied.
    public struct Report: Sendable {
        public var objects: Int
        public var version: Int64
        /// Objects by kind.
        public var kinds: [String: Int]
        public var from: String
        public var to: String
    }

    /// Kinds that describe running servers, not the installation: not copied.
    static let transient: Set<String> = [ServerKind.name, LeaseKind.name]

    /// Opens `sqlite:PATH` (a `.db` file, or a data directory holding `state.db`) or a
    /// `postgres://` URL. An SQLite store is opened only while no server runs on its directory.
    static func open(_ location: String, creating: Bool, logger: Logger) async throws -> (store: any CopyableStore, name: String, close: () async -> Void, lock: DataDirectoryLock?) {
        if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
            let store = try await PostgresStore.open(location, following: false, logger: logger)
            return (store, store.location.description, { await store.close() }, nil)
        }
        guard location.hasPrefix("sqlite:") else {
            throw Failure(description: "\(location): expected sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB")
        }
        var path = String(location.dropFirst("sqlite:".count))
        // A data directory (existing, or a new path not ending in `.db`) holds `state.db`.
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if (exists && isDirectory.boolValue) || (!exists && !path.hasSuffix(".db")) { path += "/state.db" }
        let directory = (path as NSString).deletingLastPathComponent
        if !creating, !FileManager.default.fileExists(atPath: path) { throw Failure(description: "\(location): no such file") }
        if creating { try FileManager.default.createDirectory(atPath: directory.isEmpty ? "." : directory, withIntermediateDirectories: true) }
        // A server running on it would write while the copy reads (or be overwritten).
        let lock = try DataDirectoryLock.acquire(directory.isEmpty ? "." : directory)
        let store = try SQLiteStore(path: path)
        return (store, "sqlite:\(path)", {}, lock)
    }

    public static func copy(from source: String, to destination: String, logger: Logger) async throws -> Report {
        let from = try await open(source, creating: false, logger: logger)
        defer { from.lock?.release() }
        do {
            let to = try await open(destination, creating: true, logger: logger)
            defer { to.lock?.release() }
            do {
                let (all, version) = try await from.store.snapshot()
                let objects = all.filter { !transient.contains($0.meta.kind) }
                try await to.store.restore(objects, version: version)
                // Read back: the copy holds what the original does, byte for byte.
                let (copied, copiedVersion) = try await to.store.snapshot()
                let sorted = objects.sorted { $0.key < $1.key }
                guard copied.sorted(by: { $0.key < $1.key }) == sorted, copiedVersion == version else {
                    throw Failure(description: "the copy in \(to.name) differs from \(from.name) after writing (\(copied.count) of \(objects.count) objects)")
                }
                await to.close()
                await from.close()
                return Report(objects: objects.count, version: version, kinds: Dictionary(grouping: objects, by: \.meta.kind).mapValues(\.count),
                              from: from.name, to: to.name)
            } catch {
                await to.close()
                throw error
            }
        } catch {
            await from.close()
            throw error
        }
    }
}
