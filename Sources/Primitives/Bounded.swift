/// Runs `body` for at most `limit`: its value, or nil when the limit came first (`body` is
/// cancelled then). For work that must not hold a shutdown, such as a last write to a
/// database that may be unreachable.
public func bounded<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try? await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}
