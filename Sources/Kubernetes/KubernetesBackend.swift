import Backend
import Foundation
import Primitives
import Logging
import Model
import ServiceLifecycle
import Synchronization

/// Replicas as Pods on a Kubernetes cluster (one kubeconfig context, one namespace).
///
/// It reads the cluster only through watches: Pods it manages (by label), Nodes (offers) and
/// Pod events, each kept by a `Reflector`. At steady state it sends no list or get; writes are
/// a create per Pod (and per Secret), a delete per Pod (and per Secret).
///
/// It does I/O and decides nothing: a Pod deleted outside Setpoint is reported as `vanished`
/// (the replica controller submits it again); its background work (the watches, relays to Pods,
/// announcements, secret cleanup) runs in `run()`, a Service of the server's ServiceGroup.
public final class KubernetesBackend: ComputeBackend, ReadinessProber, ServiceLifecycle.Service {
    public enum Access: String, Sendable, Codable {
        /// Pod IP inside the cluster, the API server's pod proxy outside.
        case auto
        case podIP = "pod-ip"
        case apiProxy = "api-proxy"
    }

    public struct Settings: Sendable {
        public var template: PodTemplate.Settings
        public var access: Access = .auto
        /// How long an unschedulable Pod waits (for a cluster autoscaler) before the replica fails
        /// with no capacity.
        public var unschedulableTimeout: TimeInterval = 600
        /// Create the namespace when it is missing (at start, and again when it was deleted).
        public var createNamespace = true
        /// How often the cluster's history is checked against the caches' (one list of at most
        /// one Pod): a resourceVersion older than the cache's means etcd was restored or replaced,
        /// and everything is listed again.
        public var consistencyCheckInterval: TimeInterval = 60

        public init(template: PodTemplate.Settings) { self.template = template }
    }

    public let name = "kubernetes"
    public let client: KubeClient
    public let settings: Settings
    public var region: String { client.connection.context }
    var namespace: String { settings.template.namespace }
    private let logger: Logger
    private let broadcaster = StatusBroadcaster()
    private let eventStream: (stream: AsyncStream<WorkloadEvent>, continuation: AsyncStream<WorkloadEvent>.Continuation)
    private let pods: Reflector<Pod>
    private let nodes: Reflector<Node>
    private let podEvents: Reflector<Event>
    /// Lets the reflectors (made before `self` exists) call back into the backend.
    private let callbacks = WeakReference<KubernetesBackend>()

    private struct State {
        /// Pods Setpoint is deleting (their disappearance is expected).
        var deleting: Set<String> = []
        /// Pods whose last event is `Pulling`.
        var pulling: Set<String> = []
        /// One relay per running Pod (outside the cluster); callers that ask while it starts wait
        /// for the same start.
        var relays: [String: RelayEntry] = [:]
        /// Endpoint → Pod, for readiness.
        var endpoints: [String: String] = [:]
        var eventCounts: [String: Int] = [:]
        /// Pods deleted by someone else, by name, with their labels: reported as vanished until
        /// the replica controller submits them again or ends them.
        var vanished: [String: [String: String]] = [:]
        /// Pods a delete was accepted for, with the grace period asked (a second delete is sent
        /// only to shorten it).
        var deleteSent: [String: Int] = [:]
        /// Pods with a re-announcement due (the unschedulable bound).
        var rechecks: Set<String> = []
        var stopped = false
    }

    enum RelayEntry {
        case starting([CheckedContinuation<PodRelay?, Never>])
        case ready(PodRelay)
    }

    /// Background work `run()` carries out, asked for by synchronous callbacks (a watch event).
    enum Chore: Sendable {
        /// The Pod as the event showed it (it may be gone from the cache by the time it is said).
        case announce(Pod)
        /// The Pod as the cache has it now (its pulling state changed).
        case announceCurrent(String)
        case runRelay(PodRelay)
        case closeRelay(PodRelay)
        case deleteSecrets(Pod)
        case recheck(String, after: TimeInterval)
    }

    private let chores: (stream: AsyncStream<Chore>, continuation: AsyncStream<Chore>.Continuation)
    private let stopSignal = Signal()

    private let state = Mutex(State())
    private let startedAt = Date()

