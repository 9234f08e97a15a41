import Foundation
import Logging
import Model
import Primitives
import Store
import Synchronization

/// The leader of several servers on one database: a `Lease` object in the store
/// (`_system/setpoint-leader`), with the contract of the Kubernetes Lease election
/// (`LeaderElector`): taken when free or expired, renewed while held, every write naming the
/// resourceVersion it read (two candidates never both win: the loser gets a conflict).
///
/// Expiry is judged as client-go does, by each candidate's own monotonic clock: a lease counts
/// as expired once its resourceVersion has not changed for `leaseDuration` since this candidate
/// first saw it. Clocks of different servers need not agree.
///
/// The holder gives up (`holdUntilLost` throws) once it could not renew for `renewDeadline`,
/// counted from the start of its last successful renewal, which is earlier than any candidate
/// can see that renewal: so a partitioned leader stops leading before anyone can take over.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `leaseDuration` | 15 s | a lease unchanged this long is free: the longest failover |
/// | `renewDeadline` | 10 s | the holder stops leading when it could not renew for this long |
/// | `renewInterval` | 5 s | the holder renews this often (one write) |
/// | `retryInterval` | 1 s | candidates look again, and failed renewals are retried, this often |
public final class StoreLeaderElector: Sendable {
    public struct LostLease: Error, CustomStringConvertible {
        public var description: String
    }

    public static let name = "setpoint-leader"
    public var key: ObjectKey { ObjectKey(kind: LeaseKind.name, project: systemProject, name: Self.name) }

    let leases: TypedStore<LeaseKind>
    public let identity: String
    public let leaseDuration: Int
    let renewDeadline: Duration
    let renewInterval: Duration
    let retryInterval: Duration
    let logger: Logger

    private struct State {
        /// The lease as this holder last wrote it (the next renewal's base).
        var held: Object<LeaseKind>?
        /// The resourceVersion last seen, and when (this candidate's clock).
        var observed: (version: Int64, at: ContinuousClock.Instant)?
    }

    private let state = Mutex(State())

    public init(store: any ObjectStore, identity: String, leaseDuration: Int = 15, renewDeadline: Duration = .seconds(10),
                renewInterval: Duration = .seconds(5), retryInterval: Duration = .seconds(1), logger: Logger) {
        precondition(renewDeadline < .seconds(leaseDuration), "the holder must give up before others may take over")
        self.leases = TypedStore(store)
        self.identity = identity
        self.leaseDuration = leaseDuration
        self.renewDeadline = renewDeadline
        self.renewInterval = renewInterval
        self.retryInterval = retryInterval
        self.logger = logger
    }

    /// Waits until this candidate holds the lease.
    public func acquire() async throws {
        var announced = false
        while true {
            try Task.checkCancellation()
            do {
                if try await tryAcquireOrRenew() { return }
            } catch let e as StoreError {
                logger.warning("cannot take the leader lease yet", metadata: ["error": "\(e)"])
            }
            if !announced {
                let holder = (try? await leases.get(project: systemProject, name: Self.name))?.spec.holderIdentity ?? "nobody"
                logger.info("following; waiting for the leader lease", metadata: ["leader": "\(holder)"])
                announced = true
            }
            try await Task.sleep(for: retryInterval)
        }
    }

    /// Renews until cancelled (then returns); throws `LostLease` once the lease could not be
    /// renewed within `renewDeadline`, or another server holds it.
    public func holdUntilLost() async throws {
        let clock = ContinuousClock()
        var lastRenewal = clock.now
        var wait = renewInterval
        while true {
            do { try await Task.sleep(for: wait) } catch { return }
            let started = clock.now
            let left = lastRenewal + renewDeadline - started
            if left <= .zero {
                throw LostLease(description: "could not renew the leader lease within \(renewDeadline)")
            }
            do {
                // Bounded: a database that stops answering must not hold the holder past its deadline.
                guard let renewed = try await bounded(left, { try await self.tryAcquireOrRenew() }) else {
                    if Task.isCancelled { return }   // shutting down
                    throw LostLease(description: "could not renew the leader lease within \(renewDeadline)")
                }
                guard renewed else { throw LostLease(description: "another server holds the leader lease") }
                lastRenewal = started
                wait = renewInterval
            } catch let e as LostLease {
                throw e
            } catch is CancellationError {
                if Task.isCancelled { return }
                wait = retryInterval
            } catch {
                logger.warning("leader lease renewal failed; retrying", metadata: ["error": "\(error)"])
                wait = min(retryInterval, max(.zero, lastRenewal + renewDeadline - clock.now))
            }
        }
    }

