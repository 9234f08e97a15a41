import Backend
import Controllers
import Foundation
import Model
import Reconcile
import SetpointConfiguration
import Synchronization
import Testing

/// The gateway planner as a table: a gateway, what the backend and the reports say, a time.
@Suite struct GatewayPlannerTests {
    let now = Date(timeIntervalSince1970: 1_900_000_000)
    let local = LocalGatewaySettings()

    func gateway(_ extra: String = "", replicas: Int = 1) throws -> Gateway {
        let text = "type: gateway\nname: edge\nbackend: local\nregion: local\ndomain: \"${{ run.project_name }}.example.test\"\ncertificate: null\nreplicas: \(replicas)\n" + extra
        guard case .success(.gateway(let config)) = try #require(ConfigurationParser.parse(text).first).result else {
            Issue.record("not a valid gateway")
            throw CancellationError()
        }
        var g = Gateway(project: "main", name: "edge", finalizers: [Labels.gatewayFinalizer], spec: GatewaySpec(configuration: config, isDefault: true))
        g.meta.uid = "gw-uid"
        return g
    }

    func process(_ g: Gateway, _ num: Int, _ state: WorkloadState, digest: String? = nil, output: [String] = []) -> GatewayObservation.Process {
        GatewayObservation.Process(replica: num, status: WorkloadStatus(id: WorkloadID("w\(num)"), labels: [
            Labels.gatewayReplica: String(num), Labels.gatewayDigest: digest ?? GatewayPlanner.digest(g.spec.configuration),
        ], state: state), lastOutput: output)
    }

    func observed(_ processes: [GatewayObservation.Process], reports: [Int: Date] = [:]) -> GatewayObservation {
        GatewayObservation(processes: processes, lastReports: reports, reportTimeout: 5)
    }

    @Test func aNewGatewayStartsEachReplicaAndIsProvisioningUntilTheyReport() throws {
        let g = try gateway(replicas: 2)
        let plan = try GatewayPlanner.plan(g, observed([]), local: local, now: now)
        #expect(plan.actions == [.create(replica: 0), .create(replica: 1)])
        #expect(plan.status.phase == .provisioning && plan.status.readyReplicas == 0 && plan.status.desiredReplicas == 2)
        #expect(plan.status.domain == "main.example.test", "the project name is filled in")
        #expect(plan.status.conditions["Ready"]?.status == "False")
    }

    @Test func replicasAreReadyWhileTheyReportAndSilentOnesAreNot() throws {
        var g = try gateway(replicas: 2)
        let running: [GatewayObservation.Process] = [process(g, 0, .running(endpoint: "x")), process(g, 1, .running(endpoint: "y"))]
        let both = try GatewayPlanner.plan(g, observed(running, reports: [0: now.addingTimeInterval(-1), 1: now.addingTimeInterval(-2)]), local: local, now: now)
        #expect(both.actions.isEmpty && both.status.readyReplicas == 2 && both.status.phase == .running)
        #expect(both.status.conditions["Ready"]?.status == "True")
        #expect(both.requeueAfter.map { $0 > 2.9 && $0 < 3.1 } == true, "looks again when the older report expires: \(String(describing: both.requeueAfter))")
        #expect(both.events.map(\.reason) == ["GatewayReplicaReady", "GatewayReplicaReady"])
        g.status = both.status
        // Replica 1 stopped reporting 6 s ago: out, without holding the other back.
        let one = try GatewayPlanner.plan(g, observed(running, reports: [0: now, 1: now.addingTimeInterval(-6)]), local: local, now: now)
        #expect(one.status.readyReplicas == 1 && one.status.phase == .running && one.status.conditions["Ready"]?.status == "False")
        #expect(one.events.map(\.reason) == ["GatewayReplicaSilent"])
    }

    @Test func anExitedReplicaIsStartedAgainWithBackoffAndSaysWhy() throws {
        var g = try gateway()
        let exited = try GatewayPlanner.plan(g, observed([process(g, 0, .exited(1), output: ["error: cannot listen on 0.0.0.0:80: permission denied", ""])]),
                                             local: local, now: now)
        #expect(exited.actions == [.delete(WorkloadID("w0"))])
        #expect(exited.status.replicas.first?.message == "exited with status 1: error: cannot listen on 0.0.0.0:80: permission denied")
        #expect(exited.events.first?.reason == "GatewayReplicaExited")
        #expect(exited.status.message?.contains("permission denied") == true)
        g.status = exited.status
        // Gone now: not started again before the backoff (1 s after the first exit).
        let early = try GatewayPlanner.plan(g, observed([]), local: local, now: now.addingTimeInterval(0.5))
        #expect(early.actions.isEmpty && early.requeueAfter.map { abs($0 - 0.5) < 0.01 } == true)
        let due = try GatewayPlanner.plan(g, observed([]), local: local, now: now.addingTimeInterval(1))
        #expect(due.actions == [.create(replica: 0)])
        #expect(GatewayPlanner.backoff(1) == 1 && GatewayPlanner.backoff(3) == 4 && GatewayPlanner.backoff(20) == 60)
    }

    @Test func onlyWhatCannotChangeInPlaceReplacesTheProcesses() throws {
        let g = try gateway()
        let other = try gateway(replicas: 3)
        #expect(GatewayPlanner.digest(g.spec.configuration) == GatewayPlanner.digest(other.spec.configuration), "replicas change in place")
        let stale = try GatewayPlanner.plan(g, observed([process(g, 0, .running(endpoint: "x"), digest: "old")], reports: [0: now]), local: local, now: now)
        #expect(stale.actions == [.delete(WorkloadID("w0"))] && stale.events.first?.reason == "Replacing")
        // Fewer replicas: the extra one goes.
        let shrunk = try GatewayPlanner.plan(g, observed([process(g, 0, .running(endpoint: "x")), process(g, 1, .running(endpoint: "y"))],
                                                         reports: [0: now, 1: now]), local: local, now: now)
        #expect(shrunk.actions == [.delete(WorkloadID("w1"))])
    }

    @Test func aDeletedGatewayStopsItsProcessesThenLetsGo() throws {
        var g = try gateway()
        g.meta.deletionTimestamp = now
        let stopping = try GatewayPlanner.plan(g, observed([process(g, 0, .running(endpoint: "x"))]), local: local, now: now)
        #expect(stopping.actions == [.delete(WorkloadID("w0"))])
        let gone = try GatewayPlanner.plan(g, observed([]), local: local, now: now)
        #expect(gone.actions == [.removeFinalizer])
    }

    @Test func whatCannotWorkStallsWithAReason() throws {
        var g = try gateway()
        g.spec.configuration.backend = "kubernetes"
        #expect(throws: TerminalError.self) { try GatewayPlanner.plan(g, observed([]), local: local, now: now) }
        let plain = try gateway()
        let taken = GatewayObservation(processes: [], lastReports: [:], reportTimeout: 5, portsTakenBy: "main/other")
        do {
            _ = try GatewayPlanner.plan(plain, taken, local: local, now: now)
            Issue.record("a second local gateway on the same ports must stall")
        } catch let e as TerminalError {
            #expect(e.reason == "PortsTaken" && e.message.contains("main/other"))
        }
    }

    /// Several servers: what a gateway told one server reaches the leader through the store;
    /// a relayed copy is not passed on again, and never replaces a newer report received here.
    @Test func gatewayReportsReceivedElsewhereCountAndAreNotRelayedAgain() {
        let leader = GatewayReports(timeout: 5)
        let follower = GatewayReports(timeout: 5)
        let key = ObjectKey(kind: GatewayKind.name, project: "main", name: "edge")
        let service = GatewayReport.Service(project: "main", run: "web", requests: ["30": 12], inFlight: 2, held: 0, observed: 40)
        follower.record(gateway: key, GatewayReport(replica: 0, services: [service], waiting: ["web"]), now: now)
        let passed = follower.received(now: now.addingTimeInterval(1))
        #expect(passed.count == 1 && passed[0].gateway == "edge" && abs(passed[0].age - 1) < 0.001)
        let woken = Mutex<[String]>([])
        leader.setWaiting { _, run in woken.withLock { $0.append(run) } }
        for r in passed { leader.record(gateway: key, r.report, now: now.addingTimeInterval(2 - r.age), relayed: true) }
        #expect(leader.demand(project: "main", run: "web", now: now.addingTimeInterval(2))?.requests[30] == 12)
        #expect(woken.withLock { $0 } == ["web"], "a request waiting at that server's gateway wakes the leader's autoscaler")
        #expect(leader.received(now: now.addingTimeInterval(2)).isEmpty, "a relayed report is not passed on again")
        #expect(!leader.lastReports(gateway: key).isEmpty, "and the gateway counts as reporting")
        // A newer report received here stands against an older relayed copy.
        let fresh = GatewayReport.Service(project: "main", run: "web", requests: ["30": 1], inFlight: 0, held: 0, observed: 41)
        leader.record(gateway: key, GatewayReport(replica: 0, services: [fresh]), now: now.addingTimeInterval(3))
        leader.record(gateway: key, passed[0].report, now: now.addingTimeInterval(1), relayed: true)
        #expect(leader.demand(project: "main", run: "web", now: now.addingTimeInterval(3))?.requests[30] == 1)
    }

    @Test func gatewayReportsAddUpLiveReplicasOnly() {
        let reports = GatewayReports(timeout: 5)
        let key = ObjectKey(kind: GatewayKind.name, project: "main", name: "edge")
        func service(_ n: Int) -> GatewayReport.Service {
            GatewayReport.Service(project: "main", run: "web", requests: ["30": n, "3": 1], inFlight: 1, held: 0, observed: 40)
        }
        reports.record(gateway: key, GatewayReport(replica: 0, services: [service(10)]), now: now)
        reports.record(gateway: key, GatewayReport(replica: 1, services: [service(5)]), now: now.addingTimeInterval(-10))
        let demand = reports.demand(project: "main", run: "web", now: now)
        #expect(demand?.requests[30] == 10, "the silent replica is dropped, not waited for")
        reports.record(gateway: key, GatewayReport(replica: 1, services: [service(5)]), now: now)
        #expect(reports.demand(project: "main", run: "web", now: now)?.requests[30] == 15)
        #expect(reports.demand(project: "main", run: "web", now: now)?.inFlight == 2)
        #expect(reports.demand(project: "main", run: "other", now: now) == nil)
        #expect(reports.demand(project: "main", run: "web", now: now.addingTimeInterval(6)) == nil)
    }
}