    public init(client: KubeClient, settings: Settings, logger: Logger) {
        self.client = client
        self.settings = settings
        self.logger = logger
        eventStream = AsyncStream<WorkloadEvent>.makeStream(bufferingPolicy: .bufferingNewest(1000))
        chores = AsyncStream<Chore>.makeStream()
        let selector = Self.ownedSelector(settings.template.installation)
        let callbacks = self.callbacks
        pods = Reflector<Pod>(client: client, namespace: settings.template.namespace, labelSelector: selector, logger: logger) { change in
            callbacks.value?.podChanged(change)
        }
        nodes = Reflector<Node>(client: client, namespace: nil, labelSelector: nil, logger: logger) { _ in }
        podEvents = Reflector<Event>(client: client, namespace: settings.template.namespace, labelSelector: nil,
                                     fieldSelector: "involvedObject.kind=Pod", logger: logger) { change in
            if case .upsert(let event) = change { callbacks.value?.podEvent(event) }
        }
        callbacks.value = self
    }

    /// Ensures the namespace (before the server's services start).
    public func prepare() async {
        guard mayCreateNamespace else { return }
        do {
            if try await client.get(Namespace.self, name: namespace) == nil { try await createNamespace() }
        } catch {
            logger.warning("cannot ensure the namespace", metadata: ["namespace": "\(namespace)", "error": "\(error)"])
        }
    }

