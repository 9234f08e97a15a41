import Foundation
import Logging
import Synchronization

/// One active Setpoint server per installation in a cluster: a coordination.k8s.io Lease, taken
/// when free or expired and renewed while held, with optimistic concurrency (every write names
/// the resourceVersion it read, so two candidates never both win: the loser gets `409`).
///
/// A renewal is one request, as client-go's leaderelection does it: the holder updates the Lease
/// from the copy its last write returned, and reads it again only when that write conflicts.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `leaseDuration` | 30 s | how long a lease not renewed stays taken (the longest failover) |
/// | `renewInterval` | `leaseDuration / 3` (10 s) | wait between renewals: 6 requests a minute |
/// | `retryInterval` | 2 s | wait after a failed renewal or a lease held by another server |
public final class LeaderElector: Sendable {
    public struct LostLease: Error, CustomStringConvertible {
        public var description: String
    }

    let client: KubeClient
    let namespace: String
    let name: String
    public let identity: String
    let leaseDuration: Int
    let renewInterval: Duration
    let retryInterval: Duration
    let logger: Logger
    /// The Lease as this candidate last wrote it (the next renewal's base), nil when it is not
    /// the holder or the copy is stale.
    private let held = Mutex<Lease?>(nil)

    public init(client: KubeClient, namespace: String, name: String = "setpoint-leader", identity: String,
                leaseDuration: Int = 30, renewInterval: Duration? = nil, retryInterval: Duration? = nil, logger: Logger) {
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.leaseDuration = leaseDuration
        let renew = renewInterval ?? .milliseconds(leaseDuration * 1000 / 3)
        self.renewInterval = renew
        self.retryInterval = retryInterval ?? min(.seconds(2), renew)
        self.logger = logger
    }

    static func microTime(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date).replacingOccurrences(of: "Z", with: "000Z")
    }

    /// Waits until this candidate holds the lease.
    public func acquire() async throws {
        var announced = false
        while true {
            try Task.checkCancellation()
            do {
                if try await tryAcquireOrRenew() { return }
            } catch let e as KubeAPIError {
                // The API server may be starting or briefly away: keep trying, and say why.
                logger.warning("cannot take the leader lease yet", metadata: ["lease": "\(namespace)/\(name)", "error": "\(e)"])
            }
            if !announced {
                logger.info("waiting for the leader lease", metadata: ["lease": "\(namespace)/\(name)"])
                announced = true
            }
            try await Task.sleep(for: retryInterval)
        }
    }

    /// Renews until cancelled; throws `LostLease` when the lease could not be renewed before it
    /// expired (or another candidate took it).
    public func holdUntilLost() async throws {
        var lastRenewal = Date()
        var wait = renewInterval
        while true {
            do { try await Task.sleep(for: wait) } catch { return }   // cancelled: shutting down
            wait = retryInterval
            do {
                if try await tryAcquireOrRenew() {
                    lastRenewal = Date()
                    wait = renewInterval
                    continue
                }
                throw LostLease(description: "the lease \(namespace)/\(name) is held by another server")
            } catch let e as LostLease {
                throw e
            } catch is CancellationError {
                return
            } catch {
                if Date().timeIntervalSince(lastRenewal) >= TimeInterval(leaseDuration) {
                    throw LostLease(description: "could not renew the lease \(namespace)/\(name) within \(leaseDuration)s: \(error)")
                }
                logger.warning("lease renewal failed; retrying", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Gives the lease up (a clean shutdown lets the next server start at once).
    public func release() async {
        held.withLock { $0 = nil }
        guard let lease = try? await client.get(Lease.self, namespace: namespace, name: name), lease.spec?.holderIdentity == identity else { return }
        var released = lease
        released.spec?.holderIdentity = nil
        released.spec?.leaseDurationSeconds = 1
        _ = try? await client.replace(released, namespace: namespace)
    }

    /// One attempt: true when this candidate holds the lease afterwards.
    func tryAcquireOrRenew() async throws -> Bool {
        // The holder renews from its own last write: one request.
        if var lease = held.withLock({ $0 }) {
            lease.spec?.renewTime = Self.microTime(Date())
            lease.spec?.leaseDurationSeconds = leaseDuration
            do {
                let written = try await client.replace(lease, namespace: namespace)
                held.withLock { $0 = written }
                return true
            } catch let e as KubeAPIError where e.isConflict || e.isNotFound {
                // Written or deleted by someone else since: read it and decide again.
                held.withLock { $0 = nil }
            } catch {
                throw error
            }
        }
        let now = Date()
        guard var lease = try await client.get(Lease.self, namespace: namespace, name: name) else {
            var fresh = Lease(metadata: ObjectMeta(name: name, namespace: namespace, labels: [PodTemplate.managedBy: "setpoint"]))
            fresh.spec = Lease.Spec(holderIdentity: identity, leaseDurationSeconds: leaseDuration, renewTime: Self.microTime(now))
            fresh.spec?.acquireTime = Self.microTime(now)
            fresh.spec?.leaseTransitions = 0
            do {
                let written = try await client.create(fresh, namespace: namespace)
                held.withLock { $0 = written }
                logger.info("became the leader", metadata: ["lease": "\(namespace)/\(name)", "identity": "\(identity)"])
                return true
            } catch let e as KubeAPIError where e.isAlreadyExists { return false }
        }
        let spec = lease.spec ?? Lease.Spec(holderIdentity: nil, leaseDurationSeconds: nil, renewTime: nil)
        let holder = spec.holderIdentity ?? ""
        let renewed = spec.renewTime.flatMap(KubeTime.parse) ?? .distantPast
        let expired = now.timeIntervalSince(renewed) > TimeInterval(spec.leaseDurationSeconds ?? leaseDuration)
        guard holder == identity || holder.isEmpty || expired else {
            held.withLock { $0 = nil }
            return false
        }
        var next = spec
        if holder != identity {
            next.acquireTime = Self.microTime(now)
            next.leaseTransitions = (spec.leaseTransitions ?? 0) + 1
        }
        next.holderIdentity = identity
        next.leaseDurationSeconds = leaseDuration
        next.renewTime = Self.microTime(now)
        lease.spec = next
        do {
            let written = try await client.replace(lease, namespace: namespace)
            held.withLock { $0 = written }
            if holder != identity { logger.info("became the leader", metadata: ["lease": "\(namespace)/\(name)", "identity": "\(identity)"]) }
            return true
        } catch let e as KubeAPIError where e.isConflict {
            // Someone wrote it since we read it: read again on the next attempt.
            return false
        }
    }
}