/// Certificates: which domains a gateway orders, and when one is renewed.
@Suite struct CertificatePlannerTests {
    let now = Date(timeIntervalSince1970: 1_900_000_000)

    func certificate(_ status: CertificateStatus = CertificateStatus()) -> GatewayCertificate {
        var c = GatewayCertificate(project: "main", name: "web.example.test", spec: CertificateSpec(gateway: "edge", domain: "web.example.test"))
        c.status = status
        return c
    }

    @Test func aNewDomainIsOrderedAndAnIssuedOneWaitsForItsRenewalTime() {
        #expect(CertificatePlanner.plan(certificate(), renewBefore: 30 * 86_400, now: now).actions == [.issue])
        var status = CertificateStatus()
        CertificatePlanner.issued(&status, chainPEM: "chain", keyPEM: "key", notAfter: now.addingTimeInterval(90 * 86_400), now: now)
        let waiting = CertificatePlanner.plan(certificate(status), renewBefore: 30 * 86_400, now: now)
        #expect(waiting.actions.isEmpty && waiting.requeueAfter == 60 * 86_400, "looks again when it is due")
        let due = CertificatePlanner.plan(certificate(status), renewBefore: 30 * 86_400, now: now.addingTimeInterval(60 * 86_400))
        #expect(due.actions == [.issue] && due.events.first?.reason == "Renewing")
    }

