import Foundation
import Logging
import ServiceLifecycle
import Store
import Synchronization

/// Runs a `Reconciler` with N workers over a `WorkQueue`: one loop does all the bookkeeping
/// (done, forget, rate-limited retry, requeue, terminal errors, per-reconcile timeout).
public final class Controller<R: Reconciler>: Service, Sendable {
    public let name: String
    public let queue: WorkQueue<R.Key>
    private let reconciler: R
    private let workers: Int
    private let timeout: TimeInterval
    private let clock: any ControllerClock
    private let metrics: (any ControllerMetrics)?
    private let logger: Logger
    /// Numbers reconciles, so the log lines of one can be told apart (`reconcile` metadata).
    private let reconciles = Atomic<UInt64>(0)

    public init(name: String, reconciler: R, clock: any ControllerClock, workers: Int = 4, timeout: TimeInterval = 60,
                rateLimit: WorkQueue<R.Key>.RateLimit = .init(), metrics: (any ControllerMetrics)? = nil,
                logger: Logger = Logger(label: "setpoint.controller")) {
        self.name = name
        self.reconciler = reconciler
        self.clock = clock
        self.workers = max(1, workers)
        self.timeout = timeout
        self.metrics = metrics
        self.logger = logger
        self.queue = WorkQueue(clock: clock, rateLimit: rateLimit)
    }

    public func enqueue(_ key: R.Key) { queue.add(key) }

    /// Runs the workers until cancelled or a graceful shutdown is requested. It may run again
    /// after it was cancelled (a server's next term as leader).
    public func run() async throws {
        queue.reopen()
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    for _ in 0..<workers {
                        group.addTask { await self.workerLoop() }
                    }
                }
            } onGracefulShutdown: {
                self.queue.shutDown()
            }
        } onCancel: {
            // Workers wait in `queue.get()`, which does not watch for cancellation itself.
            self.queue.shutDown()
        }
    }

    /// Takes keys again after a shutdown (before `run`, so keys enqueued first are kept).
    public func reopen() { queue.reopen() }

    /// Stops handing out work; running reconciles finish.
    public func shutDown() { queue.shutDown() }

    private func workerLoop() async {
        while !Task.isCancelled, let key = await queue.get() {
            await process(key)
            queue.done(key)
        }
    }

    /// Processes every key that is queued now, one at a time, as a single worker would, and
    /// returns how many it processed: how tests step the runtime on a manual clock (a key
    /// requeued with a delay comes due when the clock is moved).
    @discardableResult
    public func processQueued() async -> Int {
        var processed = 0
        while queue.depth > 0, let key = await queue.get() {
            await process(key)
            queue.done(key)
            processed += 1
        }
        return processed
    }

    /// Processes one key (also callable directly by tests that step the runtime).
    public func process(_ key: R.Key) async {
        let start = clock.now()
        let id = reconciles.add(1, ordering: .relaxed).newValue
        let outcome: String
        do {
            let result = try await ReconcileContext.$id.withValue(id) {
                try await withTimeout { try await self.reconciler.reconcile(key) }
            }
            queue.forget(key)
            switch result {
            case .done:
                outcome = "done"
            case .requeue(let delay):
                outcome = "requeue"
                queue.add(key, after: delay)
            }
        } catch let terminal as TerminalError {
            outcome = "terminal"
            queue.forget(key)
            logger.warning("reconcile stalled", metadata: ["controller": "\(name)", "key": "\(key)", "reconcile": "\(id)", "reason": "\(terminal.reason)"])
            await ReconcileContext.$id.withValue(id) { await reconciler.stalled(key, error: terminal) }
        } catch is CancellationError where Task.isCancelled {
            outcome = "cancelled"   // shutting down: the key is not retried by this runtime
        } catch {
            outcome = "error"
            queue.addRateLimited(key)
            // Every retried error is said, with the reconcile it ended; a write that lost a race
            // with another writer (a conflict: read again and retry) is routine, so only `info`.
            let routine = (error as? StoreError)?.code == .conflict
            logger.log(level: routine ? .info : .warning, "reconcile failed; retrying", metadata: [
                "controller": "\(name)", "key": "\(key)", "reconcile": "\(id)", "attempt": "\(queue.failures(key))", "error": "\(error)",
            ])
        }
        metrics?.reconciled(controller: name, duration: clock.now().timeIntervalSince(start), outcome: outcome)
        metrics?.queueDepth(controller: name, depth: queue.depth)
    }

    struct Timeout: Error, CustomStringConvertible {
        var seconds: TimeInterval
        var description: String { "reconcile timed out after \(seconds) s" }
    }

    /// Runs `body`, cancelling it and throwing `Timeout` when it outlasts the timeout.
    private func withTimeout<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let seconds = timeout
        let clock = self.clock
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                await clock.sleep(until: clock.now().addingTimeInterval(seconds))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                // The timer also ends when the runtime shuts down (cancellation): not a timeout.
                if Task.isCancelled { throw CancellationError() }
                throw Timeout(seconds: seconds)
            }
            return value
        }
    }
}