    /// The watches, the consistency check, the relays and the chores, until graceful shutdown
    /// (or `shutdown()`): relays are closed gracefully, then the watches are cancelled.
    public func run() async throws {
        let (pods, nodes, events) = (self.pods, self.nodes, self.podEvents)
        let interval = settings.consistencyCheckInterval
        let stopSignal = self.stopSignal
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await withDiscardingTaskGroup { watches in
                        watches.addTask { await pods.run() }
                        watches.addTask { await nodes.run() }
                        watches.addTask { await events.run() }
                        watches.addTask { [weak self] in
                            await pods.waitUntilSynced()
                            await self?.collectSecrets()
                        }
                        watches.addTask { [weak self] in
                            while !Task.isCancelled {
                                do { try await Task.sleep(for: .seconds(interval)) } catch { return }
                                await self?.checkConsistency()
                            }
                        }
                        await stopSignal.wait()
                        watches.cancelAll()
                    }
                }
                for await chore in chores.stream {
                    group.addTask { [weak self] in await self?.perform(chore) }
                }
            }
        } onGracefulShutdown: {
            self.stop()
        }
    }

    private func perform(_ chore: Chore) async {
        switch chore {
        case .announce(let pod):
            if let name = pod.metadata.name { await announce(pod, name: name) }
        case .announceCurrent(let name):
            if let pod = pods.get(name) { await announce(pod, name: name) }
        case .runRelay(let relay):
            await relay.run()
        case .closeRelay(let relay):
            await relay.close()
        case .deleteSecrets(let pod):
            await deleteSecrets(of: pod)
        case .recheck(let name, let delay):
            try? await Task.sleep(for: .seconds(delay))
            guard state.withLock({ $0.rechecks.remove(name) != nil }), !Task.isCancelled else { return }
            if let pod = pods.get(name) { await announce(pod, name: name) }
        }
    }

    /// Ends `run()`: relays close gracefully, the watches stop, no chore is taken any more.
    private func stop() {
        let relays = state.withLock { s -> [PodRelay] in
            s.stopped = true
            defer { s.relays = [:] }
            return s.relays.values.compactMap { if case .ready(let r) = $0 { return r } else { return nil } }
        }
        for relay in relays { chores.continuation.yield(.closeRelay(relay)) }
        chores.continuation.finish()
        stopSignal.fire()
    }

    /// Waits until the Pod cache is filled; false after `timeout`.
    public func waitForPods(timeout: TimeInterval) async -> Bool {
        if pods.isSynced { return true }
        let pods = self.pods
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await pods.waitUntilSynced(); return true }
            group.addTask { try? await Task.sleep(for: .seconds(timeout)); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Outside a cluster Setpoint owns its namespace; inside, its RBAC cannot create one.
    private var mayCreateNamespace: Bool { settings.createNamespace && !client.connection.inCluster }

    private func createNamespace() async throws {
        do {
            _ = try await client.create(Namespace(metadata: ObjectMeta(name: namespace, labels: [PodTemplate.managedBy: "setpoint"])))
            logger.info("created the namespace", metadata: ["namespace": "\(namespace)"])
        } catch let e as KubeAPIError where e.isAlreadyExists {}
    }

    /// A create refused because the namespace is gone: re-create it when Setpoint manages it
    /// (true: try again), else say plainly that it must exist.
    private func recoverNamespace(_ error: KubeAPIError) async throws -> Bool {
        guard error.isNotFound, error.message.contains("namespaces \"\(namespace)\" not found") else { return false }
        guard mayCreateNamespace else {
            throw BackendError(.unavailable, "namespace \(namespace) does not exist in context \(region): create it (inside a cluster Setpoint does not create namespaces): \(error.message)")
        }
        logger.warning("the namespace is gone; creating it again", metadata: ["namespace": "\(namespace)"])
        try await createNamespace()
        return true
    }

    /// One cheap request (a list of at most one Pod): a resourceVersion older than the Pod
    /// cache's means the cluster's history was replaced, so every cache is listed again (what
    /// is gone is then announced as gone, and replaced like any Pod deleted outside Setpoint).
    func checkConsistency() async {
        guard let known = pods.resourceVersion else { return }
        do {
            let current = try await client.currentVersion(Pod.self, namespace: namespace, labelSelector: Self.ownedSelector(settings.template.installation))
            guard let current, Versions.isOlder(current, than: known) else { return }
            logger.warning("the cluster's history was reset (resourceVersion \(current) < \(known)); listing everything again",
                           metadata: ["context": "\(region)"])
            pods.requestRelist()
            nodes.requestRelist()
            podEvents.requestRelist()
        } catch {
            logger.debug("consistency check failed", metadata: ["error": "\(error)"])
        }
    }

    /// Reads from the Pod cache are only answers once it is filled: before, a missing Pod may
    /// just not be listed yet.
    private func requireSynced() throws {
        guard pods.isSynced else { throw BackendError(.unavailable, "the Kubernetes API server of context \(region) has not answered yet") }
    }

    /// Stops `run()` (when it runs outside a ServiceGroup) and closes the client.
    public func shutdown() async {
        stop()
        eventStream.continuation.finish()
        await client.shutdown()
    }

    /// The reflectors' list and watch counts (request efficiency).
    public var watchCounts: [String: (lists: Int, watches: Int)] {
        ["pods": pods.counts, "nodes": nodes.counts, "events": podEvents.counts]
    }

    /// The version each watch would resume from (`pods`, `nodes`, `events`).
    public func bookmarkedVersion(_ watch: String) -> String? {
        switch watch {
        case "pods": return pods.resourceVersion
        case "nodes": return nodes.resourceVersion
        default: return podEvents.resourceVersion
        }
    }

    /// The label selector of what this installation created (Pods and Secrets alike).
    static func ownedSelector(_ installation: String) -> String {
        "\(PodTemplate.managedBy)=setpoint,\(PodTemplate.installationLabel)=\(PodTemplate.labelValue(installation))"
    }

    // MARK: IDs

    static let idPrefix = "k8s:"

    func workloadID(_ pod: String) -> WorkloadID { WorkloadID("\(Self.idPrefix)\(region):\(namespace)/\(pod)") }

    func podName(_ id: WorkloadID) -> String? {
        let prefix = "\(Self.idPrefix)\(region):\(namespace)/"
        guard id.rawValue.hasPrefix(prefix) else { return nil }
        return String(id.rawValue.dropFirst(prefix.count))
    }

    public func owns(_ id: WorkloadID) -> Bool { podName(id) != nil }

    // MARK: ComputeBackend

    public func offers() async throws -> [Offer] {
        guard nodes.isSynced else {
            throw BackendError(.unavailable, "the nodes of context \(region) are not known yet (is `list`/`watch` on nodes allowed?)")
        }
        return NodeOffers.offers(nodes.items, backend: name, region: region)
    }

    public func create(_ request: WorkloadRequest) async throws -> WorkloadID {
        try requireSynced()
        let name = PodTemplate.podName(request.name)
        let id = workloadID(name)
        if pods.get(name) != nil { return id }   // adopted or created before: never a duplicate
        var templateSettings = settings.template
        templateSettings.gpuProducts = nodes.items.compactMap { node in
            node.metadata.labels?["nvidia.com/gpu.product"].map { GPUProduct(product: $0, memoryMiB: node.metadata.labels?["nvidia.com/gpu.memory"]) }
        }
        var archive: Data?
        if let code = request.template.code, code.size <= templateSettings.maxInlineCode {
            archive = FileManager.default.contents(atPath: code.path)
        }
        var objects = try PodTemplate.make(request, settings: templateSettings, codeArchive: archive)
        objects.pod.metadata.annotations?["setpoint.dev/secrets"] = objects.secrets.compactMap(\.metadata.name).joined(separator: ",")
        var written: [String] = []
        do {
            do {
                try await createObjects(objects, written: &written)
            } catch let e as KubeAPIError where e.isNotFound {
                guard try await recoverNamespace(e) else { throw e }
                try await createObjects(objects, written: &written)
            }
        } catch let e as KubeAPIError where e.isAlreadyExists {
            return id
        } catch let e as KubeAPIError {
            // The Pod was refused: its Secrets would be left behind.
            for secret in written { _ = try? await client.delete(Secret.self, namespace: namespace, name: secret) }
            switch e.code {
            case 400, 422: throw BackendError(.invalid, "the cluster refused the Pod: \(e.message)")
            case 403: throw BackendError(.invalid, "not allowed to create Pods in namespace \(namespace): \(e.message)")
            default: throw BackendError(.unavailable, e.description)
            }
        }
        return id
    }

    /// Secrets first, then the Pod; `written` collects the Secrets (to delete if the Pod is refused).
    private func createObjects(_ objects: PodTemplate.Objects, written: inout [String]) async throws {
        for secret in objects.secrets {
            do { _ = try await client.create(secret, namespace: namespace) } catch let e as KubeAPIError where e.isAlreadyExists {}
            if let name = secret.metadata.name, !written.contains(name) { written.append(name) }
        }
        let pod = try await client.create(objects.pod, namespace: namespace)
        // Submitted (again, if it had vanished): from now on a Pod like any other.
        if let name = pod.metadata.name { state.withLock { _ = $0.vanished.removeValue(forKey: name) } }
        pods.seed(pod)
    }

    public func status(_ id: WorkloadID) async throws -> WorkloadStatus? {
        try requireSynced()
        guard let name = podName(id) else { return nil }
        guard let pod = pods.get(name) else {
            // A Pod deleted by someone else is reported as such until it is submitted again.
            return state.withLock { $0.vanished[name] }.map { WorkloadStatus(id: id, labels: $0, state: Self.vanishedState) }
        }
        return WorkloadStatus(id: id, labels: pod.metadata.labels ?? [:], state: await state(of: pod))
    }

    public static let vanishedState = WorkloadState.vanished("the Pod was deleted outside Setpoint")

    public func stop(_ id: WorkloadID, graceful: Bool) async throws {
        guard let name = podName(id) else { return }
        state.withLock { _ = $0.vanished.removeValue(forKey: name) }
        guard let pod = pods.get(name) else { return }
        let grace = graceful ? Int(pod.spec?.terminationGracePeriodSeconds ?? 30) : 1
        // Deleting a Pod is how Kubernetes stops it: SIGTERM, then SIGKILL after the grace period.
        if pod.metadata.deletionTimestamp != nil, graceful { return }
        state.withLock { _ = $0.deleting.insert(name) }
        try await deleteOrThrow(name, grace: grace, pod: pod)
    }

    public func delete(_ id: WorkloadID) async throws {
        guard let name = podName(id) else { return }
        // A vanished Pod is gone for good once its replica is deleted.
        state.withLock { _ = $0.vanished.removeValue(forKey: name) }
        guard let pod = pods.get(name) else { return }
        state.withLock { _ = $0.deleting.insert(name) }
        // A Pod already being stopped is left to finish its grace period; a finished one still
        // has to go (its object stays until deleted).
        let finished = pod.status?.phase == "Succeeded" || pod.status?.phase == "Failed"
        if pod.metadata.deletionTimestamp == nil || finished {
            // Grace 1 (kubectl's --now) for a live Pod: 0 would be a forced delete, which stops
            // waiting for the kubelet to confirm the container is gone.
            try await deleteOrThrow(name, grace: finished ? 0 : 1, pod: pod)
        }
    }

    /// One DELETE per Pod, unless a later one shortens the grace period of a Pod still running:
    /// a finished Pod (evicted, failed) goes with the first, so a second would only get 404.
    private func deleteOrThrow(_ name: String, grace: Int, pod: Pod) async throws {
        let finished = pod.status?.phase == "Succeeded" || pod.status?.phase == "Failed"
        let send = state.withLock { s -> Bool in
            if let sent = s.deleteSent[name], finished || grace >= sent { return false }
            s.deleteSent[name] = grace
            return true
        }
        guard send else { return }
        do {
            try await client.delete(Pod.self, namespace: namespace, name: name, gracePeriodSeconds: grace, preconditionUID: pod.metadata.uid)
        } catch let e as KubeAPIError where e.isConflict {
            // A different Pod of that name (recreated since): it is not ours to delete.
        } catch let e as KubeAPIError {
            _ = state.withLock { $0.deleteSent.removeValue(forKey: name) }   // not accepted: the next attempt sends it again
            throw BackendError(.unavailable, e.description)
        }
    }

    public func inventory(labels: [String: String]) async throws -> [WorkloadStatus] {
        guard await waitForPods(timeout: 10) else { try requireSynced(); return [] }
        var result: [WorkloadStatus] = []
        for pod in pods.items {
            let l = pod.metadata.labels ?? [:]
            guard labels.allSatisfy({ l[$0.key] == $0.value }), let name = pod.metadata.name else { continue }
            result.append(WorkloadStatus(id: workloadID(name), labels: l, state: await state(of: pod)))
        }
        return result
    }

    public func changes() -> AsyncStream<WorkloadStatus> { broadcaster.subscribe() }
    public func changeStreams() -> [AsyncStream<WorkloadStatus>] { [changes()] }
    public func events() -> AsyncStream<WorkloadEvent> { eventStream.stream }
    public func eventStreams() -> [AsyncStream<WorkloadEvent>] { [events()] }

    public func logs(_ id: WorkloadID, follow: Bool) -> AsyncThrowingStream<LogLine, Error> {
        guard let name = podName(id) else { return AsyncThrowingStream { $0.finish() } }
        // `timestamps=true`: "2026-01-02T03:04:05.123456789Z text".
        return client.logs(namespace: namespace, pod: name, container: "service", follow: follow) { line in
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            let time = parts.first.flatMap { KubeTime.parse(String($0).replacingOccurrences(of: #"\.\d+Z$"#, with: "Z", options: .regularExpression)) }
            return LogLine(time: time ?? Date(), text: time != nil && parts.count == 2 ? String(parts[1]) : line)
        }
    }

    // MARK: ReadinessProber (readiness the kubelet probes, through the watch)

    public func probe(endpoint: String, _ probe: ProbeTemplate) async -> Bool { false }

    public func observedReadiness(endpoint: String) -> Bool? {
        guard let name = state.withLock({ $0.endpoints[endpoint] }), let pod = pods.get(name),
              pod.metadata.annotations?[PodTemplate.kubeletProbeAnnotation] == "true" else { return nil }
        return PodObservation.isReady(pod)
    }

    // MARK: observation

    public var useAPIProxy: Bool {
        switch settings.access {
        case .auto: return !client.connection.inCluster
        case .podIP: return false
        case .apiProxy: return true
        }
    }

    private func state(of pod: Pod) async -> WorkloadState {
        guard let name = pod.metadata.name else { return .pending(nil) }
        let port = pod.spec?.containers.first?.ports?.first?.containerPort ?? 8000
        var endpoint: String?
        if pod.status?.phase == "Running", pod.metadata.deletionTimestamp == nil {
            if useAPIProxy {
                endpoint = await relay(for: name, port: port)
            } else if let ip = pod.status?.podIP {
                endpoint = ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
            }
            if let endpoint { state.withLock { $0.endpoints[endpoint] = name } }
        }
        let pulling = state.withLock { $0.pulling.contains(name) }
        let now = Date()
        let observed = PodObservation.state(pod, endpoint: endpoint, pulling: pulling, now: now, unschedulableTimeout: settings.unschedulableTimeout)
        if case .pending(let message?) = observed, message.hasPrefix("unschedulable"), let created = pod.metadata.creationTimestamp.flatMap(KubeTime.parse) {
            scheduleRecheck(name, at: created.addingTimeInterval(settings.unschedulableTimeout))
        }
        return observed
    }

    /// The loopback address relaying to the Pod, started on first use: its listener runs in
    /// `run()`, and callers that ask while it starts wait for the same start.
    private func relay(for name: String, port: Int) async -> String? {
        enum Step { case ready(PodRelay), wait, start, stopped }
        let step = state.withLock { s -> Step in
            if s.stopped { return .stopped }
            switch s.relays[name] {
            case .ready(let relay)?: return .ready(relay)
            case .starting?: return .wait
            case nil:
                s.relays[name] = .starting([])
                return .start
            }
        }
        switch step {
        case .ready(let relay):
            return relay.address
        case .stopped:
            return nil
        case .wait:
            let relay = await withCheckedContinuation { (waiter: CheckedContinuation<PodRelay?, Never>) in
                let now = state.withLock { s -> PodRelay?? in
                    switch s.relays[name] {
                    case .starting(var waiters)?:
                        waiters.append(waiter)
                        s.relays[name] = .starting(waiters)
                        return nil   // resumed by the start
                    case .ready(let relay)?: return .some(relay)
                    case nil: return .some(nil)
                    }
                }
                if let now { waiter.resume(returning: now) }
            }
            return relay?.address
        case .start:
            var relay: PodRelay?
            do {
                let started = try PodRelay.make(client: client, namespace: namespace, pod: name, port: port, logger: logger)
                if case .enqueued = chores.continuation.yield(.runRelay(started)) {
                    if await started.waitUntilListening() { relay = started } else { await started.close() }
                }
            } catch {
                logger.warning("cannot relay to pod", metadata: ["pod": "\(name)", "error": "\(error)"])
            }
            // A Pod that went meanwhile must not leave a listener behind.
            if let started = relay, pods.get(name) == nil {
                chores.continuation.yield(.closeRelay(started))
                relay = nil
            }
            let waiters = state.withLock { s -> [CheckedContinuation<PodRelay?, Never>] in
                guard case .starting(let waiting)? = s.relays[name] else { return [] }
                s.relays[name] = relay.map { .ready($0) }   // none: the next look tries again
                return waiting
            }
            for waiter in waiters { waiter.resume(returning: relay) }
            return relay?.address
        }
    }

    /// Announces the Pod again when the unschedulable bound passes, so the replica fails then.
    private func scheduleRecheck(_ name: String, at deadline: Date) {
        let delay = deadline.timeIntervalSinceNow + 0.05
        guard delay > 0, state.withLock({ $0.rechecks.insert(name).inserted }) else { return }
        chores.continuation.yield(.recheck(name, after: delay))
    }

    private func podChanged(_ change: Reflector<Pod>.Change) {
        switch change {
        case .upsert(let pod):
            guard pod.metadata.name != nil else { return }
            chores.continuation.yield(.announce(pod))
        case .deleted(let pod):
            guard let name = pod.metadata.name else { return }
            let (expected, relay) = state.withLock { s -> (Bool, PodRelay?) in
                let expected = s.deleting.remove(name) != nil
                s.deleteSent[name] = nil
                s.pulling.remove(name)
                s.rechecks.remove(name)
                var relay: PodRelay?
                if case .ready(let r)? = s.relays[name] {
                    relay = r
                    s.relays[name] = nil
                }
                s.endpoints = s.endpoints.filter { $0.value != name }
                // Events are named `<pod>.<suffix>`: forget those of a Pod that is gone.
                s.eventCounts = s.eventCounts.filter { !$0.key.hasPrefix(name + ".") }
                return (expected, relay)
            }
            if let relay { chores.continuation.yield(.closeRelay(relay)) }
            let finished = pod.status?.phase == "Succeeded" || pod.status?.phase == "Failed"
            let labels = pod.metadata.labels ?? [:]
            if expected || finished {
                chores.continuation.yield(.deleteSecrets(pod))
                broadcaster.announce(WorkloadStatus(id: workloadID(name), labels: labels, state: .stopping))
            } else {
                // Deleted by someone else (a drain, `kubectl delete`, a restored etcd): said so;
                // the replica controller decides to submit it again. Its Secrets stay for the copy.
                state.withLock { $0.vanished[name] = labels }
                broadcaster.announce(WorkloadStatus(id: workloadID(name), labels: labels, state: Self.vanishedState))
            }
        }
    }

    private func announce(_ pod: Pod, name: String) async {
        broadcaster.announce(WorkloadStatus(id: workloadID(name), labels: pod.metadata.labels ?? [:], state: await state(of: pod)))
    }

    private func deleteSecrets(of pod: Pod) async {
        let names = (pod.metadata.annotations?["setpoint.dev/secrets"] ?? "").split(separator: ",").map(String.init)
        for secret in names {
            do { try await client.delete(Secret.self, namespace: namespace, name: secret) } catch {
                logger.warning("cannot delete secret", metadata: ["secret": "\(secret)", "error": "\(error)"])
            }
        }
    }

    private func podEvent(_ event: Event) {
        guard let podName = event.involvedObject.name, let pod = pods.get(podName), let key = event.metadata.name else { return }
        let count = event.count ?? 1
        let isNew = state.withLock { s -> Bool in
            if s.eventCounts[key] == count { return false }
            s.eventCounts[key] = count
            return true
        }
        guard isNew else { return }
        let reason = event.reason ?? ""
        let changedPulling = state.withLock { s -> Bool in
            switch reason {
            case "Pulling": return s.pulling.insert(podName).inserted
            case "Pulled", "Failed", "BackOff", "Started", "Created": return s.pulling.remove(podName) != nil
            default: return false
            }
        }
        if changedPulling { chores.continuation.yield(.announceCurrent(podName)) }
        // Events from before this server started were recorded by its predecessor.
        let stamp = event.lastTimestamp ?? event.eventTime ?? event.metadata.creationTimestamp
        if let time = stamp.flatMap(KubeTime.parse), time < startedAt.addingTimeInterval(-1) { return }
        eventStream.continuation.yield(WorkloadEvent(labels: pod.metadata.labels ?? [:], warning: event.type == "Warning",
                                                     reason: reason, message: event.message ?? ""))
    }

    /// Deletes managed Secrets whose Pod is gone (left by a crash between the two deletes).
    public func collectSecrets() async {
        do {
            let secrets = try await client.list(Secret.self, namespace: namespace, labelSelector: Self.ownedSelector(settings.template.installation))
            for secret in secrets.items {
                guard let name = secret.metadata.name, let owner = secret.metadata.labels?["app.kubernetes.io/instance"] else { continue }
                // A Secret is written just before its Pod: young ones may belong to a create in flight.
                let age = secret.metadata.creationTimestamp.flatMap(KubeTime.parse).map { Date().timeIntervalSince($0) } ?? 0
                if pods.get(owner) == nil, age > 300 { try await client.delete(Secret.self, namespace: namespace, name: name) }
            }
        } catch {
            logger.warning("cannot collect secrets", metadata: ["error": "\(error)"])
        }
    }
}

/// A gateway's front door on a cluster: a `type: LoadBalancer` Service selecting its Pods, kept
/// while the gateway exists (its address survives redeploys of the Pods).
extension KubernetesBackend: GatewayFrontDoors {
    public func servesGateways(region: String) -> Bool { client.connection.context == region }

    static func frontDoorName(project: String, gateway: String) -> String { PodTemplate.podName("gw-\(project)-\(gateway)") }

    public func frontDoor(project: String, gateway: String, region: String) async throws -> FrontDoorState {
        guard let service = try await client.get(Service.self, namespace: namespace, name: Self.frontDoorName(project: project, gateway: gateway)) else {
            return .missing
        }
        if let ingress = service.status?.loadBalancer?.ingress?.first, let address = ingress.hostname ?? ingress.ip {
            return .ready(address: address)
        }
        let created = service.metadata.creationTimestamp.flatMap { ISO8601DateFormatter().date(from: $0) } ?? Date()
        return .waiting(since: created)
    }

    public func createFrontDoor(project: String, gateway: String, region: String, selector: [String: String], ports: [(String, Int, Int)]) async throws {
        var labels = selector.mapValues(PodTemplate.labelValue)
        labels[PodTemplate.installationLabel] = PodTemplate.labelValue(settings.template.installation)
        labels[PodTemplate.managedBy] = "setpoint"
        let service = Service(metadata: ObjectMeta(name: Self.frontDoorName(project: project, gateway: gateway), namespace: namespace, labels: labels),
                              spec: Service.Spec(selector: labels, ports: ports.map { Service.Spec.Port(name: $0.0, port: $0.1, targetPort: $0.2) },
                                                 type: "LoadBalancer"))
        do { _ = try await client.create(service, namespace: namespace) } catch let e as KubeAPIError where e.isAlreadyExists {}
    }

    public func deleteFrontDoor(project: String, gateway: String, region: String) async throws {
        do { _ = try await client.delete(Service.self, namespace: namespace, name: Self.frontDoorName(project: project, gateway: gateway)) }
        catch let e as KubeAPIError where e.isNotFound {}
    }
}
