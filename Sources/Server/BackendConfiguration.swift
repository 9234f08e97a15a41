import Acme
import Controllers
import Foundation
import Kubernetes
import Yams

/// `<data-dir>/config.yml`: the backends replicas may run on, in the order they are tried.
///
/// ```yaml
/// backends:
///   - type: local
///   - type: kubernetes
///     kubeconfig: ~/.kube/config      # default: KUBECONFIG or ~/.kube/config; in a Pod: in-cluster
///     contexts: [prod, staging]       # default: the current context (each context is a region)
///     namespace: setpoint             # default: the context's namespace
/// ```
public struct BackendConfiguration: Sendable, Equatable {
    public struct Kubernetes: Sendable, Equatable {
        /// nil: `KUBECONFIG` or `~/.kube/config`, or the in-cluster service account in a Pod.
        public var kubeconfig: String?
        /// Use the Pod's service account (`in_cluster: true`).
        public var inCluster: Bool = false
        /// nil: the current context.
        public var contexts: [String]?
        public var namespace: String?
        public var access: KubernetesBackend.Access = .auto
        public var unschedulableTimeout: Int = 600
        /// Where Pods fetch code archives too large for a Secret (`http://setpoint.setpoint.svc:3000`).
        public var codeURL: String?
        public var image: String?
        public var nvccImage: String?
        public var helperImage: String?
        public var qps: Double = 20
        public var burst: Int = 40
        public var serviceAccount: String?
        /// Gateways on this cluster (`gateway_image`, `gateway_server_url`, `load_balancer_timeout`).
        public var gateway = KubernetesGatewaySettings()
        public init() {}
    }

    public enum Backend: Sendable, Equatable {
        case local
        case kubernetes(Kubernetes)
    }

    public var backends: [Backend]
    /// `gateways.local`: where gateways with `backend: local` listen (docs/gateways.md).
    public var localGateway = LocalGatewaySettings()
    /// `backends[].root` of the local backend: where its workloads live (default
    /// `<data-dir>/local`). Servers on one machine sharing a database share it too, so that
    /// whichever leads adopts the replicas and every one reaches them.
    public var localRoot: String?
    /// `acme`: where gateway certificates come from (docs/gateways.md#https).
    public var acme = AcmeSettings()

    public init(backends: [Backend], localGateway: LocalGatewaySettings = LocalGatewaySettings()) {
        self.backends = backends
        self.localGateway = localGateway
    }