    /// Gives the lease up, so the next server need not wait for it to expire.
    public func release() async {
        let held = state.withLock { s -> Object<LeaseKind>? in
            defer { s.held = nil }
            return s.held
        }
        var current = held
        if current == nil { current = try? await leases.get(project: systemProject, name: Self.name) }
        guard var lease = current, lease.spec.holderIdentity == identity else { return }
        lease.spec.holderIdentity = nil
        lease.spec.leaseDurationSeconds = 1
        // Bounded: a server cut off from the database must still stop promptly.
        let leases = self.leases
        let released = lease
        if (try? await bounded(.seconds(3), { try await leases.update(released) })) != nil {
            logger.info("gave up the leader lease")
        }
    }

    /// One attempt: true when this candidate holds the lease afterwards.
    func tryAcquireOrRenew() async throws -> Bool {
        let now = Date()
        if var lease = state.withLock({ $0.held }) {
            lease.spec.renewTime = now
            lease.spec.leaseDurationSeconds = leaseDuration
            do {
                let written = try await leases.update(lease)
                state.withLock { $0.held = written; $0.observed = (written.meta.resourceVersion, ContinuousClock.now) }
                return true
            } catch let e as StoreError where e.code == .conflict || e.code == .notFound {
                state.withLock { $0.held = nil }   // written by someone else since: read it and decide again
            }
        }
        guard var lease = try await leases.get(project: systemProject, name: Self.name) else {
            var fresh = Object<LeaseKind>(project: systemProject, name: Self.name,
                                          spec: LeaseSpec(holderIdentity: identity, leaseDurationSeconds: leaseDuration,
                                                          acquireTime: now, renewTime: now, leaseTransitions: 0))
            fresh.meta.labels = [:]
            do {
                let written = try await leases.create(fresh)
                state.withLock { $0.held = written; $0.observed = (written.meta.resourceVersion, ContinuousClock.now) }
                logger.info("became the leader", metadata: ["identity": "\(identity)"])
                return true
            } catch let e as StoreError where e.code == .alreadyExists {
                return false
            }
        }
        let seen = ContinuousClock.now
        let firstSeen = state.withLock { s -> ContinuousClock.Instant in
            if let o = s.observed, o.version == lease.meta.resourceVersion { return o.at }
            s.observed = (lease.meta.resourceVersion, seen)
            return seen
        }
        let holder = lease.spec.holderIdentity ?? ""
        let expired = seen - firstSeen >= .seconds(max(1, lease.spec.leaseDurationSeconds))
        guard holder == identity || holder.isEmpty || expired else {
            state.withLock { $0.held = nil }
            return false
        }
        if holder != identity {
            lease.spec.acquireTime = now
            lease.spec.leaseTransitions += 1
        }
        lease.spec.holderIdentity = identity
        lease.spec.leaseDurationSeconds = leaseDuration
        lease.spec.renewTime = now
        do {
            let written = try await leases.update(lease)
            state.withLock { $0.held = written; $0.observed = (written.meta.resourceVersion, ContinuousClock.now) }
            if holder != identity {
                logger.info("became the leader", metadata: ["identity": "\(identity)", "previous": "\(holder.isEmpty ? "none" : holder)"])
            }
            return true
        } catch let e as StoreError where e.code == .conflict {
            return false   // another candidate was quicker: look again next time
        }
    }
}

/// Who leads now, for the services that run only on the leader: each term runs `body` until
/// the lease is lost, then cancels it and waits for it to return before the next term.
public final class Leadership: Sendable {
    private struct State {
        var term = 0
        var leading = false
        var since: Date?
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    public init(leading: Bool = false) {
        if leading { state.withLock { $0.leading = true; $0.term = 1; $0.since = Date() } }
    }

    public var isLeading: Bool { state.withLock { $0.leading } }
    /// Since when this server leads (nil: it does not).
    public var since: Date? { state.withLock { $0.since } }

    public func begin() { change(true) }
    public func end() { change(false) }

    private func change(_ leading: Bool) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard s.leading != leading else { return [] }
            s.leading = leading
            if leading { s.term += 1; s.since = Date() } else { s.since = nil }
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    private var current: (term: Int, leading: Bool) { state.withLock { ($0.term, $0.leading) } }

    /// Returns once the state is no longer (`term`, `leading`), or when cancelled.
    private func changed(from term: Int, leading: Bool) async {
        let id = state.withLock { s -> Int in
            defer { s.nextID += 1 }
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { c in
                let now = state.withLock { s -> Bool in
                    if s.term != term || s.leading != leading || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Runs `body` during each term of leadership, until cancelled. A term's end cancels `body`
    /// and waits for it to return; an error `body` throws while leading ends this too.
    public func whileLeading(_ body: @escaping @Sendable () async throws -> Void) async throws {
        while !Task.isCancelled {
            let (term, leading) = current
            guard leading else {
                await changed(from: term, leading: false)
                continue
            }
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try await body(); return true }
                group.addTask { await self.changed(from: term, leading: true); return false }
                let bodyEnded = try await group.next() ?? false
                if bodyEnded { await self.changed(from: term, leading: true) }
                group.cancelAll()
            }
        }
    }
}
