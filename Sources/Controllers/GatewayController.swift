import Backend
import Foundation
import Model
import Reconcile
import SetpointConfiguration
import Store

/// Where and how a gateway's processes run on the local backend (`gateways.local` in the
/// server's `config.yml`; docs/gateways.md).
public struct LocalGatewaySettings: Sendable, Equatable {
    /// The address the gateway processes listen on.
    public var host: String = "0.0.0.0"
    public var httpPort: Int = 80
    /// Where HTTPS is served (with a certificate).
    public var httpsPort: Int = 443
    /// What `*.<domain>` should resolve to (shown in the gateway's status); nil: `host`, or
    /// this machine's name when `host` is a wildcard.
    public var address: String?
    /// The longest a replica may stay silent once a request is sent, seconds.
    public var readTimeout: Int = 3600
    /// A certificate the operator provides (a wildcard for the domain): PEM files, served
    /// instead of ordering certificates.
    public var certificateFile: String?
    public var keyFile: String?
    public init() {}

    /// `host` is a wildcard address (every interface).
    public var listensEverywhere: Bool { host == "0.0.0.0" || host == "::" }
    /// What the status shows as the address: `address`, else `host`, else this machine's name.
    public var shownAddress: String { address ?? (listensEverywhere ? ProcessInfo.processInfo.hostName : host) }
}

/// How gateways run on a Kubernetes cluster: Pods of Setpoint's image in gateway mode behind a
/// `LoadBalancer` Service (docs/gateways.md).
public struct KubernetesGatewaySettings: Sendable, Equatable {
    /// How the gateway Pods reach this server (`http://setpoint.setpoint.svc:3000`).
    public var serverURL: String?
    /// Setpoint's image (its `setpoint` binary runs `gateway run`).
    public var image: String = "setpoint:latest"
    /// How long the Service may go without an address before the gateway says it failed.
    public var loadBalancerTimeout: TimeInterval = 600
    /// The ports the gateway listens on inside its Pods.
    public var httpPort = 8080
    public var httpsPort = 8443
    public init() {}
}

/// How the gateway controller starts gateway processes: the binary, and where it reaches the
/// control plane.
public struct GatewayLaunch: Sendable {
    public var executable: String
    public var serverURL: String
    public var local: LocalGatewaySettings
    /// nil: no cluster runs gateways.
    public var kubernetes: KubernetesGatewaySettings?
    /// The credential of a gateway's processes (derived by the server, never stored).
    public var credential: @Sendable (Gateway) -> String

    public init(executable: String, serverURL: String, local: LocalGatewaySettings, kubernetes: KubernetesGatewaySettings? = nil,
                credential: @escaping @Sendable (Gateway) -> String) {
        self.kubernetes = kubernetes
        self.executable = executable
        self.serverURL = serverURL
        self.local = local
        self.credential = credential
    }
}

/// What the gateway controller does.
public enum GatewayAction: Sendable, Equatable {
    case addFinalizer
    case create(replica: Int)
    case delete(WorkloadID)
    case createCertificate(domain: String)
    case deleteCertificate(domain: String)
    case createFrontDoor
    case deleteFrontDoor
    case removeFinalizer
}

/// A gateway's processes as the backend and the control plane see them.
public struct GatewayObservation: Sendable {
    public struct Process: Sendable, Equatable {
        public var replica: Int
        public var status: WorkloadStatus
        /// The last lines it wrote, for a process that ended (why it did).
        public var lastOutput: [String]

        public init(replica: Int, status: WorkloadStatus, lastOutput: [String] = []) {
            self.replica = replica
            self.status = status
            self.lastOutput = lastOutput
        }
    }

    public var processes: [Process]
    /// When each replica last reported to the control plane.
    public var lastReports: [Int: Date]
    /// How long a report keeps a replica ready.
    public var reportTimeout: TimeInterval
    /// Some other gateway already uses the local listening ports.
    public var portsTakenBy: String?
    /// The runs the gateway publishes (their routes name it).
    public var services: [String]
    /// The gateway's certificate objects (one per domain).
    public var certificates: [GatewayCertificate]
    /// What `gateway.<domain>` and the gateway's address resolve to (nil: not looked up).
    public var dns: (name: DNSCheck.Answer, address: DNSCheck.Answer)?
    /// On a cluster: the Service in front of the replicas (nil on the local backend).
    public var frontDoor: FrontDoorState?