    @Test func aFailedOrderSaysWhatTheCASaidAndWaitsBeforeTheNext() {
        struct Refused: Error, CustomStringConvertible { var description = "the ACME server refused (rateLimited, HTTP 429): too many certificates" }
        var status = CertificateStatus()
        CertificatePlanner.failed(&status, domain: "web.example.test", error: Refused(), now: now)
        #expect(status.state == "failed" && status.message == "web.example.test: the ACME server refused (rateLimited, HTTP 429): too many certificates")
        let early = CertificatePlanner.plan(certificate(status), renewBefore: 0, now: now.addingTimeInterval(10))
        #expect(early.actions.isEmpty && early.requeueAfter == 20)
        #expect(CertificatePlanner.plan(certificate(status), renewBefore: 0, now: now.addingTimeInterval(30)).actions == [.issue])
        CertificatePlanner.failed(&status, domain: "web.example.test", error: Refused(), now: now)
        #expect(status.nextAttemptAt == now.addingTimeInterval(60) && CertificatePlanner.backoff(20) == 3600)
        // A renewal that fails keeps serving the certificate that is still valid.
        var valid = CertificateStatus()
        CertificatePlanner.issued(&valid, chainPEM: "c", keyPEM: "k", notAfter: now.addingTimeInterval(86_400), now: now)
        CertificatePlanner.failed(&valid, domain: "web.example.test", error: Refused(), now: now)
        #expect(valid.state == "issued" && valid.chainPEM == "c" && valid.conditions["Ready"]?.status == "True")
    }
}

