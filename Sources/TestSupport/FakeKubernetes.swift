import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOSSL
import ServiceLifecycle
import NIOCore
import SetpointConfiguration
import Synchronization

/// A fake Kubernetes API server for tests, over real HTTP on loopback, faithful where Setpoint
/// and kubectl depend on it: discovery, resourceVersion on every write, list then watch from a
/// version (with bookmarks), `410 Gone` for versions older than the last compaction, `409` on a
/// stale update and on an existing name, the status subresource, label and field selectors,
/// graceful deletion of Pods, the pod proxy and logs. A simulated kubelet runs scheduled Pods;
/// fault injection gives 500s, dropped watches and latency.
public final class FakeKubernetes: Sendable {
    /// What the simulated kubelet does with a new Pod.
    public enum Kubelet: Sendable, Equatable {
        /// Scheduled, then running and ready (with a pod IP) at once.
        case run
        /// Left Pending with `PodScheduled=False` and the scheduler's message.
        case unschedulable(String)
        /// Nothing: tests set the status through the status subresource.
        case manual
    }

    struct Resource: Sendable {
        var name: String, singular: String, kind: String, group: String, version: String, namespaced: Bool, shortNames: [String]
        var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    }

    static let resources: [Resource] = [
        Resource(name: "pods", singular: "pod", kind: "Pod", group: "", version: "v1", namespaced: true, shortNames: ["po"]),
        Resource(name: "secrets", singular: "secret", kind: "Secret", group: "", version: "v1", namespaced: true, shortNames: []),
        Resource(name: "services", singular: "service", kind: "Service", group: "", version: "v1", namespaced: true, shortNames: ["svc"]),
        Resource(name: "events", singular: "event", kind: "Event", group: "", version: "v1", namespaced: true, shortNames: ["ev"]),
        Resource(name: "namespaces", singular: "namespace", kind: "Namespace", group: "", version: "v1", namespaced: false, shortNames: ["ns"]),
        Resource(name: "nodes", singular: "node", kind: "Node", group: "", version: "v1", namespaced: false, shortNames: ["no"]),
        Resource(name: "leases", singular: "lease", kind: "Lease", group: "coordination.k8s.io", version: "v1", namespaced: true, shortNames: []),
    ]

    struct Change: Sendable {
        var rv: Int64
        var type: String
        var resource: String
        var object: JSONValue
    }

    final class Watcher: Sendable {
        let resource: String
        let namespace: String?
        let labels: Selector
        let fields: Selector
        let continuation: AsyncStream<JSONValue>.Continuation
        init(resource: String, namespace: String?, labels: Selector, fields: Selector, continuation: AsyncStream<JSONValue>.Continuation) {
            self.resource = resource
            self.namespace = namespace
            self.labels = labels
            self.fields = fields
            self.continuation = continuation
        }
    }

    struct State {
        var rv: Int64 = 1
        var objects: [String: [String: JSONValue]] = [:]
        var history: [Change] = []
        var compactedBefore: Int64 = 0
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        var kubelet: Kubelet = .run
        var failures: [(match: String, status: Int, message: String?, remaining: Int)] = []
        /// Pods the pod proxy refuses to dial, with the API server's status and message.
        var proxyRefusals: [String: (status: Int, message: String)] = [:]
        var latency: Double = 0
        var requests: [String: Int] = [:]
        var log: [String] = []
        var token: String?
        var podLogs: [String: [String]] = [:]
        var nextIP = 2
        var uid = 0
        var bookmarkInterval: Double = 1
        var bookmarks = 0
    }

    let state = Mutex(State())
    private let group: Mutex<ServiceGroup?> = Mutex(nil)
    private let boundPort = Mutex(0)
    public var port: Int { boundPort.withLock { $0 } }
    private let scheme = Mutex("http")
    public var url: String { "\(scheme.withLock { $0 })://127.0.0.1:\(port)" }

