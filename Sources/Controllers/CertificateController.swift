import Foundation
import Model
import Reconcile
import Store

/// What the certificate controller gets certificates from (the server's ACME client).
public protocol CertificateIssuer: Sendable {
    /// How long before expiry a certificate is renewed.
    var renewBefore: TimeInterval { get }
    /// Orders a certificate for `domain`; `present` makes the gateway answer the HTTP-01
    /// challenge before the CA is told to check it.
    func issue(domain: String, present: @escaping @Sendable (HTTPChallenge) async throws -> Void) async throws -> (chainPEM: String, keyPEM: String, notAfter: Date)
}

public enum CertificateAction: Sendable, Equatable {
    case issue
}

/// The pure part: whether a domain's certificate must be obtained now, and when to look again.
public enum CertificatePlanner {
    public static func plan(_ cert: GatewayCertificate, renewBefore: TimeInterval, now: Date) -> Plan<CertificateStatus, CertificateAction> {
        var status = cert.status
        guard !cert.meta.isDeleting else { return Plan(status: status) }
        if status.state == "issued", let notAfter = status.notAfter {
            let renewAt = notAfter.addingTimeInterval(-renewBefore)
            if renewAt > now {
                status.conditions.set("Ready", true, reason: "Issued", message: "valid until \(ISO8601DateFormatter().string(from: notAfter))", now: now)
                return Plan(status: status, requeueAfter: renewAt.timeIntervalSince(now))
            }
            // Due for renewal: the current one is served until the new one is there.
            return Plan(status: status, actions: [.issue], events: [.normal("Renewing", "\(cert.spec.domain): the certificate expires \(ISO8601DateFormatter().string(from: notAfter)); renewing")])
        }
        if let next = status.nextAttemptAt, next > now {
            return Plan(status: status, requeueAfter: next.timeIntervalSince(now))
        }
        if status.state != "failed" {
            status.conditions.set("Ready", false, reason: "Issuing", message: "ordering a certificate for \(cert.spec.domain)", now: now)
        }
        return Plan(status: status, actions: [.issue])
    }

    /// The outcome folded into the status.
    public static func issued(_ status: inout CertificateStatus, chainPEM: String, keyPEM: String, notAfter: Date, now: Date) {
        status.state = "issued"
        status.chainPEM = chainPEM
        status.keyPEM = keyPEM
        status.notAfter = notAfter
        status.issuedAt = now
        status.message = nil
        status.challenge = nil
        status.failures = 0
        status.nextAttemptAt = nil
        status.conditions.set("Ready", true, reason: "Issued", message: "valid until \(ISO8601DateFormatter().string(from: notAfter))", now: now)
    }

    public static func backoff(_ failures: Int) -> TimeInterval { min(3600, 30 * pow(2, Double(max(0, failures - 1)))) }

    /// A failed order: the CA's words in the status, and the next try after a backoff (no
    /// order storm against the CA's rate limits); a certificate still valid keeps serving.
    public static func failed(_ status: inout CertificateStatus, domain: String, error: Error, now: Date) {
        status.failures += 1
        status.nextAttemptAt = now.addingTimeInterval(backoff(status.failures))
        let stillValid = status.state == "issued" && (status.notAfter.map { $0 > now } ?? false)
        if !stillValid { status.state = "failed" }
        status.message = "\(domain): \(error)"
        status.challenge = nil
        status.conditions.set("Ready", stillValid, reason: "OrderFailed", message: status.message ?? "", now: now)
    }
}

/// Obtains and renews one domain's certificate (the one shape; a copy of the run controller's).
/// The account and the certificates are in the store, so a restart never orders again what it
/// has (Let's Encrypt's rate limits, dstack #1004).
public struct CertificateController: PlanningController {
    public typealias Kind = CertificateKind

    let store: any ObjectStore
    let issuer: any CertificateIssuer

    public init(store: any ObjectStore, issuer: any CertificateIssuer) {
        self.store = store
        self.issuer = issuer
    }

    var certificates: TypedStore<CertificateKind> { TypedStore(store) }

    public func load(_ key: ObjectKey) async throws -> GatewayCertificate? { try await load(from: store, key) }

    public func observe(_ cert: GatewayCertificate) async throws {}

    public func plan(_ cert: GatewayCertificate, _ observed: Void, now: Date) throws -> Plan<CertificateStatus, CertificateAction> {
        CertificatePlanner.plan(cert, renewBefore: issuer.renewBefore, now: now)
    }

    public func perform(_ action: CertificateAction, on cert: inout GatewayCertificate, plan: inout Plan<CertificateStatus, CertificateAction>, now: Date) async throws {
        let store = TypedStore<CertificateKind>(self.store)
        let key = cert.key
        // The challenge goes into the status: the gateway's feed carries it to its replicas.
        let present: @Sendable (HTTPChallenge) async throws -> Void = { challenge in
            guard var current = try await store.get(project: key.project, name: key.name) else { throw RetryLater("the certificate object is gone") }
            current.status.challenge = challenge
            _ = try await store.updateStatus(current)
        }
        do {
            let result = try await issuer.issue(domain: cert.spec.domain, present: present)
            if let fresh = try await certificates.get(project: key.project, name: key.name) { cert = fresh }
            CertificatePlanner.issued(&plan.status, chainPEM: result.chainPEM, keyPEM: result.keyPEM, notAfter: result.notAfter, now: now)
            plan.events.append(.normal("Issued", "\(cert.spec.domain): certificate valid until \(ISO8601DateFormatter().string(from: result.notAfter))"))
        } catch let later as RetryLater {
            throw later
        } catch {
            if let fresh = try await certificates.get(project: key.project, name: key.name) { cert = fresh }
            CertificatePlanner.failed(&plan.status, domain: cert.spec.domain, error: error, now: now)
            plan.events.append(.warning("OrderFailed", plan.status.message ?? "\(error)"))
            plan.requeue(after: CertificatePlanner.backoff(plan.status.failures))
        }
    }

    public func writeStatus(_ cert: GatewayCertificate) async throws { try await certificates.updateStatus(cert) }
}

public typealias CertificateReconciler = PlanReconciler<CertificateController>
