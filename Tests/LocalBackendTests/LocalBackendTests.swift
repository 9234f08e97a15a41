import Backend
import Foundation
import LocalBackend
import Model
import Testing
import TestSupport

/// The local backend with real processes: process groups, exit statuses, logs, adoption after
/// a restart, and several replicas on one port through network namespaces.
@Suite(.serialized) struct LocalBackendTests {
    let root: String

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-local-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func request(_ name: String, _ commands: [String], port: Int = 8000, env: [String: String] = [:]) -> WorkloadRequest {
        WorkloadRequest(name: name, project: "main", labels: ["setpoint.dev/run": "web", "setpoint.dev/project": "main"],
                        template: ReplicaTemplate(commands: commands, env: env, port: port),
                        systemEnvironment: ["DSTACK_RUN_NAME": "web", "DSTACK_REPLICA_NUM": "0"])
    }

    func waitFor(_ backend: LocalBackend, _ id: WorkloadID, timeout: TimeInterval = 20, _ done: @escaping (WorkloadState) -> Bool) async throws -> WorkloadState {
        var reached: WorkloadState?
        try await TestSupport.waitFor("workload \(id) in the expected state", timeout: timeout) {
            guard let s = try await backend.status(id)?.state, done(s) else { return false }
            reached = s
            return true
        }
        return reached!
    }

    func cleanup(_ backend: LocalBackend) async {
        for w in (try? await backend.inventory(labels: [:])) ?? [] { try? await backend.delete(w.id) }
        try? FileManager.default.removeItem(atPath: root)
    }

    @Test func exitStatusLogsAndEnvironment() async throws {
        let backend = try LocalBackend(root: root, network: .host)
        let id = try await backend.create(request("job", ["echo hello from $DSTACK_RUN_NAME", "echo $GREETING", "exit 3"], env: ["GREETING": "hi"]))
        let state = try await waitFor(backend, id) { if case .exited = $0 { return true } else { return false } }
        #expect(state == .exited(3))
        var lines: [String] = []
        for try await line in backend.logs(id, follow: false) { lines.append(line.text) }
        #expect(lines == ["hello from web", "hi"])
        // Creating the same name again returns the same workload, not a new process.
        #expect(try await backend.create(request("job", ["exit 0"])) == id)
        await cleanup(backend)
    }

    @Test func gracefulStopAndKillEndTheWholeGroup() async throws {
        let backend = try LocalBackend(root: root, network: .host)
        // A child in the background must not survive the stop.
        let id = try await backend.create(request("sleeper", ["sleep 31337 & sleep 31338"]))
        _ = try await waitFor(backend, id) { if case .running = $0 { return true } else { return false } }
        try await backend.stop(id, graceful: true)
        let state = try await waitFor(backend, id) { if case .exited = $0 { return true } else { return false } }
        #expect(state == .exited(143))
        #expect(processes(matching: "sleep 3133", prefix: "sleep", in: root).isEmpty, "no process of the group survives")
        await cleanup(backend)
    }

    @Test func restartAdoptsRunningWorkloads() async throws {
        let first = try LocalBackend(root: root, network: .host)
        let id = try await first.create(request("long", ["sleep 300"]))
        _ = try await waitFor(first, id) { if case .running = $0 { return true } else { return false } }
        let second = try LocalBackend(root: root, network: .host)
        let adopted = try #require(try await second.status(id))
        if case .running = adopted.state {} else { Issue.record("expected running, got \(adopted.state)") }
        #expect(try await second.inventory(labels: ["setpoint.dev/run": "web"]).map(\.id) == [id])
        try await second.stop(id, graceful: false)
        let state = try await waitFor(second, id) { if case .exited = $0 { return true } else { return false } }
        #expect(state == .exited(137))
        await cleanup(second)
    }

    @Test func replicasOfOneServiceShareTheirPortInNamespaces() async throws {
        guard LocalBackend.namespacesWork() else { return }
        let backend = try LocalBackend(root: root, network: .namespace)
        let server = ["python3 -m http.server 8000 --bind 127.0.0.1"]
        let a = try await backend.create(request("web-0-0-0", server))
        let b = try await backend.create(request("web-0-1-0", server))
        let probe = ProbeTemplate(url: "/", timeout: 2)
        for id in [a, b] {
            guard case .running(let endpoint) = try await waitFor(backend, id, { if case .running = $0 { return true } else { return false } }) else { continue }
            #expect(endpoint.hasPrefix("unix:"))
            try await TestSupport.waitFor("replica \(id) answering on its own port 8000", timeout: 20) { await backend.probe(endpoint: endpoint, probe) }
        }
        for id in [a, b] { try await backend.stop(id, graceful: true) }
        for id in [a, b] { _ = try await waitFor(backend, id) { if case .exited = $0 { return true } else { return false } } }
        await cleanup(backend)
    }
}

/// Pids whose command line contains `text` (and starts with `prefix`), optionally only those
/// running in a directory under `directory` (so that tests running at once do not see each
/// other's processes).
func processes(matching text: String, prefix: String = "", in directory: String? = nil) -> [Int] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int.init).filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let cmd = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        guard cmd.contains(text), cmd.hasPrefix(prefix) else { return false }
        guard let directory else { return true }
        let cwd = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")) ?? ""
        return cwd.hasPrefix(directory)
    }
}

struct LocalTestError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

import SetpointConfiguration
import Controllers
import Reconcile
import Store

/// The controllers driving real processes: a two-replica HTTP service becomes Ready through
/// its readiness probes, and stopping it leaves no process behind.
@Suite(.serialized) struct LocalServiceTests {
    @Test func controllersRunARealServiceAndStopIt() async throws {
        guard LocalBackend.namespacesWork() else { return }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-svc-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let backend = try LocalBackend(root: root)
        let store = MemoryStore()
        let clock = SystemClock()
        let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: clock, resyncPeriod: nil)
        let task = Task { try await manager.run() }
        defer { task.cancel() }
        let yaml = """
            type: service
            name: web
            commands:
              - python3 -m http.server 8000 --bind 127.0.0.1
            port: 8000
            replicas: 2
            probes:
              - type: http
                url: /
                interval: 1
            """
        guard case .success(.service(let config)) = ConfigurationParser.parse(yaml).first?.result else {
            Issue.record("invalid test configuration")
            return
        }
        let runs = TypedStore<RunKind>(store)
        try await runs.create(Run(project: "main", name: "web", spec: RunSpec(configuration: config)))
        try await TestSupport.waitFor("the service ready", timeout: 30) { (try await runs.get(project: "main", name: "web"))?.status.readyReplicas == 2 }
        #expect(processes(matching: "http.server 8000", prefix: "python3", in: root).count == 2)
        var run = try #require(try await runs.get(project: "main", name: "web"))
        run.spec.stop = StopRequest(abort: false)
        try await runs.update(run)
        try await TestSupport.waitFor("the service stopped", timeout: 30) { (try await runs.get(project: "main", name: "web"))?.status.phase == .terminated }
        #expect(processes(matching: "http.server 8000", in: root).isEmpty, "no process of either replica is left")
        #expect(try await backend.inventory(labels: [:]).isEmpty, "stopped workloads are cleaned up")
    }
}