    /// TLS for the fake: its certificate chain and key (PEM), and the CA whose client
    /// certificates it requires (nil: none required).
    public struct TLS: Sendable {
        public var certificatePEM: [UInt8]
        public var keyPEM: [UInt8]
        public var clientCAPEM: [UInt8]?
        public init(certificatePEM: [UInt8], keyPEM: [UInt8], clientCAPEM: [UInt8]? = nil) {
            self.certificatePEM = certificatePEM
            self.keyPEM = keyPEM
            self.clientCAPEM = clientCAPEM
        }
    }
    /// Answers pod-proxy requests: `(pod, port, method, path, body) -> (status, body)`.
    let podServer: Mutex<@Sendable (String, Int, String, String, [UInt8]) -> (Int, String)> = Mutex({ pod, port, method, path, _ in
        (200, #"{"pod":"\#(pod)","port":\#(port),"method":"\#(method)","path":"\#(path)"}"#)
    })

    public init() {
        state.withLock { s in
            s.objects["namespaces"] = [:]
            for ns in ["default", "kube-system"] { _ = Self.insert(&s, "namespaces", nil, Self.namespaceObject(ns)) }
        }
    }

    // MARK: knobs

    /// Adds a namespace (as an administrator would before deploying into it).
    public func addNamespace(_ name: String) {
        state.withLock { s in
            guard s.objects["namespaces"]?[name] == nil else { return }
            notify(Self.insert(&s, "namespaces", nil, Self.namespaceObject(name)), &s)
        }
    }

    public func setKubelet(_ k: Kubelet) { state.withLock { $0.kubelet = k } }
    /// Requires `Authorization: Bearer <token>` from now on.
    public func requireToken(_ token: String?) { state.withLock { $0.token = token } }
    /// The next `count` requests whose `VERB path` contains `match` fail with `status`.
    public func failNext(_ count: Int, matching match: String = "", status: Int = 500, message: String? = nil) {
        state.withLock { $0.failures.append((match, status, message, count)) }
    }
    /// The pod proxy answers requests for `pod` with the API server's own `Status` (as a real
    /// one does when it will not dial the Pod: `address not allowed`, `dial tcp …: connect:
    /// connection refused`); nil lets them through again.
    public func refuseProxy(pod: String, status: Int = 400, message: String?) {
        state.withLock { s in s.proxyRefusals[pod] = message.map { (status, $0) } }
    }

    /// Deletes a Node as `kubectl delete node` does, then does what PodGC does with the Pods
    /// bound to it: marks each `Failed` with the condition `DisruptionTarget=True,
    /// reason=DeletionByPodGC` (no `status.reason`), then deletes it at once.
    public func deleteNode(_ name: String) {
        state.withLock { s in
            if let node = s.objects["nodes"]?[name] {
                s.rv += 1
                s.objects["nodes"]?[name] = nil
                notify(Change(rv: s.rv, type: "DELETED", resource: "nodes", object: node.setting(["metadata", "resourceVersion"], .string(String(s.rv)))), &s)
            }
            for (key, pod) in (s.objects["pods"] ?? [:]).sorted(by: { $0.key < $1.key }) where pod.value(at: ["spec", "nodeName"])?.stringValue == name {
                let ns = pod.value(at: ["metadata", "namespace"])?.stringValue
                var conditions: [JSONValue] = []
                if case .array(let list)? = pod.value(at: ["status", "conditions"]) { conditions = list.filter { $0["type"] != .string("Ready") } }
                conditions.append(.object([("type", .string("DisruptionTarget")), ("status", .string("True")), ("reason", .string("DeletionByPodGC")),
                                           ("message", .string("PodGC: node no longer exists")), ("lastTransitionTime", .string(Self.now()))]))
                conditions.append(.object([("type", .string("Ready")), ("status", .string("False"))]))
                let failed = pod.setting(["status", "phase"], .string("Failed")).setting(["status", "conditions"], .array(conditions))
                let marked = Self.replace(&s, "pods", ns, failed, type: "MODIFIED")
                notify(marked, &s)
                s.rv += 1
                s.objects["pods"]?[key] = nil
                notify(Change(rv: s.rv, type: "DELETED", resource: "pods", object: marked.object.setting(["metadata", "resourceVersion"], .string(String(s.rv)))), &s)
            }
        }
    }

    /// Deletes a namespace and everything in it (Pods, Secrets, Events), each with a `DELETED`
    /// event, as the namespace controller does when `kubectl delete namespace` finishes.
    public func deleteNamespace(_ name: String) {
        state.withLock { s in
            for resource in s.objects.keys.sorted() where resource != "namespaces" && resource != "nodes" {
                for (key, object) in (s.objects[resource] ?? [:]).sorted(by: { $0.key < $1.key }) where key.hasPrefix(name + "/") {
                    s.rv += 1
                    s.objects[resource]?[key] = nil
                    notify(Change(rv: s.rv, type: "DELETED", resource: resource, object: object.setting(["metadata", "resourceVersion"], .string(String(s.rv)))), &s)
                }
            }
            guard let ns = s.objects["namespaces"]?[name] else { return }
            s.rv += 1
            s.objects["namespaces"]?[name] = nil
            notify(Change(rv: s.rv, type: "DELETED", resource: "namespaces", object: ns.setting(["metadata", "resourceVersion"], .string(String(s.rv)))), &s)
        }
    }

    /// The cluster's history starts again (etcd restored from an old snapshot or replaced):
    /// every object but the built-in namespaces and the Nodes is gone, resourceVersions restart
    /// low, and open watches end. As a real API server did, a watch from a version the new
    /// history has not reached is accepted (it just waits), and its bookmarks carry the new,
    /// lower versions; nothing is announced as deleted.
    public func resetHistory(to version: Int64 = 20) {
        let ws = state.withLock { s -> [Watcher] in
            let nodes = s.objects["nodes"] ?? [:]
            s.objects = ["namespaces": [:], "nodes": [:]]
            s.history = []
            s.compactedBefore = 0
            s.rv = version
            for ns in ["default", "kube-system"] { _ = Self.insert(&s, "namespaces", nil, Self.namespaceObject(ns)) }
            for (name, node) in nodes.sorted(by: { $0.key < $1.key }) { _ = Self.insert(&s, "nodes", nil, node.setting(["metadata", "name"], .string(name))) }
            defer { s.watchers = [:] }
            return Array(s.watchers.values)
        }
        ws.forEach { $0.continuation.finish() }
    }
    public func setLatency(_ seconds: Double) { state.withLock { $0.latency = seconds } }
    public func setBookmarkInterval(_ seconds: Double) { state.withLock { $0.bookmarkInterval = seconds } }
    public func setPodServer(_ f: @escaping @Sendable (String, Int, String, String, [UInt8]) -> (Int, String)) { podServer.withLock { $0 = f } }
    public func setLogs(pod: String, _ lines: [String]) { state.withLock { $0.podLogs[pod] = lines } }
    /// Ends every open watch (as a restarted API server or a dropped connection would).
    public func dropWatches() {
        let ws = state.withLock { s in defer { s.watchers = [:] }; return Array(s.watchers.values) }
        ws.forEach { $0.continuation.finish() }
    }
    /// Forgets history: watches from older versions get `410 Gone` (etcd compaction).
    public func compact() {
        state.withLock { s in
            s.compactedBefore = s.rv
            s.history = []
        }
    }

    /// Requests served, by verb (`list`, `watch`, `get`, `create`, `update`, `patch`, `delete`, `proxy`, `log`).
    public var requests: [String: Int] { state.withLock { $0.requests } }
    public var requestLog: [String] { state.withLock { $0.log } }
    public func resetRequests() { state.withLock { $0.requests = [:]; $0.log = [] } }
    public var openWatches: Int { state.withLock { $0.watchers.count } }
    /// Bookmark events sent so far, over all watches.
    public var bookmarksSent: Int { state.withLock { $0.bookmarks } }

    public func object(_ resource: String, namespace: String?, name: String) -> JSONValue? {
        state.withLock { $0.objects[resource]?[Self.key(namespace, name)] }
    }

    public func objects(_ resource: String) -> [JSONValue] {
        state.withLock { s in (s.objects[resource] ?? [:]).sorted { $0.key < $1.key }.map(\.value) }
    }

    /// Adds a Node (allocatable resources, labels, taints).
    public func addNode(_ name: String, cpu: String = "8", memory: String = "32Gi", disk: String = "200Gi", gpus: Int = 0,
                        labels: [String: String] = [:], taints: [(key: String, effect: String)] = [], arch: String = "amd64") {
        var allocatable: [(String, JSONValue)] = [("cpu", .string(cpu)), ("memory", .string(memory)), ("ephemeral-storage", .string(disk)), ("pods", .string("110"))]
        if gpus > 0 { allocatable.append(("nvidia.com/gpu", .string(String(gpus)))) }
        let node: JSONValue = .object([
            ("apiVersion", .string("v1")), ("kind", .string("Node")),
            ("metadata", .object([("name", .string(name)), ("labels", .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))])),
            ("spec", .object(taints.isEmpty ? [] : [("taints", .array(taints.map { .object([("key", .string($0.key)), ("effect", .string($0.effect))]) }))])),
            ("status", .object([("allocatable", .object(allocatable)), ("capacity", .object(allocatable)),
                                ("nodeInfo", .object([("architecture", .string(arch))])),
                                ("conditions", .array([.object([("type", .string("Ready")), ("status", .string("True"))])]))])),
        ])
        state.withLock { s in notify(Self.insert(&s, "nodes", nil, node), &s) }
    }