    public init(processes: [Process], lastReports: [Int: Date], reportTimeout: TimeInterval, portsTakenBy: String? = nil,
                services: [String] = [], certificates: [GatewayCertificate] = [], dns: (name: DNSCheck.Answer, address: DNSCheck.Answer)? = nil,
                frontDoor: FrontDoorState? = nil) {
        self.frontDoor = frontDoor
        self.dns = dns
        self.services = services
        self.certificates = certificates
        self.processes = processes
        self.lastReports = lastReports
        self.reportTimeout = reportTimeout
        self.portsTakenBy = portsTakenBy
    }
}

/// The pure part of the gateway controller.
public enum GatewayPlanner {
    /// A digest of what a running gateway process cannot change in place: a process of an
    /// older digest is replaced.
    public static func digest(_ config: GatewayConfiguration) -> String {
        guard case .object(let pairs) = config.json else { return "" }
        let kept = JSONValue.object(pairs.filter { !["domain", "default", "replicas", "name"].contains($0.0) })
        var h: UInt64 = 0xcbf29ce484222325
        for b in kept.serialized.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return String(h, radix: 16)
    }

    /// Seconds before a replica that ended is started again, after `restarts` starts.
    public static func backoff(_ restarts: Int) -> TimeInterval { min(60, pow(2, Double(max(0, restarts - 1)))) }

