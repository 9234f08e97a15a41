/// Runs `body` for at most `limit`: its value, or nil when the limit came first. It returns at
/// the limit even when `body` does not heed cancellation (a query on a connection whose peer
/// vanished): `body` is cancelled and left to end on its own. For work that must not hold its
/// caller past a deadline, such as the leader's renewal or a last write to a database that may
/// be unreachable. Cancelling the caller cancels `body` and returns nil.
public func bounded<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
    let outcome = OnceValue<Result<T, any Error>?>()
    let work = Task {
        do { outcome.set(.success(try await body())) } catch { outcome.set(.failure(error)) }
    }
    let timer = Task {
        try? await Task.sleep(for: limit)
        outcome.set(nil)
    }
    let first = await withTaskCancellationHandler {
        await outcome.wait()
    } onCancel: {
        outcome.set(nil)
    }
    timer.cancel()
    guard let first else {
        work.cancel()
        return nil
    }
    return try first.get()
}