    /// Replaces a Pod's status (as the kubelet does), with a new resourceVersion.
    public func setPodStatus(namespace: String, name: String, _ status: JSONValue) {
        state.withLock { s in
            guard let pod = s.objects["pods"]?[Self.key(namespace, name)] else { return }
            notify(Self.replace(&s, "pods", namespace, pod.setting(["status"], status), type: "MODIFIED"), &s)
        }
    }

    /// Replaces a Service's status (as a cloud controller does when it gives a LoadBalancer its address).
    public func setServiceStatus(namespace: String, name: String, _ status: JSONValue) {
        state.withLock { s in
            guard let service = s.objects["services"]?[Self.key(namespace, name)] else { return }
            notify(Self.replace(&s, "services", namespace, service.setting(["status"], status), type: "MODIFIED"), &s)
        }
    }

    /// Records an Event about a Pod (as the kubelet and scheduler do).
    public func recordEvent(namespace: String, pod: String, reason: String, message: String, warning: Bool = false) {
        state.withLock { s in
            s.uid += 1
            let event: JSONValue = .object([
                ("apiVersion", .string("v1")), ("kind", .string("Event")),
                ("metadata", .object([("name", .string("\(pod).\(s.uid)")), ("namespace", .string(namespace))])),
                ("involvedObject", .object([("kind", .string("Pod")), ("name", .string(pod)), ("namespace", .string(namespace))])),
                ("reason", .string(reason)), ("message", .string(message)), ("type", .string(warning ? "Warning" : "Normal")),
                ("count", .int(1)), ("lastTimestamp", .string(Self.now())),
            ])
            notify(Self.insert(&s, "events", namespace, event), &s)
        }
    }