    public static func plan(_ gateway: Gateway, _ observed: GatewayObservation, local: LocalGatewaySettings,
                            kubernetes: KubernetesGatewaySettings? = nil, now: Date) throws -> Plan<GatewayStatus, GatewayAction> {
        var status = gateway.status
        let processes = observed.processes
        if gateway.meta.isDeleting {
            var actions: [GatewayAction] = observed.certificates.map { .deleteCertificate(domain: $0.spec.domain) }
            if processes.isEmpty {
                // The front door goes last: the address is kept while anything still serves.
                if let door = observed.frontDoor, door != .missing { actions.append(.deleteFrontDoor) }
                if gateway.meta.finalizers.contains(Labels.gatewayFinalizer) { actions.append(.removeFinalizer) }
            } else {
                actions += processes.map { .delete($0.status.id) }
            }
            return Plan(status: status, actions: actions)
        }
        var plan = Plan<GatewayStatus, GatewayAction>(status: status)
        if !gateway.meta.finalizers.contains(Labels.gatewayFinalizer) { plan.actions.append(.addFinalizer) }
        let config = gateway.spec.configuration
        let onCluster = config.backend == "kubernetes"
        guard config.backend == "local" || (onCluster && kubernetes != nil && observed.frontDoor != nil) else {
            throw TerminalError(reason: "BackendUnsupported",
                                message: onCluster
                                    ? "no configured Kubernetes cluster is region `\(config.region)` (the kubeconfig context), or the cluster has no gateway settings (code_url)"
                                    : "this server runs gateways on the local backend and on Kubernetes, not on `\(config.backend)` (docs/gateways.md)")
        }
        if !onCluster, let other = observed.portsTakenBy {
            throw TerminalError(reason: "PortsTaken",
                                message: "gateway \(other) already listens on \(local.host):\(local.httpPort) on this machine; one local gateway per server (delete it, or serve this domain from it)")
        }
        let digest = Self.digest(config)
        let desired = gateway.spec.replicas
        var previous = Dictionary(status.replicas.map { ($0.num, $0) }, uniquingKeysWith: { a, _ in a })
        var replicas: [GatewayReplicaStatus] = []
        var events: [EventNote] = []
        for num in 0..<desired {
            var r = previous.removeValue(forKey: num) ?? GatewayReplicaStatus(num: num, state: "provisioning")
            let process = processes.first { $0.replica == num }
            if let p = process, p.status.state.hasEnded {
                let why = exitText(p)
                r.workloadID = nil
                r.state = "exited"
                r.ready = false
                r.restarts += 1
                r.lastExitAt = now
                r.message = why
                events.append(.warning("GatewayReplicaExited", "gateway replica \(num) \(why); starting it again in \(Int(backoff(r.restarts))) s"))
                plan.actions.append(.delete(p.status.id))
                plan.requeue(after: backoff(r.restarts))
            } else if let p = process {
                r.workloadID = p.status.id.rawValue
                if p.status.labels[Labels.gatewayDigest] != digest {
                    events.append(.normal("Replacing", "gateway replica \(num) runs an older configuration; replacing it"))
                    plan.actions.append(.delete(p.status.id))
                    r.state = "provisioning"
                    r.ready = false
                } else {
                    let last = observed.lastReports[num]
                    let live = last.map { now.timeIntervalSince($0) <= observed.reportTimeout } ?? false
                    if live, let last { plan.requeue(after: last.addingTimeInterval(observed.reportTimeout).timeIntervalSince(now) + 0.01) }
                    if live && !r.ready { events.append(.normal("GatewayReplicaReady", "gateway replica \(num) is serving")) }
                    if !live && r.ready { events.append(.warning("GatewayReplicaSilent", "gateway replica \(num) stopped reporting to the control plane")) }
                    r.state = live ? "running" : "provisioning"
                    r.ready = live
                    if live { r.restarts = 0; r.message = nil }
                }
            } else {
                r.workloadID = nil
                r.ready = false
                let due = r.lastExitAt.map { $0.addingTimeInterval(backoff(r.restarts)) } ?? now
                if due <= now {
                    plan.actions.append(.create(replica: num))
                    r.state = "provisioning"
                } else {
                    r.state = "exited"
                    plan.requeue(after: due.timeIntervalSince(now))
                }
            }
            replicas.append(r)
        }
        for p in processes where p.replica >= desired { plan.actions.append(.delete(p.status.id)) }
        status.replicas = replicas
        status.desiredReplicas = desired
        status.readyReplicas = replicas.filter(\.ready).count
        status.domain = config.resolvedDomain(project: gateway.meta.project)
        if onCluster {
            // The Service's address, once the cluster gives it one; 80 and 443 on it.
            status.httpPort = 80
            status.httpsPort = config.certificate == .letsEncrypt ? 443 : nil
            switch observed.frontDoor {
            case .ready(let address)?: status.address = address
            case .missing?: status.address = nil; plan.actions.append(.createFrontDoor)
            default: status.address = nil
            }
        } else {
            status.address = local.shownAddress
            status.httpPort = local.httpPort
            status.httpsPort = Self.servesHTTPS(config, local) ? local.httpsPort : nil
        }
        // Certificates: the operator's wildcard, or one ACME certificate per published domain.
        if let domain = status.domain, config.certificate == .letsEncrypt, local.certificateFile == nil {
            let wanted = Set(["gateway.\(domain)"] + observed.services.map { "\($0).\(domain)" })
            let have = Set(observed.certificates.map(\.spec.domain))
            for d in wanted.subtracting(have).sorted() { plan.actions.append(.createCertificate(domain: d)) }
            for d in have.subtracting(wanted).sorted() { plan.actions.append(.deleteCertificate(domain: d)) }
            status.certificates = observed.certificates.filter { wanted.contains($0.spec.domain) }.sorted { $0.spec.domain < $1.spec.domain }.map { c in
                GatewayCertificateStatus(domain: c.spec.domain, state: c.status.state, notAfter: c.status.notAfter, message: c.status.message)
            }
        } else {
            for c in observed.certificates { plan.actions.append(.deleteCertificate(domain: c.spec.domain)) }
            status.certificates = local.certificateFile != nil && status.domain != nil && config.certificate != nil
                ? [GatewayCertificateStatus(domain: "*.\(status.domain!)", state: "provided", message: "from \(local.certificateFile!)")]
                : []
        }
        status.phase = status.readyReplicas > 0 ? .running : .provisioning
        var ready = status.readyReplicas == desired
        var message: String
        if onCluster, status.address == nil {
            ready = false
            let since: Date
            if case .waiting(let s)? = observed.frontDoor { since = s } else { since = now }
            let waited = now.timeIntervalSince(since)
            let bound = kubernetes?.loadBalancerTimeout ?? 600
            message = "waiting for the LoadBalancer Service to get an address (\(Int(waited)) s): the cluster must support LoadBalancer Services (a cloud provider's load balancer, MetalLB, …); `kubectl get service -n <namespace>` shows it"
            if waited > bound {
                status.phase = .failed
                message = "the LoadBalancer Service has had no address for \(Int(waited)) s (bound \(Int(bound)) s): the cluster must support LoadBalancer Services (a cloud provider's load balancer, MetalLB, …); still waiting"
            }
            plan.requeue(after: 5)
        } else if ready {
            message = "\(desired) of \(desired) gateway replica(s) serving"
            if status.domain == nil { message += "; no `domain` set: services cannot be published on it (set `domain` and point `*.<domain>` at \(status.address ?? "this machine"))" }
        } else if let failing = replicas.first(where: { $0.state == "exited" }) {
            message = "gateway replica \(failing.num) \(failing.message ?? "ended")"
        } else {
            message = "\(status.readyReplicas) of \(desired) gateway replica(s) serving; waiting for the others to report"
        }
        // DNS: says whether `*.<domain>` points at the gateway (dstack #1058); it does not hold
        // the gateway back (a test domain, a split-horizon resolver).
        if let domain = status.domain, let dns = observed.dns, let address = status.address {
            let (ok, text) = Self.dnsVerdict(domain: domain, address: address, dns.name, dns.address)
            status.conditions.set("DNSConfigured", ok, reason: ok ? "Resolves" : "DoesNotResolveHere", message: text, now: now)
        }
        status.message = message
        status.conditions.set("Ready", ready, reason: ready ? "Serving" : (onCluster && status.address == nil ? "NoLoadBalancerAddress" : "ReplicasNotReady"),
                              message: message, now: now)
        status.conditions.set("Reconciling", !ready, reason: ready ? "Serving" : "Progressing", message: message, now: now)
        plan.status = status
        plan.events = events
        return plan
    }