    /// No file: the local backend only.
    public static let `default` = BackendConfiguration(backends: [.local])

    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    public static func load(path: String) throws -> BackendConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else { return .default }
        return try parse(String(decoding: data, as: UTF8.self), file: path)
    }

    public static func parse(_ text: String, file: String) throws -> BackendConfiguration {
        func fail(_ node: Yams.Node?, _ property: String, _ message: String) -> Error {
            let line = node?.mark.map { ":\($0.line)" } ?? ""
            return Error(description: "\(file)\(line): \(property): \(message)")
        }
        let root: Yams.Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw Error(description: "\(file): not valid YAML: \(error)")
        }
        guard let root, let map = root.mapping else {
            if root == nil { return .default }
            throw fail(root, "(top level)", "expected a mapping with `backends`")
        }
        for (key, _) in map where !["backends", "gateways", "acme"].contains(key.string ?? "") {
            throw fail(key, key.string ?? "?", "unknown property; the server configuration has `backends`, `gateways` and `acme`")
        }
        var acme = AcmeSettings()
        var localRoot: String?
        if let a = map["acme"] {
            guard let m = a.mapping else { throw fail(a, "acme", "expected a mapping (directory, ca_file, eab_kid, eab_hmac_key, email, renew_before_days)") }
            for (k, v) in m {
                let p = "acme.\(k.string ?? "?")"
                func text() throws -> String {
                    guard let t = v.string, v.scalar != nil, !t.isEmpty else { throw fail(v, p, "expected a string") }
                    return t
                }
                switch k.string {
                case "directory": acme.directory = try text()
                case "ca_file": acme.caFile = try text()
                case "eab_kid": acme.eabKeyID = try text()
                case "eab_hmac_key": acme.eabHMACKey = try text()
                case "email": acme.email = try text()
                case "renew_before_days":
                    guard let d = v.float ?? v.int.map(Double.init), d > 0 else { throw fail(v, p, "expected days (a positive number)") }
                    acme.renewBefore = d * 86_400
                default: throw fail(k, p, "unknown property of acme (directory, ca_file, eab_kid, eab_hmac_key, email, renew_before_days)")
                }
            }
        }
        var localGateway = LocalGatewaySettings()
        if let gateways = map["gateways"] {
            guard let g = gateways.mapping else { throw fail(gateways, "gateways", "expected a mapping with `local`") }
            for (key, value) in g {
                guard key.string == "local" else { throw fail(key, "gateways.\(key.string ?? "?")", "unknown property; `gateways` has `local`") }
                guard let m = value.mapping else { throw fail(value, "gateways.local", "expected a mapping (host, http_port, address, read_timeout)") }
                for (k, v) in m {
                    let p = "gateways.local.\(k.string ?? "?")"
                    func port() throws -> Int {
                        guard let i = v.int, (1...65535).contains(i) else { throw fail(v, p, "expected a port number (1-65535)") }
                        return i
                    }
                    switch k.string {
                    case "host":
                        guard let h = v.string, !h.isEmpty else { throw fail(v, p, "expected an address to listen on (0.0.0.0, 127.0.0.1, …)") }
                        localGateway.host = h
                    case "http_port": localGateway.httpPort = try port()
                    case "https_port": localGateway.httpsPort = try port()
                    case "address":
                        guard let a = v.string, !a.isEmpty else { throw fail(v, p, "expected the host name or IP address `*.<domain>` resolves to") }
                        localGateway.address = a
                    case "certificate":
                        guard let c = v.mapping, let cert = c["cert"]?.string, let key = c["key"]?.string else {
                            throw fail(v, p, "expected `{cert: PATH, key: PATH}`: PEM files of a wildcard certificate for the gateway's domain")
                        }
                        for (path, what) in [(cert, "cert"), (key, "key")] where !FileManager.default.isReadableFile(atPath: path) {
                            throw fail(v, p + "." + what, "\(path): no such readable file")
                        }
                        localGateway.certificateFile = cert
                        localGateway.keyFile = key
                    case "read_timeout":
                        guard let i = v.int, i > 0 else { throw fail(v, p, "expected seconds (a positive integer)") }
                        localGateway.readTimeout = i
                    default:
                        throw fail(k, p, "unknown property of gateways.local (host, http_port, https_port, address, certificate, read_timeout)")
                    }
                }
            }
        }
        guard let list = map["backends"] else {
            var c = BackendConfiguration.default
            c.localGateway = localGateway
            c.acme = acme
            return c
        }
        guard let items = list.sequence else { throw fail(list, "backends", "expected a list of backends") }
        var backends: [Backend] = []
        for (i, item) in items.enumerated() {
            let at = "backends[\(i)]"
            guard let m = item.mapping else { throw fail(item, at, "expected a mapping with `type`") }
            switch m["type"]?.string {
            case "local":
                for (key, value) in m where key.string != "type" {
                    guard key.string == "root" else { throw fail(key, "\(at).\(key.string ?? "?")", "unknown property of the local backend (it has `root`)") }
                    guard let root = value.string, value.scalar != nil, root.hasPrefix("/") else {
                        throw fail(value, "\(at).root", "expected an absolute directory (where workloads live; servers on one machine may share it)")
                    }
                    localRoot = root
                }
                backends.append(.local)
            case "kubernetes":
                var k = Kubernetes()
                for (key, value) in m {
                    let name = key.string ?? "?"
                    let p = "\(at).\(name)"
                    func string() throws -> String {
                        guard let s = value.string, value.scalar != nil, !s.isEmpty else { throw fail(value, p, "expected a string") }
                        return s
                    }
                    func number() throws -> Double {
                        guard let d = value.float ?? value.int.map(Double.init), d > 0 else { throw fail(value, p, "expected a positive number") }
                        return d
                    }
                    switch name {
                    case "type": break
                    case "kubeconfig":
                        // dstack's form `{filename: PATH}` is accepted too.
                        if let f = value.mapping?["filename"] { guard let s = f.string else { throw fail(f, p + ".filename", "expected a path") }; k.kubeconfig = s } else { k.kubeconfig = try string() }
                    case "in_cluster":
                        guard let b = value.bool else { throw fail(value, p, "expected true or false") }
                        k.inCluster = b
                    case "contexts":
                        guard let seq = value.sequence, !seq.isEmpty else { throw fail(value, p, "expected a list of context names") }
                        k.contexts = try seq.map { c in
                            if let s = c.string, c.scalar != nil { return s }
                            if let n = c.mapping?["name"]?.string { return n }
                            throw fail(c, p, "expected a context name")
                        }
                    case "namespace": k.namespace = try string()
                    case "access":
                        guard let a = KubernetesBackend.Access(rawValue: try string()) else {
                            throw fail(value, p, "expected `auto`, `pod-ip` or `api-proxy`")
                        }
                        k.access = a
                    case "unschedulable_timeout": k.unschedulableTimeout = Int(try number())
                    case "code_url": k.codeURL = try string()
                    case "image": k.image = try string()
                    case "nvcc_image": k.nvccImage = try string()
                    case "helper_image": k.helperImage = try string()
                    case "qps": k.qps = try number()
                    case "burst": k.burst = Int(try number())
                    case "service_account": k.serviceAccount = try string()
                    case "gateway_image": k.gateway.image = try string()
                    case "gateway_server_url": k.gateway.serverURL = try string()
                    case "load_balancer_timeout": k.gateway.loadBalancerTimeout = try number()
                    default:
                        throw fail(key, p, "unknown property of the kubernetes backend (kubeconfig, in_cluster, contexts, namespace, access, unschedulable_timeout, code_url, image, nvcc_image, helper_image, qps, burst, service_account, gateway_image, gateway_server_url, load_balancer_timeout)")
                    }
                }
                backends.append(.kubernetes(k))
            case let other:
                throw fail(m["type"] ?? item, "\(at).type", other == nil ? "required: `local` or `kubernetes`" : "unknown backend `\(other!)`: use `local` or `kubernetes`")
            }
        }
        if backends.isEmpty { throw fail(list, "backends", "at least one backend is required") }
        var c = BackendConfiguration(backends: backends, localGateway: localGateway)
        c.acme = acme
        c.localRoot = localRoot
        return c
    }
}

extension BackendConfiguration.Kubernetes {
    /// The cluster connections this entry names: one per context, or the in-cluster one.
    public func connections(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [ClusterConnection] {
        if inCluster || (kubeconfig == nil && environment["KUBECONFIG"] == nil && ClusterConnection.inCluster(environment: environment) != nil) {
            guard var c = ClusterConnection.inCluster(environment: environment) else {
                throw KubeConfigError("in_cluster: not running in a Pod (no KUBERNETES_SERVICE_HOST or service-account token)")
            }
            if let namespace { c.namespace = namespace }
            return [c]
        }
        let paths = kubeconfig.map { [($0 as NSString).expandingTildeInPath] } ?? KubeConfig.defaultPaths(environment: environment)
        let config = try KubeConfig.load(paths: paths)
        let names: [String?] = contexts ?? [nil]
        return try names.map { name in
            var c = try config.connection(context: name)
            if let namespace { c.namespace = namespace }
            return c
        }
    }
}