extension GatewayPlannerTests {
    @Test func aLetsEncryptGatewayOrdersOneCertificatePerPublishedName() throws {
        let text = "type: gateway\nname: edge\nbackend: local\nregion: local\ndomain: example.test\n"
        guard case .success(.gateway(let config)) = try #require(ConfigurationParser.parse(text).first).result else { Issue.record("invalid"); return }
        var g = Gateway(project: "main", name: "edge", finalizers: [Labels.gatewayFinalizer], spec: GatewaySpec(configuration: config, isDefault: true))
        g.meta.uid = "gw-uid"
        let running = [process(g, 0, .running(endpoint: "x"))]
        let plan = try GatewayPlanner.plan(g, GatewayObservation(processes: running, lastReports: [0: now], reportTimeout: 5, services: ["web"]),
                                           local: local, now: now)
        #expect(plan.actions == [.createCertificate(domain: "gateway.example.test"), .createCertificate(domain: "web.example.test")])
        #expect(plan.status.httpsPort == 443)
        // A service that left: its certificate goes.
        let old = GatewayCertificate(project: "main", name: "old.example.test", spec: CertificateSpec(gateway: "edge", domain: "old.example.test"))
        let gone = try GatewayPlanner.plan(g, GatewayObservation(processes: running, lastReports: [0: now], reportTimeout: 5, services: [], certificates: [old]),
                                           local: local, now: now)
        #expect(gone.actions == [.createCertificate(domain: "gateway.example.test"), .deleteCertificate(domain: "old.example.test")])
        // The operator's wildcard instead: nothing is ordered.
        var provided = local
        provided.certificateFile = "/etc/ssl/wildcard.pem"
        provided.keyFile = "/etc/ssl/wildcard.key"
        let wildcard = try GatewayPlanner.plan(g, GatewayObservation(processes: running, lastReports: [0: now], reportTimeout: 5, services: ["web"]),
                                               local: provided, now: now)
        #expect(wildcard.actions.isEmpty && wildcard.status.certificates.map(\.domain) == ["*.example.test"])
        #expect(wildcard.status.certificates.first?.state == "provided")
    }
}

extension GatewayPlannerTests {
    @Test func describeSaysWhetherTheWildcardPointsAtTheGateway() throws {
        let g = try gateway()
        let running = [process(g, 0, .running(endpoint: "x"))]
        func dns(_ name: DNSCheck.Answer, _ address: DNSCheck.Answer) throws -> Condition? {
            var local = self.local
            local.address = "203.0.113.7"
            let o = GatewayObservation(processes: running, lastReports: [0: now], reportTimeout: 5, dns: (name, address))
            return try GatewayPlanner.plan(g, o, local: local, now: now).status.conditions["DNSConfigured"]
        }
        let missing = try dns(.failed("Name or service not known"), .addresses(["203.0.113.7"]))
        #expect(missing?.status == "False" && missing?.message == "gateway.main.example.test does not resolve (Name or service not known): point a wildcard record *.main.example.test at 203.0.113.7 (A, or CNAME to its name)")
        let elsewhere = try dns(.addresses(["198.51.100.1"]), .addresses(["203.0.113.7"]))
        #expect(elsewhere?.status == "False" && elsewhere?.message.contains("resolves to 198.51.100.1, not to the gateway (203.0.113.7)") == true)
        let right = try dns(.addresses(["203.0.113.7"]), .addresses(["203.0.113.7"]))
        #expect(right?.status == "True")
        // It never holds the gateway back.
        let o = GatewayObservation(processes: running, lastReports: [0: now], reportTimeout: 5, dns: (.failed("x"), .failed("y")))
        #expect(try GatewayPlanner.plan(g, o, local: local, now: now).status.conditions["Ready"]?.status == "True")
    }
}