    /// Whether `gateway.<domain>` resolves to what the gateway's address does, in words.
    static func dnsVerdict(domain: String, address: String, _ name: DNSCheck.Answer, _ target: DNSCheck.Answer) -> (Bool, String) {
        let probe = "gateway.\(domain)"
        let wanted: [String]
        if case .addresses(let a) = target { wanted = a } else { wanted = [address] }
        switch name {
        case .failed(let why):
            return (false, "\(probe) does not resolve (\(why)): point a wildcard record *.\(domain) at \(address) (A, or CNAME to its name)")
        case .addresses(let got) where Set(got).isDisjoint(with: wanted):
            return (false, "\(probe) resolves to \(got.joined(separator: ", ")), not to the gateway (\(wanted.joined(separator: ", "))): point *.\(domain) at \(address)")
        case .addresses:
            return (true, "*.\(domain) resolves to the gateway (\(address))")
        }
    }

    /// Whether the gateway listens for HTTPS: a certificate is configured (ordered or provided).
    public static func servesHTTPS(_ config: GatewayConfiguration, _ local: LocalGatewaySettings) -> Bool {
        config.certificate != nil && (config.certificate == .letsEncrypt || local.certificateFile != nil)
    }

    static func exitText(_ p: GatewayObservation.Process) -> String {
        var text: String
        switch p.status.state {
        case .exited(let code): text = "exited with status \(code)"
        case .failed(_, let why): text = "failed: \(why)"
        default: text = "ended"
        }
        if let last = p.lastOutput.last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) { text += ": \(last)" }
        return text
    }
}

/// Converges a Gateway: its processes on the backend (created, replaced when their
/// configuration changed, restarted with backoff, removed when the gateway goes) and its status
/// (address, domain, replicas ready from the replicas' reports). Written by copying
/// `RunController`.
public struct GatewayController: PlanningController {
    public typealias Kind = GatewayKind

    let store: any ObjectStore
    let backend: any ComputeBackend
    let reports: GatewayReports
    let launch: GatewayLaunch
    let dns = DNSCheck()
    var frontDoors: (any GatewayFrontDoors)? { backend as? any GatewayFrontDoors }

    public init(store: any ObjectStore, backend: any ComputeBackend, reports: GatewayReports, launch: GatewayLaunch) {
        self.store = store
        self.backend = backend
        self.reports = reports
        self.launch = launch
    }

    var gateways: TypedStore<GatewayKind> { TypedStore(store) }

    public func load(_ key: ObjectKey) async throws -> Gateway? { try await load(from: store, key) }