    // MARK: serving

    public func start(tls: TLS? = nil) async throws {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        var server: HTTPServerBuilder = .http1()
        if let tls {
            var config = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(tls.certificatePEM).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: tls.keyPEM, format: .pem)))
            if let ca = tls.clientCAPEM {
                config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
                config.certificateVerification = .noHostnameVerification
            }
            server = try .tls(.http1(), tlsConfiguration: config)
            scheme.withLock { $0 = "https" }
        }
        let responder = CallbackResponder<BasicRequestContext> { [self] request, _ in
            try await self.handle(request)
        }
        var logger = Logger(label: "fake-kubernetes")
        logger.logLevel = .critical
        let app = Application(responder: responder, server: server, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0); continuation.finish() },
                              logger: logger)
        let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: logger))
        group.withLock { $0 = serviceGroup }
        Task {
            try? await serviceGroup.run()
            continuation.finish()   // never left waiting for a port that will not come
        }
        var it = stream.makeAsyncIterator()
        let bound = await it.next() ?? 0
        guard bound > 0 else { throw TestCertificates.Failure(description: "the fake API server did not start listening") }
        boundPort.withLock { $0 = bound }
        let kubeletTask = Task { [weak self] in
            // The kubelet finishes graceful deletions; bookmarks go out on open watches.
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                self?.tick()
            }
        }
        kubeletTicker.withLock { $0 = kubeletTask }
    }

    private let kubeletTicker: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let lastBookmark = Mutex(Date())

    /// Ends open watches, then shuts the server down gracefully (cancelling its task could leave
    /// a just-accepted connection unserved, which NIO traps on).
    public func stop() {
        dropWatches()
        kubeletTicker.withLock { $0?.cancel() }
        if let g = group.withLock({ $0 }) { Task { await g.triggerGracefulShutdown() } }
    }

    /// A kubeconfig for this server (`token` as the user's bearer token).
    public func kubeconfig(context: String = "fake", namespace: String = "default", token: String? = nil) -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: fake
          cluster:
            server: \(url)
        users:
        - name: tester
          user: {\(token.map { "token: \($0)" } ?? "")}
        contexts:
        - name: \(context)
          context: {cluster: fake, user: tester, namespace: \(namespace)}
        current-context: \(context)

        """
    }

    func tick() {
        state.withLock { s in
            // Pods marked for graceful deletion stop after a moment (the fake kubelet is quick).
            for (key, pod) in s.objects["pods"] ?? [:] where pod.value(at: ["metadata", "deletionTimestamp"]) != nil {
                let ns = pod.value(at: ["metadata", "namespace"])?.stringValue
                var gone = pod
                s.rv += 1
                gone = gone.setting(["metadata", "resourceVersion"], .string(String(s.rv)))
                s.objects["pods"]?[key] = nil
                notify(Change(rv: s.rv, type: "DELETED", resource: "pods", object: gone), &s)
                _ = ns
            }
        }
        let due = lastBookmark.withLock { last -> Bool in
            let interval = state.withLock { $0.bookmarkInterval }
            if Date().timeIntervalSince(last) >= interval { last = Date(); return true }
            return false
        }
        if due {
            let (watchers, rv) = state.withLock { s in
                s.bookmarks += s.watchers.count
                return (Array(s.watchers.values), s.rv)
            }
            for w in watchers {
                let kind = Self.resources.first { $0.name == w.resource }?.kind ?? ""
                w.continuation.yield(.object([("type", .string("BOOKMARK")), ("object", .object([
                    ("kind", .string(kind)), ("apiVersion", .string("v1")),
                    ("metadata", .object([("resourceVersion", .string(String(rv)))])),
                ]))]))
            }
        }
    }

    static func key(_ namespace: String?, _ name: String) -> String { namespace.map { "\($0)/\(name)" } ?? name }

    static func now() -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date())
    }

    static func namespaceObject(_ name: String) -> JSONValue {
        .object([("apiVersion", .string("v1")), ("kind", .string("Namespace")), ("metadata", .object([("name", .string(name))])),
                 ("status", .object([("phase", .string("Active"))]))])
    }

    /// Stores a new object: uid, creationTimestamp, resourceVersion.
    static func insert(_ s: inout State, _ resource: String, _ namespace: String?, _ object: JSONValue) -> Change {
        s.rv += 1
        s.uid += 1
        let name = object.value(at: ["metadata", "name"])?.stringValue ?? ""
        var o = object.setting(["metadata", "resourceVersion"], .string(String(s.rv)))
        o = o.setting(["metadata", "uid"], .string(String(format: "00000000-0000-4000-8000-%012d", s.uid)))
        o = o.setting(["metadata", "creationTimestamp"], .string(now()))
        if let namespace { o = o.setting(["metadata", "namespace"], .string(namespace)) }
        s.objects[resource, default: [:]][key(namespace, name)] = o
        let change = Change(rv: s.rv, type: "ADDED", resource: resource, object: o)
        s.history.append(change)
        return change
    }

    static func replace(_ s: inout State, _ resource: String, _ namespace: String?, _ object: JSONValue, type: String) -> Change {
        s.rv += 1
        let name = object.value(at: ["metadata", "name"])?.stringValue ?? ""
        let o = object.setting(["metadata", "resourceVersion"], .string(String(s.rv)))
        s.objects[resource, default: [:]][key(namespace, name)] = o
        let change = Change(rv: s.rv, type: type, resource: resource, object: o)
        s.history.append(change)
        return change
    }

    func notify(_ change: Change, _ s: inout State) {
        if s.history.last?.rv != change.rv { s.history.append(change) }
        if s.history.count > 5000 { s.history.removeFirst(1000); s.compactedBefore = s.history.first?.rv ?? s.rv }
        for w in s.watchers.values where matches(w, change.resource, change.object) {
            w.continuation.yield(.object([("type", .string(change.type)), ("object", change.object)]))
        }
        if change.resource == "pods", change.type == "ADDED" { runKubelet(&s, change.object) }
    }

    func matches(_ w: Watcher, _ resource: String, _ object: JSONValue) -> Bool {
        guard w.resource == resource else { return false }
        if let ns = w.namespace, object.value(at: ["metadata", "namespace"])?.stringValue != ns { return false }
        return Self.select(object, labels: w.labels, fields: w.fields)
    }

    static func select(_ object: JSONValue, labels: Selector, fields: Selector) -> Bool {
        let l = object.value(at: ["metadata", "labels"])?.stringMap ?? [:]
        guard labels.matches({ l[$0] }) else { return false }
        return fields.matches { path in
            switch object.value(at: path.split(separator: ".").map(String.init)) {
            case .string(let s)?: return s
            case .int(let i)?: return String(i)
            case .bool(let b)?: return String(b)
            default: return nil
            }
        }
    }

    /// The simulated kubelet and scheduler for a new Pod.
    func runKubelet(_ s: inout State, _ pod: JSONValue) {
        let ns = pod.value(at: ["metadata", "namespace"])?.stringValue
        switch s.kubelet {
        case .manual: return
        case .unschedulable(let message):
            let status: JSONValue = .object([("phase", .string("Pending")), ("conditions", .array([.object([
                ("type", .string("PodScheduled")), ("status", .string("False")), ("reason", .string("Unschedulable")), ("message", .string(message)),
            ])]))])
            notify(Self.replace(&s, "pods", ns, pod.setting(["status"], status), type: "MODIFIED"), &s)
        case .run:
            var containers: [JSONValue] = []
            if case .array(let list)? = pod.value(at: ["spec", "containers"]) { containers = list }
            s.nextIP += 1
            let ip = "10.244.0.\(s.nextIP)"
            let status: JSONValue = .object([
                ("phase", .string("Running")), ("podIP", .string(ip)), ("hostIP", .string("10.0.0.1")), ("startTime", .string(Self.now())),
                ("conditions", .array([
                    .object([("type", .string("PodScheduled")), ("status", .string("True"))]),
                    .object([("type", .string("Ready")), ("status", .string("True"))]),
                ])),
                // One status per container, with the fields the API requires (name, ready,
                // restartCount, image, imageID).
                ("containerStatuses", .array(containers.map { c in .object([
                    ("name", c["name"] ?? .string("service")), ("ready", .bool(true)), ("restartCount", .int(0)),
                    ("image", c["image"] ?? .string("")), ("imageID", .string("")),
                    ("state", .object([("running", .object([("startedAt", .string(Self.now()))]))])),
                ]) })),
            ])
            var scheduled = pod.setting(["spec", "nodeName"], .string("node-1"))
            scheduled = scheduled.setting(["status"], status)
            notify(Self.replace(&s, "pods", ns, scheduled, type: "MODIFIED"), &s)
        }
    }
}