    public func observe(_ gateway: Gateway) async throws -> GatewayObservation {
        let all = try await backend.inventory(labels: [Labels.gateway: gateway.meta.name, Labels.project: gateway.meta.project])
        var processes: [GatewayObservation.Process] = []
        for w in all {
            guard let num = w.labels[Labels.gatewayReplica].flatMap(Int.init) else { continue }
            if w.labels[Labels.gatewayUID] != gateway.meta.uid {
                // A process of an earlier gateway of the same name: removed like an extra one.
                processes.append(.init(replica: Int.max, status: w))
                continue
            }
            var output: [String] = []
            if w.state.hasEnded {
                for try await line in backend.logs(w.id, follow: false) { output.append(line.text); if output.count > 20 { output.removeFirst() } }
            }
            processes.append(.init(replica: num, status: w, lastOutput: output))
        }
        // One local gateway per machine: the ports are the server's (gateways on a cluster have
        // their own).
        var taken: String?
        if gateway.spec.configuration.backend == "local", !gateway.meta.isDeleting {
            let others = try await backend.inventory(labels: [Labels.gatewayBackend: "local"]).filter { w in
                w.labels[Labels.gateway] != nil && !(w.labels[Labels.gateway] == gateway.meta.name && w.labels[Labels.project] == gateway.meta.project)
                    && !w.state.hasEnded
            }
            taken = others.first.map { "\($0.labels[Labels.project] ?? "?")/\($0.labels[Labels.gateway] ?? "?")" }
        }
        let config = gateway.spec.configuration
        var door: FrontDoorState?
        if config.backend == "kubernetes", let doors = frontDoors, doors.servesGateways(region: config.region) {
            door = try await doors.frontDoor(project: gateway.meta.project, gateway: gateway.meta.name, region: config.region)
        }
        var lookedUp: (name: DNSCheck.Answer, address: DNSCheck.Answer)?
        if let domain = gateway.spec.configuration.resolvedDomain(project: gateway.meta.project), !gateway.meta.isDeleting {
            var address: String? = config.backend == "kubernetes" ? nil : launch.local.shownAddress
            if case .ready(let a)? = door { address = a }
            if let address { lookedUp = (await dns.lookup("gateway.\(domain)"), await dns.lookup(address)) }
        }
        let routes = try await TypedStore<ProxyRouteKind>(store).list(project: gateway.meta.project)
        let certificates = try await TypedStore<CertificateKind>(store).list(project: gateway.meta.project, labels: [Labels.gateway: gateway.meta.name])
        return GatewayObservation(processes: processes, lastReports: reports.lastReports(gateway: gateway.key),
                                  reportTimeout: reports.timeout, portsTakenBy: taken,
                                  services: routes.filter { $0.spec.gateway == gateway.meta.name }.map(\.spec.run).sorted(),
                                  certificates: certificates, dns: lookedUp, frontDoor: door)
    }

    public func plan(_ gateway: Gateway, _ observed: GatewayObservation, now: Date) throws -> Plan<GatewayStatus, GatewayAction> {
        try GatewayPlanner.plan(gateway, observed, local: launch.local, kubernetes: launch.kubernetes, now: now)
    }

    public func perform(_ action: GatewayAction, on gateway: inout Gateway, plan: inout Plan<GatewayStatus, GatewayAction>, now: Date) async throws {
        switch action {
        case .addFinalizer:
            gateway.meta.finalizers.append(Labels.gatewayFinalizer)
            gateway = try await gateways.update(gateway)
        case .removeFinalizer:
            gateway.meta.finalizers.removeAll { $0 == Labels.gatewayFinalizer }
            reports.forget(gateway: gateway.key)
            do { try await gateways.update(gateway) } catch let e as StoreError where e.code == .notFound {}
        case .delete(let id):
            try await backend.delete(id)
        case .create(let num):
            _ = try await backend.create(request(gateway, replica: num))
        case .createCertificate(let domain):
            let cert = GatewayCertificate(project: gateway.meta.project, name: domain, labels: [Labels.gateway: gateway.meta.name],
                                          owner: gateway.ownerReference, spec: CertificateSpec(gateway: gateway.meta.name, domain: domain))
            do { try await TypedStore<CertificateKind>(store).create(cert) } catch let e as StoreError where e.code == .alreadyExists {}
        case .createFrontDoor:
            guard let doors = frontDoors, let k = launch.kubernetes else { return }
            let https = gateway.spec.configuration.certificate == .letsEncrypt
            try await doors.createFrontDoor(project: gateway.meta.project, gateway: gateway.meta.name, region: gateway.spec.configuration.region,
                                            selector: [Labels.project: gateway.meta.project, Labels.gateway: gateway.meta.name],
                                            ports: [("http", 80, k.httpPort)] + (https ? [("https", 443, k.httpsPort)] : []))
        case .deleteFrontDoor:
            try await frontDoors?.deleteFrontDoor(project: gateway.meta.project, gateway: gateway.meta.name, region: gateway.spec.configuration.region)
        case .deleteCertificate(let domain):
            do { try await TypedStore<CertificateKind>(store).delete(project: gateway.meta.project, name: domain) } catch let e as StoreError where e.code == .notFound {}
        }
    }

    /// The workload of one gateway replica: `setpoint gateway run`, on the host's network
    /// locally, in a Pod of Setpoint's image on a cluster. Its credential is secret environment.
    func request(_ gateway: Gateway, replica num: Int) -> WorkloadRequest {
        if gateway.spec.configuration.backend == "kubernetes", let k = launch.kubernetes { return podRequest(gateway, replica: num, k) }
        let local = launch.local
        var argv = [launch.executable, "gateway", "run", "--server", launch.serverURL, "--project", gateway.meta.project,
                    "--name", gateway.meta.name, "--replica", String(num), "--listen", "\(local.host):\(local.httpPort)",
                    "--read-timeout", String(local.readTimeout), "--state-file", "gateway-state.json"]
        if GatewayPlanner.servesHTTPS(gateway.spec.configuration, local) { argv += ["--https-listen", "\(local.host):\(local.httpsPort)"] }
        var template = ReplicaTemplate(commands: [Self.exec(argv)], port: local.httpPort, stopDuration: 30)
        template.backends = ["local"]
        var request = WorkloadRequest(name: "gw-\(gateway.meta.name)-\(num)-\(gateway.meta.uid.prefix(8))", project: gateway.meta.project,
                                      labels: labels(gateway, replica: num),
                                      template: template, systemEnvironment: [:])
        request.secretEnvironment = ["SETPOINT_GATEWAY_CREDENTIAL": launch.credential(gateway)]
        request.hostNetwork = true
        return request
    }

    /// `exec` of `argv`, each argument single-quoted for `/bin/sh`.
    static func exec(_ argv: [String]) -> String {
        "exec " + argv.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    }

    func labels(_ gateway: Gateway, replica num: Int) -> [String: String] {
        [Labels.project: gateway.meta.project, Labels.gateway: gateway.meta.name, Labels.gatewayUID: gateway.meta.uid,
         Labels.gatewayReplica: String(num), Labels.gatewayDigest: GatewayPlanner.digest(gateway.spec.configuration),
         Labels.gatewayBackend: gateway.spec.configuration.backend]
    }

    func podRequest(_ gateway: Gateway, replica num: Int, _ k: KubernetesGatewaySettings) -> WorkloadRequest {
        let config = gateway.spec.configuration
        var argv = ["setpoint", "gateway", "run", "--server", k.serverURL ?? launch.serverURL, "--project", gateway.meta.project,
                    "--name", gateway.meta.name, "--replica", String(num), "--listen", "0.0.0.0:\(k.httpPort)",
                    "--read-timeout", String(launch.local.readTimeout), "--state-file", "/tmp/gateway-state.json"]
        if config.certificate == .letsEncrypt { argv += ["--https-listen", "0.0.0.0:\(k.httpsPort)"] }
        var template = ReplicaTemplate(image: k.image, commands: [Self.exec(argv)], port: k.httpPort, stopDuration: 30)
        template.backends = ["kubernetes"]
        template.regions = [config.region]
        var request = WorkloadRequest(name: "gw-\(gateway.meta.name)-\(num)-\(gateway.meta.uid.prefix(8))", project: gateway.meta.project,
                                      labels: labels(gateway, replica: num), template: template, systemEnvironment: [:])
        request.secretEnvironment = ["SETPOINT_GATEWAY_CREDENTIAL": launch.credential(gateway)]
        return request
    }

    public func writeStatus(_ gateway: Gateway) async throws { try await gateways.updateStatus(gateway) }
}

extension Labels {
    /// On a gateway's workloads: the digest of the configuration they run.
    public static let gatewayDigest = "setpoint.dev/gateway-digest"
    /// On a gateway's workloads: `local` or `kubernetes`.
    public static let gatewayBackend = "setpoint.dev/gateway-backend"
}

extension WorkloadState {
    var hasEnded: Bool {
        switch self {
        case .exited, .failed, .vanished: return true
        default: return false
        }
    }
}

/// The gateway controller in its shell.
public typealias GatewayReconciler = PlanReconciler<GatewayController>
